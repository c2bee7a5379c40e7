"""The stable fleet's histogram read at the cuts only: never a bucket counted from 0 because an
earlier look did not read it, and never a unit learnt from a fleet read without a cut.

(The reads themselves, against a real Prometheus, are in ``test_fleet_reads_prometheus.py``.)
"""

from __future__ import annotations

import math

from canaryflow.analysis.alignment import AlignedCounters, at_bounds, key_of
from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.query import FLEET
from canaryflow.analysis.source import Sample

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
