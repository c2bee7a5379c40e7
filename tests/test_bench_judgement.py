"""The live judgement benchmark's bookkeeping: which gate decided, the alpha it had, the
configured fault's information limit, and its section of BENCHMARKS.md, from given releases."""

from __future__ import annotations

import math

from canaryflow.analysis.sequential import bernoulli_kl, canary_share
from canaryflow.bench.judgement import (
    BASE_ERROR_RATE,
    EXTRA_POD_RPS,
    FAULT_CLASSES,
    FLAVOURS,
    NOISE,
    ROUTER_RPS,
    STABLE_PODS,
    FaultClass,
    JudgementResults,
    ReleaseRun,
    configured_limit_s,
    deciding_gate,
    gate_alpha,
    judgement_plan,
    markdown,
    schedule,
    summary,
)
from canaryflow.bench.markdown import replace_section

FIVE_XX = FAULT_CLASSES[0]


def run(fault: str, gate: str | None = "error-rate", outcome: str = "fail", **extra) -> ReleaseRun:
    values = {
        "fault": fault,
        "flavour": "go",
        "phase": "rolled-back" if outcome != "pass" else "promoted",
        "reason": f"step 0 at 10%: {outcome}: {gate}: ...",
        "gate": gate,
        "outcome": outcome,
        "fault_on": 100.0 if fault != "good" else None,
        "detection_s": 20.0 if outcome != "pass" and fault != "good" else None,
        "before_fault": False,
        "gate_alpha": 0.001,
        "limit_s": 10.0,
        "requests": 1000,
        "failed": 3,
    }
    return ReleaseRun(**{**values, **extra})


def measurement(gate: str, outcome: str, threshold: float | None = None) -> dict:
    detail = {"log_threshold": threshold} if threshold is not None else {}
    return {"gate": gate, "outcome": outcome, "dry_run": False, "evidence": {"detail": detail}}


def test_the_first_failing_measurement_names_the_gate_that_caught_the_fault():
    rounds = [
        [measurement("error-rate", "pass"), measurement("log-errors", "collecting")],
        [measurement("log-errors", "fail"), measurement("error-rate", "fail")],
    ]
    assert deciding_gate(rounds, "step 0 at 10%: fail: log-errors: ...") == ("log-errors", "fail")


def test_a_release_ended_inconclusive_is_attributed_to_the_gate_its_reason_names():
    rounds = [[measurement("error-rate", "pass"), measurement("cpu-throttling", "collecting")]]
    reason = "step 0 at 10%: inconclusive: cpu-throttling: window ended while still collecting"
    assert deciding_gate(rounds, reason) == ("cpu-throttling", "inconclusive")


def test_the_gates_alpha_is_read_from_its_own_e_process_threshold():
    rounds = [[measurement("error-rate", "pass", math.log(1 / 0.00125))]]
    assert math.isclose(gate_alpha(rounds, "error-rate"), 0.00125)
    assert gate_alpha(rounds, "log-errors") is None


def test_the_live_limit_is_the_configured_faults_at_that_alpha_and_the_gates_tolerance():
    alpha = 0.00125
    share = ROUTER_RPS * 0.1 / (ROUTER_RPS + (STABLE_PODS - 1) * EXTRA_POD_RPS)
    kl = bernoulli_kl(canary_share(3.0, share), canary_share(1.2, share))
    total = ROUTER_RPS + (STABLE_PODS - 1) * EXTRA_POD_RPS
    events = total * BASE_ERROR_RATE * (share * 3.0 + 1 - share)
    expected = math.log(1 / alpha) / (kl * events)
    assert math.isclose(configured_limit_s(FIVE_XX, alpha, 0.1, baseline=False), expected)
    assert configured_limit_s(FIVE_XX, alpha / 10, 0.1, False) > expected, "smaller alpha: longer"
    latency = FaultClass("latency x 1.5", {"latency_factor": 1.5}, "latency-p95")
    assert configured_limit_s(latency, alpha, 0.1) is None, "no closed form for a histogram"


def test_a_bad_canary_rolled_back_by_another_gate_is_not_counted_as_caught():
    results = JudgementResults(
        runs=[
            run(FIVE_XX.name, "error-rate"),
            run(FIVE_XX.name, "log-errors"),
            run(FIVE_XX.name, "cpu-throttling", "inconclusive"),
            run(FIVE_XX.name, None, "pass"),
            run("good", None, "pass"),
            run("good", "log-errors", "fail"),
        ]
    )
    [errors, good] = summary(results)
    assert (errors["caught"], errors["runs"]) == (1, 4)
    assert errors["other"] == ["fail: log-errors", "inconclusive: cpu-throttling", "promoted"]
    assert (good["rolled_back"], good["runs"]) == (1, 2)
    text = markdown(results, "Run header.")
    assert "| 5xx 1 % → 3 % | go | error-rate | 1/4 | 1% to 81% |" in text
    assert "Run header." in text and "1/2 rolled back" in text


