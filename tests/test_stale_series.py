"""A pod whose scrape failed is not counted again from 0 when it comes back.

Prometheus marks every series of a target whose scrape failed stale ("Staleness and PromQL",
Robust Perception: "If a scrape fails, for whatever reason, then all time series from the
target are marked stale"), and an instant query skips a stale series until the next good
scrape. A look whose instant falls in that gap reads the pod as absent, or as 0 (its only
sample is after the instant: read as born after it). The pod's counter did not restart: when
it is back, only its increase since the last look it was seen at is new evidence."""

from __future__ import annotations

import time

import pytest
from http_stub import LoopbackServer, QuietHandler

from canaryflow.analysis.alignment import AlignedCounters, key_of
from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.evidence import CounterDeltas, SequentialGate, roles, selector
from canaryflow.analysis.query import Subject, render
from canaryflow.analysis.source import PrometheusSource, Sample
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import PrometheusServer

EVIDENCE = METRICS["error-rate"].evidence["go"]

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


@pytest.mark.slow
def test_a_canary_whose_scrapes_fail_for_seconds_is_counted_by_what_it_served(tmp_path):
    """A real Prometheus scraping every second: the canary's /metrics answers 500 for 3 s (a
    timeout, a long GC), so its series are stale and a look's instant falls in the gap. The
    gate's count of canary requests stays what the canary served while it was judged, never
    its whole counter again (it starts at 10,000 here, so a double count cannot hide)."""
    canary = LoopbackServer(Counter)
    stable = LoopbackServer(Counter)
    Counter.failing.clear()
    port = canary.server.server_address[1]
    try:
        with ProcessGroup(tmp_path) as group:
            targets = [
                (canary.address, {"app": "shop", "namespace": "prod", "track": "canary"}),
                (stable.address, {"app": "shop", "namespace": "prod"}),
            ]
            prometheus = PrometheusServer(group, tmp_path / "prometheus", 1.0).start(targets)
            prometheus.wait_targets_up(2, timeout_s=20)
            source = PrometheusSource(prometheus.url)
            gate = SequentialGate("error-rate", EVIDENCE, 0.2, 0.01, 1, scrape_s=1.0)
            subject = Subject("shop", "prod")
            selectors = {
                (track, role): render(selector(EVIDENCE, role), subject, track, 20.0)
                for track in gate.tracks
                for role in roles(EVIDENCE)
            }
            started = time.time()
            served_before = Counter.served[port]
            for look in range(14):
                if look == 5:
                    Counter.failing.add(port)
                if look == 8:
                    Counter.failing.discard(port)
                time.sleep(max(0.0, started + look + 1 - time.time()))
                now = time.time()
                answers = {
                    key: (source.series if read.series else source.vector)(read.query, read.at)
                    for key, read in gate.plan(selectors, now).items()
                }
                gate.observe_reads(answers, now, elapsed=now - started)
            served = Counter.served[port] - served_before
            prometheus.stop()
    finally:
        canary.stop()
        stable.stop()
    assert gate.test.canary_exposure > 0, "the canary was counted at all"
    assert gate.test.canary_exposure <= served + Counter.STEP, (gate.test.canary_exposure, served)


class Counter(QuietHandler):
    """A pod's /metrics: 10 more requests (1 an error) at every scrape, from 10,000; a port in
    ``failing`` answers 500, as a scrape that timed out."""

    STEP = 10
    served: dict[int, int] = {}
    failing: set[int] = set()

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if port in Counter.failing:
            self.reply(500, b"busy")
            return
        total = Counter.served.setdefault(port, 10_000) + Counter.STEP
        Counter.served[port] = total
        body = (
            f'http_requests_total{{code="200"}} {total - total // 10}\n'
            f'http_requests_total{{code="500"}} {total // 10}\n'
        )
        self.reply(200, body.encode(), "text/plain; version=0.0.4")
