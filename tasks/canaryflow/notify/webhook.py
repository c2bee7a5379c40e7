"""Sending notifications over HTTP, with a short timeout and bounded retries.

A notification that cannot be delivered is reported, never fatal: the release's outcome is
already decided when the exit handler runs. Requests follow ``canaryflow.transport``: a
redirect to another host is not followed (a commit-status token never leaves its host), TLS is
verified, the answer is read up to a limit, and ``deadline_s`` bounds all attempts together,
the answer's body included.

A socket timeout bounds each wait for a byte, not the whole exchange: a server dripping one
byte every two seconds (status line, headers or body) holds ``urllib`` for as long as it
likes. So each attempt runs in a daemon thread and the caller waits for it until the
deadline, no longer; an attempt still dripping at the deadline is abandoned (its thread ends
with the server or the process) and reported as not delivered.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from canaryflow import transport

_HTTP_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)


def post_json(
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    attempts: int = 3,
    timeout_s: float = 5.0,
    deadline_s: float = 20.0,
) -> str | None:
    """POST ``body``; None on success, else why it failed after ``attempts`` tries."""
    if not _HTTP_URL.fullmatch(url):
        return "not an http(s) URL: nothing sent"
    try:  # strict JSON: a receiver's parser refuses NaN and Infinity
        data = json.dumps(body, allow_nan=False).encode()
    except ValueError:
        return "the message is not strict JSON (NaN or infinity): nothing sent"
    problem = "not sent"
    deadline = time.monotonic() + deadline_s
    client = transport.opener()
    for attempt in range(attempts):
        left = deadline - time.monotonic()
        if left <= 0:
            return f"{problem} (gave up after {deadline_s:g}s)"
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            exchange = functools.partial(_exchange, client, request, min(timeout_s, left))
            status = _within(left, exchange)
            if status is None:
                return f"no complete answer within {deadline_s:g}s (gave up)"
            if 200 <= status < 300:
                return None
            problem = f"HTTP {status}"
        except transport.RedirectRefused as error:
            return f"HTTP {error.code}: {error.reason}"
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code}"
            if 300 <= error.code < 500 and error.code != 429:
                return problem  # the request is wrong; repeating it will not help
        except (urllib.error.URLError, OSError, ValueError) as error:
            problem = str(getattr(error, "reason", error))[:200]
        time.sleep(min(0.2 * 2**attempt, max(0.0, deadline - time.monotonic())))
    return problem


def _exchange(client: Any, request: urllib.request.Request, timeout_s: float) -> int:
    """One request and its whole (bounded) answer; the status."""
    with client.open(request, timeout=timeout_s) as response:
        transport.read_bounded(response)
        return response.status


def _within(seconds: float, call: Any) -> Any:
    """``call()``'s result, or its exception, if it ends within ``seconds``; else None."""
    outcome: list[tuple[bool, Any]] = []

    def attempt() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as error:  # handed to the caller's thread
            outcome.append((False, error))

    worker = threading.Thread(target=attempt, name="webhook-attempt", daemon=True)
    worker.start()
    worker.join(max(0.0, seconds))
    if not outcome:
        return None
    done, value = outcome[0]
    if not done:
        raise value
    return value
