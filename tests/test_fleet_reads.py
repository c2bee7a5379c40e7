"""The stable fleet's histogram read at the cuts only: never a bucket counted from 0 because an
earlier look did not read it, and never a unit learnt from a fleet read without a cut. The
fleet's history before the release read once, not at every look until the compared pods have
series.

(The reads themselves, against a real Prometheus, are in ``test_fleet_reads_prometheus.py``.)
"""

from __future__ import annotations

import math

from canaryflow.analysis.alignment import AlignedCounters, at_bounds, key_of
from canaryflow.analysis.catalogue import METRICS, Counts
from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.query import FLEET, Subject
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import Sample, Series
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.replay import ReplayClock

LATENCY = METRICS["latency-p99"].evidence["go"]


def _bucket(pod: str, le: str) -> tuple:
    return key_of({"instance": pod, "pod": pod, "le": le})


def _gate() -> SequentialGate:
    gate = SequentialGate("latency", LATENCY, 0.2, 0.05, 1, scrape_s=15.0, fleet=True)
    gate._cut_at({0.1: 50.0, 0.5: 95.0, math.inf: 100.0})
    return gate


def test_the_fleet_is_read_at_the_cuts_spelt_as_the_compared_pods_spell_them():
    gate = _gate()
    assert gate.fleet_les() is None, "no spelling seen yet: every bucket"
    seen = [Sample({"pod": "b", "le": le}, 1.0) for le in ("0.1", "0.25", "0.5", "1", "+Inf")]
    gate._learn_les({"stable": {"buckets": seen}})
    assert sorted(gate.fleet_les() or []) == ["+Inf", "0.1", "0.5"]
    assert at_bounds('x_bucket{ app="a" }', ["0.1", "+Inf"]) == (
        'x_bucket{ app="a",le=~"\\\\+Inf|0\\\\.1"}'
    )


def test_a_bucket_read_for_the_first_time_starts_the_fleets_counters_not_counts_from_zero():
    gate = _gate()
    counters = AlignedCounters()
    counters.start({_bucket("a", "0.1"): 100.0, _bucket("a", "+Inf"): 200.0})
    grown = {_bucket("a", "0.1"): 110.0, _bucket("a", "0.5"): 180.0, _bucket("a", "+Inf"): 220.0}
    assert gate._advance_fleet_buckets(counters, grown, set()) == []
    assert gate.fleet_bounds == frozenset(), "this unit's fleet lacks a look"
    later = {_bucket("a", "0.1"): 120.0, _bucket("a", "0.5"): 190.0, _bucket("a", "+Inf"): 240.0}
    found = {s.labels["le"]: s.value for s in gate._advance_fleet_buckets(counters, later, set())}
    assert found == {"0.1": 10.0, "0.5": 10.0, "+Inf": 20.0}


def test_narrowing_the_fleets_read_to_fewer_buckets_counts_on():
    gate = _gate()
    counters = AlignedCounters()
    every = {_bucket("a", le): 10.0 * k for k, le in enumerate(("0.1", "0.25", "0.5", "+Inf"))}
    counters.start(every)
    narrowed = {_bucket("a", le): every[_bucket("a", le)] + 5 for le in ("0.1", "0.5", "+Inf")}
    found = gate._advance_fleet_buckets(counters, narrowed, set())
    assert sorted(s.value for s in found) == [5.0, 5.0, 5.0]
    assert gate.fleet_bounds == frozenset({0.1, 0.5, math.inf})


def _buckets(pod: str, within: float, everything: float) -> list[Sample]:
    return [
        Sample({"pod": pod, "le": "0.1"}, within),
        Sample({"pod": pod, "le": "0.5"}, within),
        Sample({"pod": pod, "le": "+Inf"}, everything),
    ]


def test_a_unit_whose_fleet_reads_lack_a_cut_is_learnt_from_the_references_pods():
    gate = _gate()
    fleet = _buckets("f1", 5, 10) + _buckets("f2", 1, 10)
    reference = _buckets("r1", 3, 10)
    gate.pending_units = {FLEET: {"buckets": fleet}, "stable": {"buckets": reference}}
    gate.fleet_bounds = frozenset({0.1, 0.5, math.inf})
    assert gate._unit_pods()["buckets"] == fleet
    gate.fleet_bounds = frozenset({0.1, math.inf})  # a look of the unit did not read 0.5
    assert gate._unit_pods()["buckets"] == reference


# The fleet's history, read once ------------------------------------------------------------

COUNTS = Counts("bad_total{ {{ selector }} }", "all_total{ {{ selector }} }")
PODS = {"canary": ["c1"], "stable": ["b1"], FLEET: ["f1", "f2", "f3"]}
SELECTORS = {
    (track, role): f'{"bad" if role == "events" else "all"}_total{{ track="{track}" }}'
    for track in PODS
    for role in ("events", "exposure")
}


def _history() -> dict[str, list[Series]]:
    """Ten minutes of the fleet's pods, lumpy: what the over-dispersion is learnt from."""
    found: dict[str, list[Series]] = {}
    for role, scale in (("events", 1), ("exposure", 50)):
        found[f"{FLEET}/{role}/history"] = [
            Series(
                {"instance": pod, "pod": pod},
                tuple(
                    (900.0 + 15 * i, float(scale * i * (k + 1) + (i % (k + 2)) * 7))
                    for i in range(40)
                ),
            )
            for k, pod in enumerate(PODS[FLEET])
        ]
    return found