def test_the_fleet_is_noisy_on_both_versions_and_every_flavour_gets_a_fault_class():
    plan = judgement_plan("otel")
    assert plan.analysis.default_gates and plan.analysis.metrics == "otel"
    assert plan.local.scrape_interval >= 5
    assert plan.analysis.query_window >= 4 * plan.local.scrape_interval
    for flag in ("-pods", "-stall-every", "-cold-for", "-pool-size", "-error-rate"):
        assert flag in NOISE
    planned = schedule(runs=1, good=2)
    assert set(planned) == set(FLAVOURS)
    assert all(any(f is not None for f in releases) for releases in planned.values())
    assert planned["go"][:2] == [None, None]


def test_the_judgement_section_replaces_only_its_own_section():
    document = "# Benchmarks\n\n## Router\nfast\n\n## Judgement\nold\n\n## CLI\nquick\n"
    updated = replace_section(document, "## Judgement", "## Judgement\nnew\n")
    assert updated == "# Benchmarks\n\n## Router\nfast\n\n## Judgement\nnew\n\n## CLI\nquick\n"
    assert replace_section("# B\n", "## Judgement", "## Judgement\nnew\n").endswith(
        "\n\n## Judgement\nnew\n"
    )


def test_a_replay_asks_every_query_as_of_the_replay_clock_and_hides_later_log_lines():
    from canaryflow.analysis.source import Sample
    from canaryflow.bench.replay import ReplayClock, ReplayLogs, ReplaySource

    asked = []

    class Source:
        def vector(self, query, at=None):
            asked.append((query, at))
            return [Sample({}, 1.0)]

    clock = ReplayClock(1_800_000_000.0)
    source = ReplaySource(Source(), clock)
    clock.sleep(5)
    assert source.instant("up") == [1.0]
    source.vector("up", at=12.0)
    assert asked == [("up", 1_800_000_005.0), ("up", 12.0)]
    lines = ["2027-01-15T08:00:04.000Z ERROR early", "2027-01-15T08:00:06.000Z ERROR late", "x"]
    logs = ReplayLogs(lambda since: lines, ReplayClock(1_800_000_000.0 + 0))
    logs.clock.time = (
        __import__("datetime").datetime.fromisoformat("2027-01-15T08:00:05Z").timestamp()
    )
    assert logs.lines_since(0) == [lines[0], "x"]


def test_a_whole_bench_run_keeps_the_sections_it_does_not_measure():
    from canaryflow.bench.markdown import keep_other_sections

    old = "# Benchmarks\n\nold header\n\n## Judgement\nold\n\n## Offline replay\nkept\n"
    new = "# Benchmarks\n\nnew header\n\n## Judgement\nnew\n"
    assert keep_other_sections(old, new) == (
        "# Benchmarks\n\nnew header\n\n## Judgement\nnew\n\n## Offline replay\nkept\n"
    )


def test_a_warm_canary_run_drops_only_the_cold_start_and_writes_its_own_section():
    from canaryflow.bench.judgement import noise_args

    warm = noise_args(cold_start=False)
    assert "-cold-for" not in warm and "-stall-every" in warm and "-pods" in warm
    assert len(warm) == len(NOISE) - 2
    text = markdown(JudgementResults(runs=[run("good", None, "pass")], cold_start=False))
    assert text.startswith("## Judgement: canary started warm\n")


def test_a_bad_release_rolled_back_before_its_fault_is_not_a_fast_detection():
    from canaryflow.bench.markdown import _detection
    from canaryflow.bench.scenarios import BadRelease, BenchResults

    results = BenchResults(
        machine={},
        bad=[
            BadRelease("rolled-back", 100.0, 1.5, 1000, 5),
            BadRelease("rolled-back", 100.0, 2.5, 1000, 5),
            BadRelease("rolled-back", 100.0, -1.0, 400, 0),
        ],
    )
    text = _detection(results)
    assert "| rolled back before the fault took effect (not timed) | 1 | 0 |" in text
    assert "| detection to safe, min / max | 1.50 s / 2.50 s | |" in text


