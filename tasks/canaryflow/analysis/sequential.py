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

Requests are not independent in a real fleet: a pod that stalls for a second (GC, CPU
throttling, a noisy neighbour) turns hundreds of requests slow at once, so a pod's count varies
far more than a binomial's. The test is robust to that by quasi-likelihood (McCullagh & Nelder,
*Generalized Linear Models*, ch. 9): stable's pods over the same intervals are units whose
counts should agree up to binomial noise, and Pearson's X² of their spread about the pooled rate,
per degree of freedom, estimates the over-dispersion ``phi``. The log-likelihood ratios are
divided by ``phi`` (a lump of 200 slow requests weighs as much as ``200 / phi`` independent
ones), which keeps the A/A false-alarm rate under alpha where requests arrive in lumps per pod.
With a single stable pod there is nothing to compare and ``phi`` stays 1.

A lump is the requests a pod had in flight when it stalled, so it grows with the pod's load
while the binomial variance grows with it too, once: the over-dispersion of a busier pod is
larger. That is the variance function ``mu (1 + kappa mu)`` of the negative binomial (NB2),
``phi = 1 + kappa mu``. When the pods the over-dispersion is learnt from are not the pods
compared (the stable fleet's, against a fresh baseline: ``evidence``), each look's evidence is
divided by ``phi`` at the compared pods' load, ``1 + (phi - 1) x load / learnt load`` (loads
in requests per pod per second), in load bands (``LOAD_BAND``), since the canary's load grows
step by step. The compared load is the two tracks' loads weighed as the conditional binomial
weighs their variances at the null's boundary (``compared_load``), at most the busier track's
(``evidence.SequentialGate._compared_load``). A look without a load (the reference's own pods
learnt from) is divided by ``phi`` itself.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

DISPERSION_CONFIDENCE = 0.1
"""Lower chi-square quantile the over-dispersion is divided by (a 90 % upper bound of phi)."""

RATIO_GRID: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)
"""Alternatives, as multiples of the tolerated ratio; equal prior weight each."""
LOAD_BAND = 1.25
"""Looks whose compared loads are within this factor share one ``phi`` (see ``load_band``)."""


def load_band(load: float) -> int:
    """The band of a load (requests per pod per second): bands are ``LOAD_BAND`` wide."""
    return math.floor(math.log(max(load, 1e-9)) / math.log(LOAD_BAND))


def band_load(band: int) -> float:
    """The top of a load band: its loads' ``phi`` is taken there (the larger, the safer)."""
    return LOAD_BAND ** (band + 1)


