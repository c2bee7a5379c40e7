"""Bounded exponential back-off for API calls that may succeed when tried again.

Conflicts (409), throttling (429), server errors (5xx) and dropped connections are transient on a
busy cluster; anything else (404, 403, 422) is an answer, and retrying it only delays the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    first_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delays(self) -> list[float]:
        """The pauses between attempts: 0.2, 0.4, 0.8, ... capped at ``max_delay_s``."""
        return [min(self.first_delay_s * 2**i, self.max_delay_s) for i in range(self.attempts - 1)]


DEFAULT_RETRY = RetryPolicy()


def is_transient(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUSES or error.status == 0
    return isinstance(error, urllib3.exceptions.HTTPError | ConnectionError)


def call_with_retries(call: Callable[[], T], policy: RetryPolicy) -> T:
    """Run ``call``; on a transient error sleep and try again, up to ``policy.attempts`` times.

    The last error is raised unchanged, for the caller to turn into a message.
    """
    for delay in policy.delays():
        try:
            return call()
        except Exception as error:
            if not is_transient(error):
                raise
            time.sleep(delay)
    return call()
