"""Per-request evidence for a sequential gate: counters read look by look, judged by a CountTest.

Prometheus is asked for the counters themselves (every series, with its labels), and the
increments between two looks are taken here, series by series, the way ``increase()`` treats a
counter reset (a smaller value means the process restarted and counted from 0). That gives
whole numbers of events and requests with no extrapolation, which is what a test of counts
needs. A histogram's ``_bucket`` counters are cut at the bucket bounds where stable's median,
90th percentile and the gate's own quantile ``q`` fall, taken from stable's traffic *before* the
window, so the requests being tested play no part in choosing where they are cut. Each cut is a
count test (requests slower than it, canary against stable); the gate's evidence is their
average, itself an e-process, so a shift of the whole distribution (everything 30 % slower) is
seen at the median as fast as a fat tail is seen at p99: a test of stochastic order, after
Lindon, Sanden & Shirikian (KDD 2022), in counts.

The gate's answer each look: NOT APPLICABLE when neither track has the series (the service does
not export it), when only one track has it once the window is past its grace (a new version
exporting a new metric, or dropping one: nothing comparable, reported, never a rollback by
itself), or when stable served nothing in this window (a 100 % step: the comparison is
inconclusive by rule); FAIL once the
evidence crosses 1/alpha; COLLECTING until the canary has served enough requests for a pass to mean
something; PASS after.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from canaryflow.analysis.catalogue import Buckets, Counts, Evidence
from canaryflow.analysis.measurement import Judgement, Outcome
from canaryflow.analysis.sequential import CountTest
from canaryflow.analysis.source import Sample

TRACKS = ("canary", "stable")
REFERENCE_LOOKBACK_S = 600.0
"""How much of stable's history before the window sets a histogram gate's boundary."""

Looked = Mapping[str, Mapping[str, Sequence[Sample]]]
"""Samples by track, then by role (``events``/``exposure`` or ``buckets``)."""


def roles(evidence: Evidence) -> tuple[str, ...]:
    return ("events", "exposure") if isinstance(evidence, Counts) else ("buckets",)


def selector(evidence: Evidence, role: str) -> str:
    """The series selector template read for ``role``."""
    return getattr(evidence, role)


def reference_query(evidence: Buckets, stable_selector: str, window: str) -> str:
    """Stable's bucket counts over the lookback, summed by ``le``."""
    return f"sum by (le) (increase({stable_selector}[{window}]))"


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@dataclass
class CounterDeltas:
    """Counter series remembered at the previous look; ``advance`` returns each one's increase."""

    last: dict[tuple[tuple[str, str], ...], float] | None = None

    @property
    def started(self) -> bool:
        return self.last is not None

    def start(self, samples: Sequence[Sample]) -> None:
        self.last = {_key(s.labels): s.value for s in samples if math.isfinite(s.value)}

    def advance(self, samples: Sequence[Sample]) -> list[Sample]:
        """Increments since the previous look. A series first seen now counted from 0 (a
        labelled counter is born at its first event); a smaller value is a reset."""
        previous = self.last or {}
        increments = []
        current = {}
        for sample in samples:
            if not math.isfinite(sample.value):
                continue
            key = _key(sample.labels)
            current[key] = sample.value
            before = previous.get(key, 0.0)
            delta = sample.value - before if sample.value >= before else sample.value
            increments.append(Sample(sample.labels, delta))
        self.last = current
        return increments


def total(samples: Sequence[Sample]) -> float:
    return sum(s.value for s in samples)


def cumulative_by_le(samples: Sequence[Sample]) -> dict[float, float]:
    """Histogram bucket counts summed over series, by upper bound (cumulative, as exported)."""
    counts: dict[float, float] = {}
    for sample in samples:
        try:
            bound = float(sample.labels["le"])
        except (KeyError, ValueError):
            continue
        counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


def quantile_boundary(cumulative: Mapping[float, float], q: float) -> float | None:
    """The smallest finite bucket bound holding at least a share ``q`` of the requests; the
    largest finite bound when the quantile is in the overflow bucket; None without data."""
    everything = cumulative.get(math.inf, 0.0)
    finite = sorted(b for b in cumulative if math.isfinite(b))
    if everything <= 0 or not finite:
        return None
    for bound in finite:
        if cumulative[bound] >= q * everything:
            return bound
    return finite[-1]


CUT_QUANTILES: tuple[float, ...] = (0.5, 0.9)
"""Stable's quantiles a histogram gate cuts at, besides its own."""


def cut_boundaries(cumulative: Mapping[float, float], q: float) -> list[float]:
    """The distinct bucket bounds at stable's median, p90 and ``q`` (up to ``q``)."""
    quantiles = sorted({*(c for c in CUT_QUANTILES if c < q), q})
    found = (quantile_boundary(cumulative, c) for c in quantiles)
    return sorted({b for b in found if b is not None})


