"""Setting a canary weight and knowing it is in force: one helper, one timeout.

A router accepts a weight before it applies it (nginx reloads, a mesh pushes config to its
proxies), so every caller that changes a weight waits until ``verify_weight`` observes it: the
release engine before it opens a window and when it makes traffic safe, the ``set-weight`` verb
and the analysis fail-safe. They share the deadline below unless told otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from canaryflow.errors import PlatformError
from canaryflow.platform.protocol import TrafficRouter
from canaryflow.progress import waiting

VERIFY_WEIGHT_TIMEOUT_S = 30.0
"""How long a router may take to apply a weight (Istio/Gateway config propagation included)."""
POLL_S = 0.1


def wait_for_weight(
    router: TrafficRouter,
    weight: int,
    timeout_s: float = VERIFY_WEIGHT_TIMEOUT_S,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    baseline: int = 0,
) -> None:
    """Return once the router applies ``weight`` (and ``baseline`` % on a fresh baseline);
    PlatformError after ``timeout_s``. Without a baseline share the router is asked exactly as
    a two-way router is, so routers without a baseline keep working unchanged."""
    deadline = time.monotonic() + timeout_s
    while not (
        router.verify_weight(weight, baseline) if baseline else router.verify_weight(weight)
    ):
        if time.monotonic() > deadline:
            share = f" (baseline {baseline}%)" if baseline else ""
            raise PlatformError(
                f"the router did not apply weight {weight}%{share} within {timeout_s:g}s"
            )
        waiting(f"the router to apply weight {weight}%", "not yet in force", timeout_s)
        sleep(poll_s)


def apply_weight(
    router: TrafficRouter,
    weight: int,
    timeout_s: float = VERIFY_WEIGHT_TIMEOUT_S,
    poll_s: float = POLL_S,
) -> None:
    """Set ``weight`` and return once the router shows it."""
    router.set_weight(weight)
    wait_for_weight(router, weight, timeout_s, poll_s)
