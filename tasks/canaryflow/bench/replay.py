"""Judging the past: an analysis window replayed over data Prometheus already holds.

The same ``AnalysisRun`` the engine uses, with a clock that jumps instead of waiting and every
query evaluated at that clock's time (Prometheus' ``time`` parameter), so a judge and a baseline
can be compared on exactly the same recorded data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from canaryflow.analysis.source import MetricSource, Sample, Series


class ReplayClock:
    """Unix time that moves only when the loop sleeps, and instantly."""

    def __init__(self, start: float):
        self.time = start

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += max(0.0, seconds)


class ReplaySource:
    """A ``MetricSource`` whose "now" is the replay clock's."""

    def __init__(self, source: MetricSource, clock: ReplayClock):
        self.source, self.clock = source, clock

    def instant(self, query: str) -> list[float]:
        return [sample.value for sample in self.vector(query)]

    def vector(self, query: str, at: float | None = None) -> list[Sample]:
        return self.source.vector(query, self.clock.now() if at is None else at)

    def range(self, query: str, start: float, end: float, step: float) -> list[float]:
        return self.source.range(query, start, end, step)

    def series(self, query: str, at: float | None = None) -> list[Series]:
        return self.source.series(query, self.clock.now() if at is None else at)


class ReplayLogs:
    """The canary's log lines up to the replay clock's time (lines start with a timestamp)."""

    def __init__(self, lines_since: Callable[[float], list[str]], clock: ReplayClock):
        self.lines_since_, self.clock = lines_since, clock

    def lines_since(self, since: float) -> list[str]:
        return [line for line in self.lines_since_(since) if _written(line) <= self.clock.now()]


class ReplayTrackLogs(ReplayLogs):
    """Both tracks' log lines up to the replay clock's time: a ``StableLogSource``, so a logs
    gate that compares the tracks (``logs.tolerance``) is replayed as the live judge runs it,
    canary lines per request against stable's, not as "not applicable"."""

    def __init__(
        self,
        lines_since: Callable[[float], list[str]],
        stable_since: Callable[[float], tuple[list[str], float]],
        clock: ReplayClock,
    ):
        super().__init__(lines_since, clock)
        self.stable_since_ = stable_since

    def stable_lines_since(self, since: float) -> tuple[list[str], float]:
        lines, share = self.stable_since_(since)
        return [line for line in lines if _written(line) <= self.clock.now()], share


def _written(line: str) -> float:
    """The Unix time a log line starts with; lines without one count as written at once."""
    try:
        return datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()
    except ValueError:
        return float("-inf")
