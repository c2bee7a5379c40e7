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

VERIFY_WEIGHT_TIMEOUT_S = 30.0
"""How long a router may take to apply a weight (Istio/Gateway config propagation included)."""
POLL_S = 0.1


def wait_for_weight(
    router: TrafficRouter,
    weight: int,
    timeout_s: float = VERIFY_WEIGHT_TIMEOUT_S,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once the router applies ``weight``; PlatformError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not router.verify_weight(weight):
        if time.monotonic() > deadline:
            raise PlatformError(f"the router did not apply weight {weight}% within {timeout_s:g}s")
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
