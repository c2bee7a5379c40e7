"""How long one analysis round takes: every gate of a spec, canary and stable, measured once.

``canaryflow bench`` calls ``time_rounds`` against a Prometheus that has data; the figure bounds
how short an analysis interval can usefully be.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.spec import AnalysisSpec


@dataclass(frozen=True)
class RoundTiming:
    rounds: int
    gates: int
    queries: int
    median_ms: float
    p90_ms: float
    max_ms: float

    def __str__(self) -> str:
        return (
            f"analysis round ({self.gates} gates, {self.queries} queries): "
            f"median {self.median_ms:.1f} ms, p90 {self.p90_ms:.1f} ms, "
            f"max {self.max_ms:.1f} ms over {self.rounds} rounds"
        )


def full_catalogue_spec(**settings: object) -> AnalysisSpec:
    """A spec with every Prometheus metric of the catalogue as a gate, at its default limit."""
    gates = [{"metric": m.name} for m in METRICS.values() if m.unit != "lines"]
    return AnalysisSpec.model_validate({**settings, "gates": gates})


def time_rounds(run: AnalysisRun, rounds: int = 20) -> RoundTiming:
    """Wall-clock time of ``rounds`` consecutive rounds (all queries of a round run at once)."""
    durations = []
    queries = 0
    started = time.time()
    for round_no in range(1, rounds + 1):
        began = time.perf_counter()
        measurements = run.measure(round_no, started)
        durations.append((time.perf_counter() - began) * 1000)
        queries = sum(len(m.evidence.queries) for m in measurements)
    queries += run.spec.min_canary_requests > 0
    ordered = sorted(durations)
    return RoundTiming(
        rounds=rounds,
        gates=len(run.spec.gates),
        queries=queries,
        median_ms=statistics.median(ordered),
        p90_ms=ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        max_ms=ordered[-1],
    )
