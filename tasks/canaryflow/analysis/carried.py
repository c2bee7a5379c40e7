"""One release's sequential evidence, carried from one analysis window to the next.

``canaryflow run`` keeps one e-process per sequential gate in memory for the whole release. In
the Argo and Tekton workflows every step's window is a pod of its own (``canaryflow analyze
--step i``), so what the e-process needs is written down after each window and read back at
the next one: per gate its count tests (the mixture's log likelihood ratios, the counts, the
over-dispersion's X² and degrees of freedom, the histogram's cuts), the scrape interval found,
and the release's alpha budget (which gates the service exports, how many ways alpha is split).
Against a fresh baseline the over-dispersion is learnt from the stable fleet's pods
(``evidence``): then also the load of the pods it was learnt from, the log likelihood ratios by
compared load band, and the fleet's counters (version 2; a version 1 state, written before,
is read as one learnt from the reference's pods, its counters dropped where the gate now
reads the fleet too).

A large fleet is read through a sample of its pods (``fleet_sample``): the fleet's counters
carried are then the sample's pods', and the pods they hold are taken as what the earlier
window read (``SequentialGate.fleet_pods``), so a pod the next window reads beyond them
(another sample, or the whole fleet again) starts at its value then rather than from 0. The
format is unchanged (still version 2): a state written before the sample, holding every fleet
pod's counters, is resumed as it is, the pods outside the sample forgotten at the first look.
(The other way round, a canaryflow before the sample resuming a state written with one would
count the fleet's other pods from 0 in one unit: a release runs one image throughout.)

The counters of every pod at the last common instant are carried too (as the in-process
engine keeps them), so the next window's first look counts on from that instant: no window
loses its first scrape (and the margin for storing it) to the alignment lag, and the time
between two windows (the weight being set) is one more interval of the same test. A gate with
more than ``MAX_SERIES`` series per track and role carries no counters: its next window counts
from its own start, leaving the gap out, which keeps the product of likelihood ratios an
e-process (an interval left out without looking at its data changes no factor's expectation
under the null).

A comparing logs gate (``log-errors``) counts each pod's lines up to its requests' last scrape
and holds a look's counts until both tracks' pods were scraped in it (``log_counts``,
``SequentialGate.held_lines``). Its held counts and where its counting stands are carried
too (version 3): each pod's lines so far and the scrape they are counted up to, the lines and
requests at the last look, the over-dispersion's unit in progress. The next window's pod then
reads each pod's lines from its last counted scrape (at most ``log_counts.MAX_HELD_S`` back, as
one process does) and its requests from their values then, so the time between two windows
is counted as one process counts it, and the held chunk is weighed with the next one. Where the
first look could not read some pod's lines back that far (a long pause between the steps), or
the reference changed, the gate counts from its window's start, the gap left out for lines and
requests alike, as every window did before version 3. A version 1 or 2 state is read as that;
its checksum is over the content its writer knew (the new fields left out while they hold
nothing). All of it is bounded by the pods read, not by their lines. Version 4 adds how many
units of the reference's pods the gate has seen (``SequentialGate.units_seen``: how long it has
waited for its over-dispersion's degrees of freedom before failing, ``awaits_dispersion``); a
version 3 state read has seen one where it says a unit was seen, none where not, and a state
whose gate has seen none is written as version 3 wrote it (the field left out). Version 5 adds
each test's largest single look's log likelihood ratios by load band (``CountTest.largest``:
what a comparing logs gate's verdict must not rest on alone,
``SequentialGate.evidence_beyond_largest``); a version 1 to 4 state is read with none, so the
rule counts the chunks from the window it resumes in, and a test without any is written as
version 4 wrote it.

The state is small JSON, versioned, with a digest of the plan's sequential gates (a state
written under another plan is refused) and a checksum of its own content. It is validated on
read: a state that does not parse, does not validate, or whose checksum does not match is an
ERROR (fail safe), never a fresh start and never a pass. The checksum finds edits and
corruption, not an attacker: whoever can write the canary Deployment's annotations can change
its image too.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from canaryflow.analysis.alignment import AlignedCounters, key_of
from canaryflow.analysis.catalogue import Counts
from canaryflow.analysis.evidence import CounterDeltas, SequentialGate, roles
from canaryflow.analysis.fleet_sample import held_pods
from canaryflow.analysis.log_counts import MAX_HELD_S, LogCounts
from canaryflow.analysis.query import FLEET
from canaryflow.analysis.sequential import RATIO_GRID, AlphaBudget, CountTest
from canaryflow.analysis.source import Sample
from canaryflow.analysis.spec import AnalysisSpec

VERSION = 5
READABLE = (1, 2, 3, 4, 5)
"""Versions this canaryflow reads: 1 has no fleet counters, loads or bands, 1 and 2 no log
gate's held lines or counting (their defaults: the gate counts from its window's start), 1 to
3 no count of the units a log gate has seen (one if it saw a unit, else none), 1 to 4 no
largest looks (none)."""
MAX_BANDS = 64
"""Load bands per test (``sequential.LOAD_BAND`` wide): a release's steps use a few."""
ANNOTATION = "canaryflow.dev/evidence"
"""Where the Kubernetes store keeps the state: on the canary Deployment, so it goes with it."""
MAX_SERIES = 2_000
"""Counter series carried per gate, track and role; with more, the next window counts from its
own start instead (a scrape and a margin later: see ``evidence.SequentialGate.lag_s``)."""
COUNTERS_BUDGET_CHARS = 100_000
"""The state's size up to which counters are carried: well inside the 256 KiB that all of an
object's annotations share."""
MAX_STATE_CHARS = 200_000
"""A state longer than this is not one we wrote (the annotations of an object share 256 KiB)."""


