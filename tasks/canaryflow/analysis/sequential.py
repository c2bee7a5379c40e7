"""An anytime-valid sequential test for counts: is the canary's event rate higher than stable's?

Events (5xx answers, failed outbound calls, cache misses, requests slower than stable's p99,
GC cycles) are counted per track together with their exposure (requests, calls, lookups).
Following Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data" (NeurIPS 2022)
and Netflix's "Sequential Testing Keeps the World Streaming, Part 2: Counting Processes"
(2024), the test conditions on the events: given that ``x`` events happened between two looks
while the canary had the share ``w`` of the exposure, each event is the canary's with
probability ``theta(r) = r·w / (r·w + 1 - w)``, where ``r`` is the ratio of the canary's rate to
stable's. Nothing else about the traffic matters, so the test holds however load varies.

The null hypothesis is Kayenta's practical significance: ``r ≤ 1 + tolerance``. The evidence
against it is a mixture of likelihood ratios over a grid of worse ratios, multiplied look by
look. Under the null its expectation never exceeds 1 however the looks are spaced, so by
Ville's inequality the chance it *ever* reaches ``1/alpha`` is at most alpha: the judge may look
as often as it likes. Under a real regression it grows exponentially, at the rate the
Kullback-Leibler divergence of the two event distributions allows, which is what
``information_limit`` computes for an ideal test that knows the fault in advance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

RATIO_GRID: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)
"""Alternatives, as multiples of the tolerated ratio; equal prior weight each."""


def canary_share(ratio: float, exposure_share: float) -> float:
    """theta: the chance an event is the canary's when its rate is ``ratio`` times stable's."""
    canary = ratio * exposure_share
    return canary / (canary + 1.0 - exposure_share)


def _log_shares(ratio: float, share: float) -> tuple[float, float]:
    """log theta and log (1 - theta), each computed without cancelling to 0."""
    canary, stable = ratio * share, 1.0 - share
    whole = math.log(canary + stable)
    return math.log(canary) - whole, math.log(stable) - whole


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


@dataclass
class CountTest:
    """One gate's e-process over one analysis window: feed increments, read the evidence."""

    tolerance: float = 0.0
    grid: tuple[float, ...] = RATIO_GRID
    log_ratios: list[float] = field(default_factory=list)
    canary_events: float = 0.0
    canary_exposure: float = 0.0
    stable_events: float = 0.0
    stable_exposure: float = 0.0

    def __post_init__(self) -> None:
        if not self.log_ratios:
            self.log_ratios = [0.0] * len(self.grid)

    @property
    def null_ratio(self) -> float:
        return 1.0 + self.tolerance

    def add(
        self,
        canary_events: float,
        canary_exposure: float,
        stable_events: float,
        stable_exposure: float,
    ) -> None:
        """Counts since the previous look. Events without exposure on both sides carry no
        information about the ratio (a 100 % step: all exposure is the canary's) and are
        kept in the totals only."""
        values = (canary_events, canary_exposure, stable_events, stable_exposure)
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"counts must be finite and non-negative: {values}")
        self.canary_events += canary_events
        self.canary_exposure += canary_exposure
        self.stable_events += stable_events
        self.stable_exposure += stable_exposure
        exposure = canary_exposure + stable_exposure
        if exposure <= 0 or canary_exposure <= 0 or stable_exposure <= 0:
            return
        share = canary_exposure / exposure
        if canary_events + stable_events <= 0 or not 1e-12 < share < 1 - 1e-12:
            return
        null_c, null_s = _log_shares(self.null_ratio, share)
        for index, multiple in enumerate(self.grid):
            alt_c, alt_s = _log_shares(self.null_ratio * multiple, share)
            self.log_ratios[index] += canary_events * (alt_c - null_c) + stable_events * (
                alt_s - null_s
            )

    @property
    def log_evidence(self) -> float:
        """log of the e-value: the mixture of every alternative's likelihood ratio."""
        return _logsumexp(self.log_ratios) - math.log(len(self.grid))

    def rejects(self, alpha: float) -> bool:
        return self.log_evidence >= math.log(1 / alpha)

    @property
    def ratio(self) -> float:
        """The canary's observed rate relative to stable's (inf when stable has none)."""
        canary = self.canary_events / self.canary_exposure if self.canary_exposure else 0.0
        stable = self.stable_events / self.stable_exposure if self.stable_exposure else 0.0
        if stable == 0:
            return math.inf if canary > 0 else 1.0
        return canary / stable


def gate_alpha(alpha: float, gates: int, windows: int) -> float:
    """One gate's share of a release's alpha: Bonferroni over the sequential gates and windows.

    Each gate's e-process is valid on its own; a release rolls back when any of them crosses,
    in any window, so the false-rollback budget alpha is split evenly among them.
    """
    return alpha / max(1, gates) / max(1, windows)


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bernoulli(p) ‖ Bernoulli(q)) in nats."""
    total = 0.0
    for a, b in ((p, q), (1 - p, 1 - q)):
        if a > 0:
            if b <= 0:
                return math.inf
            total += a * math.log(a / b)
    return total


def multinomial_kl(p: Sequence[float], q: Sequence[float]) -> float:
    """KL(p ‖ q) of two distributions over the same bins, in nats."""
    total = 0.0
    for a, b in zip(p, q, strict=True):
        if a > 0:
            if b <= 0:
                return math.inf
            total += a * math.log(a / b)
    return total


def information_limit(kl_per_request: float, alpha: float) -> float:
    """Requests an ideal sequential test (Wald's SPRT knowing both distributions) needs on
    average to reject at level alpha: log(1/alpha) / KL. Infinite when the fault is invisible."""
    if kl_per_request <= 0:
        return math.inf
    return math.log(1 / alpha) / kl_per_request