def compared_load(
    canary_requests: float,
    canary_load: float,
    reference_requests: float,
    reference_load: float,
    ratio: float = 1.0,
) -> float:
    """The load (requests per pod per second, at the reference's rate of events) whose
    ``phi`` is the compared counts' own where the canary's rate is ``ratio`` times the
    reference's: ``(1 - theta) x ratio x canary load + theta x reference load``, ``theta`` the
    canary's share of the events then (``canary_share`` of its share ``w`` of the requests).

    The test conditions on the events of both tracks, so what its log-likelihood ratios must
    be divided by is the variance of the canary's events given their sum, over the binomial's.
    With NB2 (``phi = 1 + kappa x`` a pod's expected events, so ``kappa x load`` at the
    reference's rate, ``kappa x ratio x load`` at ``ratio`` times it: a canary writing twice
    the lines in lumps writes lumps twice as large) that is ``(1 - theta) phi_canary + theta
    phi_reference``: the canary's events, a share ``theta`` of the sum, vary by ``phi_canary
    theta T``, and the reference's by ``phi_reference (1 - theta) T``, which moves the
    canary's share of the sum by ``theta`` of it; over ``T theta (1 - theta)`` that is linear
    in the two loads. The test's null is ``ratio <= 1 + tolerance``: the gate asks for the load
    at that boundary, the largest the null allows, so a canary at the boundary whose extra
    events come in lumps is judged at its own lumpiness (the bench's "boundary x2": every
    burst doubled). Where the loads differ it is not the busier track's: at a 60 % step
    against a fresh baseline (the canary's pod at 600 requests a second, the baseline's at
    200, ``w`` 0.75) it is 300 for ``ratio`` 1 and 343 for log-errors' 2, not 600 (BENCHMARKS.md,
    "What the log gate's phi over-states"); at equal loads ``L`` (the 10 % and 30 % steps) it
    is ``L`` for ``ratio`` 1 and ``4 L / 3`` for 2. A track without requests leaves the other's
    (the canary's at ``ratio`` times its load)."""
    if canary_requests <= 0 or reference_requests <= 0:
        return canary_load * ratio if canary_requests > 0 else reference_load
    theta = canary_share(ratio, canary_requests / (canary_requests + reference_requests))
    return (1.0 - theta) * ratio * canary_load + theta * reference_load


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
    chi2: float = 0.0
    """Pearson's X² of stable's pods about their pooled rate, summed over intervals."""
    dof: float = 0.0
    """Its degrees of freedom: pods minus one, summed over intervals."""
    unit_exposure: float = 0.0
    """Exposure of the learnt pods' units given a duration (``add_units``), summed."""
    unit_pod_seconds: float = 0.0
    """Those units' pods x seconds: ``unit_exposure`` over it is the learnt pods' load."""
    banded: dict[int, list[float]] = field(default_factory=dict)
    """The part of ``log_ratios`` added with a compared load, by load band (``load_band``)."""
    largest: dict[int | None, list[float]] = field(default_factory=dict)
    """Each alternative's largest log likelihood ratio of a single look (chunk), by load band
    (None: added without a load), at least 0: what ``log_evidence_beyond_largest`` leaves
    out."""

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
        load: float | None = None,
    ) -> None:
        """Counts since the previous look. Events without exposure on both sides carry no
        information about the ratio (a 100 % step: all exposure is the canary's) and are
        kept in the totals only. ``load``: see ``add_at_share``."""
        exposure = canary_exposure + stable_exposure
        share = canary_exposure / exposure if exposure > 0 else 0.0
        self.add_at_share(
            canary_events, canary_exposure, stable_events, stable_exposure, share, load
        )

    def add_at_share(
        self,
        canary_events: float,
        canary_exposure: float,
        stable_events: float,
        stable_exposure: float,
        share: float,
        load: float | None = None,
    ) -> None:
        """``add`` with the canary's share of the exposure given rather than taken from
        this look's counts: for events counted as they happen (log lines) beside exposure
        counted as last scraped, whose share over a look is off by a scrape either way.
        ``load``: the compared pods' requests per pod per second in this look, when the
        over-dispersion is learnt from other pods (its ``phi`` is then taken at this load)."""
        values = (canary_events, canary_exposure, stable_events, stable_exposure)
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"counts must be finite and non-negative: {values}")
        self.canary_events += canary_events
        self.canary_exposure += canary_exposure
        self.stable_events += stable_events
        self.stable_exposure += stable_exposure
        if canary_events + stable_events <= 0 or not 1e-12 < share < 1 - 1e-12:
            return
        null_c, null_s = _log_shares(self.null_ratio, share)
        banded, band = None, None
        if load is not None and math.isfinite(load) and load > 0:
            band = load_band(load)
            banded = self.banded.setdefault(band, [0.0] * len(self.grid))
        largest = self.largest.setdefault(band, [0.0] * len(self.grid))
        for index, multiple in enumerate(self.grid):
            alt_c, alt_s = _log_shares(self.null_ratio * multiple, share)
            ratio = canary_events * (alt_c - null_c) + stable_events * (alt_s - null_s)
            self.log_ratios[index] += ratio
            largest[index] = max(largest[index], ratio)
            if banded is not None:
                banded[index] += ratio

    def add_units(self, units: Sequence[tuple[float, float]], seconds: float | None = None) -> None:
        """Stable's pods over one interval, ``(events, exposure)`` each: their spread about the
        pooled rate is what binomial noise alone would give, times ``dispersion``.
        ``seconds``: the interval's length, which makes their load known (``learnt_load``)."""
        usable = [(e, n) for e, n in units if n > 0 and math.isfinite(e) and math.isfinite(n)]
        if len(usable) < 2:
            return
        exposure = sum(n for _, n in usable)
        rate = sum(e for e, _ in usable) / exposure
        if not 0 < rate < 1:
            return
        self.chi2 += sum((e - n * rate) ** 2 / (n * rate * (1 - rate)) for e, n in usable)
        self.dof += len(usable) - 1
        if seconds is not None and math.isfinite(seconds) and seconds > 0:
            self.unit_exposure += exposure
            self.unit_pod_seconds += seconds * len(usable)

    @property
    def learnt_load(self) -> float | None:
        """Requests per pod per second of the pods the over-dispersion was learnt from."""
        if self.unit_pod_seconds <= 0 or self.unit_exposure <= 0:
            return None
        return self.unit_exposure / self.unit_pod_seconds

    def dispersion_at(self, load: float) -> float:
        """``phi`` at a compared load (NB2: ``phi - 1`` grows with the load); ``phi`` itself
        while the learnt pods' load is unknown."""
        phi, learnt = self.dispersion, self.learnt_load
        if learnt is None:
            return phi
        return 1.0 + (phi - 1.0) * load / learnt

    @property
    def dispersion(self) -> float:
        """phi: an upper confidence bound of X² per degree of freedom (X² over the lower
        ``DISPERSION_CONFIDENCE`` quantile of chi-square), at least 1: a few pods over a few
        intervals cannot talk the test into trusting lumpy data."""
        if self.dof <= 0:
            return 1.0
        return max(1.0, self.chi2 / chi2_quantile(DISPERSION_CONFIDENCE, self.dof))

    @property
    def log_evidence(self) -> float:
        """log of the e-value: the mixture of every alternative's (quasi-)likelihood ratio,
        each look's divided by ``phi`` at its compared load (``dispersion_at``) where it has
        one, by ``phi`` itself otherwise."""
        return _logsumexp(self._totals()) - math.log(len(self.grid))

    @property
    def log_evidence_beyond_largest(self) -> float:
        """``log_evidence`` without each alternative's largest single look (chunk), as
        weighed now: what the rest of the looks show. At most ``log_evidence``, so a rule
        that fails only when this crosses too rejects less often than the e-process alone
        (``evidence.SequentialGate``: a comparing logs gate's verdict must not rest on one
        chunk, one burst of lines being one event however many lines it holds)."""
        phi = self.dispersion
        totals = []
        for index, total in enumerate(self._totals()):
            top = 0.0
            for key, largest in self.largest.items():
                divisor = phi if key is None else self.dispersion_at(band_load(key))
                top = max(top, largest[index] / divisor)
            totals.append(total - top)
        return _logsumexp(totals) - math.log(len(self.grid))

    def _totals(self) -> list[float]:
        """Each alternative's log likelihood ratio over the looks, divided by ``phi``."""
        phi = self.dispersion
        totals = []
        for index, ratio in enumerate(self.log_ratios):
            rest = ratio - sum(band[index] for band in self.banded.values())
            total = rest / phi
            for key, band in self.banded.items():
                total += band[index] / self.dispersion_at(band_load(key))
            totals.append(total)
        return totals

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