class CarriedStateError(ValueError):
    """The carried evidence cannot be trusted: the window must not pass on it."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


NonNegative = Field(ge=0)
Count = Annotated[float, Field(ge=0)]
Instant = Annotated[float, Field(gt=0)]
PodName = Annotated[str, Field(max_length=253)]
"""A pod's name as its lines and counters give it ("": a track's lines without pods)."""


class TestState(_Model):
    """One ``CountTest``: a counts gate's test, or one cut of a histogram gate."""

    cut: float | None = Field(None, gt=0)
    """The histogram bucket bound it counts requests above; None for a counts gate."""
    tolerance: float = Field(ge=0, le=100)
    log_ratios: tuple[float, ...]
    canary_events: float = NonNegative
    canary_exposure: float = NonNegative
    stable_events: float = NonNegative
    stable_exposure: float = NonNegative
    chi2: float = NonNegative
    dof: float = NonNegative
    unit_exposure: float = Field(0.0, ge=0)
    unit_pod_seconds: float = Field(0.0, ge=0)
    banded: tuple[tuple[int, tuple[float, ...]], ...] = Field((), max_length=MAX_BANDS)
    """The log likelihood ratios added at a compared load, by load band."""
    largest: tuple[tuple[int | None, tuple[Count, ...]], ...] = Field((), max_length=MAX_BANDS + 1)
    """Each alternative's largest single look's log likelihood ratio, by load band (None:
    looks without a load; version 5)."""

    @model_validator(mode="after")
    def _one_ratio_per_alternative(self) -> TestState:
        if len(self.log_ratios) != len(RATIO_GRID):
            raise ValueError(f"log_ratios: {len(RATIO_GRID)} values expected")
        for name, bands in (("banded", self.banded), ("largest", self.largest)):
            if any(len(ratios) != len(RATIO_GRID) for _, ratios in bands):
                raise ValueError(f"{name}: {len(RATIO_GRID)} values per band expected")
            if len({band for band, _ in bands}) != len(bands):
                raise ValueError(f"{name}: each load band once")
        return self

    @classmethod
    def of(cls, cut: float | None, test: CountTest) -> TestState:
        return cls(
            cut=cut,
            tolerance=test.tolerance,
            log_ratios=tuple(test.log_ratios),
            canary_events=test.canary_events,
            canary_exposure=test.canary_exposure,
            stable_events=test.stable_events,
            stable_exposure=test.stable_exposure,
            chi2=test.chi2,
            dof=test.dof,
            unit_exposure=test.unit_exposure,
            unit_pod_seconds=test.unit_pod_seconds,
            banded=tuple((band, tuple(r)) for band, r in sorted(test.banded.items())),
            largest=tuple(
                (band, tuple(r))
                for band, r in sorted(test.largest.items(), key=lambda item: _band_key(item[0]))
            ),
        )

    def test(self) -> CountTest:
        return CountTest(
            tolerance=self.tolerance,
            log_ratios=list(self.log_ratios),
            canary_events=self.canary_events,
            canary_exposure=self.canary_exposure,
            stable_events=self.stable_events,
            stable_exposure=self.stable_exposure,
            chi2=self.chi2,
            dof=self.dof,
            unit_exposure=self.unit_exposure,
            unit_pod_seconds=self.unit_pod_seconds,
            banded={band: list(ratios) for band, ratios in self.banded},
            largest={band: list(ratios) for band, ratios in self.largest},
        )


