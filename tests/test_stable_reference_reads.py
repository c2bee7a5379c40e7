"""Against the stable fleet itself, a histogram gate reads a large fleet's buckets at its cuts.

With ``baseline: stable`` the fleet is the reference: every look reads every pod's buckets at
the common instant and a scrape later, which on a fleet of hundreds of pods was nearly all a
round asked of Prometheus. The test only uses the reference's requests above each cut and in
all (the cut's bucket and ``+Inf``, summed, and per pod for the over-dispersion), so once the
cuts are set a fleet of more than ``FLEET_SAMPLE_PODS`` pods is read at the cuts and ``+Inf``
only (``SequentialGate.reference_les``). The evidence must not change: the same rounds judged
with every bucket read say the same, number for number, through a series that restarts on its
own and a pod that goes away mid-window; and a fleet of at most ``FLEET_SAMPLE_PODS`` pods is
read exactly as before.

Lumpy series (each pod's requests per scrape and their split over the buckets drawn at random),
backfilled by ``promtool tsdb create-blocks-from openmetrics`` and served by a Prometheus of
our own, as in ``test_fleet_reads_prometheus``.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_fixtures import RecordingBatches, backfilled_prometheus

from canaryflow.analysis.alignment import AlignedCounters
from canaryflow.analysis.catalogue import Buckets
from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.fleet_sample import FLEET_SAMPLE_PODS
from canaryflow.analysis.run import COUNT_READ, AnalysisRun
from canaryflow.analysis.source import MeasurementError, PrometheusSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.cost import BatchingSource
from canaryflow.bench.replay import ReplayClock

pytestmark = pytest.mark.slow

SCRAPE_S = 15.0
SCRAPES = 41  # 10 minutes
LES = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
LARGE = FLEET_SAMPLE_PODS + 4
SPEC = {"interval": "10s", "queryWindow": "60s", "gates": [{"metric": "latency-p99"}]}
ROUNDS = 8
START_S = 300.0
"""The rounds' clock starts this far into the data (the window then, stable's history before)."""
RESTART_SCRAPE = 22
"""Stable pod 1's series of path /a restarts on its own at this scrape (inside the window)."""
GONE_SCRAPE = 23
"""Stable pod 2 is last scraped here: it went away mid-window."""


def _series(base: float, stable_pods: int) -> Iterator[str]:
    """Each pod serves 5 to 60 requests a scrape on two paths, spread over the buckets with a
    tail that changes from scrape to scrape (a lumpy pod), each pod at its own offset."""
    draw = random.Random(11)
    pods = [(f"shop-{i}", None) for i in range(stable_pods)] + [("shop-canary-0", "canary")]
    yield "# TYPE http_request_duration_seconds histogram"
    for index, (pod, track) in enumerate(pods):
        for path in ("/a", "/b"):
            labels = f'app="shop",namespace="prod",pod="{pod}",instance="{pod}",path="{path}"'
            labels += f',track="{track}"' if track else ""
            counts = [0] * len(LES)
            lines: dict[str, list[str]] = {le: [] for le in LES}
            for i in range(SCRAPES):
                if pod == "shop-2" and i > GONE_SCRAPE:
                    break
                if pod == "shop-1" and path == "/a" and i == RESTART_SCRAPE:
                    counts = [0] * len(LES)
                tail = draw.uniform(0.5, 3.0)  # this scrape's share of slow requests
                for _ in range(draw.randint(5, 60)):
                    slot = min(len(LES) - 1, int(draw.expovariate(tail)))
                    for k in range(slot, len(LES)):
                        counts[k] += 1
                stamp = base + SCRAPE_S * i + (index * 0.53) % SCRAPE_S
                for le, count in zip(LES, counts, strict=True):
                    lines[le].append(
                        f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} '
                        f"{count} {stamp:.3f}"
                    )
            for le in LES:
                yield from lines[le]
    yield "# EOF"


