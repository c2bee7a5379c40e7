"""A release's report tells the whole story: every measurement and decision in the JSON, what
users got per step, detection-to-safe, and a timeline PNG; the bench's Markdown states each
figure beside its target."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from canaryflow.bench.markdown import render_markdown
from canaryflow.bench.scenarios import (
    BadFlagRollout,
    BadRelease,
    BenchResults,
    HealthyRelease,
    SplitSample,
)
from canaryflow.local.live import ReleaseWatch
from canaryflow.platform.requests import Request
from canaryflow.release.events import EventKind, EventPrinter
from canaryflow.release.record import ReleaseRecord
from canaryflow.report import build_report, summarize, timeline_of, write_report
from canaryflow.report.figures import percentile
from canaryflow.report.timeline import buckets_of

T0 = 1_700_000_000.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def measurement(gate: str, round_no: int, outcome: str, canary: float) -> dict:
    return {
        "gate": gate,
        "round": round_no,
        "outcome": outcome,
        "reason": f"{gate} {outcome}",
        "started": T0,
        "finished": T0,
        "evidence": {"canary": canary, "stable": 0.0, "limit": "≤ 2%", "queries": {}},
    }


def rolled_back_record() -> ReleaseRecord:
    """v3 at 10 %: one passing round, then error-rate fails and traffic goes back to stable."""
    clock = Clock()
    record = ReleaseRecord("checkout", "v3", "local", clock=clock)

    def at(seconds: float, kind: str, **data) -> None:
        clock.now = T0 + seconds
        record.add(kind, **data)

    at(0, "started", version="v3", steps=2)
    at(1, "canary-deployed", version="v3", image=None)
    at(1, "health", healthy=True, detail="ok")
    at(1.5, "weight-set", step=0, weight=10)
    at(2, "weight-verified", step=0, weight=10)
    at(2, "window-started", step=0, weight=10, duration=8.0)
    at(3, "measurements", step=0, items=[measurement("error-rate", 1, "pass", 0.0)])
    at(4, "measurements", step=0, items=[measurement("error-rate", 2, "fail", 0.3)])
    at(4, "window-ended", step=0, verdict="fail", reason="error-rate: 30% > 2%")
    at(4, "rollback-started", reason="step 0 at 10%: fail")
    at(4.5, "traffic-safe", weight=0)
    at(5, "rolled-back", phase="rolled-back", reason="step 0 at 10%: fail")
    return record


def requests() -> list[Request]:
    """10 requests a second for 5 s; the canary serves every 10th from 2 s, failing from 3 s."""
    made = []
    for index in range(50):
        at = T0 + index / 10
        canary = at >= T0 + 2 and index % 10 == 0
        failed = canary and at >= T0 + 3
        made.append(Request(at, "canary" if canary else "stable", 500 if failed else 200, 0.005))
    return made


def test_the_json_report_holds_every_measurement_and_decision(tmp_path: Path):
    record = rolled_back_record()
    summary = summarize(record, "rolled-back", "step 0 at 10%: fail", requests(), T0 + 3.0)

    json_path, _ = write_report(tmp_path, "faulty", record, summary, requests())

    report = json.loads(json_path.read_text())
    kinds = [event["kind"] for event in report["events"]]
    assert kinds == [e.kind for e in record.events]
    items = [i for e in report["events"] if e["kind"] == "measurements" for i in e["items"]]
    assert [(i["round"], i["outcome"], i["evidence"]["canary"]) for i in items] == [
        (1, "pass", 0.0),
        (2, "fail", 0.3),
    ]
    assert report["events"][0]["at"] == T0
    assert {"window-ended", "rollback-started", "traffic-safe", "rolled-back"} <= set(kinds)
    assert report["summary"]["detection_to_safe_s"] == 1.5
    assert report["summary"]["failed_by_track"] == {"canary": 2}


def test_the_report_counts_users_requests_per_step():
    record = rolled_back_record()
    summary = summarize(record, "rolled-back", "why", requests())

    steps = build_report(record, summary, requests())["load_by_step"]

    assert [(s["weight"], s["requests"]) for s in steps] == [(10, 25), (0, 5)]
    assert steps[0]["by_track"] == {"stable": 22, "canary": 3}
    assert steps[0]["failed"] == 2
    assert summary.requests == 50 and summary.duration_s == 5.0


def test_the_timeline_png_is_a_real_png_of_reasonable_size(tmp_path: Path):
    record = rolled_back_record()
    summary = summarize(record, "rolled-back", "why", requests(), T0 + 3.0)

    _, png_path = write_report(tmp_path, "faulty", record, summary, requests())

    data = png_path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (900, 720)
    assert 20_000 < len(data) < 1_000_000


def test_the_timeline_steps_the_weight_and_buckets_users_per_second():
    timeline = timeline_of(rolled_back_record(), requests(), T0 + 3.0)

    assert timeline.weights == [(0.0, 0), (2.0, 10), (4.5, 0)]
    assert (timeline.fault_at, timeline.rollback_at, timeline.safe_at) == (3.0, 4.0, 4.5)
    canary = {b.at: b.error_rate for b in timeline.track("canary")}
    assert canary == {2.0: 0.0, 3.0: 1.0, 4.0: 1.0}
    assert [g.outcome for g in timeline.gates] == ["pass", "fail"]


def test_p95_is_the_nearest_rank_of_each_bucket():
    slow = [Request(T0 + i / 100, "stable", 200, (i + 1) / 1000) for i in range(100)]

    (bucket,) = buckets_of(slow, T0)

    assert bucket.p95_ms == pytest.approx(95.0)
    assert bucket.requests == 100 and bucket.failed == 0


def test_the_live_view_keeps_the_latest_state_of_each_gate():
    watch = ReleaseWatch("v3", started=T0)
    for event in rolled_back_record().events:
        watch(event)

    assert watch.phase == "rolled back"
    assert watch.weight == 0 and watch.step == 0
    assert watch.gates["error-rate"].outcome == "fail"
    assert watch.gates["error-rate"].value == 0.3
    assert watch.verdicts == ["step 0: fail"]


def test_without_a_terminal_each_event_is_one_line():
    out = io.StringIO()
    printer = EventPrinter(T0, out)
    for event in rolled_back_record().events:
        printer(event)

    lines = out.getvalue().splitlines()
    assert len(lines) == 12
    assert lines[7].split() == ["4.00s", "measurements", "error-rate=fail"]


def test_a_workflow_step_prints_each_event_as_json_without_bulky_fields():
    out = io.StringIO()
    record = ReleaseRecord("svc", "flag/x", "memory", clock=lambda: T0)
    record.listeners.append(EventPrinter(T0, out, style="json", skip={EventKind.MEASUREMENTS}))
    record.add(EventKind.FLAG_FOUND, store="file", document={"flags": {}})
    record.add(EventKind.MEASUREMENTS, step=0, items=[])
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"event": "flag-found", "store": "file"}
    ]


def test_every_kind_the_engine_records_is_an_event_kind():
    """The JSON record keeps plain names: an EventKind is its string."""
    assert json.dumps(EventKind.ROLLED_BACK) == '"rolled-back"'
    kinds = {event.kind for event in rolled_back_record().events}
    assert kinds <= set(EventKind)


def bench_results(detection: list[float], split_error: int) -> BenchResults:
    return BenchResults(
        machine={
            "date_utc": "2026-01-01 00:00 UTC",
            "cpu": "Test CPU",
            "cores": "2",
            "memory": "4.0 GiB",
            "os": "Linux",
            "python": "3.11",
            "nginx": "1.22",
            "prometheus": "2.42",
            "go": "1.27",
        },
        bad=[BadRelease("rolled-back", T0, d, 1000, 10) for d in detection],
        bad_flags=[BadFlagRollout("rolled-back", T0, d, 1.0) for d in detection],
        healthy=[HealthyRelease("promoted", 3000, 0, 3)],
        split=[SplitSample(25, 10_000, 2500 + split_error)],
        reload=[
            {
                "design": "two-tier",
                "weight_changes": 60,
                "requests": 5000,
                "failed": 0,
                "failed_percent": 0.0,
            },
            {
                "design": "single",
                "weight_changes": 60,
                "requests": 5000,
                "failed": 4,
                "failed_percent": 0.08,
            },
        ],
        analysis_round={
            "gates": 9,
            "queries": 19,
            "median_ms": 41.0,
            "p90_ms": 50.0,
            "max_ms": 60.0,
            "rounds": 20,
        },
        cli_help={"runs": 10, "median_s": 0.05, "max_s": 0.06, "heavy_imports": []},
        seconds=200.0,
    )


def test_benchmarks_md_states_each_figure_against_its_target():
    text = render_markdown(bench_results([2.0, 3.0, 4.0, 5.0], split_error=0))

    assert "Test CPU, 2 cores, 4.0 GiB" in text
    assert "| detection to safe, median | 3.50 s |" in text
    assert "| detection to safe, p95 | 4.85 s | ≤ 10 s (met)" in text
    assert "| 25 % | 10000 | 25.00 % | 0.00 | met |" in text
    assert "lost 4 requests where the two-tier router lost 0" in text
    assert "| switched off | 4 of 4 | all |" in text
    assert "| fault to off served, median / p95 | 4.50 s / 5.85 s | ≤ 30 s" in text
    assert "**missed**" not in text


def test_benchmarks_md_says_when_a_target_is_missed():
    text = render_markdown(bench_results([12.0, 40.0], split_error=150))

    assert "≤ 10 s (**missed**); required ≤ 30 s (**missed**)" in text
    assert "| 25 % | 10000 | 26.50 % | 1.50 | **missed** |" in text
    assert "/ 39.60 s | ≤ 30 s, as a traffic rollback (**missed**) |" in text


def test_percentile_interpolates_like_numpy():
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert percentile([7.0], 95) == 7.0


def test_a_nearest_rank_percentile_is_a_value_that_was_measured():
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95, "nearest-rank") == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 40, "nearest-rank") == 2.0
    assert percentile([], 95) is None
