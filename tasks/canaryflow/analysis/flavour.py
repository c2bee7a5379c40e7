"""Which catalogue flavour a service's metrics speak, for ``analysis.metrics: auto``: pure.

At its first round the analysis asks Prometheus how many requests the service served in the
query window under each flavour's request counter (``catalogue.REQUEST_SERIES``, both tracks
summed), and this module chooses from the answers: the flavour that counted the most requests.
A gRPC service that also exports ``http_requests_total`` for its health endpoint is judged by
its gRPC calls; a meshed service whose application is instrumented as well is judged by the
application (a tie goes to the earlier of ``DETECTION_ORDER``, the application's flavours
first). A flavour whose counter exists but saw no request still beats one with no series.
No series of any flavour chooses nothing: the round is judged as ``go`` (its gates then find
no series, which never passes) and the next round asks again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from canaryflow.analysis.catalogue import REQUEST_SERIES

AUTO = "auto"
DETECTION_ORDER: tuple[str, ...] = ("go", "otel", "grpc", "istio")
FALLBACK = "go"


@dataclass(frozen=True)
class Detection:
    """The chosen flavour (None: nothing found yet) and a one-line account of why."""

    flavour: str | None
    reason: str


def _series(flavour: str) -> str:
    return REQUEST_SERIES[flavour].split("{", 1)[0].strip()


def choose(requests: Mapping[str, float | None]) -> Detection:
    """``requests``: per flavour, the requests its counter saw (None: no series at all)."""
    found = {f: n for f, n in requests.items() if n is not None}
    if not found:
        looked = ", ".join(f"{f}: {_series(f)}" for f in DETECTION_ORDER if f in requests)
        return Detection(None, f"no request series of any flavour for the service ({looked})")
    best = max(found, key=lambda f: (found[f], -DETECTION_ORDER.index(f)))
    others = [f"{f} {found[f]:g}" for f in DETECTION_ORDER if f in found and f != best]
    also = f"; also {', '.join(others)}" if others else ""
    return Detection(
        best,
        f"metrics: {best}, detected from {_series(best)} "
        f"({found[best]:g} requests in the query window{also})",
    )
