"""Simulated releases judged the way the workflow's analyze pods judge them: a new
``AnalysisRun`` per step, the evidence written as text after each window and read back
(``analysis.carried``) by the next, or not carried at all (alpha split per judging step)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from canaryflow.analysis import carried
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.offline import EPOCH, _ClockedSource
from canaryflow.bench.replay import ReplayClock
from canaryflow.bench.streams import Fleet, Recording, simulate


def judge_in_pods(
    recording: Recording,
    steps: Sequence[tuple[float, float]],
    spec: AnalysisSpec,
    carry: bool,
    lose_state_at: int | None = None,
) -> tuple[Outcome, list[str]]:
    """The release's outcome (its first window that does not pass, else PASS) and the state
    texts written after each window. ``lose_state_at``: that step finds no state."""
    clock = ReplayClock(EPOCH)
    source = _ClockedSource(recording, clock)
    weights = [round(weight * 100) for weight, _ in steps]
    text: str | None = None
    written = []
    for index, (_, seconds) in enumerate(steps):
        run = AnalysisRun(
            spec,
            source,
            "svc",
            "prod",
            clock=clock,
            windows=carried.judging_windows(weights),
            carry_evidence=carry,
        )
        run.concurrent = False
        if carry:
            found = None if index == lose_state_at else text
            begun = carried.begin_window(run, found, spec, index, 0, weights)
        result = run.window(seconds)
        if result.verdict.outcome is not Outcome.PASS:
            return result.verdict.outcome, written
        if carry:
            restarted = begun.restarted_at
            state = carried.snapshot(
                spec,
                index,
                run.budget,
                run.sequential_evidence,
                restarted,
                carried.reference_of(run),
            )
            text = state.to_text()
            written.append(text)
    return Outcome.PASS, written


def judge_many_in_pods(
    fleet: Fleet,
    steps: Sequence[tuple[float, float]],
    spec: AnalysisSpec,
    releases: int,
    seed: int,
    canary_factor: float = 1.0,
    carry: bool = True,
) -> list[Outcome]:
    rng = random.Random(seed)
    return [
        judge_in_pods(simulate(fleet, steps, rng, canary_factor), steps, spec, carry)[0]
        for _ in range(releases)
    ]
