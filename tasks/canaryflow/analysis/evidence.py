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

Scraped counters are not aligned: Prometheus scrapes every pod at its own offset. So each look
evaluates every pod's counters at one common instant, ``lag`` (one scrape interval,
discovered from the data, and a margin for storing it) before the look, by interpolation
between the samples around it, summed by pod in PromQL (see ``alignment``). Increments between
two such instants are aligned for both tracks and all pods.

Stable's pods are kept apart: their spread about the pooled rate, in the same intervals and in
``HISTORY_S`` of stable's history before the release, is the over-dispersion the test scales
its evidence by (see ``sequential``): lumpy pods then do not read as a regression.

Against a fresh baseline (``fleet``) the reference is one or a few pods born with the canary:
no history, often no second pod, so nothing to learn the spread from. Over-dispersion is a
property of the service's version and pods, not of which of them are compared, so it is then
learnt from the stable fleet (``query.FLEET``: every pod neither canary nor baseline), its
history and its pods during the release, while the comparison stays canary against baseline.
A unit in which fewer than two fleet pods served requests falls back to the reference's own
pods (a fleet of one pod, or none: what the judge did before). A large fleet is read through
a bounded sample of its pods (``fleet_sample``; ``read_fleet`` says when it changes).

The gate's answer each look: NOT APPLICABLE when neither track has the series (the service does
not export it), when only one track has it once the window is past its grace (a new version
exporting a new metric, or dropping one: nothing comparable, reported, never a rollback by
itself), or when stable served nothing in this window (a 100 % step: the comparison is
inconclusive by rule); FAIL once the
evidence crosses 1/alpha; COLLECTING until the canary has served enough requests for a pass to mean
something; PASS after.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from canaryflow.analysis.alignment import (
    SCRAPE_PROBES_S,
    AlignedCounters,
    Key,
    Marker,
    Read,
    at_bounds,
    history_query,
    history_steps,
    interpolate,
    lost_query,
    pod_name,
    scrape_interval,
    scrape_query,
    stamp_query,
    stamp_selector,
    unit_of,
    value_query,
)
from canaryflow.analysis.catalogue import Buckets, Counts, Evidence
from canaryflow.analysis.fleet_sample import FLEET_SAMPLE_PODS, held_pods
from canaryflow.analysis.log_counts import LogCounts
from canaryflow.analysis.measurement import Judgement, Outcome
from canaryflow.analysis.query import FLEET
from canaryflow.analysis.sequential import CountTest, compared_load
from canaryflow.analysis.source import Sample, Series

TRACKS = ("canary", "stable")
"""The compared tracks: the canary and its reference (stable, or a fresh baseline)."""
REFERENCE_LOOKBACK_S = 600.0
"""How much of stable's history before the window sets a histogram gate's boundary."""

Looked = Mapping[str, Mapping[str, Sequence[Sample]]]
"""Samples by track, then by role (``events``/``exposure`` or ``buckets``)."""

LAG_SCRAPES = 1.0
"""Scrape intervals behind the look the common instant is, before ``INGESTION_MARGIN_S``:
every series is scraped at most one interval after the instant, so its sample after it exists
once that scrape is stored."""
INGESTION_MARGIN_S = 3.0
"""Seconds more (at most one scrape) for that scrape to be stored: its own duration (usually
well under a second), the append, and clock skew between the judge and Prometheus. A series
whose sample after the instant is still missing keeps its value before it this look (its
increase moves to the next look; nothing is lost or counted twice). Two whole scrapes before
this margin cost a 15 s scrape 12 s more of every detection, for no series found missing in
the replay or the Prometheus tests."""
NEW_SERIES_SCRAPES = 2.0
"""Scrapes after a window's start by which a new pod's series are in Prometheus: its first
sample is at most a scrape after its first request, and another covers service discovery
finding the pod. Until a look reads that far, no series is not "not exported"."""
DEFAULT_SCRAPE_S = 15.0
"""Assumed until the samples show the scrape interval (the chart's PodMonitor default)."""
HISTORY_S = 600.0
"""Stable's history before the release read once, for its pods' over-dispersion."""
UNIT_SCRAPES = 1.0
"""Scrapes per unit of stable's pods for the over-dispersion.

One scrape, about a look: the evidence is checked at every look, so a lump must be weighed
against the spread of counts over a look, not over a minute. Longer units average a
quasi-periodic lump out (a pod stalling every 30 s is lumpy per 15 s, hardly per minute) and
gain a great deal of power, but a stall the canary has and the reference has not yet had
then reads as evidence. Measured (offline replay, the noisy fleet against a fresh baseline,
200 releases each; stalls every 30 s): units of 1, 2 and 4 scrapes caught a canary with three
times the 5xx in 23, 189 and 195 of 200 and rolled back 1, 1 and 0 identical ones (stalls
every 37 s: 2 and 4 scrapes caught 125 and 162, none rolled back); but in
``tests/test_evidence_robustness.py``'s harder A/A (alpha 5 %, the canary at 20 %, 200
releases) 2 and 4 scrapes left the false-rollback rate's upper bound at 6.5 % and 5.8 %, above
alpha, where one scrape holds it. ``DISPERSION_CONFIDENCE`` is not what holds the rate: its
point estimate (0.5) caught 24 of 200 and rolled back 2. The gain was the period's, not the
units': with each pod's stalls at random times (a Poisson process of the same mean rate, the
replay's ``random-stalls`` fleet), 2 scrapes caught 6 of 100 and 1 scrape 7 of 100 (a unit of
one stall period no longer always holds exactly one stall)."""


