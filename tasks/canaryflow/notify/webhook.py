"""Sending notifications over HTTP, with a short timeout and bounded retries.

A notification that cannot be delivered is reported, never fatal: the release's outcome is
already decided when the exit handler runs.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


def post_json(
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    attempts: int = 3,
    timeout_s: float = 5.0,
) -> str | None:
    """POST ``body``; None on success, else why it failed after ``attempts`` tries."""
    data = json.dumps(body).encode()
    problem = "not sent"
    for attempt in range(attempts):
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                if 200 <= response.status < 300:
                    return None
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code}"
            if 400 <= error.code < 500 and error.code != 429:
                return problem  # the request is wrong; repeating it will not help
        except (urllib.error.URLError, OSError) as error:
            problem = str(getattr(error, "reason", error))
        time.sleep(0.2 * 2**attempt)
    return problem
