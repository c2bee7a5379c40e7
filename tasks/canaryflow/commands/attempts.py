"""The safety-net verbs try again themselves: after a stop or a deadline Argo will not.

Argo retries a failed exit-handler task (``retryStrategy.limit``) only while the workflow is
neither shut down nor past its deadline: ``processNodeRetries`` (operator.go v3.6.19:995-1003)
then gives the retry node its failed child's phase at once. Yet ``argo stop`` and the deadline
are exactly when the exit handler's ``rollback`` / ``flag-off`` matter most. So those verbs run
their whole (idempotent) action again inside one pod on a platform failure, a bounded number
of times, beside the per-call API retries (``kubernetes.retry``). Bad input is never retried.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

from canaryflow.errors import PlatformError

T = TypeVar("T")

# Three tries, 1 s then 2 s apart: with the API client's own retries about 15 s at most, well
# inside a pod's termination grace and the exit handler's time.
SAFETY_NET_PAUSES_S = (1.0, 2.0)


def until_done(
    action: Callable[[], T],
    what: str,
    pauses_s: tuple[float, ...] = SAFETY_NET_PAUSES_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``action()``; on ``PlatformError`` wait and run it again, ``len(pauses_s)`` times at
    most. The last failure is raised unchanged."""
    attempts = len(pauses_s) + 1
    for attempt, pause in enumerate(pauses_s, start=1):
        try:
            return action()
        except PlatformError as error:
            print(
                f"warning: {what}, attempt {attempt} of {attempts}: {error}; again in {pause:g}s",
                file=sys.stderr,
            )
            sleep(pause)
    return action()
