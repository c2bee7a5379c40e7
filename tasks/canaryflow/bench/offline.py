"""Offline judgement: a recorded (or simulated) release judged window by window, in no time.

The real ``AnalysisRun`` reads the recording through ``RecordedSource`` as it would read
Prometheus, on a clock that jumps instead of waiting, one window per traffic step, exactly as
the engine drives it: with ``carry=True`` one e-process per gate runs over the whole release
(the engine's way), with ``carry=False`` every window is a test of its own and alpha is split
over the windows (the way separate ``canaryflow analyze`` processes per step judge).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.replay import ReplayClock
from canaryflow.bench.streams import Fleet, RecordedSource, Recording, simulate

EPOCH = 1_700_000_000.0
"""The Unix time a recording's second 0 is replayed at."""


@dataclass(frozen=True)
class Judged:
    """How one release ended: the outcome of its last window, which gate decided, when."""

    outcome: Outcome
    step: int
    gate: str | None
    seconds: float | None
    """Seconds from the release's start to the deciding look."""
    samples_read: int

    @property
    def rolled_back_by_evidence(self) -> bool:
        return self.outcome is Outcome.FAIL


class _ClockedSource(RecordedSource):
    def __init__(self, recording: Recording, clock: ReplayClock):
        super().__init__(recording, clock_start=EPOCH)
        self.clock = clock

    @property  # type: ignore[override]
    def now(self) -> float:
        return self.clock.now()

    @now.setter
    def now(self, value: float) -> None:
        pass


def judge_release(
    recording: Recording,
    steps: Sequence[tuple[float, float]],
    spec: AnalysisSpec,
    carry: bool = True,
) -> Judged:
    """Judge ``recording`` step by step; stop at the first window that does not pass."""
    clock = ReplayClock(EPOCH)
    source = _ClockedSource(recording, clock)
    run = AnalysisRun(
        spec, source, "svc", "prod", clock=clock, windows=len(steps), carry_evidence=carry
    )
    outcome = Outcome.PASS
    for index, (_, seconds) in enumerate(steps):
        result = run.window(seconds)
        outcome = result.verdict.outcome
        if outcome is not Outcome.PASS:
            deciding = [m for m in result.measurements if m.outcome is outcome and not m.dry_run]
            first = deciding[0] if deciding else None
            return Judged(
                outcome,
                index,
                first.gate if first else None,
                (first.started - EPOCH) if first else None,
                source.samples_read,
            )
    return Judged(outcome, len(steps) - 1, None, None, source.samples_read)


def judge_many(
    fleet: Fleet,
    steps: Sequence[tuple[float, float]],
    spec: AnalysisSpec,
    releases: int,
    seed: int,
    canary_factor: float = 1.0,
    carry: bool = True,
) -> list[Judged]:
    """``releases`` simulated releases of ``fleet`` judged offline, seeded."""
    rng = random.Random(seed)
    return [
        judge_release(simulate(fleet, steps, rng, canary_factor), steps, spec, carry)
        for _ in range(releases)
    ]
