"""Percentiles of measured values, for the release report and the benchmarks alike.

Two definitions are in use, on purpose: a report's per-second latency p95 is the *nearest rank*
(a latency some request really had), while benchmark figures over a few runs *interpolate*
linearly between ranks, as numpy's default does, so ten runs do not report their maximum as p95.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal


def percentile(
    values: Sequence[float], pct: float, method: Literal["linear", "nearest-rank"] = "linear"
) -> float | None:
    """The ``pct``-th percentile (0-100) of ``values``; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if method == "nearest-rank":
        return ordered[min(len(ordered), max(1, math.ceil(pct / 100 * len(ordered)))) - 1]
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