def test_a_goroutine_leak_is_watched_by_the_advisory_gate_and_counts_whichever_gate_decided():
    [leak] = [f for f in FAULT_CLASSES if "goroutine_leak" in f.faults]
    plan = judgement_plan(leak.flavour)
    assert leak.gate == "goroutines"
    assert leak.gate not in {gate.name for gate in plan.analysis.deciding_gates}
    results = JudgementResults(
        runs=[run(leak.name, "gc-frequency"), run(leak.name, None, "pass")], alpha=0.01
    )
    [row] = summary(results)
    assert (row["caught"], row["other"]) == (0, ["fail: gc-frequency", "promoted"])


def test_against_the_default_fresh_baseline_the_live_limit_counts_only_its_requests():
    alpha = 0.00125
    assert judgement_plan().analysis.baseline == "fresh"
    kl = bernoulli_kl(canary_share(3.0, 0.5), canary_share(1.2, 0.5))
    events = ROUTER_RPS * 0.2 * BASE_ERROR_RATE * (0.5 * 3.0 + 0.5)
    expected = math.log(1 / alpha) / (kl * events)
    assert math.isclose(configured_limit_s(FIVE_XX, alpha, 0.1), expected)
    assert expected > configured_limit_s(FIVE_XX, alpha, 0.1, baseline=False)


def test_the_plan_judges_each_5xx_class_for_at_least_1_5_times_its_information_limit():
    from canaryflow.bench.judgement import JUDGED_OVER_LIMIT
    from canaryflow.bench.offline import gate_alpha_and_tolerance

    plan = judgement_plan()
    first = plan.traffic_steps[0]
    # The smallest share a gate can get: every sequential gate exported.
    alpha, _ = gate_alpha_and_tolerance(plan.analysis, "error-rate")
    five_xx = [f for f in FAULT_CLASSES if f.gate == "error-rate"]
    assert {f.flavour for f in five_xx} == set(FLAVOURS)
    for fault in five_xx:
        limit = configured_limit_s(fault, alpha, first.weight / 100)
        assert first.duration >= JUDGED_OVER_LIMIT * limit, fault.name


def test_a_class_whose_limit_the_plan_cannot_judge_says_so_in_its_row():
    [logs] = [f for f in FAULT_CLASSES if f.gate == "log-errors"]
    judged = judgement_plan().traffic_steps[0].duration
    results = JudgementResults(
        runs=[
            run(FIVE_XX.name, limit_s=judged / 1.6),
            run(logs.name, None, "pass", limit_s=judged * 10),
        ]
    )
    rows = [line for line in markdown(results).splitlines() if line.startswith("| ")][2:]
    assert rows[0].endswith(f"| {judged:g} s, 1.6x limit |")
    assert rows[1].endswith(f"| {judged:g} s, 0.1x limit: too short to judge |")


def test_the_section_states_the_warm_up_the_plan_actually_waits():
    from canaryflow.bench.judgement import JUDGEMENT_PLAN

    good = [run("good", None, "pass")]
    fresh = markdown(JudgementResults(runs=good))
    assert judgement_plan().analysis.baseline == "fresh"
    assert "**no warm-up**" in fresh and "after the warm-up" not in fresh
    against_stable = {
        **JUDGEMENT_PLAN,
        "analysis": {**JUDGEMENT_PLAN["analysis"], "baseline": "stable"},
    }
    text = markdown(JudgementResults(runs=good, plan=against_stable))
    assert "after the default **warm-up** (35 s at the first step" in text
    assert "2 s into the first window (after the warm-up)" in text


class _Load:
    """A load generator's clock as ``load_lasts`` reads it: started when, for how long."""

    def __init__(self, started_at: float, max_duration_s: float = 600.0, running: bool = True):
        from canaryflow.local.load import LoadConfig

        self.started_at, self.running = started_at, running
        self.config = LoadConfig("http://127.0.0.1:9", rate=1.0, max_duration_s=max_duration_s)


def test_the_users_load_is_restarted_unless_it_outlasts_the_longest_release_of_the_plan():
    """The goroutine-leak release at 824bfaa began with 167 s of load left, more than the old
    fixed margin of 150 s: its users stopped in the 50 % step and it ended inconclusive with
    no request on either track. A release of the plan may need its users for every window
    extended by maxExtension, the health wait and the deploys."""
    from canaryflow.bench.fleet import load_lasts
    from canaryflow.bench.judgement import release_span_s

    plan = judgement_plan()
    windows = sum(s.duration + plan.analysis.max_extension for s in plan.traffic_steps)
    span = release_span_s(plan)
    assert span >= plan.service.health_timeout + windows
    assert span > 167.0
    now = 10_000.0
    assert not load_lasts(_Load(started_at=now - 600 + 167), span, now)
    assert load_lasts(_Load(started_at=now), span, now)
    assert not load_lasts(_Load(started_at=now, running=False), span, now)
    assert span < _Load(now).config.max_duration_s  # a fresh load covers a whole release