def _look(reads: dict, tracks: tuple[str, ...]) -> dict[str, object]:
    """Answers to a look's instant reads: every pod of ``tracks`` counting 2 bad of 100 a
    second, scraped 5 s before each read instant; the other tracks without series yet."""
    answers: dict[str, object] = {}
    for key, read in reads.items():
        if read.series:
            continue
        track, role, _, part = key.split("/")
        pods = PODS[track] if track in tracks else []
        labels = [{"instance": pod, "pod": pod} for pod in pods]
        if part.startswith("t"):
            answers[key] = [Sample(one, read.at - 5.0) for one in labels]
        elif part.startswith("r"):
            answers[key] = []
        else:
            rate = 2.0 if role == "events" else 100.0
            answers[key] = [Sample(one, rate * (read.at - 5.0)) for one in labels]
    return answers


def _errors_gate() -> SequentialGate:
    gate = SequentialGate("errors", COUNTS, 0.2, 0.05, 1, scrape_s=15.0, fleet=True, grace_s=0)
    gate.start_at(1000.0)
    return gate


def test_the_fleets_history_is_read_once_while_the_compared_pods_have_no_series_yet():
    gate, history = _errors_gate(), _history()
    first = gate.plan(SELECTORS, 1030.0)
    assert {k for k in first if k.endswith("/history")} == set(history)
    young = gate.observe_reads({**_look(first, (FLEET,)), **history}, 1030.0, elapsed=30.0)
    assert young.outcome.value == "not-applicable", young.reason  # neither track has series
    second = gate.plan(SELECTORS, 1040.0)
    assert not [k for k in second if k.endswith("/history")], "kept, not asked again"
    gate.observe_reads(_look(second, tuple(PODS)), 1040.0, elapsed=40.0)
    # As a gate that read the history only at the look that used it.
    again = _errors_gate()
    again.plan(SELECTORS, 1030.0)
    again.observe_reads(_look(first, (FLEET,)), 1030.0, elapsed=30.0)
    late = again.plan(SELECTORS, 1040.0)
    assert {k for k in late if k.endswith("/history")} == set(history)
    again.observe_reads({**_look(late, tuple(PODS)), **history}, 1040.0, elapsed=40.0)
    assert gate.history_read and again.history_read
    test, other = gate.tests[None], again.tests[None]
    assert test.dof > 30, "the history's units were learnt"
    assert (test.dof, test.chi2) == (other.dof, other.chi2)


def test_the_kept_history_is_read_again_where_the_unit_it_was_cut_in_changed():
    gate, history = _errors_gate(), _history()
    first = gate.plan(SELECTORS, 1030.0)
    gate.observe_reads({**_look(first, (FLEET,)), **history}, 1030.0, elapsed=30.0)
    gate.scrape_s = 30.0  # units of one scrape: 30 s now, not 15 s
    second = gate.plan(SELECTORS, 1040.0)
    assert {k for k in second if k.endswith("/history")} == set(history)


class BucketsBeforeTheWindow:
    """Answers a histogram gate's reads with nothing, but stable's buckets before the window
    (the reference) when ``reference`` holds them; notes every range (history) read."""

    def __init__(self, reference: list[Sample]):
        self.reference = reference
        self.history_reads: list[str] = []

    def vector(self, query: str, at: float | None = None) -> list[Sample]:
        return self.reference if query.startswith("sum by (le) (increase(") else []

    def series(self, query: str, at: float | None = None) -> list:
        self.history_reads.append(query)
        return []

    def instant(self, query: str) -> list[float]:
        return []

    def range(self, query: str, start: float, end: float, step: float) -> list[float]:
        return []


def _latency_rounds(reference: list[Sample]) -> BucketsBeforeTheWindow:
    source = BucketsBeforeTheWindow(reference)
    spec = AnalysisSpec.model_validate({"interval": "10s", "gates": [{"metric": "latency-p99"}]})
    clock = ReplayClock(1_000_000.0)
    subject = Subject("shop", "prod", baseline=True)
    run = AnalysisRun(spec, source, "shop", "prod", clock=clock, subject=subject)
    run.concurrent = False
    for round_no in (1, 2, 3):
        clock.sleep(10.0)
        run.measure(round_no, 1_000_000.0)
    return source


def test_a_histogram_gate_whose_reference_sets_no_cuts_does_not_read_the_fleets_history():
    # A fresh baseline born with the canary has no buckets before the window: no cuts to
    # apply the fleet's history to, so it is not read (it would be thrown away).
    assert _latency_rounds([]).history_reads == []


def test_a_histogram_gate_with_cuts_from_its_reference_reads_the_fleets_history():
    buckets = [Sample({"le": le}, n) for le, n in (("0.1", 50.0), ("0.5", 95.0), ("+Inf", 100.0))]
    reads = _latency_rounds(buckets).history_reads
    assert reads and all("[600s:" in query for query in reads)


def test_buckets_no_longer_read_are_forgotten_so_a_later_read_of_them_starts_afresh():
    gate = _gate()
    counters = AlignedCounters()
    every = {_bucket("a", le): 10.0 * k for k, le in enumerate(("0.1", "0.25", "0.5", "+Inf"))}
    counters.start(every)
    narrowed = {_bucket("a", le): every[_bucket("a", le)] + 5 for le in ("0.1", "0.5", "+Inf")}
    gate._advance_fleet_buckets(counters, narrowed, set())
    assert counters.last is not None
    assert {dict(key)["le"] for key in counters.last} == {"0.1", "0.5", "+Inf"}
