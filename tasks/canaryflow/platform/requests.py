"""Requests as users saw them: what a load generator observes and a release report summarises.

Platform-neutral on purpose: the local load generator produces them, and the report, the live
view and the benchmarks read them without depending on how they were produced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NO_ANSWER = 0
"""The status of a request that got no HTTP answer (refused, reset, closed, timed out)."""


@dataclass(frozen=True)
class Request:
    """One request as its user saw it: when, which track answered, status, latency."""

    at: float
    track: str
    status: int
    latency_s: float

    @property
    def failed(self) -> bool:
        return self.status == NO_ANSWER or self.status >= 500


@dataclass(frozen=True)
class LoadCounters:
    """Counts over a window of the timeline."""

    total: int = 0
    ok: int = 0
    http_5xx: int = 0
    no_answer: int = 0
    by_track: Mapping[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.http_5xx + self.no_answer

    def canary_share(self) -> float:
        """Fraction of answered requests the canary served."""
        answered = sum(self.by_track.values())
        return self.by_track.get("canary", 0) / answered if answered else 0.0

    @classmethod
    def of(cls, events: Sequence[Request]) -> LoadCounters:
        by_track: dict[str, int] = {}
        http_5xx = no_answer = 0
        for event in events:
            if event.status == NO_ANSWER:
                no_answer += 1
                continue
            if event.status >= 500:
                http_5xx += 1
            by_track[event.track] = by_track.get(event.track, 0) + 1
        total = len(events)
        return cls(total, total - http_5xx - no_answer, http_5xx, no_answer, by_track)