def _band_key(band: int | None) -> tuple[bool, int]:
    """Load bands in order, the looks without a load first."""
    return (band is not None, band or 0)


class CounterState(_Model):
    """One track's counters of one role at the last common instant: each series' labels and
    value (``alignment.AlignedCounters``)."""

    track: Literal["canary", "stable", "fleet"]
    role: Literal["events", "exposure", "buckets"]
    series: tuple[tuple[dict[str, str], float], ...] = Field(max_length=MAX_SERIES)

    @model_validator(mode="after")
    def _counts(self) -> CounterState:
        if any(not math.isfinite(v) or v < 0 for _, v in self.series):
            raise ValueError("series: counter values are finite and not negative")
        return self


class TrackLines(_Model):
    """One track's matching lines in a comparing logs gate, by pod (``log_counts.LogCounts``)."""

    track: Literal["canary", "stable", "fleet"]
    lines: tuple[tuple[PodName, Count], ...] = Field((), max_length=MAX_SERIES)
    """Lines counted so far, by pod."""
    counted_to: tuple[tuple[PodName, Instant], ...] = Field((), max_length=MAX_SERIES)
    """The instant each pod's lines are counted up to (its requests' last scrape)."""
    read: tuple[PodName, ...] = Field((), max_length=MAX_SERIES)
    """The pods whose lines and requests were counted at the previous look."""
    unscraped: tuple[PodName, ...] = Field((), max_length=MAX_SERIES)
    by_pod: bool | None = None
    aligned: bool | None = None

    @model_validator(mode="after")
    def _each_pod_once(self) -> TrackLines:
        for name in ("lines", "counted_to"):
            pods = [pod for pod, _ in getattr(self, name)]
            if len(set(pods)) != len(pods):
                raise ValueError(f"{name}: each pod once")
        return self


class LinesState(_Model):
    """Where a comparing logs gate's counting stands between two looks, as one process keeps
    it across windows: each pod's lines up to its last scrape and the request counters read
    with them (``SequentialGate.deltas``), so the next window's pod reads on from each pod's
    last counted scrape, and the over-dispersion's unit in progress."""

    tracks: tuple[TrackLines, ...] = Field(max_length=3)
    offsets: tuple[tuple[dict[str, str], Count], ...] = Field((), max_length=MAX_SERIES)
    """A request series' value when its pod joined the read pods (``LogCounts.offsets``)."""
    looks: int = Field(ge=1)
    started_at: Instant | None = None
    floor: Instant | None = None
    waiting: bool = False
    looked_at: Instant | None = None
    """The previous look of the lines (``LogCounts.looked_at``)."""
    counters: tuple[CounterState, ...] = Field(max_length=6)
    """The lines and requests at the previous look, by track and role (``CounterDeltas``)."""
    pending: tuple[CounterState, ...] = Field((), max_length=6)
    """The reference's (and the fleet's) increments since the unit in progress began."""
    gate_looked_at: Instant | None = None
    unit_since: Instant | None = None
    unit_seen: bool = False
    units_seen: int = Field(0, ge=0)
    """Units of the reference's pods seen (``SequentialGate.units_seen``; version 4)."""
    shares_read: bool = False
    served: tuple[tuple[PodName, Count], ...] = Field((), max_length=MAX_SERIES)
    """Requests each stable pod served (``SequentialGate.served``)."""

    @property
    def size(self) -> int:
        """Entries held: what the state's budget weighs (``snapshot``)."""
        per_track = sum(len(t.lines) + len(t.counted_to) + len(t.read) for t in self.tracks)
        held = sum(len(c.series) for c in (*self.counters, *self.pending))
        return per_track + held + len(self.offsets) + len(self.served)


