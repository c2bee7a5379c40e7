"""A sequential gate's aligned reads, summed by pod in PromQL, against a real Prometheus holding
series whose every sample the test wrote: the counts it adds up are exactly what each series
served, also when one series of a pod restarts on its own and when a pod appears mid-window.

The series are written as OpenMetrics with timestamps and backfilled by ``promtool tsdb
create-blocks-from openmetrics``, so every sample is known: each counter grows by 10 requests
(and 1 error) a scrape, every 15 s, each pod at its own offset. Linear counters are read exactly
by the gate's interpolation, so the expected totals are arithmetic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_fixtures import backfilled_prometheus

from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.evidence import SequentialGate, reference_query, roles, selector
from canaryflow.analysis.query import Subject, render
from canaryflow.analysis.source import Pinned, PrometheusSource

pytestmark = pytest.mark.slow

SCRAPE_S = 15.0
SAMPLES = 41  # 10 minutes
RESET_AT = 20  # pod a's path="/y" restarts from 0 at its 20th scrape
BORN_AT = 24  # pod b's first scrape
OFFSETS = {"a": 0.0, "b": 7.0, "c": 3.0}
FIRST, LAST = 100.0, 550.0
"""The first and last common instants read, in seconds after the first scrape."""
RATE = 10 / SCRAPE_S
ERRORS = METRICS["error-rate"].evidence["go"]


def _series(base: float) -> Iterator[str]:
    """Pod a (stable): /x and /y, /y restarting alone; pod b (stable) from scrape 24; pod c
    the canary. Every pod also counts one error a scrape on /x, except b."""

    def line(pod: str, path: str, code: str, value: float, i: int, canary: bool = False) -> str:
        labels = f'app="shop",namespace="prod",pod="{pod}",instance="{pod}",path="{path}"'
        labels += ',track="canary"' if canary else ""
        stamp = base + SCRAPE_S * i + OFFSETS[pod]
        return f'http_requests_total{{{labels},code="{code}"}} {value:g} {stamp:.3f}'

    yield "# TYPE http_requests counter"
    for i in range(SAMPLES):
        yield line("a", "/x", "200", 10 * i, i)
    for i in range(SAMPLES):
        yield line("a", "/y", "200", 10 * (i - RESET_AT if i >= RESET_AT else i), i)
    for i in range(SAMPLES):
        yield line("a", "/x", "500", i, i)
    for i in range(BORN_AT, SAMPLES):
        yield line("b", "/x", "200", 10 * (i - BORN_AT), i)
    for i in range(SAMPLES):
        yield line("c", "/x", "200", 10 * i, i, canary=True)
    for i in range(SAMPLES):
        yield line("c", "/x", "500", i, i, canary=True)
    yield "# TYPE http_request_duration_seconds histogram"
    for pod, path, first, canary in (
        ("a", "/x", 0, False),
        ("a", "/y", 0, False),
        ("b", "/x", BORN_AT, False),
        ("c", "/x", 0, True),
    ):
        for le, share in (("0.1", 5), ("0.5", 8), ("+Inf", 10)):
            labels = f'app="shop",namespace="prod",pod="{pod}",instance="{pod}",path="{path}"'
            labels += ',track="canary"' if canary else ""
            for i in range(first, SAMPLES):
                n = i - first
                if (pod, path) == ("a", "/y") and i >= RESET_AT:
                    n = i - RESET_AT  # the whole histogram of /y restarts
                stamp = base + SCRAPE_S * i + OFFSETS[pod]
                yield (
                    f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} '
                    f"{share * n} {stamp:.3f}"
                )
    yield "# EOF"


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """Prometheus serving the series above; its URL and the first scrape's time."""
    workdir: Path = tmp_path_factory.mktemp("aligned")
    base = float(int(time.time()) - 900)  # whole seconds: samples on the millisecond grid
    with backfilled_prometheus(workdir, _series(base), SCRAPE_S) as url:
        yield url, base


