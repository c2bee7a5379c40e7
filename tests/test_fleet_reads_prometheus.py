"""Against a fresh baseline, a histogram gate reads the stable fleet's buckets only at its cuts.

The fleet's pods are read for the over-dispersion of requests slower than each cut
(``evidence.SequentialGate._add_dispersion``): the cut's bucket and ``+Inf`` per pod. Once the
cuts are set from stable's history, the other buckets (most of a layout) are not read, which is
most of what a round asks Prometheus of a large fleet. The evidence must not change: the same
rounds judged with every bucket read say the same, number for number.

The series are lumpy on purpose (each pod's requests per scrape and their split over the
buckets drawn at random), so the fleet's over-dispersion is well above 1 and a unit read wrong
would show in it. They are written as OpenMetrics with timestamps and backfilled by
``promtool tsdb create-blocks-from openmetrics``, then served by a Prometheus of our own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_fixtures import RecordingBatches, backfilled_prometheus

from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.query import BASELINE, FLEET, Subject
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import PrometheusSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.replay import ReplayClock

pytestmark = pytest.mark.slow

SCRAPE_S = 15.0
SCRAPES = 41  # 10 minutes
LES = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
FLEET_PODS = 6
SPEC = {"interval": "10s", "queryWindow": "60s", "gates": [{"metric": "latency-p99"}]}
ROUNDS = 8


def _pods() -> list[tuple[str, str | None]]:
    """(pod, track label): the fleet's pods carry none, as a stock fleet's do."""
    fleet = [(f"shop-stable-{i}", None) for i in range(FLEET_PODS)]
    return [*fleet, ("shop-canary-0", "canary"), (f"shop-{BASELINE}-0", BASELINE)]


def _series(base: float) -> Iterator[str]:
    """Each pod serves 5 to 60 requests a scrape, spread over the buckets with a tail that
    changes from scrape to scrape (a lumpy pod), on two paths, each pod at its own offset."""
    draw = random.Random(7)
    yield "# TYPE http_request_duration_seconds histogram"
    for index, (pod, track) in enumerate(_pods()):
        for path in ("/a", "/b"):
            labels = f'app="shop",namespace="prod",pod="{pod}",instance="{pod}",path="{path}"'
            labels += f',track="{track}"' if track else ""
            counts = [0] * len(LES)
            lines: dict[str, list[str]] = {le: [] for le in LES}
            for i in range(SCRAPES):
                tail = draw.uniform(0.5, 3.0)  # this scrape's share of slow requests
                for _ in range(draw.randint(5, 60)):
                    slot = min(len(LES) - 1, int(draw.expovariate(tail)))
                    for k in range(slot, len(LES)):
                        counts[k] += 1
                stamp = base + SCRAPE_S * i + index * 1.7
                for le, count in zip(LES, counts, strict=True):
                    lines[le].append(
                        f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} '
                        f"{count} {stamp:.3f}"
                    )
            for le in LES:
                yield from lines[le]
    yield "# EOF"


@pytest.fixture(scope="module")
def lumpy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """Prometheus serving the series above; its URL and the first scrape's time."""
    workdir: Path = tmp_path_factory.mktemp("fleet-reads")
    base = float(int(time.time()) - 900)
    with backfilled_prometheus(workdir, _series(base), SCRAPE_S) as url:
        yield url, base


def _rounds(url: str, base: float) -> tuple[list[list[tuple]], RecordingBatches, SequentialGate]:
    """``ROUNDS`` rounds of latency-p99 against the one-pod baseline, five minutes into the
    data (stable's history before the window sets the cuts): each round's judgements."""
    clock = ReplayClock(base + 300.0)
    source = RecordingBatches(PrometheusSource(url, timeout=30), clock)
    subject = Subject("shop", "prod", baseline=True)
    spec = AnalysisSpec.model_validate(SPEC)
    run = AnalysisRun(spec, source, "shop", "prod", clock=clock, subject=subject)
    run.concurrent = False
    window_started = clock.now()
    judged = []
    for round_no in range(1, ROUNDS + 1):
        clock.sleep(10.0)
        source.answers.append({})
        judged.append(
            [
                (m.outcome.value, m.reason, sorted((m.evidence.detail or {}).items()))
                for m in run.measure(round_no, window_started)
            ]
        )
    return judged, source, run.sequential_evidence["latency-p99"]


def _fleet_les(answers: dict) -> set[str]:
    return {
        sample.labels["le"]
        for key, samples in answers.items()
        if key.startswith(f"{FLEET}/buckets/now/v")
        for sample in samples
    }


def test_once_the_cuts_are_set_the_fleets_buckets_are_read_at_the_cuts_and_inf_only(lumpy):
    judged, source, gate = _rounds(*lumpy)
    assert gate.tests, "stable's buckets before the window set the cuts"
    cuts = {f"{bound:g}" for bound in gate.tests}
    assert len(cuts) < len(LES) - 1, "the cuts are a few of the layout's bounds"
    assert _fleet_les(source.answers[0]) == set(LES), "before the cuts, every bucket"
    for answers in source.answers[1:]:
        assert _fleet_les(answers) == cuts | {"+Inf"}
    # The compared pods are still read in full: their layouts are compared bound by bound.
    compared = {s.labels["le"] for s in source.answers[-1]["stable/buckets/now/v1"]}
    assert compared == set(LES)
    assert judged[-1][0][0] in ("pass", "collecting")


def test_the_fleet_read_at_the_cuts_teaches_the_same_evidence_as_every_bucket_read(
    lumpy, monkeypatch
):
    narrowed, _, gate = _rounds(*lumpy)
    assert gate.tests[gate.boundary].dispersion > 1.5, "a lumpy fleet: phi well above 1"
    monkeypatch.setattr(SequentialGate, "fleet_les", lambda self: None)
    every_bucket, source, _ = _rounds(*lumpy)
    assert _fleet_les(source.answers[-1]) == set(LES)
    assert narrowed == every_bucket