def slow_and_all(cumulative: Mapping[float, float], boundary: float) -> tuple[float, float]:
    """Requests above ``boundary`` and all requests, from cumulative bucket increments."""
    everything = cumulative.get(math.inf, 0.0)
    within = cumulative.get(boundary, 0.0)
    return max(0.0, everything - within), everything


@dataclass
class SequentialGate:
    """One sequential gate during one analysis window."""

    name: str
    evidence: Evidence
    tolerance: float
    alpha: float
    min_exposure: float
    deltas: dict[tuple[str, str], CounterDeltas] = field(default_factory=dict)
    tests: dict[float | None, CountTest] = field(default_factory=dict)
    """One test per cut (histograms), or one under None (counts)."""
    pending: dict[str, dict[float, float]] = field(default_factory=dict)
    grace_s: float = 0.0
    """How long into a window one track's missing series is still "collecting"."""
    incomparable: set[float | None] = field(default_factory=set)
    """Cuts dropped because the tracks' bucket layouts share no bound at or above them."""

    def __post_init__(self) -> None:
        if isinstance(self.evidence, Counts):
            self.tests[None] = CountTest(tolerance=self.tolerance)
        for track in TRACKS:
            for role in roles(self.evidence):
                self.deltas.setdefault((track, role), CounterDeltas())

    @property
    def started(self) -> bool:
        return all(d.started for d in self.deltas.values())

    @property
    def needs_reference(self) -> bool:
        return isinstance(self.evidence, Buckets) and not self.tests

    @property
    def log_evidence(self) -> float:
        """log of the mean of the cuts' e-values (a mean of e-processes is one)."""
        if not self.tests:
            return 0.0
        values = [t.log_evidence for t in self.tests.values()]
        top = max(values)
        return top + math.log(sum(math.exp(v - top) for v in values) / len(values))

    @property
    def test(self) -> CountTest:
        """The cut with the strongest evidence: the one reports show."""
        return self.tests[self.boundary]

    @property
    def boundary(self) -> float | None:
        if not self.tests:
            return None
        return max(self.tests, key=lambda cut: self.tests[cut].log_evidence)

    def _cut_at(self, cumulative: Mapping[float, float]) -> None:
        for bound in cut_boundaries(cumulative, self._q):
            self.tests[bound] = CountTest(tolerance=self.tolerance)

    @property
    def required_exposure(self) -> float:
        """Canary requests before a pass means something: the plan's minimum, and for a
        quantile q at least 1/(1-q) (a p99 gate has seen nothing in its first 99 requests)."""
        needed = max(1.0, self.min_exposure)  # a pass needs evidence, never zero requests
        if isinstance(self.evidence, Buckets):
            needed = max(needed, math.ceil(1 / (1 - self.evidence.quantile)))
        return needed

    def observe(
        self,
        now: Looked,
        baseline: Looked | None = None,
        reference: Sequence[Sample] | None = None,
        elapsed: float | None = None,
    ) -> Judgement:
        """Judge the samples of one look (``baseline``: the same series at the window start;
        ``elapsed``: seconds since the window started)."""
        series = self.evidence.series
        main = self.evidence.required if isinstance(self.evidence, Counts) else "buckets"
        present = {track: bool(now.get(track, {}).get(main)) for track in TRACKS}
        if not any(present.values()):
            return Judgement(Outcome.NOT_APPLICABLE, f"no series {series}")
        for track, other in (("canary", "stable"), ("stable", "canary")):
            if not present[track]:
                # A labelled counter is born with its first event, and reaches Prometheus a
                # scrape later: early in a window that is a young canary, not missing data.
                young = elapsed is not None and elapsed < self.grace_s
                return Judgement(
                    Outcome.COLLECTING if young else Outcome.NOT_APPLICABLE,
                    f"no {track} data: {series} has series for {other} only",
                )
        if not self.started:
            for (track, role), deltas in self.deltas.items():
                start = baseline.get(track, {}).get(role) if baseline is not None else None
                deltas.start(start if start is not None else now[track].get(role, []))
            if baseline is None:
                return Judgement(Outcome.COLLECTING, f"counting {series} from this look on")
        if self.needs_reference and reference:
            self._cut_at(cumulative_by_le(reference))
        increments = {
            (track, role): deltas.advance(now[track].get(role, []))
            for (track, role), deltas in self.deltas.items()
        }
        self._feed(increments)
        return self._judge()

    @property
    def _q(self) -> float:
        assert isinstance(self.evidence, Buckets)
        return self.evidence.quantile

    def _feed(self, increments: Mapping[tuple[str, str], list[Sample]]) -> None:
        if isinstance(self.evidence, Counts):
            self.test.add(
                total(increments[("canary", "events")]),
                total(increments[("canary", "exposure")]),
                total(increments[("stable", "events")]),
                total(increments[("stable", "exposure")]),
            )
            return
        for track in TRACKS:
            pending = self.pending.setdefault(track, {})
            for bound, count in cumulative_by_le(increments[(track, "buckets")]).items():
                pending[bound] = pending.get(bound, 0.0) + count
        if not self.tests:  # no history before the window: use stable's own, once
            stable = self.pending["stable"]
            if stable.get(math.inf, 0.0) * (1 - self._q) >= 10:
                self._cut_at(stable)
        if not self.tests:
            return
        self._comparable_cuts()
        for bound, test in self.tests.items():
            slow_c, all_c = slow_and_all(self.pending["canary"], bound)
            slow_s, all_s = slow_and_all(self.pending["stable"], bound)
            test.add(slow_c, all_c, slow_s, all_s)
        self.pending = {}

    def _comparable_cuts(self) -> None:
        """Move each cut a track's layout lacks to the next bound both layouts have: a
        missing ``le`` is never read as 0 requests within it. Cuts are chosen from the layouts
        alone, before the counts are fed, so the evidence stays an e-process."""
        layouts = [{b for b in self.pending[t] if math.isfinite(b)} for t in TRACKS]
        if not all(self.pending[t].get(math.inf, 0.0) > 0 for t in TRACKS):
            return  # a track without requests in this look has no layout to compare
        common = sorted(layouts[0] & layouts[1])
        moved: dict[float | None, CountTest] = {}
        for bound, test in self.tests.items():
            if bound in common:
                moved.setdefault(bound, test)
                continue
            later = [b for b in common if b is not None and bound is not None and b >= bound]
            if later:
                moved.setdefault(later[0], test)
            else:
                self.incomparable.add(bound)
        self.tests = moved

    def _judge(self) -> Judgement:
        if not self.tests and self.incomparable:
            cuts = ", ".join(f"{b:g}" for b in sorted(b for b in self.incomparable if b))
            return Judgement(
                Outcome.NOT_APPLICABLE,
                f"{self.name}: the tracks' histograms share no bucket bound at or above "
                f"stable's cuts ({cuts}): nothing comparable",
            )
        if not self.tests:
            served = {t: self.pending.get(t, {}).get(math.inf, 0.0) for t in TRACKS}
            if served["canary"] > 0 and served["stable"] <= 0:
                return Judgement(Outcome.NOT_APPLICABLE, self._no_stable_traffic())
            return Judgement(
                Outcome.COLLECTING,
                f"{self.name}: waiting for stable's p{self._q * 100:g} from its histogram",
            )
        test = self.test
        evidence = self.log_evidence
        detail = {
            "canary_events": test.canary_events,
            "canary_exposure": test.canary_exposure,
            "stable_events": test.stable_events,
            "stable_exposure": test.stable_exposure,
            "log_evidence": round(evidence, 3),
            "log_threshold": round(math.log(1 / self.alpha), 3),
        }
        if self.boundary is not None:
            detail["boundary"] = self.boundary
            detail["cuts"] = ", ".join(f"{b:g}" for b in self.tests)
        numbers = {"canary": _rate(test.canary_events, test.canary_exposure)}
        numbers["stable"] = _rate(test.stable_events, test.stable_exposure)
        shown = f"{self.name}: canary {self._counts('canary')} vs stable {self._counts('stable')}"
        if evidence >= math.log(1 / self.alpha):
            return Judgement(
                Outcome.FAIL,
                f"{shown}: canary credibly worse than stable "
                f"+{self.tolerance:.0%} (evidence {math.exp(evidence):.3g} "
                f"≥ {1 / self.alpha:.3g})",
                detail=detail,
                **numbers,
            )
        if test.stable_exposure <= 0 and test.canary_exposure > 0:
            return Judgement(Outcome.NOT_APPLICABLE, self._no_stable_traffic(), detail=detail)
        if test.canary_exposure < self.required_exposure:
            return Judgement(
                Outcome.COLLECTING,
                f"{shown}: collecting, {test.canary_exposure:.0f} of "
                f"{self.required_exposure:.0f} canary requests",
                detail=detail,
                **numbers,
            )
        return Judgement(
            Outcome.PASS,
            f"{shown}: no credible regression (evidence {math.exp(evidence):.3g} "
            f"< {1 / self.alpha:.3g})",
            detail=detail,
            **numbers,
        )

    def _no_stable_traffic(self) -> str:
        return (
            f"{self.name}: stable served nothing in this window (a 100 % step?): "
            "the comparison is inconclusive by rule"
        )

    def _counts(self, track: str) -> str:
        events = getattr(self.test, f"{track}_events")
        exposure = getattr(self.test, f"{track}_exposure")
        if isinstance(self.evidence, Buckets):
            return f"{events:.0f} of {exposure:.0f} above {self.boundary:g}"
        return f"{events:.0f} of {exposure:.0f}"


def _rate(events: float, exposure: float) -> float | None:
    return events / exposure if exposure > 0 else None
