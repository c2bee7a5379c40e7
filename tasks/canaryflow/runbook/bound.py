"""How long a regression can hurt before traffic is back on stable (a pure upper bound).

A gate fails the window at its ``failureLimit + 1``-th failed measurement (``verdict.py``).
Measurements come every ``interval``; each reads ``rate()`` over ``queryWindow``, so a step
change in the canary shows fully only once the window holds nothing older than the change.
Prometheus adds up to one scrape interval before the change is stored, each query may take
``prometheus.timeout``, and then the analyze pod that decided makes traffic safe itself
(``analyze --fail-safe``): it writes weight 0, withdraws the header route and reads both back
from the router before it exits; no other pod has to be scheduled first. The scrape interval
and that fail-safe time are the cluster's, not the plan's: stated assumptions, not
measurements (each analyze report records the real fail-safe time, ``failSafe.seconds``).
How fast the mesh or ingress controller then programs its proxies is the router's own
propagation, not included.
"""

from __future__ import annotations

from dataclasses import dataclass

from canaryflow.duration import format_duration
from canaryflow.plan.model import ReleasePlan

ASSUMED_SCRAPE_INTERVAL_S = 30.0
"""Kubernetes Prometheus setups scrape every 15-30 s; the larger is the safe side."""
ASSUMED_FAIL_SAFE_S = 2.0
"""Two router writes (weight 0, header route withdrawn) and their verified read-back from the
already running analyze pod."""


@dataclass(frozen=True)
class DetectionBound:
    query_window_s: float
    interval_s: float
    failure_limit: int
    query_timeout_s: float
    scrape_interval_s: float
    fail_safe_s: float

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
        """From the canary turning bad to weight 0 verified at the router."""
        return self.detection_s + self.fail_safe_s

    def formula(self) -> str:
        return (
            "scrape interval + queryWindow + interval * (failureLimit + 1) "
            "+ prometheus.timeout + fail-safe"
        )

    def arithmetic(self) -> str:
        terms = (
            format_duration(self.scrape_interval_s),
            format_duration(self.query_window_s),
            f"{format_duration(self.interval_s)} * ({self.failure_limit} + 1)",
            format_duration(self.query_timeout_s),
            format_duration(self.fail_safe_s),
        )
        return " + ".join(terms) + f" = {format_duration(self.total_s)}"


def detection_bound(
    plan: ReleasePlan,
    scrape_interval_s: float = ASSUMED_SCRAPE_INTERVAL_S,
    fail_safe_s: float = ASSUMED_FAIL_SAFE_S,
) -> DetectionBound:
    analysis = plan.analysis
    return DetectionBound(
        query_window_s=analysis.query_window,
        interval_s=analysis.interval,
        failure_limit=analysis.failure_limit,
        query_timeout_s=analysis.prometheus.timeout,
        scrape_interval_s=scrape_interval_s,
        fail_safe_s=fail_safe_s,
    )