DISPERSION_DOF = 3.0
"""Degrees of freedom of the over-dispersion before a comparing logs gate may fail, where its
reference's pods can give them (``SequentialGate.awaits_dispersion``).

``phi`` is X² over the lower ``DISPERSION_CONFIDENCE`` quantile of chi-square with ``dof``,
at least 1: on 0 degrees of freedom it is 1, and on 1 (two pods' scrapes in one unit) X² is
often about 0, so its upper bound is 1 too. A first look on a slow scrape holds one or two of
stable's pods' scrapes, and a canary stall's burst of lines in it then reads as independent
lines: on the replay's 30 s-scrape fleet 3 of 300 canaries at the gate's boundary (lines x2)
were failed at the release's first look, 20 s in, with phi 1 (BENCHMARKS.md, "Offline
replay: what unmodelled noise broke"). Three is a whole unit of four pods, or three units of
two. Waiting for it (branch log-edge, a patch of ``dof < 3``) took those three away and cost
no log x3 catch there; it is bounded by ``DISPERSION_WAIT_UNITS``. Stopping later keeps the
test at level alpha (the evidence is an e-process at any stopping time): the price is catch
time only."""
LONE_CHUNK_UNITS = 6
"""Units of stable's pods (``unit_span_s``, a scrape each) during which a comparing logs gate does
not fail on one chunk of lines: its evidence must cross without its largest chunk too
(``SequentialGate.evidence_beyond_largest``).

A line is not an event: a stall's or a pool's redial burst is one event of tens to hundreds of
lines on one pod. The quasi-Poisson phi learnt from a few units holds that variance only if a
unit happened to hold such a lump (and where lumps come once a scrape at a fixed phase, only for
chunks a scrape long, while a pod's first chunk, from its start to its first scrape, holds its
lump or not). One chunk with a lump on the canary's pod and none yet on the reference's then
crossed on its own: the replay's 30 s scrape at the null's boundary (lines x2) rolled back 8 of
300, 5 at 60 s (3 traced: on their first chunk, once a second unit brought phi down), and the
red team's large log bursts (100-200 lines about every 2 min a pod) 5 of 1000 identical
canaries, all in the first 70 s. Six units (90 s on a 15 s scrape, 180 s on a 30 s one): 4 of
300 and 0 of 1000, with log x3 caught 24 of 30 against stable, 7, 6 and 49 of 100 (noisy, stalls
at random, 30 s scrape) where the gate without the rule caught 24, 7, 7 and 49. For the whole
release it took those catches to 19, 1, 1 and 28 (a lumpy canary's regression is its lumps), and
for chunks weighed below 18 degrees of freedom, kept out of the evidence for good, to 21, 2, 1
and 34 (BENCHMARKS.md, "One chunk does not decide")."""
DISPERSION_WAIT_UNITS = 2
"""Units of stable's pods a comparing logs gate waits at most for ``DISPERSION_DOF`` before it
fails on the degrees of freedom it has: the release's first unit and one more, whatever the
first unit's degrees of freedom (one unit's pods share its seconds, ``awaits_dispersion``:
where the reference has two pods or more, this bound is the whole wait). A unit lasts
``unit_span_s``, a scrape interval (learnt from the gate's request counters' samples at its
first look, ``scrape_reads``; 15 s until it is known) and at least a look, so each pod of the
reference is scraped about once in each: four pods give the 3 degrees of freedom in the first
unit (the replay's 30 s-scrape fleet: at 30 s), and the second makes up a scrape missed or
landing just outside the first. Four units were allowed while units were 20 s on a 30 s
scrape, two or three of the four pods' scrapes each (log-dof); with scrape-long units the
third and fourth bought nothing measured: on the replay's seeds 2 units rolled back as
many boundary canaries (lines x2), caught as many logs x3 at the same looks and rolled back
as many identical canaries as 4, and failed a canary whose stable logs nothing 30 to 60 s
sooner (BENCHMARKS.md, "The log gate's wait bound"). Two pods give 3 degrees of freedom only
in three units: there the gate fails after two on the 2 it has. A bound, not a wait for the
degrees of freedom: a reference whose pods never line up in a unit, whose stable logs nothing
(lines at rate 0 give no degrees of freedom), or whose one pod restarted under another name
(two pods read, never two at once) cannot keep a canary that is clearly worse from failing; it
fails after this many units, as before, on the phi it has."""


def pod_of(labels: Mapping[str, str]) -> str:
    """The unit a series belongs to: its pod, else its scrape target."""
    return pod_name(labels)


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
        labelled counter is born at its first event); a smaller value is a reset. A series
        missing from this look (a failed scrape: stale) keeps its last value, so that it is
        not "first seen" again, its whole count new, when it returns."""
        previous = self.last or {}
        increments = []
        current = dict(previous)
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
        bound = _bound(sample.labels.get("le"))
        if bound is None:
            continue
        counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


@functools.lru_cache(maxsize=1024)
def _bound(le: str | None) -> float | None:
    """An ``le`` label's bound (None: absent or not a number). A layout has a dozen bounds,
    read for every pod of every look: parsed once each."""
    if le is None:
        return None
    try:
        return float(le)
    except ValueError:
        return None


def _bounds_read(keys: Iterable[Key]) -> frozenset[float]:
    """The bucket bounds (``le``) a look's series keys read."""
    return frozenset(b for key in keys if (b := _bound(dict(key).get("le"))) is not None)


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


