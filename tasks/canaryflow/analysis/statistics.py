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


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed in log space (no overflow for large n)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(0, k + 1):
        log_term = (
            math.lgamma(n + 1)
            - math.lgamma(i + 1)
            - math.lgamma(n - i + 1)
            + i * log_p
            + (n - i) * log_q
        )
        total += math.exp(log_term)
    return min(1.0, total)


def _solve(function, target: float) -> float:
    """The p in [0, 1] where the decreasing ``function(p)`` equals ``target`` (bisection)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if function(middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided confidence interval of a binomial proportion: it
    covers the true rate at least ``confidence`` of the time, however few the trials."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 ≤ successes ≤ trials and trials > 0: {successes}/{trials}")
    tail = (1 - confidence) / 2
    low = 0.0
    if successes > 0:  # P(X ≥ k | p) = tail
        low = _solve(lambda p: _binomial_cdf(successes - 1, trials, p), 1 - tail)
    high = 1.0
    if successes < trials:  # P(X ≤ k | p) = tail
        high = _solve(lambda p: _binomial_cdf(successes, trials, p), tail)
    return low, high


def wilson(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default)."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 ≤ successes ≤ trials and trials > 0: {successes}/{trials}")
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z
        / (1 + z * z / trials)
        * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_upper_bound(successes: int, trials: int, confidence: float = 0.95) -> float:
    """The one-sided exact upper confidence bound of a binomial proportion: with 0 of 30 good
    canaries rolled back, the rate is below 9.5 % at 95 %, and no lower is shown."""
    return clopper_pearson(successes, trials, 2 * confidence - 1)[1]