@dataclass
class AlphaBudget:
    """A release's alpha, spent only on the sequential gates the service exports.

    Which gates have series is a property of the service, not of the noisy counts, so the
    budget is split evenly among the gates with series at the release's first look where any
    gate has data, and never re-split: a gate the service did not export then gets none (it is
    not applicable for the release) and cannot raise anyone's share later. When the evidence
    carries over from window to window (one e-process per gate for the whole release) alpha is
    not split over windows; when every window is a separate process (``canaryflow analyze``
    per step) it is, ``windows`` ways.
    """

    alpha: float
    gates: tuple[str, ...]
    """Every deciding sequential gate of the plan."""
    windows: int = 1
    exported: tuple[str, ...] | None = None

    def allocate(self, exported: Sequence[str]) -> None:
        """Fix the gates that share alpha, at the first look where any has data."""
        if self.exported is None and exported:
            self.exported = tuple(g for g in self.gates if g in set(exported))

    def share(self, gate: str) -> float:
        """The gate's alpha; 0 for a gate outside the budget. Before allocation (no gate has
        data yet, so none can fail) the most conservative share: every gate counted."""
        if self.exported is None:
            return gate_alpha(self.alpha, len(self.gates), self.windows)
        if gate not in self.exported:
            return 0.0
        return gate_alpha(self.alpha, len(self.exported), self.windows)


def gate_alpha(alpha: float, gates: int, windows: int) -> float:
    """One gate's share of a release's alpha: Bonferroni over the gates (and the windows, when
    each window is a test of its own).

    Each gate's e-process is valid on its own; a release rolls back when any of them crosses,
    so the false-rollback budget alpha is split evenly among them.
    """
    return alpha / max(1, gates) / max(1, windows)


def chi2_quantile(p: float, dof: float) -> float:
    """The ``p`` quantile of chi-square with ``dof`` degrees of freedom (Wilson-Hilferty: within
    a few percent from 2 degrees of freedom on)."""
    z = -math.sqrt(2) * _erfc_inverse(2 * p)
    k = 2 / (9 * dof)
    return max(1e-9, dof * (1 - k + z * math.sqrt(k)) ** 3)


@functools.lru_cache(maxsize=16)
def _erfc_inverse(y: float) -> float:
    """x with erfc(x) = y, by bisection (erfc decreases)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        middle = (low + high) / 2
        if math.erfc(middle) > y:
            low = middle
        else:
            high = middle
    return (low + high) / 2


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
