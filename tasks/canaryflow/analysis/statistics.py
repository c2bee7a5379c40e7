"""Mann-Whitney U and the Hodges-Lehmann shift: Kayenta's canary judge, without SciPy.

The U test asks whether canary samples tend to be larger than stable ones without assuming a
distribution (latencies are skewed and heavy-tailed). Ties get average ranks and the variance
is tie-corrected; the p-values use the normal approximation with continuity correction, as
SciPy's ``mannwhitneyu(method="asymptotic")`` does. The Hodges-Lehmann estimate (the median of
all pairwise differences) says how large the shift is, so a significant but tiny change can be
tolerated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MannWhitney:
    u: float
    """U of the first sample: pairs (x, y) with x > y, ties counting one half."""
    z_greater: float
    p_greater: float
    """One-sided p-value for "x tends to be larger than y"."""
    p_less: float
    """One-sided p-value for "x tends to be smaller than y"."""


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, tied values sharing the average of their positions."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2 + 1
        for index in order[start : end + 1]:
            result[index] = average
        start = end + 1
    return result


def _tie_term(values: Sequence[float]) -> float:
    counts: dict[float, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return sum(t**3 - t for t in counts.values())


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> MannWhitney:
    """The U test of ``x`` against ``y``; both need at least one value."""
    if not x or not y:
        raise ValueError("Mann-Whitney U needs at least one value in each sample")
    n_x, n_y = len(x), len(y)
    n = n_x + n_y
    combined = [*x, *y]
    rank_sum_x = sum(ranks(combined)[:n_x])
    u = rank_sum_x - n_x * (n_x + 1) / 2
    mean = n_x * n_y / 2
    variance = n_x * n_y / 12 * ((n + 1) - _tie_term(combined) / (n * (n - 1)))
    if variance <= 0:  # every value equal: no evidence either way
        return MannWhitney(u=u, z_greater=0.0, p_greater=1.0, p_less=1.0)
    sd = math.sqrt(variance)
    z_greater = (u - mean - 0.5) / sd
    z_less = (u - mean + 0.5) / sd
    return MannWhitney(
        u=u,
        z_greater=z_greater,
        p_greater=min(1.0, _normal_sf(z_greater)),
        p_less=min(1.0, _normal_sf(-z_less)),
    )


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("the median of no values is undefined")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def hodges_lehmann(x: Sequence[float], y: Sequence[float]) -> float:
    """The shift of ``x`` relative to ``y``: the median of every difference x_i - y_j."""
    return median([a - b for a in x for b in y])