def _serve(tmp_path_factory, stable_pods: int) -> Iterator[tuple[str, float]]:
    workdir: Path = tmp_path_factory.mktemp(f"stable-reference-{stable_pods}")
    base = float(int(time.time()) - 900)
    with backfilled_prometheus(workdir, _series(base, stable_pods), SCRAPE_S) as url:
        yield url, base


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """A stable fleet of ``FLEET_SAMPLE_PODS`` + 4 pods beside one canary pod."""
    yield from _serve(tmp_path_factory, LARGE)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """A stable fleet of exactly ``FLEET_SAMPLE_PODS`` pods."""
    yield from _serve(tmp_path_factory, FLEET_SAMPLE_PODS)


def _rounds(url: str, base: float) -> tuple[list[list[tuple]], RecordingBatches, list[float]]:
    """``ROUNDS`` rounds of latency-p99 against the stable fleet (no fresh baseline):
    each round's judgements, the answers, and the reference's requests so far after each."""
    clock = ReplayClock(base + START_S)
    source = RecordingBatches(PrometheusSource(url, timeout=30), clock)
    spec = AnalysisSpec.model_validate(SPEC)
    run = AnalysisRun(spec, source, "shop", "prod", clock=clock)
    run.concurrent = False
    window_started = clock.now()
    judged, reference = [], []
    for round_no in range(1, ROUNDS + 1):
        clock.sleep(10.0)
        source.answers.append({})
        judged.append(
            [
                (m.outcome.value, m.reason, sorted((m.evidence.detail or {}).items()))
                for m in run.measure(round_no, window_started)
            ]
        )
        gate = run.sequential_evidence["latency-p99"]
        reference.append(gate.test.stable_exposure if gate.tests else 0.0)
    return judged, source, reference


def _reference_les(answers: dict) -> set[str]:
    return {
        sample.labels["le"]
        for key, samples in answers.items()
        if key.startswith("stable/buckets/now/v")
        for sample in samples
    }


def _reference_numbers(answers: dict) -> int:
    return sum(len(v) for k, v in answers.items() if k.startswith("stable/buckets/now/v"))


def test_a_large_stable_reference_is_read_at_the_cuts_and_inf_only_once_they_are_set(large):
    judged, source, _ = _rounds(*large)
    cuts = {le for le in _reference_les(source.answers[-1]) if le != "+Inf"}
    assert cuts and len(cuts) < len(LES) - 1, "the cuts are a few of the layout's bounds"
    assert _reference_les(source.answers[0]) == set(LES), "before the cuts: every bucket"
    for answers in source.answers[2:]:  # the first look learns the canary's layout
        assert _reference_les(answers) == cuts | {"+Inf"}
    # Every pod's cut buckets and +Inf at two instants, path by path: (cuts + 1) / 7 of the
    # numbers a look read before.
    assert _reference_numbers(source.answers[-1]) < _reference_numbers(source.answers[0])
    assert _reference_numbers(source.answers[-1]) <= 2 * LARGE * 2 * (len(cuts) + 1)
    # The canary's buckets are still read in full: its layout is what the cuts are checked on.
    assert {s.labels["le"] for s in source.answers[-1]["canary/buckets/now/v1"]} == set(LES)
    assert judged[-1][0][0] in ("pass", "collecting")


def test_reading_the_reference_at_the_cuts_judges_as_every_bucket_through_restart_and_gone_pod(
    large, monkeypatch
):
    narrowed, _, reference = _rounds(*large)
    monkeypatch.setattr(SequentialGate, "reference_les", lambda self: None)
    every_bucket, source, reference_whole = _rounds(*large)
    assert _reference_les(source.answers[-1]) == set(LES)
    assert narrowed == every_bucket
    assert reference == reference_whole
    # A pod gone and a series restarted never take requests back from the reference.
    assert all(b >= a for a, b in itertools.pairwise(reference))
    assert reference[-1] > reference[1] > 0