def shown_e_value(log_evidence: float) -> str:
    """An e-value for a judgement's text, from its log: ``e^N`` past what a float holds (a
    canary's lines can pile up evidence far beyond e^709 while its gate waits for the
    over-dispersion's degrees of freedom, and ``math.exp`` would raise instead of judging)."""
    if log_evidence > 700:
        return f"e^{log_evidence:.0f}"
    return f"{math.exp(log_evidence):.3g}"


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
    pending_units: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)
    """The reference's and the fleet's increments, by track then role, since the current
    dispersion unit began."""
    fleet: bool = False
    """The over-dispersion is learnt from the stable fleet's pods (``query.FLEET``), not the
    reference's: a fresh baseline is compared (see the module's docstring)."""
    window_seconds: float = 0.0
    """Seconds of looks fed in the current window (the compared pods' load, with ``fleet``)."""
    window_served: dict[str, dict[str, float]] = field(default_factory=dict)
    """Requests each compared pod served in the current window, by track then pod."""
    looked_at: float | None = None
    """The previous look's time, for a gate whose lines are counted at the look."""
    unit_since: float | None = None
    grace_s: float = 0.0
    """How long into a window one track's missing series is still "collecting"."""
    unit_s: float = 10.0
    """The length of the intervals stable's history is cut into for its over-dispersion."""
    aligned_at: float | None = None
    """The common instant counters were last read at (aligned reading)."""
    scrape_s: float | None = None
    """The scrape interval, once the data showed it."""
    history_read: bool = False
    counters: dict[tuple[str, str], AlignedCounters] = field(default_factory=dict)
    planned_at: float | None = None
    """The instant the pending look's queries read the counters at."""
    incomparable: set[float | None] = field(default_factory=set)
    """Cuts dropped because the tracks' bucket layouts share no bound at or above them."""
    start_span: float = DEFAULT_SCRAPE_S
    """The span the pending look's start values are interpolated over."""
    window_exposure: float = 0.0
    """Canary requests fed to the tests in the current window (its own positive evidence)."""
    window_reference: float = 0.0
    """The reference track's requests in the current window (none at a 100 % step)."""
    window_looks: int = 0
    """Looks whose increments were fed in the current window."""
    window_counted_s: float = 0.0
    """Seconds those looks spanned, where known (what ``_idle`` says a window counted)."""
    counted_at_look: bool = False
    """The events are counted at the look (a comparing logs gate's matching lines), not
    scraped: see ``_add_dispersion`` and ``awaits_dispersion``."""
    aligned_tracks: frozenset[str] = frozenset()
    """With ``counted_at_look``: the tracks whose lines were counted up to their pods' own
    last scrapes at this look (``log_counts.LogCounts``): their lines and requests span the
    same seconds, pod by pod, so they are judged as scraped counters are."""
    held_lines: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """Aligned lines: the looks' (canary lines, canary requests, reference lines, reference
    requests) not yet weighed, until both tracks have requests (``_add_lines``)."""
    lines: LogCounts | None = None
    """A comparing logs gate's matching lines by track and pod, as the run counts them
    (``log_counts``: each pod's up to its last scrape); None until its first look. Kept with
    the gate so that a window's pod carries it to the next (``carried``) as one process does."""
    units_seen: int = 0
    """Units of stable's pods added to the over-dispersion in this process (carried between
    a comparing logs gate's windows): how long ``awaits_dispersion`` has waited."""
    served: dict[str, float] = field(default_factory=dict)
    """Requests each stable pod served in ``HISTORY_S`` before the window and since, as far
    as this process has read them (``counted_at_look``)."""
    shares_read: bool = False
    """Whether stable's pods' requests before the window were read into ``served``."""
    le_texts: dict[float, set[str]] = field(default_factory=dict)
    """How the compared tracks' ``le`` labels spell each bucket bound: what the fleet's
    buckets are selected by once the cuts are set (``fleet_les``)."""
    fleet_bounds: frozenset[float] | None = None
    """The bucket bounds the fleet's answers held in every look of the current unit (None:
    no look narrowed them): a unit whose fleet lacks a cut is learnt from the reference's
    pods instead (``_unit_pods``)."""
    fleet_read: frozenset[float] | None = None
    """The bucket bounds of the fleet's last read, as its counters hold them."""
    markers: dict[str, Marker] = field(default_factory=dict)
    """By track: the events read inside the exposure's read this look (``Marker``)."""
    history_kept: dict[str, list] = field(default_factory=dict)
    """The history's answers, by read key, kept from a look that could not use them yet (a
    track without series so far): the same reads of the same minutes before the release,
    not asked again every look (a large fleet's ten minutes, by pod and bucket)."""
    history_step: float | None = None
    """The step ``history_kept`` was read at (read again where ``unit_span_s`` changed)."""
    reference_cuts: bool | None = None
    """Whether this look's reference (stable's buckets before the window, asked before the
    look is planned) sets cuts; None: not known. A histogram gate's history is only of use
    with cuts to apply it to (``_read_history``): without them it is not read at all."""
    fleet_pods: frozenset[str] | None = None
    """The fleet's pods its reads select (``fleet_sample``; None: every pod, no matcher)."""
    fleet_joining: set[str] = field(default_factory=set)
    """Pods the fleet's reads took in when the sample changed, not yet read since: each
    starts at its value at the first look that reads it (``read_fleet``)."""
    reference_pods: int = 0
    """Pods the reference's last look answered for (its scrape times: one series per pod):
    where it is the stable fleet itself and more than ``FLEET_SAMPLE_PODS`` of them, its
    buckets are read at the cuts only (``reference_les``)."""
    canary_bounds: frozenset[float] | None = None
    """The bucket bounds the canary's last look answered with (its layout)."""
    reference_read: frozenset[float] | None = None
    """The bucket bounds of the reference's last read, as its counters hold them."""

    def __post_init__(self) -> None:
        if isinstance(self.evidence, Counts):
            self.tests[None] = CountTest(tolerance=self.tolerance)
        for track in self.tracks:
            for role in roles(self.evidence):
                self.deltas.setdefault((track, role), CounterDeltas())

    @property
    def tracks(self) -> tuple[str, ...]:
        """The tracks read: the compared two, and the fleet where it is apart from them."""
        return (*TRACKS, FLEET) if self.fleet else TRACKS

    @property
    def dispersion_track(self) -> str:
        """Whose pods' history and units the over-dispersion is learnt from first."""
        return FLEET if self.fleet else "stable"

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

    def new_window(self) -> None:
        """A new window of the same release: the tests go on, but this window's step must
        show evidence of its own (``required_exposure`` canary requests at its weight)."""
        self.window_exposure = self.window_reference = self.window_seconds = 0.0
        self.window_looks, self.window_counted_s = 0, 0.0
        self.window_served = {}

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
        at: float | None = None,
    ) -> Judgement:
        """Judge counters already read at one instant each (``baseline``: the same series at
        the window start; ``elapsed``: seconds since the window started). ``AnalysisRun``
        reads raw samples instead (``observe_series``) except for a comparing logs gate, whose
        lines are counted at the look; this reading of the latest values is also what the
        robustness tests compare the aligned one with.

        ``at``: the look's time. Given, stable's pods are gathered into units of
        ``unit_span_s`` for the over-dispersion, as the aligned reading does (a scraped
        counter moves once a scrape: a unit of one look would often see a pod's lines but
        none of its requests); without it, every look is a unit."""
        missing = self._missing(now, elapsed)
        if missing is not None:
            return missing
        if not self.started:
            for (track, role), deltas in self.deltas.items():
                start = baseline.get(track, {}).get(role) if baseline is not None else None
                deltas.start(start if start is not None else now.get(track, {}).get(role, []))
            if baseline is None:
                return Judgement(
                    Outcome.COLLECTING, f"counting {self.evidence.series} from this look on"
                )
        if self.needs_reference and reference:
            self._cut_at(cumulative_by_le(reference))
        increments = {
            (track, role): deltas.advance(now.get(track, {}).get(role, []))
            for (track, role), deltas in self.deltas.items()
        }
        unit_done, unit_s, look_s = True, None, None
        if at is not None:
            if self.unit_since is None:
                self.unit_since = at - (elapsed or 0.0)
            unit_s = at - self.unit_since
            unit_done = unit_s >= self.unit_span_s
            if unit_done:
                self.unit_since = at
            previous = self.looked_at if self.looked_at is not None else at - (elapsed or 0.0)
            look_s, self.looked_at = at - previous, at
        self._feed(increments, unit_done, look_s, unit_s)
        return self._judge()

    def _missing(self, now: Mapping[str, Mapping[str, Sequence]], elapsed: float | None):
        """NOT APPLICABLE / COLLECTING / INCONCLUSIVE when a track lacks the gate's series."""
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
        return None

    # Aligned reading: every pod's counters at one common instant ------------------------------

    def start_at(self, instant: float) -> None:
        """Count from ``instant`` on (the release's first window start); later calls keep the
        evidence and the instant already reached, so the test runs on across windows."""
        if self.aligned_at is None:
            self.aligned_at = instant

    @property
    def series_due_s(self) -> float:
        """How far past the window's start a look's common instant must be before a gate
        without series is taken as one the service does not export (``NEW_SERIES_SCRAPES``)."""
        return NEW_SERIES_SCRAPES * (self.scrape_s or DEFAULT_SCRAPE_S)

    @property
    def lag_s(self) -> float:
        """How far behind the look its common instant is: a scrape, and a margin for it to
        be stored (``INGESTION_MARGIN_S``, at most another scrape)."""
        scrape = self.scrape_s or DEFAULT_SCRAPE_S
        return LAG_SCRAPES * scrape + min(scrape, INGESTION_MARGIN_S)

    def plan(self, selectors: Mapping[tuple[str, str], str], now: float) -> dict[str, Read]:
        """The queries of one look at ``now``, by key: each track's and role's pods at the
        common instant (and at the start, on the first look), stable's history and the scrape
        interval once. ``selectors``: the rendered series selector by (track, role)."""
        self.start_at(now)
        assert self.aligned_at is not None
        scrape = self.scrape_s or DEFAULT_SCRAPE_S
        instant = self.planned_at = now - self.lag_s
        instants = {"now": instant}
        if not self.counters_started:
            instants["start"] = self.aligned_at
            self.start_span = scrape
        by_le = isinstance(self.evidence, Buckets)
        reads: dict[str, Read] = {}
        main = self.main_role
        narrowed = {FLEET: self.fleet_les(), "stable": self.reference_les()}
        self.markers = self._markers(selectors)
        for (track, role), series in selectors.items():
            apart = not (role == "events" and track in self.markers)  # else in the exposure's
            marker = self.markers.get(track) if role == "exposure" else None
            les = narrowed.get(track)
            summed = at_bounds(series, les) if les else series
            for name, at in instants.items() if apart else ():
                prefix = f"{track}/{role}/{name}"
                value = value_query(summed, by_le, marker)
                reads[f"{prefix}/v0"] = Read(value, at, selector=summed)
                reads[f"{prefix}/v1"] = Read(value, at + scrape, selector=summed)
                if role == main:  # a pod's series are scraped at once: one role's times
                    stamped = stamp_selector(series, by_le)
                    stamp = stamp_query(stamped)
                    reads[f"{prefix}/t0"] = Read(stamp, at, selector=stamped)
                    reads[f"{prefix}/t1"] = Read(stamp, at + scrape, selector=stamped)
                if name == "now" and instant > self.aligned_at:
                    # What restarted or gone series took from the sums since the last instant.
                    lost = lost_query(series, by_le, instant - self.aligned_at, marker)
                    counted = stamp_selector(series, by_le)
                    reads[f"{prefix}/r0"] = Read(lost, instant, selector=counted)
            kept = self.history_step == self.unit_span_s and f"{track}/{role}/history" in (
                self.history_kept
            )
            useless = self.needs_reference and self.reference_cuts is False
            if track == self.dispersion_track and not self.history_read and not (kept or useless):
                query = history_query(series, by_le, HISTORY_S, self.unit_span_s)
                reads[f"{track}/{role}/history"] = Read(query, self.aligned_at, series=True)
        reads.update(self.scrape_reads(selectors, now))
        return reads

    def scrape_reads(self, selectors: Mapping[tuple[str, str], str], now: float) -> dict[str, Read]:
        """The probes of the scrape interval at ``now`` while the gate does not know it (none
        after): the samples its main role's series (``selectors`` by track and role, as
        ``plan`` takes them) have over ``SCRAPE_PROBES_S``; ``learn_scrape_interval`` reads
        the answers. A comparing logs gate asks them of its request counters, the same series
        as a count gate's exposure (``AnalysisRun._exposure_calls``): its lines are counted
        at the look, but its units of stable's pods are cut by the scrapes of those counters
        (``unit_span_s``)."""
        reads: dict[str, Read] = {}
        if self.scrape_s is not None:
            return reads
        main = self.main_role
        # The fleet's pods first: they are old, the reference may be a fresh baseline as
        # young as the window, whose samples are too few for the longer probes.
        for track, prefix in ((FLEET, "scrape-fleet"), ("stable", "scrape")):
            if (track, main) not in selectors or (track == FLEET and not self.fleet):
                continue
            for seconds in SCRAPE_PROBES_S:
                probed = selectors[(track, main)]
                reads[f"{prefix}/{seconds:g}"] = Read(
                    scrape_query(probed, seconds), now, False, probed
                )
        return reads

    def learn_scrape_interval(self, answers: Mapping[str, object], elapsed: float | None) -> None:
        """Take the scrape interval from the answers to ``scrape_reads``, once they tell it
        (``_scrape_interval``); kept from then on, and carried to the next window."""
        if self.scrape_s is None:
            self.scrape_s = self._scrape_interval(answers, elapsed)

    @property
    def main_role(self) -> str:
        """The role whose series a pod of the gate always has (its scrape times are read)."""
        return self.evidence.required if isinstance(self.evidence, Counts) else "buckets"

    def _markers(self, selectors: Mapping[tuple[str, str], str]) -> dict[str, Marker]:
        """The tracks whose events are the exposure's series narrowed by one matcher: read
        inside the exposure's reads (``Marker``), not apart. Only where the exposure is the
        series that must exist (a service that never failed has no events series)."""
        if not isinstance(self.evidence, Counts) or self.evidence.required != "exposure":
            return {}
        found = {}
        for track in self.tracks:
            events, exposure = selectors.get((track, "events")), selectors.get((track, "exposure"))
            if events is not None and exposure is not None:
                marker = Marker.of(events, exposure)
                if marker is not None:
                    found[track] = marker
        return found

    def _unmarked(self, answers: Mapping[str, object]) -> Mapping[str, object]:
        """``answers`` with each marked read split into its events' and exposure's answers,
        under the keys they have when read apart."""
        if not self.markers:
            return answers
        split = dict(answers)
        for track in self.markers:
            for name in ("now", "start"):
                for part in ("v0", "v1", "r0"):
                    found = answers.get(f"{track}/exposure/{name}/{part}")
                    if isinstance(found, list):
                        events, exposure = Marker.split(found)
                        split[f"{track}/events/{name}/{part}"] = events
                        split[f"{track}/exposure/{name}/{part}"] = exposure
        return split

    def fleet_les(self) -> list[str] | None:
        """The ``le`` spellings the fleet's buckets are read at: its pods only teach the
        over-dispersion of requests above each cut (``_add_dispersion``: the cut's bucket and
        ``+Inf``), so once the cuts are set the other buckets are not read. Every bucket
        before (None), and where the compared tracks have not shown how a cut is spelt."""
        if not (self.fleet and isinstance(self.evidence, Buckets) and self.tests):
            return None
        return self._les_at_cuts()

    def reference_les(self) -> list[str] | None:
        """The ``le`` spellings the reference's buckets are read at where it is the stable
        fleet itself (``baseline: stable``) and a large one: the test only ever uses the
        reference's requests above each cut and in all (``slow_and_all``: the cut's bucket
        and ``+Inf``, summed over pods and per pod for the over-dispersion), so once the cuts
        are set the other buckets, most of a layout and most of a round's reads of a fleet
        of hundreds of pods, are not read. Every bucket (None) before the cuts, on a fleet of
        at most ``FLEET_SAMPLE_PODS`` pods (read exactly as before), and while the canary's
        last answer lacks a cut or a cut's spelling is not known: a cut moves only to a bound
        both tracks have (``_comparable_cuts``), and with the reference narrowed that is
        another cut, read all along, never a bucket left unread."""
        if self.fleet or not isinstance(self.evidence, Buckets) or not self.tests:
            return None
        if self.reference_pods <= FLEET_SAMPLE_PODS or self.canary_bounds is None:
            return None
        if not {b for b in self.tests if b is not None} <= self.canary_bounds:
            return None
        return self._les_at_cuts()

    def _les_at_cuts(self) -> list[str] | None:
        """The ``le`` spellings of each cut's bucket and ``+Inf``; None while a cut's spelling
        is not known (every bucket is read then)."""
        les: list[str] = []
        for bound in (*self.tests, math.inf):
            texts = self.le_texts.get(bound) if bound is not None else None
            if not texts:
                return None
            les.extend(texts)
        return les

    def _learn_reference(self, answers: Mapping[str, object]) -> None:
        """What ``reference_les`` decides by: how many pods the reference answered for, and
        the canary's layout."""
        if self.fleet or not isinstance(self.evidence, Buckets):
            return
        stamps = answers.get("stable/buckets/now/t1")
        if isinstance(stamps, list):
            self.reference_pods = len({unit_of(s.labels) for s in stamps})
        canary = answers.get("canary/buckets/now/v1")
        if isinstance(canary, list) and canary:
            self.canary_bounds = frozenset(
                b for s in canary if (b := _bound(s.labels.get("le"))) is not None
            )

    def _widened_reference(self, counters: AlignedCounters, values: Mapping[Key, float]) -> None:
        """A look that reads reference buckets the previous one did not (after reads narrowed
        to the cuts): those buckets start at their value now, adding nothing this look, rather
        than count every request since they were last read (or since their pod started). Never
        a cut's or ``+Inf``'s: they are read throughout; the others are not used by the tests,
        only seen by ``_comparable_cuts`` as a layout."""
        read = _bounds_read(values)
        before = self.reference_read
        if before is None and counters.last:
            before = _bounds_read(counters.last)
        self.reference_read = read
        if before is None or read <= before or counters.last is None:
            return
        for key, value in values.items():
            if _bound(dict(key).get("le")) not in before:
                counters.last[key] = value

    def _learn_les(self, latest: Mapping[str, Mapping[str, Sequence[Sample]]]) -> None:
        """Remember how the compared tracks spell their bounds (a few pods' buckets)."""
        if not isinstance(self.evidence, Buckets):
            return
        for track in TRACKS:
            for sample in latest.get(track, {}).get("buckets", []):
                le = sample.labels.get("le")
                bound = _bound(le)
                if le is not None and bound is not None:
                    self.le_texts.setdefault(bound, set()).add(le)

    def _advance_fleet_buckets(
        self, counters: AlignedCounters, values: Mapping[Key, float], skip: set
    ) -> list[Sample]:
        """The fleet's bucket increments, where its reads may be narrowed to the cuts: a
        look that reads a bound the previous one did not (a cut moved, or the first look
        after a resumed window) starts the fleet's counters again rather than count that
        bucket from 0, and its unit is learnt from the reference's pods."""
        read = _bounds_read(values)
        before = self.fleet_read
        if before is None and counters.last:
            before = _bounds_read(counters.last)
        self.fleet_read = read
        if before is not None and not read <= before:
            counters.start(values)
            self.fleet_bounds = frozenset()
            return []
        self.fleet_bounds = read if self.fleet_bounds is None else self.fleet_bounds & read
        increments = counters.advance(values, {}, skip)
        if counters.last is not None and before is not None and read < before:
            # The buckets no longer read are forgotten, not kept as a stale series' last
            # value is (``AlignedCounters.advance``): read again later, they start afresh.
            counters.last = {
                key: value
                for key, value in counters.last.items()
                if _bound(dict(key).get("le")) in read
            }
        return increments

    def read_fleet(self, sample: frozenset[str] | None, present: frozenset[str]) -> None:
        """The fleet's reads select ``sample`` from now on (None: every pod; ``present``: the
        pods the last discovery found). Where that changes what is read, a pod no longer read
        has its counters forgotten (read again later, it joins afresh), and a pod newly read
        that the counters do not hold starts at its value at the first look that reads it, its
        requests before then left out, as ``log_counts`` does for a pod that joins: counted
        from 0, its whole life would be one unit's requests. A fleet read whole throughout
        (no sample) is read exactly as before."""
        if sample == self.fleet_pods or not self.fleet:
            return
        reading = sample if sample is not None else present
        for role in roles(self.evidence):
            counters = self.counters.get((FLEET, role))
            if counters is None or counters.last is None:
                continue
            self.fleet_joining |= reading - held_pods(counters.last)
            if sample is not None:
                counters.last = {
                    key: value
                    for key, value in counters.last.items()
                    if pod_name(dict(key)) in sample
                }
        self.fleet_pods = sample

    @property
    def counters_started(self) -> bool:
        return bool(self.counters) and all(c.started for c in self.counters.values())

    def exported(self, answers: Mapping[str, object]) -> bool:
        """Whether either track has the gate's series in a look's answers."""
        return any(
            isinstance(answers.get(f"{track}/{self.main_role}/now/v1"), list)
            and bool(answers.get(f"{track}/{self.main_role}/now/v1"))
            for track in TRACKS
        )

    def observe_reads(
        self,
        answers: Mapping[str, object],
        now: float,
        reference: Sequence[Sample] | None = None,
        elapsed: float | None = None,
    ) -> Judgement:
        """Judge one look from the answers to ``plan``'s queries: every pod's increments from
        the previous common instant to this look's."""
        answers = self._unmarked(answers)
        if not self.history_read:
            answers = self._keep_history(answers)
        latest = {
            track: {
                role: answers.get(f"{track}/{role}/now/v1") or [] for role in roles(self.evidence)
            }
            for track in TRACKS
        }
        self.learn_scrape_interval(answers, elapsed)
        # Read ``lag`` behind: a canary is young for that much longer.
        young = None if elapsed is None else elapsed - self.lag_s
        missing = self._missing(latest, young)
        if missing is not None:
            return missing
        self._learn_les(latest)
        self._learn_reference(answers)
        if self.needs_reference and reference:
            self._cut_at(cumulative_by_le(reference))
        if not self.history_read:
            self._read_history(answers)
        assert self.aligned_at is not None and self.planned_at is not None
        # The counters' first values must be interpolated between samples one scrape apart,
        # as every later look's are: across a wider span (the default, before the scrape was
        # known) they may lie above a later value of a counter that rose in a burst, which
        # reads as a restart and counts the whole counter as new events. Then they are read
        # again at the next look, one scrape apart.
        usable = self.scrape_s is None or self.start_span <= self.scrape_s * (1 + 1e-6)
        if not self.counters_started and usable:
            for track in self.tracks:
                for role in roles(self.evidence):
                    counters = self.counters.setdefault((track, role), AlignedCounters())
                    counters.start(self._values(answers, f"{track}/{role}/start", self.aligned_at))
        instant = self.planned_at
        if instant <= self.aligned_at:
            return Judgement(
                Outcome.COLLECTING,
                f"{self.name}: waiting {self.lag_s:g}s (a scrape and its storing) for samples of "
                "every pod "
                "on both sides of one instant",
            )
        if not self.counters_started:
            return Judgement(
                Outcome.COLLECTING,
                f"{self.name}: learning the scrape interval before counting from the "
                "window's start",
            )
        increments = {}
        # Pods that joined the fleet's reads, read now: left out of this look (``skip``),
        # their values kept to count on from.
        joined: set[str] = set()
        for track in self.tracks:
            for role in roles(self.evidence):
                prefix = f"{track}/{role}/now"
                values, lost = self._values(answers, prefix, instant), self._lost(answers, prefix)
                if isinstance(self.evidence, Buckets):  # per pod: leave the pod out this look
                    skip = {unit for unit, value in lost.items() if value > 0}
                    lost = {}
                else:
                    skip = set()
                counters = self.counters[(track, role)]
                if track == FLEET and self.fleet_joining:
                    pods = {pod_name(dict(key)) for key in values} & self.fleet_joining
                    joined |= pods
                    skip |= {unit_of(dict(key)) for key in values if pod_name(dict(key)) in pods}
                if track == FLEET and isinstance(self.evidence, Buckets):
                    increments[(track, role)] = self._advance_fleet_buckets(counters, values, skip)
                    continue
                if track == "stable" and isinstance(self.evidence, Buckets) and not self.fleet:
                    self._widened_reference(counters, values)
                increments[(track, role)] = counters.advance(values, lost, skip)
        self.fleet_joining -= joined  # read now: counted on from this look
        if self.unit_since is None:
            self.unit_since = self.aligned_at
        unit_s = instant - self.unit_since
        unit_done = unit_s >= self.unit_span_s
        if unit_done:
            self.unit_since = instant
        look_s, self.aligned_at = instant - self.aligned_at, instant
        self._feed(increments, unit_done, look_s, unit_s)
        return self._judge()

    @staticmethod
    def _scrape_interval(answers: Mapping[str, object], elapsed: float | None) -> float | None:
        """The scrape interval from the fleet's probes where it has pods (as old as the
        service: their counts hold every scrape of each range), else from the reference's.

        The reference may be a fresh baseline as young as the window: its one sample in the
        longest probe says nothing about the scrape interval before then, and its few samples
        in a range longer than its life make range / count too long (a 30 s scrape read at
        50 s into the window, two samples in 120 s: "60 s", and every look then read two
        scrapes behind, across a span that mixed counters of different instants: a quarter of
        identical canaries rolled back in the replay's 30 s fleet)."""
        for prefix, age in (("scrape-fleet", None), ("scrape", elapsed)):
            counts = {}
            for seconds in SCRAPE_PROBES_S:
                counted = answers.get(f"{prefix}/{seconds:g}")
                if isinstance(counted, list) and counted:
                    counts[seconds] = counted[0].value
            if counts:
                return scrape_interval(counts, age)
        return None

    @property
    def unit_span_s(self) -> float:
        """How long one unit of stable's pods lasts for the over-dispersion: ``UNIT_SCRAPES``
        scrape intervals (one), at least a look; the interval the gate knows (``scrape_s``:
        configured, discovered, or probed from its series' samples, ``scrape_reads``), else
        ``DEFAULT_SCRAPE_S``.

        One scrape for a comparing logs gate too, whose lines are counted at the look: its
        reference's lines and requests are counted per pod up to each pod's last scrape (or,
        lines without times, set against requests as scraped), so what a unit holds of a pod
        is its scrapes. A unit of a scrape holds each pod's once: every pod gives it a degree
        of freedom (four pods: 3, ``DISPERSION_DOF`` in the first unit), and each pod's count
        spans a scrape, as a chunk the test weighs spans at least one of the canary's. Shorter,
        it holds only the pods scraped in it: the log gate probed no scrape interval before,
        and on the replay's 30 s scrape its units of 20 s held two or three of four pods (0 or
        1 degree of freedom at 20 s). Longer units would average lumps out of phi that the
        chunks keep (``UNIT_SCRAPES``)."""
        return max(self.unit_s, UNIT_SCRAPES * (self.scrape_s or DEFAULT_SCRAPE_S))

    def _values(self, answers: Mapping[str, object], prefix: str, at: float):
        track, _, name = prefix.split("/")
        stamps = f"{track}/{self.main_role}/{name}"
        parts = [answers.get(f"{prefix}/{part}") for part in ("v0", "v1")]
        parts += [answers.get(f"{stamps}/{part}") for part in ("t0", "t1")]
        return interpolate(*(p if isinstance(p, list) else [] for p in parts), at)

    @staticmethod
    def _lost(answers: Mapping[str, object], prefix: str) -> dict:
        """What each pod's restarted or gone series held at the previous instant, by pod."""
        lost = answers.get(f"{prefix}/r0")
        return {unit_of(s.labels): s.value for s in lost} if isinstance(lost, list) else {}

    def learn_reference(self, reference: object) -> None:
        """Note whether ``reference`` (the answer to ``reference_query``, or an error) sets
        cuts, before the look is planned: the history is then read only where it will be
        used, as ``observe_reads`` would use it at this look."""
        if not isinstance(reference, list):
            self.reference_cuts = None
            return
        cumulative = cumulative_by_le(reference)
        self.reference_cuts = bool(reference) and bool(cut_boundaries(cumulative, self._q))

    def _keep_history(self, answers: Mapping[str, object]) -> Mapping[str, object]:
        """``answers`` with the history's answers kept from an earlier look where this one did
        not ask for them again; this look's own kept for a later one."""
        read = {k: v for k, v in answers.items() if k.endswith("/history") and isinstance(v, list)}
        if read:
            if self.history_step != self.unit_span_s:
                self.history_kept = {}
            self.history_kept.update(read)
            self.history_step = self.unit_span_s
        if not self.history_kept or self.history_step != self.unit_span_s:
            return answers
        return {**answers, **self.history_kept}

    def _read_history(self, answers: Mapping[str, object]) -> None:
        """Stable's pods (the fleet's, ``dispersion_track``) in ``unit_span_s`` steps before the
        release: their over-dispersion before the canary took any traffic, so the first looks
        are not judged as if requests were independent. (A histogram gate without its cuts yet
        has none to apply it to.)"""
        self.history_read = True
        self.history_kept = {}
        if not self.tests:
            return
        by_role = {}
        for role in roles(self.evidence):
            series = answers.get(f"{self.dispersion_track}/{role}/history")
            by_role[role] = history_steps(series) if isinstance(series, list) else {}
        seconds = self.unit_span_s if self.fleet else None
        for when in sorted(set().union(*(steps.keys() for steps in by_role.values()))):
            units = {role: steps.get(when, []) for role, steps in by_role.items()}
            self._add_dispersion(units, seconds)

    def _add_dispersion(
        self, stable: Mapping[str, Sequence[Sample]], seconds: float | None = None
    ) -> None:
        """One interval of stable's pods (the fleet's, or the reference's), as units for each
        test's over-dispersion; ``seconds``: its length, given when the fleet is learnt from
        (its load then scales ``phi`` to the compared pods')."""
        if isinstance(self.evidence, Counts):
            events = _by_pod(stable.get("events", []))
            exposure = _by_pod(stable.get("exposure", []))
            units = [(events.get(pod, 0.0), n) for pod, n in exposure.items()]
            if self.counted_at_look and not self._lines_aligned(self.tracks):
                units = self._split_by_share(events, exposure)
            self.tests[None].add_units(units, seconds)
            return
        pods: dict[str, list[Sample]] = {}
        for sample in stable.get("buckets", []):
            pods.setdefault(pod_of(sample.labels), []).append(sample)
        cumulative = {pod: cumulative_by_le(samples) for pod, samples in pods.items()}
        for bound, test in self.tests.items():
            assert bound is not None
            test.add_units([slow_and_all(c, bound) for c in cumulative.values()], seconds)

    def read_shares(self, history: Sequence[Series]) -> None:
        """Stable's pods' requests in ``HISTORY_S`` before the window (``history_query`` of
        the request counter): the long-run shares ``_split_by_share`` splits by, from the
        first unit on (a pod's restart leaves that step out, as ``history_steps`` does)."""
        self.shares_read = True
        for samples in history_steps(history).values():
            for sample in samples:
                pod = pod_of(sample.labels)
                self.served[pod] = self.served.get(pod, 0.0) + sample.value

    def _split_by_share(
        self, events: Mapping[str, float], exposure: Mapping[str, float]
    ) -> list[tuple[float, float]]:
        """Units of events counted at the look: each pod's events against the unit's requests
        split by the pod's share of the requests served so far.

        Where the lines come without times (else they are counted up to each pod's scrape,
        ``aligned_tracks``, and each pod's own requests are its unit's), lines are read as
        they are written, request counters as last scraped, a scrape apart
        per pod: a unit's requests per pod carry each pod's scrape offset, which Pearson's X²
        would read as over-dispersion of the lines (2 to 15 times on independent lines, 15 s
        scrape, 20 s units, 0.2 to 1 % of requests logging). With the requests split by the
        pods' long-run shares (``read_shares``: ten minutes of history, then the release's own
        requests), X² is that of the unit's lines over the pods given their total -- the
        conditional multinomial, which only the lines' own clustering (or a pod's share
        changing) inflates."""
        for pod, n in exposure.items():
            self.served[pod] = self.served.get(pod, 0.0) + n
        shares = {pod: self.served[pod] for pod in exposure if self.served[pod] > 0}
        whole, requests = sum(shares.values()), sum(exposure.values())
        if whole <= 0 or requests <= 0:
            return []
        return [(events.get(pod, 0.0), requests * n / whole) for pod, n in shares.items()]

    def _unit_pods(self) -> Mapping[str, Sequence[Sample]]:
        """The unit's pods the over-dispersion is learnt from: the fleet's where at least two
        of them served requests in it, else the reference's own (a fleet of one pod, or none:
        the reference is all there is)."""
        fleet = self.pending_units.get(self.dispersion_track, {})
        role = "exposure" if isinstance(self.evidence, Counts) else "buckets"
        served = {pod_of(s.labels) for s in fleet.get(role, []) if s.value > 0}
        read = self.fleet_bounds
        if read is not None and not {*self.tests, math.inf} <= read:
            return self.pending_units.get("stable", {})  # the fleet's reads lack a cut
        if len(served) >= 2:
            return fleet
        return self.pending_units.get("stable", {})

    @property
    def _q(self) -> float:
        assert isinstance(self.evidence, Buckets)
        return self.evidence.quantile

    def _compared_load(
        self, increments: Mapping[tuple[str, str], list[Sample]], look_s: float | None
    ) -> float | None:
        """The compared pods' load in this window so far, requests per pod per second: each
        track's, weighed as the conditional binomial weighs their variances for a canary at
        the null's boundary (``sequential.compared_load``: at a 60 % step against a fresh
        baseline, 600 requests a second on the canary's pod and 200 on the baseline's, 343 for
        log-errors), never above the busier track's, which the gate took before. Where both
        pods serve alike (the 10 % and 30 % steps) the boundary's load is above it (4/3 of it
        for log-errors: a canary at twice the lines whose lumps are twice as large); kept at
        the busier load there, the gate judges those steps as it did, measured at the
        boundary (BENCHMARKS.md, "What the log gate's phi over-states": the boundary's load
        there too cost a third of the log x3 catches on stalls at random and removed one
        boundary rollback of 300). What a fleet-learnt ``phi`` is scaled to
        (``CountTest.dispersion_at``). None where the over-dispersion is learnt from the
        reference itself."""
        if not self.fleet or look_s is None or look_s <= 0:
            return None
        role = "exposure" if isinstance(self.evidence, Counts) else "buckets"
        self.window_seconds += look_s
        tracks = []
        for track in TRACKS:
            samples = increments.get((track, role), [])
            if role == "buckets":  # every request is in the +Inf bucket
                samples = [s for s in samples if s.labels.get("le") in ("+Inf", "inf")]
            served = self.window_served.setdefault(track, {})
            for sample in samples:
                pod = pod_of(sample.labels)
                served[pod] = served.get(pod, 0.0) + sample.value
            pods = sum(1 for n in served.values() if n > 0)
            requests = sum(served.values())
            tracks.append((requests, requests / pods / self.window_seconds if pods else 0.0))
        (canary, canary_load), (reference, reference_load) = tracks
        if canary <= 0 and reference <= 0:
            return None
        ratio = 1.0 + max(self.tolerance, 0.0)  # the null's boundary: its lumps the largest
        weighed = compared_load(canary, canary_load, reference, reference_load, ratio)
        busier = max(load for requests, load in tracks if requests > 0)
        return min(weighed, busier)

    def _feed(
        self,
        increments: Mapping[tuple[str, str], list[Sample]],
        unit_done: bool = True,
        look_s: float | None = None,
        unit_s: float | None = None,
    ) -> None:
        """Add one look's increments; the reference's (and the fleet's) are also kept for the
        over-dispersion until ``unit_done`` (a unit spans several scrapes, see
        ``unit_span_s``). ``look_s``, ``unit_s``: how long the look and the unit lasted (the
        loads of the compared and the learnt pods, where the fleet is learnt from)."""
        for track in dict.fromkeys(("stable", self.dispersion_track)):
            pending = self.pending_units.setdefault(track, {})
            for role in roles(self.evidence):
                pending.setdefault(role, []).extend(increments.get((track, role), []))
        if unit_done and (self.tests or isinstance(self.evidence, Counts)):
            self._add_dispersion(self._unit_pods(), unit_s if self.fleet else None)
            self.pending_units = {}
            self.fleet_bounds = None
            self.units_seen += 1
        load = self._compared_load(increments, look_s)
        self.window_looks += 1
        self.window_counted_s += look_s or 0.0
        if isinstance(self.evidence, Counts):
            self.window_exposure += total(increments[("canary", "exposure")])
            self.window_reference += total(increments[("stable", "exposure")])
            counts = (
                total(increments[("canary", "events")]),
                total(increments[("canary", "exposure")]),
                total(increments[("stable", "events")]),
                total(increments[("stable", "exposure")]),
            )
            if not self.counted_at_look:
                self.test.add(*counts, load=load)
                return
            if self._lines_aligned(TRACKS):
                self._add_lines(counts, load)
                return
            # Lines without times, counted as written, requests as last scraped (a source
            # that stamps its lines is aligned, above): a look's requests may hold
            # no scrape of the canary's pod, or two. Within a window the weight is fixed, so
            # the canary's share of the window's requests so far is the look's share, off by
            # a scrape in the window's requests rather than in the look's.
            both = self.window_exposure + self.window_reference
            share = self.window_exposure / both if both > 0 else 0.0
            self.test.add_at_share(*counts, share, load)
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
            test.add(slow_c, all_c, slow_s, all_s, load=load)
        self.window_exposure += self.pending["canary"].get(math.inf, 0.0)
        self.window_reference += self.pending["stable"].get(math.inf, 0.0)
        self.pending = {}

    def _add_lines(self, counts: tuple[float, float, float, float], load: float | None) -> None:
        """A look's lines and requests counted up to each pod's own scrape, weighed once both
        tracks have requests in them (a look in which one track's pods were not scraped again,
        a 30 s scrape read every 10 s, holds its counts until they have: its lines alone say
        nothing about the ratio). Whether counts are held depends on the requests only, never
        on the lines.

        The chunk is weighed at the canary's share of the window's aligned requests so far
        (``aligned_share``), not at the chunk's own share: which pods' scrapes fall into one
        chunk is the scrapes' phase, so the chunk's own share swings (the canary's scrape beside
        one of stable's four pods' or beside all four) while the lines' expected split does
        not follow it where they come in lumps (a stall's burst is as large as its pod's load
        in that second, not as its scraped requests in the chunk). The information per line is
        concave in the share, so the swing alone cost evidence: against stable, 30 canaries
        logging 3x judged to the release's end, median log-likelihood 117 at the chunks' own
        shares, 153 at the window's, 127 at the window's held to the bound below, on the same
        lines (BENCHMARKS.md, "Offline replay: what unmodelled noise broke").

        Validity for identical versions (the rollbacks that must stay under alpha): their
        pods write lines at one rate per request, and a chunk's lines and requests span the
        same seconds pod by pod, so the canary's expected fraction of a chunk's lines is the
        chunk's own share ``w``. The binomial likelihood ratio of any alternative above the
        null ``1 + tolerance`` has expectation at most 1 whenever the null's line fraction
        ``theta(1 + tolerance, s)`` at the share ``s`` weighed at is at least the true ``w``,
        that is ``s >= w / (1 + tolerance (1 - w))``. The window's share is used down to that
        bound, never below it: a chunk whose own share is more than about 1 + tolerance times
        the window's (a canary scrape beside one stable pod's) is weighed at the bound, so every
        chunk's factor keeps expectation at most 1 for identical versions, and the product
        stays an e-process for them however the scrapes fall. For a canary inside the
        tolerance but worse than stable (1 < ratio <= 1 + tolerance) the window's share is the
        chunks' mean share, right to first order but not exactly: those canaries' rollbacks
        are bounded only approximately. With ``tolerance`` 0 the bound is the chunk's own
        share, and the test is the exact conditional binomial it was."""
        held = tuple(a + b for a, b in zip(self.held_lines, counts, strict=True))
        if held[1] > 0 and held[3] > 0:
            both = self.window_exposure + self.window_reference
            window = self.window_exposure / both if both > 0 else 0.0
            self.test.add_at_share(*held, aligned_share(window, held, self.tolerance), load)
            held = (0.0, 0.0, 0.0, 0.0)
        self.held_lines = held  # type: ignore[assignment]

    def _lines_aligned(self, tracks: Sequence[str]) -> bool:
        """Whether every track of ``tracks`` had its lines counted up to its pods' scrapes."""
        return bool(self.aligned_tracks) and set(tracks) <= self.aligned_tracks

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
            "dispersion": round(test.dispersion, 3),
        }
        if self.counted_at_look:
            detail["log_evidence_beyond_largest"] = round(self.evidence_beyond_largest, 3)
        if self.boundary is not None:
            detail["boundary"] = self.boundary
            detail["cuts"] = ", ".join(f"{b:g}" for b in self.tests)
        numbers = {"canary": _rate(test.canary_events, test.canary_exposure)}
        numbers["stable"] = _rate(test.stable_events, test.stable_exposure)
        shown = f"{self.name}: canary {self._counts('canary')} vs stable {self._counts('stable')}"
        if evidence >= math.log(1 / self.alpha) and self.awaits_dispersion:
            left = DISPERSION_WAIT_UNITS if self.reference_pods_read >= 2 else 1
            left -= self.units_seen
            rests = (
                f"{test.dof:g} {'degree' if test.dof == 1 else 'degrees'} of freedom of "
                f"stable's pods: waiting for {DISPERSION_DOF:g} (at most"
                if test.dof < DISPERSION_DOF
                else f"{test.dof:g} degrees of freedom of one unit of stable's pods, the same "
                "seconds: waiting for another (at most"
            )
            return Judgement(
                Outcome.COLLECTING,
                f"{shown}: evidence {shown_e_value(evidence)} ≥ {1 / self.alpha:.3g}, but the "
                f"over-dispersion rests on {rests} {left} more "
                f"{'unit' if left == 1 else 'units'} of {self.unit_span_s:g}s) before judging",
                detail=detail,
                **numbers,
            )
        beyond = self.evidence_beyond_largest
        if evidence >= math.log(1 / self.alpha) and beyond >= math.log(1 / self.alpha):
            return Judgement(
                Outcome.FAIL,
                f"{shown}: canary credibly worse than stable "
                f"+{self.tolerance:.0%} (evidence {shown_e_value(evidence)} "
                f"≥ {1 / self.alpha:.3g})",
                detail=detail,
                **numbers,
            )
        if test.stable_exposure <= 0 and test.canary_exposure > 0:
            return Judgement(Outcome.NOT_APPLICABLE, self._no_stable_traffic(), detail=detail)
        # Positive evidence, not merely "not yet shown bad": the canary served the plan's
        # minimum in the release's test and in this window (this step's weight) too.
        served = min(test.canary_exposure, self.window_exposure)
        if round(served) < self.required_exposure:  # interpolated: fractional
            where = "" if served == test.canary_exposure else " in this window"
            return Judgement(
                Outcome.COLLECTING,
                f"{shown}: collecting, {served:.0f} of "
                f"{self.required_exposure:.0f} canary requests{where}{self._idle()}",
                detail=detail,
                **numbers,
            )
        carried = ""
        if self.window_reference <= 0:  # a 100 % step after steps below it
            carried = " (stable served nothing in this window: the release's evidence so far)"
        weighed = f"evidence {shown_e_value(evidence)} < {1 / self.alpha:.3g}"
        if evidence >= math.log(1 / self.alpha):
            weighed = (
                f"evidence {shown_e_value(evidence)} ≥ {1 / self.alpha:.3g} rests on one "
                f"chunk of lines: without it {shown_e_value(beyond)}"
            )
        return Judgement(
            Outcome.PASS,
            f"{shown}: no credible regression ({weighed}){carried}",
            detail=detail,
            **numbers,
        )

    @property
    def evidence_beyond_largest(self) -> float:
        """The evidence a comparing logs gate fails on besides ``log_evidence`` while it has
        seen fewer than ``LONE_CHUNK_UNITS`` units of stable's pods: without its largest
        single chunk (``CountTest.log_evidence_beyond_largest``); ``log_evidence`` after, and
        for every other gate. Failing only where both cross rejects less often than the
        e-process alone, so the gate stays at level alpha; the price is catch time."""
        if not self.counted_at_look or not self.tests or self.units_seen >= LONE_CHUNK_UNITS:
            return self.log_evidence
        return self.test.log_evidence_beyond_largest

    @property
    def awaits_dispersion(self) -> bool:
        """A comparing logs gate waits to fail while its over-dispersion rests on fewer than
        ``DISPERSION_WAIT_UNITS`` units and its reference (or the fleet phi is learnt from)
        can give more: it has at least two pods (``reference_pods_read``). Not only until
        ``DISPERSION_DOF`` degrees of freedom: four pods give those in one unit, but a unit's
        pods share its seconds, so one quiet unit (no pod stalled in its 15 or 30 s) reads
        phi 1 on 3 degrees of freedom of a fleet whose stalls are lumpy, and a canary's stall
        then failed it: on the replay with stable's lines before the release, 5 of 300
        boundary canaries (lines x2) with stalls at random and 10 of 300 on the 30 s scrape,
        most at the first unit (BENCHMARKS.md, "One unit's phi", issue 20). With none seen
        and no degrees of freedom at all it waits whatever the pods (the over-dispersion is
        unknown, not 1); a reference of one pod, which never gives any (a unit needs two
        pods), then fails after that first unit, as before, and so does a gate whose wait ran
        out, on the phi it has (a stable that logs nothing leaves it at 1: nothing lumpy was
        seen). Waiting before failing is still a test at level alpha (the evidence is an
        e-process at any stopping time); it only costs catch time."""
        if not self.counted_at_look:
            return False
        if not self.units_seen and self.test.dof <= 0:
            return True
        return self.reference_pods_read >= 2 and self.units_seen < DISPERSION_WAIT_UNITS

    @property
    def reference_pods_read(self) -> int:
        """Pods of the reference (or of the fleet it is learnt from) whose request counters
        this gate has read with requests served, over the window so far and what it carries:
        what its units can hold. Every read pod's series is kept (``CounterDeltas.last``, a
        pod gone keeps its last value), so a pod is counted whichever look its scrapes land
        in and after it has gone; a one-pod reference that restarted under a new name reads
        as two, which ``DISPERSION_WAIT_UNITS`` bounds."""
        counted = 0
        for track in dict.fromkeys(("stable", self.dispersion_track)):
            deltas = self.deltas.get((track, "exposure"))
            last = deltas.last if deltas is not None else None
            pods = {pod_of(dict(key)) for key, value in (last or {}).items() if value > 0}
            counted = max(counted, len(pods))
        return counted

    def _idle(self) -> str:
        """Why a window counted no canary request at all, when its looks say: nobody sent
        the service any (both tracks idle: the users' traffic stopped, not the canary), or
        the reference served while the canary did not (the canary is not serving its share:
        dead, hung, or its scrape failing). Counted from the window's looks only, so a
        window whose first look is still waiting for samples says nothing yet."""
        if self.window_exposure > 0 or self.window_looks == 0:
            return ""
        counted = self.window_counted_s
        seconds = f"{counted:.0f}s" if counted > 0 else f"{self.window_looks} looks"
        if self.window_reference <= 0:
            return (
                f": neither the canary nor the reference served a request in {seconds} of "
                "this window (no traffic reaching the service?)"
            )
        return (
            f": the canary served none of the {self.window_reference:.0f} requests the "
            f"reference served in {seconds} of this window (is the canary serving?)"
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


def _by_pod(samples: Sequence[Sample]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for sample in samples:
        pod = pod_of(sample.labels)
        totals[pod] = totals.get(pod, 0.0) + sample.value
    return totals


def _rate(events: float, exposure: float) -> float | None:
    return events / exposure if exposure > 0 else None


def aligned_share(
    window: float, chunk: tuple[float, float, float, float], tolerance: float
) -> float:
    """The share a chunk of aligned lines is weighed at (``SequentialGate._add_lines``): the
    canary's share of the window's requests ``window``, but never below
    ``w / (1 + tolerance (1 - w))`` of the chunk's own share ``w`` (its canary requests over
    both tracks'), the least at which identical versions' lines cannot look like a regression
    beyond the tolerance in expectation."""
    _, canary, _, reference = chunk
    own = canary / (canary + reference)
    return max(window, own / (1.0 + max(tolerance, 0.0) * (1.0 - own)))
