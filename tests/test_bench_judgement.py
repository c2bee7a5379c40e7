"""The judgement benchmark's summary and its section of BENCHMARKS.md, from given runs."""

from __future__ import annotations

from canaryflow.bench.judgement import (
    FAULT_CLASSES,
    JudgementResults,
    Observation,
    ReleaseRun,
    judgement_plan,
    markdown,
    summary,
)
from canaryflow.bench.markdown import replace_section


def run(
    fault: str, phase: str = "rolled-back", detection: float | None = 2.0, **extra
) -> ReleaseRun:
    values = {
        "fault": fault,
        "phase": phase,
        "reason": "step 0 at 10%: fail: error-rate: ...",
        "fault_on": 100.0 if fault != "good" else None,
        "detection_s": detection,
        "before_fault": False,
        "baseline_s": None,
        "requests": 1000,
        "failed": 3,
    }
    return ReleaseRun(**{**values, **extra})


def watched(fault: str, judge: float | None, baseline: float | None) -> Observation:
    return Observation(fault, 100.0, judge, False, "", baseline, False, 20.0, 40.0)


def test_each_class_reports_caught_runs_times_and_its_information_limit():
    results = JudgementResults(
        runs=[
            run("5xx 2 %", detection=2.0),
            run("5xx 2 %", detection=4.0),
            run("5xx 2 %", phase="promoted", detection=None),
            run("good", phase="promoted", detection=None),
            run("good", detection=None, before_fault=True, baseline_s=5.0),
        ],
        observations=[
            watched("5xx 2 %", 1.5, None),
            watched("5xx 2 %", 2.5, 6.0),
            watched("5xx 2 %", None, None),
        ],
    )
    [errors, good] = summary(results)
    assert (errors["caught"], errors["runs"], errors["median_s"]) == (2, 3, 3.0)
    assert (errors["judge_caught"], errors["judge_median_s"]) == (2, 2.0)
    assert (errors["baseline_caught"], errors["baseline_median_s"]) == (1, 6.0)
    assert errors["limit_s"] == 2.0  # 40 requests at 20 per second
    assert (good["rolled_back"], good["baseline_rolled_back"], good["runs"]) == (1, 1, 2)
    text = markdown(results)
    assert (
        "| 5xx 2 % | 2/3 | 3.00 s | 4.00 s | 3 | 2/3 | 2.00 s | 1/3 | 6.00 s | 2.00 s | 4.00 s |"
        in text
    )
    assert "1/2 rolled back by the judge" in text


def test_the_plan_uses_the_default_gates_and_short_windows():
    plan = judgement_plan()
    assert plan.analysis.default_gates
    assert all(10 <= s.duration <= 20 for s in plan.traffic_steps)
    assert plan.analysis.interval == 1
    assert len(FAULT_CLASSES) >= 11


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