class GateState(_Model):
    tests: tuple[TestState, ...] = Field(max_length=8)
    scrape_s: float | None = Field(None, gt=0)
    history_read: bool = False
    incomparable: tuple[float, ...] = Field((), max_length=8)
    aligned_at: float | None = Field(None, gt=0)
    """The common instant the counters were last read at: the next window counts from it."""
    unit_since: float | None = Field(None, gt=0)
    counters: tuple[CounterState, ...] = Field((), max_length=6)
    fleet: bool = False
    """The over-dispersion was learnt from the stable fleet's pods (``SequentialGate.fleet``)."""
    held_lines: tuple[Count, Count, Count, Count] = (0.0, 0.0, 0.0, 0.0)
    """A comparing logs gate's aligned lines and requests not weighed yet (version 3)."""
    lines: LinesState | None = None
    """A comparing logs gate's counting (version 3); None: the next window counts its lines
    from its own start."""


class CarriedEvidence(_Model):
    """What the next window's pod needs to go on with the release's tests."""

    version: Literal[1, 2, 3, 4, 5] = VERSION
    plan: str = Field(min_length=16, max_length=64)
    """Digest of the plan's alpha and sequential gates (``plan_digest``)."""
    step: int = Field(ge=0)
    """The plan step whose window wrote it."""
    alpha: float = Field(gt=0, le=1)
    windows: int = Field(1, ge=1)
    """How many ways each gate's alpha is split: 1 while one test runs for the release."""
    exported: tuple[str, ...] | None = None
    """The gates sharing alpha (the service exports them); None: not known yet."""
    restarted_at: int | None = None
    """The step a fresh test began at because no evidence was found (see ``fresh_windows``)."""
    reference: Literal["stable", "baseline"] | None = None
    """Whose pods the counters of the reference track ("stable" in the queries) are: the
    fleet's or a fresh baseline's (``Subject.baseline``); None: not recorded (written before
    it was), so no counters are resumed from it."""
    gates: dict[str, GateState] = Field(default_factory=dict, max_length=64)
    checksum: str = ""

    @model_validator(mode="after")
    def _fields_of_its_version(self) -> CarriedEvidence:
        if self.version < 3:
            for name, gate in self.gates.items():
                if gate.lines is not None or any(gate.held_lines):
                    raise ValueError(f"gate {name!r}: log lines are carried from version 3 on")
        if self.version < 4:
            for name, gate in self.gates.items():
                if gate.lines is not None and gate.lines.units_seen:
                    raise ValueError(f"gate {name!r}: units seen are carried from version 4 on")
        if self.version < 5:
            for name, gate in self.gates.items():
                if any(test.largest for test in gate.tests):
                    raise ValueError(f"gate {name!r}: largest looks are carried from version 5 on")
        return self

    def content(self) -> dict:
        """What is written: version 3's fields are left out of a gate where they hold nothing,
        so a state without a comparing logs gate's counting reads as version 2's did, and a
        version 2 state's checksum is over the content its writer knew (version 4's units
        seen likewise, for a version 3 state; version 5's largest looks for a version 4
        state)."""
        body = self.model_dump(mode="json")
        for gate in body["gates"].values():
            for test in gate["tests"]:
                if not test["largest"]:
                    del test["largest"]
            if gate["lines"] is None:
                del gate["lines"]
            elif not gate["lines"]["units_seen"]:
                del gate["lines"]["units_seen"]
            if not any(gate["held_lines"]):
                del gate["held_lines"]
        return body

    def content_digest(self) -> str:
        body = {key: value for key, value in self.content().items() if key != "checksum"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def sealed(self) -> CarriedEvidence:
        return self.model_copy(update={"checksum": self.content_digest()})

    def to_text(self) -> str:
        return json.dumps(self.sealed().content(), separators=(",", ":"))


def plan_digest(spec: AnalysisSpec) -> str:
    """What the state's evidence depends on in the plan: alpha and the sequential gates with
    their limits. A state carried into a plan that changed them is not evidence for it."""
    gates = [gate.model_dump(mode="json") for gate in spec.sequential_gates]
    text = json.dumps({"alpha": spec.alpha, "gates": gates}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse(text: str, spec: AnalysisSpec, step: int) -> CarriedEvidence:
    """The state in ``text``, checked against the plan and the step reading it; raises
    ``CarriedStateError`` saying what is wrong (never a silent fresh start)."""
    if len(text) > MAX_STATE_CHARS:
        raise CarriedStateError(f"{len(text)} characters, more than any state written")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise CarriedStateError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise CarriedStateError("not a JSON object")
    if data.get("version") not in READABLE:
        readable = ", ".join(str(v) for v in READABLE)
        raise CarriedStateError(
            f"version {str(data.get('version'))[:16]!r}, this canaryflow reads {readable}"
        )
    try:
        state = CarriedEvidence.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CarriedStateError(f"{where}: {first['msg']}") from None
    if state.checksum != state.content_digest():
        raise CarriedStateError("its checksum does not match its content (edited or corrupt)")
    if state.plan != plan_digest(spec):
        raise CarriedStateError("written under another plan (its alpha or sequential gates differ)")
    if state.alpha != spec.alpha:
        raise CarriedStateError(f"alpha {state.alpha:g}, the plan's is {spec.alpha:g}")
    if state.step > step:
        raise CarriedStateError(f"written by step {state.step}, later than this step {step}")
    names = {gate.name: gate for gate in spec.sequential_gates}
    unknown = sorted((set(state.gates) | set(state.exported or ())) - names.keys())
    if unknown:
        raise CarriedStateError(f"gate {unknown[0]!r} is not a sequential gate of the plan")
    for name, gate in state.gates.items():
        tolerance = names[name].limit.tolerance  # type: ignore[union-attr]
        if any(not math.isclose(t.tolerance, tolerance) for t in gate.tests):
            raise CarriedStateError(f"gate {name!r}: tolerance differs from the plan's")
    return state


def snapshot(
    spec: AnalysisSpec,
    step: int,
    budget: AlphaBudget,
    gates: Mapping[str, SequentialGate],
    restarted_at: int | None = None,
    reference: Literal["stable", "baseline"] | None = None,
) -> CarriedEvidence:
    """The release's tests after this step's window: counters carried while the whole state
    stays within ``COUNTERS_BUDGET_CHARS`` (the gate with the most series drops its own first:
    its next window counts from its start). ``reference``: whose pods the reference track's
    counters are (``reference_of`` the window's run)."""
    state = _snapshot(spec, step, budget, gates, restarted_at)
    state = state.model_copy(update={"reference": reference})
    while len(state.to_text()) > COUNTERS_BUDGET_CHARS:
        heaviest = max(state.gates, key=lambda n: _weight(state.gates[n]))
        if not _weight(state.gates[heaviest]):
            break
        light = state.gates[heaviest].model_copy(
            update={"counters": (), "aligned_at": None, "unit_since": None, "lines": None}
        )
        state = state.model_copy(update={"gates": {**state.gates, heaviest: light}})
    return state


def _weight(gate: GateState) -> int:
    """Series and pods a gate carries to count on from (what a state over budget drops)."""
    lines = gate.lines.size if gate.lines is not None else 0
    return sum(len(c.series) for c in gate.counters) + lines


def _snapshot(
    spec: AnalysisSpec,
    step: int,
    budget: AlphaBudget,
    gates: Mapping[str, SequentialGate],
    restarted_at: int | None,
) -> CarriedEvidence:
    return CarriedEvidence(
        plan=plan_digest(spec),
        step=step,
        alpha=spec.alpha,
        windows=budget.windows,
        exported=budget.exported,
        restarted_at=restarted_at,
        gates={name: _gate_state(gate) for name, gate in gates.items()},
    )


def _gate_state(gate: SequentialGate) -> GateState:
    started = {at: c.last for at, c in sorted(gate.counters.items()) if c.last is not None}
    carried = gate.counters_started and all(len(v) <= MAX_SERIES for v in started.values())
    counters = tuple(
        CounterState(
            track=track,  # type: ignore[arg-type]
            role=role,  # type: ignore[arg-type]
            series=tuple((dict(key), value) for key, value in sorted(last.items())),
        )
        for (track, role), last in started.items()
        if carried
    )
    return GateState(
        tests=tuple(TestState.of(cut, test) for cut, test in gate.tests.items()),
        scrape_s=gate.scrape_s,
        history_read=gate.history_read,
        incomparable=tuple(sorted(b for b in gate.incomparable if b is not None)),
        aligned_at=gate.aligned_at if carried else None,
        unit_since=gate.unit_since if carried else None,
        counters=counters if carried else (),
        fleet=gate.fleet,
        held_lines=gate.held_lines,
        lines=_lines_state(gate),
    )


def _series(samples: Mapping) -> tuple[tuple[dict[str, str], float], ...]:
    return tuple((dict(key), value) for key, value in sorted(samples.items()))


def _lines_state(gate: SequentialGate) -> LinesState | None:
    """A comparing logs gate's counting after its window (None: not started, lines without
    the times they were written, or more than ``MAX_SERIES`` of something to carry: the next
    window counts from its own start). Lines without times are read from each look's start
    (``AnalysisRun._logs_since``), never back to where the earlier window stopped: their
    requests going on from the earlier window would count the gap's requests without its
    lines."""
    counts = gate.lines
    if counts is None or not counts.looks or not gate.started or counts.floor is None:
        return None
    tracks = dict.fromkeys(
        (*counts.lines, *counts.counted_to, *counts.read, *counts.by_pod, *counts.aligned)
    )
    try:
        return LinesState(
            tracks=tuple(
                TrackLines(
                    track=track,  # type: ignore[arg-type]
                    lines=tuple(sorted(counts.lines.get(track, {}).items())),
                    counted_to=tuple(sorted(counts.counted_to.get(track, {}).items())),
                    read=tuple(sorted(counts.read.get(track, set()))),
                    unscraped=tuple(sorted(counts.unscraped.get(track, set()))),
                    by_pod=counts.by_pod.get(track),
                    aligned=counts.aligned.get(track),
                )
                for track in tracks
            ),
            offsets=tuple((dict(key), value) for key, value in sorted(counts.offsets.items())),
            looks=counts.looks,
            started_at=counts.started_at,
            floor=counts.floor,
            waiting=counts.waiting,
            looked_at=counts.looked_at,
            counters=tuple(
                CounterState(track=track, role=role, series=_series(deltas.last or {}))  # type: ignore[arg-type]
                for (track, role), deltas in sorted(gate.deltas.items())
            ),
            pending=tuple(
                CounterState(
                    track=track,  # type: ignore[arg-type]
                    role=role,  # type: ignore[arg-type]
                    series=tuple((dict(s.labels), s.value) for s in samples),
                )
                for track, by_role in sorted(gate.pending_units.items())
                for role, samples in sorted(by_role.items())
            ),
            gate_looked_at=gate.looked_at,
            unit_since=gate.unit_since,
            unit_seen=gate.units_seen > 0,
            units_seen=gate.units_seen,
            shares_read=gate.shares_read,
            served=tuple(sorted(gate.served.items())),
        )
    except ValidationError:
        return None  # beyond what a state holds (a pod's name, a fleet of pods): start again


def resume(
    gate: SequentialGate, state: GateState, counters: bool = True, first_look: float | None = None
) -> None:
    """Go on with ``state``'s tests in a gate that has not looked yet in this window; raises
    ``CarriedStateError`` when they do not fit the gate's evidence. ``counters`` False: the
    tests only, the window counting from its own start (the reference's pods changed).
    ``first_look``: when the window's first look will be (a comparing logs gate reads its
    lines back at most ``MAX_HELD_S`` from it: ``_resume_lines``)."""
    cuts = [t.cut for t in state.tests]
    counts = isinstance(gate.evidence, Counts)
    if (cuts != [None]) if counts else (None in cuts):
        kind = "one test without a cut" if counts else "tests at bucket bounds"
        raise CarriedStateError(f"gate {gate.name!r}: its evidence needs {kind}")
    if state.tests:
        gate.tests = {t.cut: t.test() for t in state.tests}
    gate.scrape_s = state.scrape_s
    gate.history_read = state.history_read
    gate.incomparable = set(state.incomparable)
    # The counters go on only where they are the tracks this window reads (a state of
    # version 1, or of a window that had no baseline, has no fleet's): else the window counts
    # from its own start, the gap left out (see the module's docstring).
    wanted = {(track, role) for track in gate.tracks for role in roles(gate.evidence)}
    same = {(c.track, c.role) for c in state.counters} == wanted
    if counters and state.counters and state.aligned_at is not None and same:
        for counter in state.counters:
            aligned = gate.counters.setdefault((counter.track, counter.role), AlignedCounters())
            aligned.start({key_of(labels): value for labels, value in counter.series})
            if counter.track == FLEET and counter.role == gate.main_role:
                # The pods the earlier window's fleet reads selected (its sample, or every
                # pod): a pod this window reads beyond them joins at its value then.
                gate.fleet_pods = held_pods(aligned.last)
        gate.aligned_at = state.aligned_at
        gate.unit_since = state.unit_since
    if counters and gate.counted_at_look:
        gate.held_lines = state.held_lines
        if state.lines is not None:
            _resume_lines(gate, state.lines, first_look)


def _resume_lines(gate: SequentialGate, state: LinesState, first_look: float | None) -> None:
    """A comparing logs gate counts on where the earlier window's pod stopped: each pod's lines
    after its last counted scrape, its requests from their values then. Not where the tracks
    differ from the gate's, nor where the first look could not read some pod's lines back to
    its last counted scrape (``MAX_HELD_S``): the window then counts from its own start, the
    gap left out for lines and requests alike, as before."""
    if {(c.track, c.role) for c in state.counters} != set(gate.deltas):
        return
    counted = [t for track in state.tracks for _, t in track.counted_to]
    if first_look is not None and any(t < first_look - MAX_HELD_S for t in counted):
        return
    lines = LogCounts(
        lines={t.track: dict(t.lines) for t in state.tracks},
        by_pod={t.track: t.by_pod for t in state.tracks if t.by_pod is not None},
        read={t.track: set(t.read) for t in state.tracks},
        offsets={key_of(labels): value for labels, value in state.offsets},
        looks=state.looks,
        counted_to={t.track: dict(t.counted_to) for t in state.tracks},
        aligned={t.track: t.aligned for t in state.tracks if t.aligned is not None},
        started_at=state.started_at,
        floor=state.floor,
        waiting=state.waiting,
        looked_at=state.looked_at,
        unscraped={t.track: set(t.unscraped) for t in state.tracks},
    )
    for counter in state.counters:
        deltas = gate.deltas[(counter.track, counter.role)] = CounterDeltas()
        deltas.last = {key_of(labels): value for labels, value in counter.series}
    pending: dict[str, dict[str, list[Sample]]] = {}
    for counter in state.pending:
        samples = [Sample(dict(labels), value) for labels, value in counter.series]
        pending.setdefault(counter.track, {})[counter.role] = samples
    gate.pending_units = pending
    gate.lines = lines
    gate.aligned_tracks = frozenset(track for track, yes in lines.aligned.items() if yes)
    gate.looked_at, gate.unit_since = state.gate_looked_at, state.unit_since
    gate.units_seen = state.units_seen or (1 if state.unit_seen else 0)  # version 3: seen or not
    gate.shares_read = state.shares_read
    gate.served = dict(state.served)


def judging_windows(weights: Sequence[int]) -> int:
    """Traffic steps that can judge: a 100 % step leaves stable no traffic to compare with."""
    return max(1, sum(1 for weight in weights if weight < 100))


def fresh_windows(weights: Sequence[int]) -> int:
    """How many ways a gate's alpha is split when a test must start afresh after the first
    step (its evidence is missing): as if every step that can judge were a test of its own,
    the share a window had before evidence was carried. The lost test may have spent its
    share, so the release's false-rollback chance is then at most alpha x (1 + 1/this)."""
    return judging_windows(weights)


class Beginning(_Model):
    """How a window's pod starts: from the carried state, or with a fresh test."""

    state: CarriedEvidence | None = None
    windows: int = 1
    """The alpha split of a fresh test: 1 at the release's first step, else ``fresh_windows``."""
    restarted_at: int | None = None
    note: str = ""
    """Said in the verdict when the test starts afresh after the first step."""


def begin(
    text: str | None, spec: AnalysisSpec, step: int, first_step: int, weights: Sequence[int]
) -> Beginning:
    """The release's first analysed step starts one test per gate (whatever an earlier run
    left); a later one goes on with the carried state, or, when none was found, starts a
    fresh test at the conservative share ``fresh_windows`` and says so. A state that cannot
    be trusted raises ``CarriedStateError``."""
    if step <= first_step:
        return Beginning()
    if text is None:
        windows = fresh_windows(weights)
        return Beginning(
            windows=windows,
            restarted_at=step,
            note=f"no evidence carried from the earlier steps was found: a fresh test per gate "
            f"from step {step} on, at alpha/{windows} of each gate's share",
        )
    state = parse(text, spec, step)
    note = ""
    if state.restarted_at is not None:
        note = f"the gates' tests started afresh at step {state.restarted_at} (evidence lost)"
    return Beginning(state=state, windows=state.windows, restarted_at=state.restarted_at, note=note)


def begin_window(
    run, text: str | None, spec: AnalysisSpec, step: int, first_step: int, weights: Sequence[int]
) -> Beginning:
    """``begin``, applied to a window's analysis ``run`` (an ``AnalysisRun``): the release's
    alpha budget as the state says (only the gates the service exports spend it) and each
    sequential gate's test where the earlier step left it. The analyze pods and the replay of
    them in the tests share this one path."""
    beginning = begin(text, spec, step, first_step, weights)
    state = beginning.state
    run.budget = AlphaBudget(
        spec.alpha,
        run.budget.gates,
        beginning.windows,
        state.exported if state is not None else None,
    )
    # Counters are per series of the reference's pods: carried into a window judged against
    # other pods (the baseline gone or not yet scraped, a router that cannot split), every
    # series of the new reference would be "first seen" and count its whole life as this
    # look's increase. The tests go on; the counters start again at this window's start.
    same = state is not None and state.reference == reference_of(run)
    for gate in spec.sequential_gates:
        if state is not None and gate.name in state.gates:
            state_of = state.gates[gate.name]
            first_look = run.clock.now() + run.spec.interval
            resume(run.sequential_gate(gate), state_of, counters=same, first_look=first_look)
    if state is not None and not same and any(g.counters for g in state.gates.values()):
        was = state.reference or "not recorded"
        change = (
            f"the reference changed ({was} → {reference_of(run)}): this window counts from "
            "its own start"
        )
        note = f"{beginning.note}; {change}" if beginning.note else change
        beginning = beginning.model_copy(update={"note": note})
    return beginning


def reference_of(run) -> Literal["stable", "baseline"]:
    """Whose pods a window's run reads as the reference track (``Subject.baseline``)."""
    return "baseline" if run.subject.baseline else "stable"
