"""Log patterns run in linear time (issue 23, item 10).

``(a+)+$`` was accepted, and one logged line of forty ``a`` and a ``!`` never returned: the
window at 30 % stalled with the canary holding traffic. The sample service logs request
paths, so a user request chose the line.
"""

from __future__ import annotations

import threading

import pytest

from canaryflow.analysis.gates import judge_logs
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.spec import LogsLimit
from canaryflow.cli import main

EVIL_LINE = "GET /" + "a" * 40 + "!"


def _judged_within(limit: LogsLimit, lines: list[str], seconds: float):
    """judge_logs in a daemon thread: the answer, or None when it did not come in time."""
    answer: list = []
    worker = threading.Thread(target=lambda: answer.append(judge_logs(limit, lines)), daemon=True)
    worker.start()
    worker.join(seconds)
    return answer[0] if answer else None


def test_a_catastrophic_pattern_matches_a_hostile_line_without_stalling():
    limit = LogsLimit(patterns=["(a+)+$"], max=0)
    lines = [EVIL_LINE] * 100 + ["GET /aaaa"]

    judgement = _judged_within(limit, lines, seconds=10)

    assert judgement is not None, "the match did not return: the window would stall"
    assert judgement.outcome is Outcome.FAIL
    assert judgement.canary == 1.0  # only the line ending in a's matches


def test_a_huge_line_is_matched_on_a_bounded_prefix():
    limit = LogsLimit(patterns=["panic"], max=0)
    judgement = _judged_within(limit, ["x" * 5_000_000 + "panic", "panic: nil map"], 10)
    assert judgement is not None and judgement.canary == 1.0


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"error(?=: db)", r"(?<!no )error", r"(?!ok)", "[unclosed", "a" * 2000],
)
def test_a_pattern_that_cannot_be_bounded_is_refused_at_validate(tmp_path, capsys, pattern):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text(
        "service: {name: checkout}\nanalysis:\n  gates:\n"
        f"  - {{name: panics, logs: {{patterns: ['{pattern}']}}}}\n"
    )
    assert main(["validate", "--offline", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "analysis.gates[0].logs: " in err
    assert "a" * 200 not in err  # a long pattern is not echoed whole


def test_ordinary_patterns_keep_their_meaning():
    limit = LogsLimit(patterns=[r"(?i)\bpanic\b", r"status=5\d\d"], max=1)
    judgement = judge_logs(limit, ["PANIC: x", "status=503 path=/", "status=200", "panicky"])
    assert judgement.canary == 2.0 and judgement.outcome is Outcome.FAIL
