"""The judgement benchmark's summary and its section of BENCHMARKS.md, from given runs."""

from __future__ import annotations

from canaryflow.bench.judgement import (
    FAULT_CLASSES,
    JudgementResults,
    ReleaseRun,
    judgement_plan,
    markdown,
    summary,
)
from canaryflow.commands.bench import replace_section


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
        "baseline_before_fault": False,
        "requests": 1000,
        "failed": 3,
        "canary_rps": 20.0,
        "limit_requests": 40.0,
    }
    return ReleaseRun(**{**values, **extra})


def test_each_class_reports_caught_runs_times_and_its_information_limit():
    results = JudgementResults(
        runs=[
            run("5xx 2 %", detection=2.0),
            run("5xx 2 %", detection=4.0, baseline_s=3.0),
            run("5xx 2 %", phase="promoted", detection=None),
            run("good", phase="promoted", detection=None, limit_requests=None),
            run("good", detection=None, before_fault=True, baseline_s=5.0),
        ]
    )
    [errors, good] = summary(results)
    assert (errors["caught"], errors["runs"], errors["median_s"]) == (2, 3, 3.0)
    assert errors["baseline_caught"] == 1
    assert errors["limit_s"] == 2.0  # 40 requests at 20 per second
    assert (good["rolled_back"], good["baseline_rolled_back"], good["runs"]) == (1, 1, 2)
    text = markdown(results)
    assert "| 5xx 2 % | 2/3 | 3.00 s | 4.00 s | 3 | 1/3 |" in text
    assert "1/2 rolled back by the judge, 1/2 by the baseline" in text


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
