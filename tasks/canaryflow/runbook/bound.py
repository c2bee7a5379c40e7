"""How long a regression can hurt before traffic is back on stable (a pure upper bound).

A gate fails the window at its ``failureLimit + 1``-th failed measurement (``verdict.py``).
Measurements come every ``interval``; each reads ``rate()`` over ``queryWindow``, so a step
change in the canary shows fully only once the window holds nothing older than the change.
Prometheus adds up to one scrape interval before the change is stored, each query may take
``prometheus.timeout``, and the rollback then has to start its task and switch the router.
The last two are the cluster's, not the plan's: they are stated assumptions, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

from canaryflow.plan.duration import format_duration
from canaryflow.plan.model import ReleasePlan

ASSUMED_SCRAPE_INTERVAL_S = 30.0
"""Kubernetes Prometheus setups scrape every 15-30 s; the larger is the safe side."""
ASSUMED_ROLLBACK_START_S = 30.0
"""Scheduling the rollback task's pod, pulling a cached image and one router write."""


@dataclass(frozen=True)
class DetectionBound:
    query_window_s: float
    interval_s: float
    failure_limit: int
    query_timeout_s: float
    scrape_interval_s: float
    rollback_start_s: float

    @property
    def detection_s(self) -> float:
        """From the canary turning bad to the window's FAIL verdict."""
        return (
            self.scrape_interval_s
            + self.query_window_s
            + self.interval_s * (self.failure_limit + 1)
            + self.query_timeout_s
        )

    @property
    def total_s(self) -> float:
        """From the canary turning bad to all traffic on stable."""
        return self.detection_s + self.rollback_start_s

    def formula(self) -> str:
        return (
            "scrape interval + queryWindow + interval * (failureLimit + 1) "
            "+ prometheus.timeout + rollback start"
        )

    def arithmetic(self) -> str:
        terms = (
            format_duration(self.scrape_interval_s),
            format_duration(self.query_window_s),
            f"{format_duration(self.interval_s)} * ({self.failure_limit} + 1)",
            format_duration(self.query_timeout_s),
            format_duration(self.rollback_start_s),
        )
        return " + ".join(terms) + f" = {format_duration(self.total_s)}"


def detection_bound(
    plan: ReleasePlan,
    scrape_interval_s: float = ASSUMED_SCRAPE_INTERVAL_S,
    rollback_start_s: float = ASSUMED_ROLLBACK_START_S,
) -> DetectionBound:
    analysis = plan.analysis
    return DetectionBound(
        query_window_s=analysis.query_window,
        interval_s=analysis.interval,
        failure_limit=analysis.failure_limit,
        query_timeout_s=analysis.prometheus.timeout,
        scrape_interval_s=scrape_interval_s,
        rollback_start_s=rollback_start_s,
    )
