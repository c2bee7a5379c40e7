"""A pod whose scrape failed is not counted again from 0 when it comes back.

Prometheus marks every series of a target whose scrape failed stale ("Staleness and PromQL",
Robust Perception: "If a scrape fails, for whatever reason, then all time series from the
target are marked stale"), and an instant query skips a stale series until the next good
scrape. A look whose instant falls in that gap reads the pod as absent, or as 0 (its only
sample is after the instant: read as born after it). The pod's counter did not restart: when
it is back, only its increase since the last look it was seen at is new evidence."""

from __future__ import annotations

from canaryflow.analysis.alignment import AlignedCounters, key_of
from canaryflow.analysis.evidence import CounterDeltas
from canaryflow.analysis.source import Sample

CANARY = key_of({"instance": "10.0.0.9:8080", "pod": "svc-canary-1"})
STABLE = key_of({"instance": "10.0.0.7:8080", "pod": "svc-1"})


def increases(samples: list[Sample]) -> dict[str, float]:
    return {s.labels["pod"]: s.value for s in samples}


def test_a_pod_stale_at_one_instant_counts_only_what_it_served_since_its_last_look():
    counters = AlignedCounters()
    counters.start({CANARY: 3000.0, STABLE: 3000.0})
    # The canary's scrape timed out: its only sample is after the instant (read as 0).
    assert increases(counters.advance({CANARY: 0.0, STABLE: 3100.0})) == {"svc-1": 100.0}
    back = increases(counters.advance({CANARY: 3200.0, STABLE: 3200.0}))
    assert back == {"svc-canary-1": 200.0, "svc-1": 100.0}, "not its 3,200 requests again"


def test_a_pod_missing_from_a_look_keeps_its_last_value():
    counters = AlignedCounters()
    counters.start({CANARY: 3000.0, STABLE: 3000.0})
    assert increases(counters.advance({STABLE: 3100.0})) == {"svc-1": 100.0}
    assert increases(counters.advance({CANARY: 3150.0, STABLE: 3150.0})) == {
        "svc-canary-1": 150.0,
        "svc-1": 50.0,
    }


def test_a_pod_that_really_restarted_while_unscraped_counts_from_zero():
    counters = AlignedCounters()
    counters.start({CANARY: 3000.0})
    counters.advance({CANARY: 0.0})
    assert increases(counters.advance({CANARY: 40.0})) == {"svc-canary-1": 40.0}


def test_latest_values_missing_from_a_look_are_not_counted_again_when_they_return():
    """The same for counters read as last scraped (a comparing logs gate's requests)."""
    deltas = CounterDeltas()
    deltas.start([Sample({"pod": "c"}, 3000.0)])
    assert deltas.advance([]) == []
    assert deltas.advance([Sample({"pod": "c"}, 3100.0)]) == [Sample({"pod": "c"}, 100.0)]