def judge(url: str, base: float, batched: bool, evidence=ERRORS) -> SequentialGate:
    """A gate (error-rate unless said) looking every 10 s at common instants FIRST..LAST, its
    reads answered by Prometheus, in one query per look (``batched``) or one request per read."""
    source = PrometheusSource(url, timeout=30)
    selectors = {
        (track, role): render(selector(evidence, role), Subject("shop", "prod"), track, 60.0)
        for track in ("canary", "stable")
        for role in roles(evidence)
    }
    gate = SequentialGate("gate", evidence, 0.2, 0.05, 1, grace_s=30.0, scrape_s=SCRAPE_S)
    gate.start_at(base + FIRST)
    look = base + FIRST + gate.lag_s
    while look <= base + LAST + gate.lag_s + 1e-6:
        reads = gate.plan(selectors, look)
        answers: dict[str, object] = {
            key: source.series(read.query, read.at) for key, read in reads.items() if read.series
        }
        instant = {key: read for key, read in reads.items() if not read.series}
        if batched:
            pinned = {k: Pinned(r.query, r.selector or "", r.at) for k, r in instant.items()}
            answers.update(source.vectors(pinned))
        else:
            answers.update({key: source.vector(r.query, r.at) for key, r in instant.items()})
        reference = None
        if gate.needs_reference:  # stable's buckets before the window: where to cut (as run)
            stable = selectors[("stable", "buckets")]
            reference = source.vector(reference_query(evidence, stable, "600s"), base + FIRST)
        gate.observe_reads(answers, look, reference, elapsed=look - base - FIRST)
        look += 10.0
    assert gate.aligned_at == pytest.approx(base + LAST)
    return gate


SPAN = LAST - FIRST
BORN_S = BORN_AT * SCRAPE_S + OFFSETS["b"]
EXPECTED = {
    # requests: /x and /y of pod a (the /y restart loses the 10 of the scrape it restarted
    # in, as increase() would count it), its errors, and pod b from its first scrape on.
    "stable_exposure": RATE * SPAN + (RATE * SPAN - 10) + SPAN / SCRAPE_S + RATE * (LAST - BORN_S),
    "stable_events": SPAN / SCRAPE_S,
    "canary_exposure": RATE * SPAN + SPAN / SCRAPE_S,
    "canary_events": SPAN / SCRAPE_S,
}


@pytest.mark.parametrize("batched", [True, False], ids=["one query per look", "one per read"])
def test_a_series_restarting_alone_and_a_pod_born_mid_window_are_counted_as_served(
    backfilled, batched
):
    test = judge(*backfilled, batched=batched).tests[None]
    counted = {name: getattr(test, name) for name in EXPECTED}
    assert counted == pytest.approx(EXPECTED, abs=1e-6)


LATENCY = METRICS["latency-p99"].evidence["go"]


def test_a_histogram_restarting_alone_leaves_its_pod_out_of_one_look_never_counts_it_whole(
    backfilled,
):
    gate = judge(*backfilled, batched=True, evidence=LATENCY)
    assert gate.tests, "stable's buckets before the window set the cuts"
    # Requests served, each series on its own (+Inf buckets): pod a's /x, its /y less the
    # scrape it restarted in, pod b from its first scrape.
    served = RATE * SPAN + (RATE * SPAN - 10) + RATE * (LAST - BORN_S)
    one_look_of_a = 2 * RATE * 10 + 10  # both series over a 10 s look, and /y's lost scrape
    for test in gate.tests.values():
        assert served - one_look_of_a <= test.stable_exposure <= served
        assert test.canary_exposure == pytest.approx(RATE * SPAN)


def test_the_stable_fleet_is_every_pod_without_the_canary_or_baseline_track(backfilled):
    """Against a fresh baseline the over-dispersion is learnt from ``track!~"canary|baseline"``
    (``query.FLEET``): Prometheus reads a missing track label as empty, so stable's pods,
    which carry none, are the fleet, and the canary is not."""
    from canaryflow.analysis.alignment import value_query
    from canaryflow.analysis.query import FLEET

    url, base = backfilled
    source = PrometheusSource(url, timeout=30)
    subject = Subject("shop", "prod", baseline=True)
    at = base + LAST

    def pods(track: str) -> set[str]:
        query = value_query(render(ERRORS.exposure, subject, track, 30.0), by_le=False)
        return {sample.labels["pod"] for sample in source.vector(query, at)}

    assert pods(FLEET) == {"a", "b"}
    assert pods("stable") == set(), "the reference is the baseline, which has no pods here"
    assert pods("canary") == {"c"}
