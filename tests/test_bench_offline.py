"""The offline benchmark: simulated releases judged by the real analysis, written to Markdown.

What it must not overstate: a bad canary counts as caught only by the gate that watches its
fault; the information limit is the *configured* fault's at the gate's own alpha share and
tolerance; every rate comes with an exact interval; the logs gate compares both tracks' lines.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from dataclasses import replace

import pytest

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.sequential import bernoulli_kl, canary_share
from canaryflow.analysis.source import StableLogSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.offline import (
    AA,
    BENCH_FAULTS,
    BENCH_FLEETS,
    CLASS_KEYS,
    FLEET_KEYS,
    REPLAY_FLEETS,
    FaultClass,
    Judged,
    Tally,
    bench_spec,
    carry_comparison,
    carry_markdown,
    compared_dispersion,
    gate_alpha_and_tolerance,
    information_limit_s,
    judge_many,
    judge_release,
    replay_benchmark,
    replay_markdown,
)
from canaryflow.bench.replay import ReplayClock, ReplayLogs, ReplayTrackLogs
from canaryflow.bench.streams import Fleet, RecordedLogs, simulate
from canaryflow.cli import main
from canaryflow.commands.bench import _replace_section

FIVE_XX_X3 = FaultClass("5xx x3", "error-rate", canary_factor=3.0)
STEPS = ((0.1, 60.0), (0.3, 60.0))
QUIET = Fleet(stable_pods=2, rps=400.0, scrape_s=5.0, stall_every_s=0.0, blip_every_s=0.0)


def _judged(outcome: Outcome, gate: str | None = None, seconds: float | None = None) -> Judged:
    return Judged(outcome, 0, gate, seconds, 0)


# Information limit -----------------------------------------------------------------------


def test_the_information_limit_is_the_configured_faults_at_the_gates_alpha_share_and_tolerance():
    fleet = Fleet(rps=1000.0, base_rate=0.01)
    spec = bench_spec()  # error-rate and log-errors share alpha 0.01
    assert gate_alpha_and_tolerance(spec, "error-rate") == (0.005, 0.2)
    kl = bernoulli_kl(canary_share(3.0, 0.1), canary_share(1.2, 0.1))
    events_per_s = 1000.0 * 0.01 * (0.1 * 3.0 + 0.9)
    expected = math.log(1 / 0.005) / (kl * events_per_s)
    assert math.isclose(information_limit_s(fleet, FIVE_XX_X3, spec, 0.1), expected)


def test_a_gate_sharing_alpha_needs_longer_than_one_holding_all_of_it():
    fleet = Fleet(rps=1000.0, base_rate=0.01)
    alone = AnalysisSpec.model_validate({"gates": [{"metric": "error-rate"}]})
    shared = bench_spec()
    assert information_limit_s(fleet, FIVE_XX_X3, shared, 0.1) > information_limit_s(
        fleet, FIVE_XX_X3, alone, 0.1
    )


def test_the_limit_is_measured_against_the_tolerated_ratio_not_equal_rates():
    fleet = Fleet(rps=1000.0, base_rate=0.01)
    tight = AnalysisSpec.model_validate(
        {"gates": [{"metric": "error-rate", "sequential": {"tolerance": 0.0}}]}
    )
    loose = AnalysisSpec.model_validate(
        {"gates": [{"metric": "error-rate", "sequential": {"tolerance": 0.5}}]}
    )
    assert information_limit_s(fleet, FIVE_XX_X3, loose, 0.1) > information_limit_s(
        fleet, FIVE_XX_X3, tight, 0.1
    )
    within = FaultClass("5xx x1.4", "error-rate", canary_factor=1.4)
    assert information_limit_s(fleet, within, loose, 0.1) == math.inf, "inside the tolerance"


def test_a_log_fault_is_measured_in_log_lines_at_the_logs_gates_tolerance():
    fleet = Fleet(rps=1000.0, base_rate=0.01, log_rate=0.002)
    spec = bench_spec()
    assert gate_alpha_and_tolerance(spec, "log-errors") == (0.005, 1.0)
    fault = FaultClass("log lines x3", "log-errors", log_factor=3.0)
    kl = bernoulli_kl(canary_share(3.0, 0.1), canary_share(2.0, 0.1))
    expected = math.log(1 / 0.005) / (kl * 1000.0 * 0.002 * (0.1 * 3.0 + 0.9))
    assert math.isclose(information_limit_s(fleet, fault, spec, 0.1), expected)


# Tallies: per-gate attribution and exact intervals ---------------------------------------


def test_a_rollback_by_another_gate_or_inconclusive_is_not_caught_by_the_right_gate():
    judged = [
        _judged(Outcome.FAIL, "error-rate", 40.0),
        _judged(Outcome.FAIL, "log-errors", 10.0),
        _judged(Outcome.INCONCLUSIVE),
        _judged(Outcome.PASS),
    ]
    tally = Tally.of(judged, "error-rate")
    assert (tally.rolled_back, tally.caught, tally.other_gates, tally.inconclusive) == (3, 1, 1, 1)
    assert tally.caught_s == (40.0,), "only the right gate's decisions are timed"
    assert tally.failed_by == {"error-rate": 1, "log-errors": 1}


def test_every_rollback_of_a_good_canary_is_a_false_one_whatever_its_reason():
    judged = [_judged(Outcome.INCONCLUSIVE), _judged(Outcome.FAIL, "log-errors", 10.0)]
    judged += [_judged(Outcome.PASS)] * 8
    tally = Tally.of(judged, None)
    assert (tally.rolled_back, tally.caught) == (2, 0)


def test_no_false_rollback_in_n_releases_bounds_the_rate_by_the_exact_one_sided_bound():
    tally = Tally.of([_judged(Outcome.PASS)] * 1000, None)
    # 0 of n: P(X = 0 | p) = (1 - p)^n = 0.05 at the upper bound.
    assert math.isclose(tally.rollback_upper95(), 1 - 0.05 ** (1 / 1000), rel_tol=1e-6)
    assert tally.rollback_upper95() < 0.01, "1,000 clean releases show the 1 % target"
    thirty = Tally.of([_judged(Outcome.PASS)] * 30, None)
    assert thirty.rollback_upper95() > 0.09, "30 clean releases show only < 9.5 %"


def test_every_bad_canary_caught_still_has_an_interval_below_one():
    tally = Tally.of([_judged(Outcome.FAIL, "error-rate", 30.0)] * 100, "error-rate")
    low, high = tally.caught_ci95()
    # n of n: P(X = n | p) = p^n = 0.025 at the two-sided lower bound.
    assert math.isclose(low, 0.025 ** (1 / 100), rel_tol=1e-6)
    assert high == 1.0


# Logs: both tracks, as the live judge reads them ------------------------------------------


def test_replayed_logs_give_stable_lines_too_and_nothing_after_the_clock():
    clock = ReplayClock(100.0)
    canary = ["1970-01-01T00:01:30+00:00 connection refused"]
    stable = [
        "1970-01-01T00:01:35+00:00 connection refused",
        "1970-01-01T00:01:50+00:00 connection refused",  # written after the clock's now
    ]
    logs = ReplayTrackLogs(lambda since: canary, lambda since: (stable, 0.5), clock)
    assert isinstance(logs, StableLogSource)
    assert not isinstance(ReplayLogs(lambda since: canary, clock), StableLogSource)
    assert logs.stable_lines_since(0.0) == (stable[:1], 0.5)
    clock.sleep(20)
    assert logs.stable_lines_since(0.0) == (stable, 0.5)


def _five_xx_share(recording, track: str) -> float:
    pods = [p for p in recording.pods if p.track == track]
    return sum(p.events[-1][1] for p in pods) / sum(p.exposure[-1][1] for p in pods)


def test_a_canary_whose_lumps_are_scaled_fails_canary_factor_times_its_references_share():
    # The noisy fleet's stalls and blips fail more requests than its base rate: scaling the
    # base rate alone leaves a canary at 1.2 near 1.07 times stable's 5xx, inside the null.
    fleet = Fleet(stable_pods=2, rps=1000.0, stall_share=0.35, blip_every_s=60.0)
    steps = ((0.5, 1200.0),)
    base = simulate(fleet, steps, random.Random(9), canary_factor=2.0)
    lumps = simulate(fleet, steps, random.Random(9), canary_factor=2.0, lumps_scaled=True)
    ratio = {
        name: _five_xx_share(r, "canary") / _five_xx_share(r, "stable")
        for name, r in (("base", base), ("lumps", lumps))
    }
    assert 1.8 < ratio["lumps"] < 2.2
    assert ratio["base"] < 1.6, "the lumps, unscaled, are most of the 5xx"


def test_lumps_scaled_off_draws_the_recordings_drawn_before_it():
    fleet = Fleet(stable_pods=2, rps=400.0, stall_share=0.35)
    assert simulate(fleet, STEPS, random.Random(4), 1.2) == simulate(
        fleet, STEPS, random.Random(4), 1.2, 1.0, False
    )


def test_recorded_logs_hold_each_tracks_lines_up_to_the_clock():
    fleet = Fleet(stable_pods=2, rps=400.0, log_rate=0.01, stall_every_s=0.0, blip_every_s=0.0)
    recording = simulate(fleet, STEPS, random.Random(3))
    clock = ReplayClock(1000.0)
    logs = RecordedLogs(recording, clock, clock_start=1000.0)
    assert logs.lines_since(1000.0) == [] and logs.stable_lines_since(1000.0) == ([], 1.0)
    clock.sleep(60)
    canary, (stable, share) = logs.lines_since(1000.0), logs.stable_lines_since(1000.0)
    assert canary and stable and share == 1.0
    assert len(stable) > len(canary), "stable serves 90 % of the requests at the first step"


def test_a_canary_logging_more_per_request_than_stable_is_caught_by_the_logs_gate():
    fleet = Fleet(
        stable_pods=2, rps=400.0, log_rate=0.01, scrape_s=5.0, stall_every_s=0.0, blip_every_s=0.0
    )
    spec = AnalysisSpec.model_validate(
        {"interval": "5s", "queryWindow": "20s", "gates": [{"metric": "log-errors"}]}
    )
    bad = simulate(fleet, STEPS, random.Random(5), log_factor=10.0)
    judged = judge_release(bad, STEPS, spec)
    assert (judged.outcome, judged.gate) == (Outcome.FAIL, "log-errors")
    good = simulate(fleet, STEPS, random.Random(5))
    assert judge_release(good, STEPS, spec).outcome is Outcome.PASS


def test_a_flavour_only_names_the_series_the_same_counts_are_judged_alike():
    recording = simulate(QUIET, STEPS, random.Random(7), canary_factor=4.0)
    judged = {
        flavour: judge_release(recording, STEPS, bench_spec(flavour))
        for flavour in ("go", "otel", "grpc")
    }
    assert judged["go"].gate == "error-rate" and judged["go"].outcome is Outcome.FAIL
    assert judged["otel"] == judged["go"] == judged["grpc"]


# The report ------------------------------------------------------------------------------


@pytest.mark.judgement
def test_a_replay_reports_every_fleet_class_and_flavour_with_exact_intervals():
    result = replay_benchmark(1, say=lambda _: None)
    assert {row["fleet"] for row in result["rows"]} == {
        "noisy",
        "noisy, warm canary",
        "steady pods",
        "noisy, against stable",
        "noisy, stalls at random",
        "noisy, pods ±30 %",
        "noisy, 30 s scrape",
        "noisy, 5 % of scrapes missed",
        "noisy, all four",
    }
    assert {f.flavour for f in BENCH_FAULTS} == {"go", "otel", "grpc"}
    text = replay_markdown(result, "header")
    assert text.startswith("## Offline replay: simulated production-shaped fleet\n\nheader\n")
    assert "| noisy | 1 | " in text and AA.name not in text.split("### Bad")[1]
    assert "| 0.00% to 97.50% |" in text or "| 2.50% to 100.00% |" in text


def test_the_carry_comparison_judges_the_same_recordings_both_ways():
    rows = carry_comparison(2, say=lambda _: None)
    assert [row["releases"] for row in rows] == [2, 2, 2, 2]
    assert "| 1 % → 3 % 5xx, 40 s windows | 2 |" in carry_markdown(rows)


def test_a_section_is_replaced_in_place_and_the_others_are_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# B\n\n## One\n\nold\n\n## Two\n\nkept\n")
    _replace_section(path, "## One\n\nnew\n")
    assert path.read_text() == "# B\n\n## One\n\nnew\n\n## Two\n\nkept\n"
    _replace_section(path, "## Three\n\nadded\n")
    assert path.read_text().endswith("## Two\n\nkept\n\n## Three\n\nadded\n")


def test_a_replay_of_no_releases_is_refused(capsys):
    assert main(["bench", "--replay", "0"]) == 2
    assert "--replay: at least 1 release" in capsys.readouterr().err


def test_only_the_canary_fills_a_pool_and_a_stall_logs_on_its_own_pod():
    pool = Fleet(stable_pods=2, rps=400.0, stall_every_s=0.0, blip_every_s=0.0, pool_size=40)
    recording = simulate(pool, STEPS, random.Random(11))
    canary = [text for p in recording.pods if p.track == "canary" for _, text in p.lines]
    stable = [text for p in recording.pods if p.track == "stable" for _, text in p.lines]
    assert stable == [] and 0 < len(canary) <= 40
    assert all("connection refused" in text for text in canary)
    stalls = Fleet(stable_pods=2, rps=400.0, blip_every_s=0.0, stall_share=0.5, stall_log_share=1.0)
    lines = {
        p.name: [t for t, _ in p.lines] for p in simulate(stalls, STEPS, random.Random(11)).pods
    }
    for times in lines.values():  # lumps: a pod's lines bunch into its stalled seconds
        assert times and len({int(t) % 30 for t in times}) <= 2


def test_stables_pods_log_before_the_release_as_they_serve_and_the_others_from_their_birth():
    # A live stable pod logs before a release: its first unit's lines, counted from its last
    # scrape before the start, are as many as its requests there say (issue 20: without them
    # the first unit's X² per degree of freedom was 27.9 on the 30 s scrape, about 5 later).
    fleet = Fleet(stable_pods=2, baseline_pods=1, rps=400.0, blip_every_s=0.0, stall_every_s=0.0)
    fleet = replace(fleet, log_rate=0.05)
    pods = simulate(fleet, STEPS, random.Random(7)).pods
    for pod in pods:
        before = [t for t, _ in pod.lines if t < 0]
        if pod.track != "stable":
            assert before == [], f"{pod.name} is born at the release"
            continue
        assert min(before) >= -fleet.history_s
        # Up to its last scrape before the start: its requests there times the line rate.
        scraped, served = max((t, n) for t, n in pod.exposure if t < 0)
        written = sum(1 for t in before if t < scraped)
        expected = served * fleet.log_rate
        assert abs(written - expected) <= 4 * math.sqrt(expected)


def test_a_reference_that_logs_nothing_leaves_the_canarys_lines_its_own():
    fleet = Fleet(
        stable_pods=2,
        baseline_pods=1,
        rps=400.0,
        blip_every_s=0.0,
        stall_share=0.5,
        log_rate=0.01,
        stall_log_share=1.0,
        pool_size=40,
        stable_log_factor=0.0,
    )
    pods = simulate(fleet, STEPS, random.Random(11)).pods
    lines = {p.track: [] for p in pods}
    for pod in pods:
        lines[pod.track] += [text for _, text in pod.lines]
    assert lines["stable"] == [] and lines["baseline"] == []
    texts = set(lines["canary"])
    assert texts == {
        "connection refused",
        "context deadline exceeded",
        "dial: connection refused, retrying",
    }
    logged = simulate(replace(fleet, stable_log_factor=1.0), STEPS, random.Random(11)).pods
    assert all(pod.lines for pod in logged), "1: every pod logs, as before"


@pytest.mark.judgement
def test_the_replays_fleets_are_judged_against_a_fresh_baseline_after_the_default_warm_up():
    result = replay_benchmark(1, say=lambda _: None)
    reference = {row["fleet"]: row["baseline_pods"] for row in result["rows"]}
    assert reference == {
        "noisy": 1,
        "noisy, warm canary": 1,
        "steady pods": 1,
        "noisy, against stable": 0,
        "noisy, stalls at random": 1,
        "noisy, pods ±30 %": 1,
        "noisy, 30 s scrape": 1,
        "noisy, 5 % of scrapes missed": 1,
        "noisy, all four": 1,
    }
    warmups = {row["fleet"]: row["warmup_s"] for row in result["rows"]}
    assert warmups["noisy, against stable"] == 15.0 + 30.0, "one scrape + 30 s against stable"
    assert {warmups[f] for f in reference if reference[f]} == {0.0}, "none against a baseline"


def test_a_canary_broken_from_its_first_request_is_caught_without_a_warm_up():
    """No warm-up against a fresh baseline: the first looks read before the new pods' first
    scrape. The error-rate gate must not be taken for one the service does not export (the
    logs gate has data from the first look, which used to fix alpha's split without it), nor
    learn a two-minute scrape interval from the young baseline's single sample."""
    fleet = replace(QUIET, scrape_s=15.0, baseline_pods=1, log_rate=0.002)
    spec = bench_spec().model_copy(update={"warmup": 0.0})
    judged = [
        judge_release(simulate(fleet, STEPS, random.Random(seed), 3.0), STEPS, spec, True, True)
        for seed in range(3)
    ]
    assert [(j.outcome, j.gate) for j in judged] == [(Outcome.FAIL, "error-rate")] * 3


def test_the_default_warm_up_hides_a_cold_start_from_the_evidence():
    cold = Fleet(stable_pods=2, rps=400.0, scrape_s=5.0, stall_every_s=0.0, blip_every_s=0.0)
    cold = replace(cold, cold_s=20.0, cold_factor=5.0)
    spec = AnalysisSpec.model_validate(
        {"interval": "5s", "queryWindow": "20s", "gates": [{"metric": "error-rate"}]}
    )
    no_warmup = spec.model_copy(update={"warmup": 0.0})
    judged = [j.outcome for j in judge_many(cold, STEPS, spec, 5, seed=3)]
    unwarmed = [j.outcome for j in judge_many(cold, STEPS, no_warmup, 5, seed=3)]
    assert judged == [Outcome.PASS] * 5, "the default warm-up (5 s + 30 s) outlasts 20 s cold"
    assert Outcome.FAIL in unwarmed, "without it the cold start reads as a regression"


def test_a_fresh_baseline_fills_its_pool_as_the_canary_does():
    fleet = Fleet(
        stable_pods=2,
        rps=400.0,
        stall_every_s=0.0,
        blip_every_s=0.0,
        pool_size=40,
        pool_refused=0.5,
        baseline_pods=1,
    )
    recording = simulate(fleet, STEPS, random.Random(11))
    dials = {
        p.track: sum("dial" in text for _, text in p.lines)
        for p in recording.pods
        if p.track != "stable"
    }
    stable = [text for p in recording.pods if p.track == "stable" for _, text in p.lines]
    assert dials["canary"] > 0 and dials["baseline"] > 0 and stable == []


def test_against_a_fresh_baseline_the_limit_counts_only_the_baselines_requests():
    spec = bench_spec()
    stable = Fleet(stable_pods=4, rps=1000.0, base_rate=0.01)
    fresh = replace(stable, baseline_pods=1)
    against_stable = information_limit_s(stable, FIVE_XX_X3, spec, 0.1)
    against_baseline = information_limit_s(fresh, FIVE_XX_X3, spec, 0.1)
    alpha, tolerance = gate_alpha_and_tolerance(spec, "error-rate")
    share = canary_share(3.0, 0.5)
    kl = bernoulli_kl(share, canary_share(1 + tolerance, 0.5))
    events_per_s = 1000.0 * 0.2 * 0.01 * (0.5 * 3.0 + 0.5)
    assert math.isclose(against_baseline, math.log(1 / alpha) / (kl * events_per_s))
    assert against_baseline > against_stable, "the reference holds as few requests as the canary"


# Choosing what the replay judges ---------------------------------------------------------


@pytest.mark.judgement
def test_a_replay_of_chosen_fleets_and_classes_judges_those_alone_n_releases_each():
    result = replay_benchmark(2, say=lambda _: None, fleets=["steady"], classes=["aa", "5xx-x3"])
    assert [(row["fleet"], row["class"], row["releases"]) for row in result["rows"]] == [
        ("steady pods", AA.name, 2),
        ("steady pods", BENCH_FAULTS[0].name, 2),
    ]
    assert list(result["fleets"]) == ["steady pods"]
    only_aa = replay_benchmark(1, say=lambda _: None, classes=["aa"])
    assert {row["class"] for row in only_aa["rows"]} == {AA.name}
    assert [row["fleet"] for row in only_aa["rows"]] == [name for name, _ in BENCH_FLEETS]


@pytest.mark.judgement
def test_a_chosen_class_replays_the_first_releases_of_the_whole_runs():
    whole = replay_benchmark(5, say=lambda _: None)
    chosen = replay_benchmark(1, say=lambda _: None, fleets=["warm"], classes=["5xx-x3"])
    (row,) = chosen["rows"]
    same = next(
        r for r in whole["rows"] if r["fleet"] == row["fleet"] and r["class"] == row["class"]
    )
    assert same["releases"] == 1 and same == row, "the same seed: the same releases"


def test_every_fleet_and_class_has_a_name_on_the_command_line():
    assert list(FLEET_KEYS.values()) == [name for name, _ in REPLAY_FLEETS]
    assert list(CLASS_KEYS.values()) == [fault.name for fault in (AA, *BENCH_FAULTS)]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--fleet", "noisy"], "--fleet: selects what the offline replay judges; give it with"),
        (["--class", "aa"], "--class: selects what the offline replay judges; give it with"),
        (["--replay", "5", "--fleet", "lumpy"], "--fleet: unknown name 'lumpy'; give one of noisy"),
        (
            ["--replay", "5", "--class", "5xx"],
            "--class: unknown name '5xx'; give one of aa, 5xx-x3",
        ),
        (["--replay", "5", "--fleet", "noisy", "--fleet", "noisy"], "--fleet: 'noisy' given twice"),
        (["--replay", "0", "--class", "aa"], "--replay: at least 1 release"),
    ],
)
def test_a_bad_selection_is_refused_naming_the_flag_and_nothing_is_written(
    tmp_path, capsys, argv, says
):
    out, write = tmp_path / "out", tmp_path / "BENCHMARKS.md"
    assert main(["bench", *argv, "--out", str(out), "--write", str(write)]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists() and not write.exists()


def test_a_chosen_replay_writes_its_own_section_and_keeps_the_whole_runs(tmp_path):
    write = tmp_path / "BENCHMARKS.md"
    whole = "## Offline replay: simulated production-shaped fleet\n\nthe whole run\n"
    write.write_text(f"# B\n\n{whole}\n## Cost\n\nkept\n")
    argv = ["bench", "--replay", "2", "--fleet", "steady", "--class", "aa"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--write", str(write)]) == 0
    text = write.read_text()
    assert whole in text and "## Cost\n\nkept\n" in text
    section = text.split("## Offline replay: selected fleets and classes\n", 1)[1]
    assert "`canaryflow bench --replay 2 --fleet steady --class aa`" in section
    assert "| steady pods | 2 | " in section and "### Bad canaries" not in section
    assert (tmp_path / "out" / "replay-selected.json").exists()


# Noise the judge was not built on ---------------------------------------------------------

LONG = ((0.1, 3600.0),)
STALLING = Fleet(
    stable_pods=3, rps=400.0, base_rate=0.0, blip_every_s=0.0, stall_share=0.5, stall_log_share=1.0
)


def _stall_starts(recording) -> dict[str, list[int]]:
    """Each pod's stalled seconds that follow a second without a stall."""
    starts = {}
    for pod in recording.pods:
        seconds = sorted({math.floor(t) for t, _ in pod.lines})  # stable's before 0 too
        starts[pod.name] = [s for s in seconds if s - 1 not in seconds]
    return starts


def test_periodic_stalls_come_every_period_and_random_ones_at_the_same_mean_rate():
    periodic = _stall_starts(simulate(STALLING, LONG, random.Random(2)))
    at_random = _stall_starts(
        simulate(replace(STALLING, stall_random=True), LONG, random.Random(2))
    )
    for starts in periodic.values():
        assert {b - a for a, b in itertools.pairwise(starts)} == {30}
    for starts in at_random.values():
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert len(set(gaps)) > 10, "gaps vary"
        assert 85 <= len(starts) <= 155, "about 120 stalls in an hour (± 3 sd)"


def test_each_pod_keeps_a_base_rate_of_its_own_drawn_at_birth_canary_and_baseline_too():
    fleet = Fleet(stable_pods=12, rps=2400.0, blip_every_s=0.0, stall_every_s=0.0, baseline_pods=4)
    fleet = replace(fleet, canary_pods=4)

    def rates(recording) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for pod in recording.pods:
            found.setdefault(pod.track, []).append(pod.events[-1][1] / pod.exposure[-1][1])
        return found

    even = rates(simulate(fleet, LONG, random.Random(4)))
    spread = rates(simulate(replace(fleet, pod_spread=0.3), LONG, random.Random(4)))
    for track in ("stable", "canary", "baseline"):
        assert statistics.pstdev(even[track]) / statistics.mean(even[track]) < 0.05
        assert statistics.pstdev(spread[track]) / 0.01 > 0.1, f"{track}'s pods differ"
    everyone = [r for track in spread.values() for r in track]
    assert 0.007 < statistics.mean(everyone) < 0.013, "the factor's mean is 1"


def test_a_missed_scrape_leaves_no_sample_and_the_next_one_holds_both_intervals():
    fleet = replace(QUIET, scrape_miss=0.2)
    recording = simulate(fleet, LONG, random.Random(6))
    for pod in recording.pods:
        gaps = [round(b[0] - a[0]) for a, b in itertools.pairwise(pod.events)]
        assert set(gaps) > {5, 10}, "a scrape missed now and then"
        assert 0.1 < gaps.count(10) / len(gaps) < 0.3
        assert all(b[1] >= a[1] for a, b in itertools.pairwise(pod.events))
    whole = simulate(QUIET, LONG, random.Random(6))
    assert {round(b[0] - a[0]) for p in whole.pods for a, b in itertools.pairwise(p.events)} == {5}


@pytest.mark.judgement
def test_the_compared_pods_true_over_dispersion_is_one_on_steady_pods_and_large_on_lumpy_ones():
    steady = replace(dict(BENCH_FLEETS)["steady pods"], cold_s=0.0)
    lumpy = dict(BENCH_FLEETS)["noisy, stalls at random"]
    calm = compared_dispersion(steady, 120.0, 60, seed=4)
    assert calm is not None and 0.5 < calm < 1.7, "independent requests: binomial"
    stalls = compared_dispersion(lumpy, 120.0, 60, seed=4)
    assert stalls is not None and stalls > 5, "a stall's lump is as large as a minute's errors"


def test_a_replay_of_bad_classes_shows_the_limit_with_the_true_over_dispersion():
    result = replay_benchmark(
        2, say=lambda _: None, fleets=["steady"], classes=["5xx-x3", "logs-x3"]
    )
    rows = {row["class"]: row for row in result["rows"]}
    five = rows[BENCH_FAULTS[0].name]
    assert five["limit_true_phi_s"] == five["limit_s"] * max(1.0, five["true_phi"])
    assert "true_phi" not in rows[BENCH_FAULTS[2].name], "the lines' lumps are not the 5xx's"
    assert "| true phi (120 s) | limit with true phi s |" in replay_markdown(result, "header")
