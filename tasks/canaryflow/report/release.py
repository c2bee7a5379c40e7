"""One release's report: its record, the users' requests per step, and a summary.

The JSON holds every event of the record (so every measurement, with its evidence, and every
decision) plus what the load generator saw per step, so a reader can check the verdicts
against what users got.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from canaryflow.platform.requests import LoadCounters, Request
from canaryflow.release.events import END_KINDS, EventKind
from canaryflow.release.record import ReleaseRecord


@dataclass(frozen=True)
class ReleaseSummary:
    version: str
    phase: str
    reason: str
    duration_s: float
    requests: int
    failed_by_track: dict[str, int]
    fault_on: float | None = None
    detection_to_safe_s: float | None = None

    @property
    def failed(self) -> int:
        return sum(self.failed_by_track.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


def summarize(
    record: ReleaseRecord,
    phase: str,
    reason: str,
    requests: Sequence[Request],
    fault_on: float | None = None,
) -> ReleaseSummary:
    """``detection_to_safe_s`` is fault switch-on to canary weight 0 confirmed at the router."""
    start, end = _span(record)
    failed: dict[str, int] = {}
    for request in requests:
        if request.failed:
            track = request.track if request.track in ("stable", "canary") else "no-answer"
            failed[track] = failed.get(track, 0) + 1
    safe = record.first(EventKind.TRAFFIC_SAFE)
    return ReleaseSummary(
        version=record.version,
        phase=str(phase),
        reason=reason,
        duration_s=round(end - start, 3),
        requests=len(requests),
        failed_by_track=failed,
        fault_on=fault_on,
        detection_to_safe_s=(
            round(safe.at - fault_on, 3) if safe is not None and fault_on is not None else None
        ),
    )


def build_report(
    record: ReleaseRecord, summary: ReleaseSummary, requests: Sequence[Request]
) -> dict[str, Any]:
    return {
        **record.to_dict(),
        "summary": summary.to_dict(),
        "load_by_step": load_by_step(record, requests),
    }


def load_by_step(record: ReleaseRecord, requests: Sequence[Request]) -> list[dict[str, Any]]:
    """Users' requests from each verified weight to the next change (or the release's end)."""
    marks = [
        (e.at, e.data.get("step"), int(e.data["weight"]))
        for e in record.events
        if e.kind in (EventKind.WEIGHT_VERIFIED, EventKind.TRAFFIC_SAFE)
    ]
    _, end = _span(record)
    steps = []
    for index, (at, step, weight) in enumerate(marks):
        until = marks[index + 1][0] if index + 1 < len(marks) else end
        counters = LoadCounters.of([r for r in requests if at <= r.at < until])
        steps.append(
            {
                "step": step,
                "weight": weight,
                "from": at,
                "until": until,
                "requests": counters.total,
                "failed": counters.failed,
                "http_5xx": counters.http_5xx,
                "no_answer": counters.no_answer,
                "by_track": dict(counters.by_track),
                "canary_share": round(counters.canary_share(), 4),
            }
        )
    return steps


def write_report(
    out_dir: Path,
    name: str,
    record: ReleaseRecord,
    summary: ReleaseSummary,
    requests: Sequence[Request],
) -> tuple[Path, Path | None]:
    """``<name>.json`` and ``<name>.png`` in ``out_dir``; returns both paths.

    The PNG needs the ``report`` extra (matplotlib). Without it the JSON report is the whole
    record and the PNG path is None: a plain ``pip install canaryflow`` must still release.
    """
    from canaryflow.report.timeline import timeline_of

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / f"{name}.json", out_dir / f"{name}.png"
    report = build_report(record, summary, requests)
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if importlib.util.find_spec("matplotlib") is None:
        return json_path, None
    from canaryflow.report.chart import draw_timeline

    title = f"{record.service} {record.version}: {summary.phase}"
    draw_timeline(timeline_of(record, requests, summary.fault_on), png_path, title)
    return json_path, png_path


def _span(record: ReleaseRecord) -> tuple[float, float]:
    if not record.events:
        return 0.0, 0.0
    end = next((e.at for e in record.events if e.kind in END_KINDS), record.events[-1].at)
    return record.events[0].at, end