def test_a_stable_fleet_of_at_most_the_sample_size_is_read_whole_as_before(small):
    _, source, _ = _rounds(*small)
    for answers in source.answers:
        assert _reference_les(answers) == set(LES)


def _values(pod: str, counts: dict[str, float]) -> dict:
    labels = {"instance": pod, "pod": pod}
    return {tuple(sorted({**labels, "le": le}.items())): n for le, n in counts.items()}


def test_buckets_read_again_after_narrowed_looks_start_from_their_value_then():
    """A look reading buckets the previous ones did not (the reference narrowed, then whole
    again: the fleet shrank) starts those buckets from their value now, rather than counting
    every request since they were last read as this look's; the cuts' go on."""
    gate = SequentialGate("p99", Buckets("h_bucket{x}", 0.99), 0.25, 0.01, 20)
    counters = AlignedCounters()
    counters.start(_values("p", {"0.1": 10, "0.5": 20, "+Inf": 30}))
    narrowed = _values("p", {"0.5": 25, "+Inf": 40})
    gate._widened_reference(counters, narrowed)
    assert {s.labels["le"]: s.value for s in counters.advance(narrowed)} == {"0.5": 5, "+Inf": 10}
    whole = _values("p", {"0.1": 90, "0.5": 30, "+Inf": 50})
    gate._widened_reference(counters, whole)
    gained = {s.labels["le"]: s.value for s in counters.advance(whole)}
    assert gained == {"0.1": 0.0, "0.5": 5.0, "+Inf": 10.0}


class Counting(BatchingSource):
    """Counts the batched requests and notes which gates each one read for."""

    def __init__(self, source: PrometheusSource, clock: ReplayClock, fail: bool = False):
        super().__init__(source, clock)
        self.fail = fail
        self.batches: list[set[str]] = []

    def vectors(self, reads):
        self.batches.append({key.split("/", 1)[0] for key in reads})
        if self.fail:
            raise MeasurementError("Prometheus rejected the query: too many samples")
        return super().vectors(reads)


def _two_gates(url: str, base: float, fail: bool = False) -> tuple[Counting, list]:
    clock = ReplayClock(base + START_S)
    source = Counting(PrometheusSource(url, timeout=30), clock, fail)
    spec = AnalysisSpec.model_validate(
        {
            **SPEC,
            "gates": [
                {"metric": "latency-p99"},
                {"metric": "latency-p99", "name": "latency-again", "sequential": {}},
            ],
        }
    )
    run = AnalysisRun(spec, source, "shop", "prod", clock=clock)
    run.concurrent = False
    measured = []
    for round_no in (1, 2):
        clock.sleep(10.0)
        source.batches.append(set())  # a marker between rounds
        measured = run.measure(round_no, clock.now() - 10.0 * round_no)
    return source, measured


def test_the_gates_of_a_round_share_one_request_per_instant(small):
    source, measured = _two_gates(*small)
    last = source.batches[source.batches.index(set(), 1) + 1 :]
    gates = [batch - {COUNT_READ} for batch in last]
    assert last and all(read == {"latency-p99", "latency-again"} for read in gates)
    assert len(last) == 2, "the compared tracks at the common instant and a scrape later"
    assert [COUNT_READ in batch for batch in last] == [False, True], (
        "the canary's request count rides along with the later instant's reads"
    )
    assert {m.outcome.value for m in measured} <= {"pass", "collecting"}
    counted = [
        {k: v for k, v in (m.evidence.detail or {}).items() if k.endswith(("_events", "_exposure"))}
        for m in measured
    ]
    assert counted[0] and counted[0] == counted[1], "each gate judged the same reads"


def test_a_shared_request_that_fails_is_each_gates_error(small):
    _, measured = _two_gates(*small, fail=True)
    assert [m.outcome.value for m in measured] == ["error", "error"]
    assert all("too many samples" in m.reason for m in measured)
