"""Send metric text to a Prometheus Pushgateway, grouped by job, namespace and service.

As prometheus/pushgateway's README documents: ``POST /metrics/job/<job>{/<label>/<value>}``
replaces only the pushed families within the group (``PUT`` would drop the families other
release pods pushed, e.g. the gate verdicts when set-weight reports the weight); a label value
containing ``/`` (or empty) is sent base64url-encoded as ``<label>@base64/<value>``. The body
is the text format, ``Content-Type: text/plain; version=0.0.4``.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from canaryflow.errors import UnreachableError

JOB = "canaryflow"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TIMEOUT_S = 5.0


def _segment(label: str, value: str) -> str:
    if value == "" or "/" in value:
        encoded = base64.urlsafe_b64encode(value.encode()).decode() or "="
        return f"{label}@base64/{encoded}"
    return f"{label}/{urllib.parse.quote(value, safe='')}"


def group_path(grouping: Mapping[str, str], job: str = JOB) -> str:
    """``/metrics/job/<job>/<label>/<value>...`` for the grouping key, in the given order."""
    parts = [_segment("job", job), *(_segment(k, v) for k, v in grouping.items())]
    return "/metrics/" + "/".join(parts)


def push(url: str, grouping: Mapping[str, str], text: str, timeout: float = TIMEOUT_S) -> None:
    """POST ``text`` into the group; raises ``UnreachableError`` when the gateway does not
    take it (the caller decides whether a missing metric may fail anything: it never should)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise UnreachableError(
            f"{url!r} is not an http(s) URL: set the Pushgateway's base URL, "
            "e.g. http://pushgateway.monitoring:9091",
            path="monitoring.pushgateway.url",
        )
    target = url.rstrip("/") + group_path(grouping)
    request = urllib.request.Request(
        target, data=text.encode(), method="POST", headers={"Content-Type": CONTENT_TYPE}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        body = error.read()[:300].decode(errors="replace").strip()
        raise UnreachableError(
            f"Pushgateway {url} refused the metrics (HTTP {error.code}): {body}",
            path="monitoring.pushgateway.url",
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UnreachableError(
            f"Pushgateway {url} unreachable: {reason}", path="monitoring.pushgateway.url"
        ) from None
