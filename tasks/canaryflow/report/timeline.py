"""A release as series over time: weight, per-track error rate and p95, gate verdicts.

Error rate and p95 are the users' view (the load generator's requests in 1 s buckets), not the
gates' own queries: the chart then shows what people got, and the gate markers what the
analysis concluded from Prometheus. All pure, so the chart and the JSON are easy to test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from canaryflow.platform.requests import Request
from canaryflow.release.events import EventKind
from canaryflow.release.record import ReleaseRecord
from canaryflow.report.figures import percentile

BUCKET_S = 1.0
TRACKS = ("stable", "canary")


@dataclass(frozen=True)
class Bucket:
    """One track's requests in one second (``at`` is the bucket's start, relative to t0)."""

    at: float
    track: str
    requests: int
    failed: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class GateMark:
    at: float
    gate: str
    outcome: str


@dataclass
class Timeline:
    """Times are seconds since the release started (``t0``, Unix time)."""

    t0: float
    end: float
    weights: list[tuple[float, int]] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)
    gates: list[GateMark] = field(default_factory=list)
    rollback_at: float | None = None
    safe_at: float | None = None
    promoted_at: float | None = None
    fault_at: float | None = None

    def track(self, name: str) -> list[Bucket]:
        return [b for b in self.buckets if b.track == name]


def timeline_of(
    record: ReleaseRecord, requests: Sequence[Request], fault_on: float | None = None
) -> Timeline:
    t0 = record.events[0].at if record.events else 0.0
    end = record.events[-1].at - t0 if record.events else 0.0
    timeline = Timeline(t0=t0, end=end, fault_at=_relative(fault_on, t0))
    timeline.weights = _weights(record, t0)
    timeline.buckets = buckets_of(requests, t0)
    timeline.gates = [
        GateMark(event.at - t0, item["gate"], item["outcome"])
        for event in record.of_kind(EventKind.MEASUREMENTS)
        for item in event.data["items"]
    ]
    timeline.rollback_at = _at(record, EventKind.ROLLBACK_STARTED, t0)
    timeline.safe_at = _at(record, EventKind.TRAFFIC_SAFE, t0)
    timeline.promoted_at = _at(record, EventKind.PROMOTED, t0)
    return timeline


def buckets_of(requests: Iterable[Request], t0: float, width: float = BUCKET_S) -> list[Bucket]:
    """Per track and per ``width`` seconds: requests, failures and p95 latency."""
    grouped: dict[tuple[int, str], list[Request]] = {}
    for request in requests:
        if request.track in TRACKS:
            grouped.setdefault((math.floor((request.at - t0) / width), request.track), []).append(
                request
            )
    return [
        Bucket(
            at=index * width,
            track=track,
            requests=len(group),
            failed=sum(r.failed for r in group),
            p95_ms=percentile([r.latency_s * 1000 for r in group], 95, "nearest-rank"),
        )
        for (index, track), group in sorted(grouped.items())
    ]


def _weights(record: ReleaseRecord, t0: float) -> list[tuple[float, int]]:
    """The canary weight as a step function: each verified weight, and 0 once traffic is safe."""
    points = [(0.0, 0)]
    for event in record.events:
        if event.kind == EventKind.WEIGHT_VERIFIED:
            points.append((event.at - t0, int(event.data["weight"])))
        elif event.kind == EventKind.TRAFFIC_SAFE:
            points.append((event.at - t0, 0))
    return points


def _at(record: ReleaseRecord, kind: str, t0: float) -> float | None:
    event = record.first(kind)
    return event.at - t0 if event else None


def _relative(at: float | None, t0: float) -> float | None:
    return None if at is None else at - t0
