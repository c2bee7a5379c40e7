"""Against a fresh baseline a large stable fleet is read through a bounded sample of its pods.

The fleet is read only for the over-dispersion (``analysis.fleet_sample``): at most
``FLEET_SAMPLE_PODS`` of its pods, chosen by a hash of their names after a cheap discovery
read, the same round after round, re-chosen when a sampled pod is gone. The Prometheus tests
backfill a 200-pod fleet (``promtool tsdb create-blocks-from openmetrics``) and serve it from a
Prometheus of our own, as ``test_fleet_reads_prometheus`` does, then count the pods every
fleet read selects there. A sampled pod goes away, another restarts, and the pod that joins
the sample must start at its value then (counted from 0 its whole life would be one unit's
requests, and the over-dispersion would leap).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_fixtures import backfilled_prometheus

from canaryflow.analysis import carried
from canaryflow.analysis.alignment import AlignedCounters, key_of
from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.fleet_sample import (
    FLEET_DISCOVERY_ROUNDS,
    FLEET_SAMPLE_PODS,
    FleetSample,
    choose,
    discovery_query,
    ranked,
)
from canaryflow.analysis.query import BASELINE, FLEET, Subject, pod_matcher, render
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import PrometheusSource, Sample
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.cost import BatchingSource
from canaryflow.bench.replay import ReplayClock

FLEET_PODS = 200
SCRAPE_S = 15.0
SECONDS = 900.0
START_S = 300.0
"""Where the rounds begin in the data: stable's ten minutes of history before them are not
all there (five), which the history read takes as it finds it."""
GONE_S = START_S + 30.0
"""When a sampled pod's series end (backfilled data has no staleness markers: instant queries
see its last sample for 5 minutes more, then it is gone)."""
RESTART_S = START_S + 100.0
"""When another sampled pod's counters start again from 0."""
ROUNDS = 48
SPEC = {"interval": "10s", "queryWindow": "60s", "gates": [{"metric": "error-rate"}]}
NAMES = [f"shop-{i:03d}-x{i % 7}" for i in range(FLEET_PODS)]
"""The fleet's pod names (a stable pod's name may hold any DNS character, dots included)."""


# The sample's rules, without Prometheus --------------------------------------------------------


def _gate() -> SequentialGate:
    return SequentialGate(
        "error-rate", METRICS["error-rate"].evidence_for("go"), 0.2, 0.01, 0, fleet=True
    )


def test_a_fleet_of_at_most_k_pods_is_read_whole_and_a_larger_one_by_k_pods_by_name_hash():
    assert choose(NAMES[:FLEET_SAMPLE_PODS]) is None, "no matcher: read as before"
    sample = choose(NAMES)
    assert sample is not None and len(sample) == FLEET_SAMPLE_PODS
    assert choose(list(reversed(NAMES))) == sample, "the order pods are listed in is no matter"
    assert sample == tuple(ranked(NAMES)[:FLEET_SAMPLE_PODS])
    joined = [*NAMES, "shop-new-0", "shop-new-1"]
    assert choose(joined, sample) == sample, "a pod joining the fleet does not move the sample"
    gone = sample[3]
    again = choose([n for n in joined if n != gone], sample)
    assert again is not None and gone not in again and len(again) == FLEET_SAMPLE_PODS
    assert len(set(again) - set(sample)) == 1, "only the gone pod is replaced"


def test_the_sample_is_selected_by_an_anchored_escaped_pod_matcher_on_the_fleet_only():
    subject = Subject("shop", "prod", baseline=True, fleet_pods=("shop-a.b", "shop-c"))
    assert subject.selector(FLEET).endswith(r',pod=~"^(shop-a\\.b|shop-c)$"')
    assert "pod=~" not in subject.selector("stable") + subject.selector("canary")
    assert subject.pods(FLEET).endswith(pod_matcher(("shop-a.b", "shop-c")))
    assert "^(" not in Subject("shop", "prod", fleet_pods=("shop-a",)).selector(FLEET)


def test_discovery_reads_one_series_per_pod_of_a_histogram_at_its_inf_bucket():
    query = discovery_query([('h_bucket{app="shop"}', True), ('c_total{app="shop"}', False)])
    assert query == (
        'group by (pod) (h_bucket{app="shop",le="+Inf"}) or group by (pod) (c_total{app="shop"})'
    )


def test_a_discovery_that_fails_keeps_the_sample_and_the_next_is_some_rounds_later():
    sample = FleetSample()
    assert sample.due
    sample.learn([Sample({"pod": name}, 1.0) for name in NAMES])
    chosen = sample.pods
    for _ in range(FLEET_DISCOVERY_ROUNDS - 1):
        sample.tick()
        assert not sample.due
    sample.tick()
    assert sample.due
    sample.learn(RuntimeError("Prometheus down"))
    assert sample.pods == chosen and sample.due


def test_pods_leaving_the_sample_are_forgotten_and_pods_joining_it_start_at_their_value():
    gate = _gate()
    old = choose(NAMES)
    assert old is not None
    for role in ("events", "exposure"):
        counters = gate.counters.setdefault((FLEET, role), AlignedCounters())
        counters.start({key_of({"instance": pod, "pod": pod}): 5.0 for pod in old})
    gate.read_fleet(frozenset(old), frozenset(NAMES))
    gate.fleet_joining.clear()  # the pods read from the start: none joins
    new = choose([n for n in NAMES if n != old[0]], old)
    assert new is not None
    gate.read_fleet(frozenset(new), frozenset(NAMES) - {old[0]})
    held = {dict(k)["pod"] for k in gate.counters[(FLEET, "exposure")].last or {}}
    assert held == set(old) - {old[0]}, "the gone pod's counters leave"
    assert gate.fleet_joining == set(new) - set(old)


def test_carried_fleet_counters_stay_version_2_and_are_taken_as_what_the_last_window_read():
    """A state holding every pod's counters (written before the sample, or of a small fleet)
    resumes, the pods outside the sample forgotten; a sampled state resumed where the fleet is
    read whole again (it shrank) takes the other pods in at their value, not from 0."""
    every = NAMES[:30]
    gate = _gate()
    for track, pods in (("canary", ["c"]), ("stable", ["b"]), (FLEET, every)):
        for role in ("events", "exposure"):
            counters = gate.counters.setdefault((track, role), AlignedCounters())
            counters.start({key_of({"instance": p, "pod": p}): 5.0 for p in pods})
    gate.aligned_at = gate.unit_since = 1_000.0
    state = carried._gate_state(gate)
    assert 2 in carried.READABLE and state.counters  # the counters' format is version 2's
    resumed = _gate()
    carried.resume(resumed, state)
    assert resumed.fleet_pods == frozenset(every)
    sample = choose(every)
    assert sample is not None
    resumed.read_fleet(frozenset(sample), frozenset(every))
    held = {dict(k)["pod"] for k in resumed.counters[(FLEET, "exposure")].last or {}}
    assert held == set(sample) and not resumed.fleet_joining
    again = _gate()
    carried.resume(again, carried._gate_state(resumed))
    shrunk = frozenset([*sample[:15], "shop-new-0"])
    again.read_fleet(None, shrunk)
    assert again.fleet_joining == {"shop-new-0"}


# A 200-pod fleet in Prometheus -----------------------------------------------------------------


def _series(base: float, gone: str, restarted: str) -> Iterator[str]:
    """Requests of every pod by code, Poisson-ish per scrape, each pod at its own offset;
    ``gone``'s series end at ``GONE_S``, ``restarted``'s counters start again at ``RESTART_S``."""
    draw = random.Random(11)
    pods = [(name, None) for name in NAMES]
    pods += [("shop-canary-0", "canary"), (f"shop-{BASELINE}-0", BASELINE)]
    yield "# TYPE http_requests counter"
    for pod, track in pods:
        offset = draw.uniform(0, SCRAPE_S)
        labels = f'app="shop",namespace="prod",pod="{pod}",instance="{pod}"'
        labels += f',track="{track}"' if track else ""
        rows: dict[str, list[str]] = {"200": [], "500": []}
        ok = bad = 0
        t = offset
        while t < SECONDS:
            if pod == restarted and t - SCRAPE_S < RESTART_S <= t:
                ok = bad = 0
            ok += max(0, round(draw.gauss(300, 20)))
            bad += max(0, round(draw.gauss(3, 1.5)))
            if not (pod == gone and t > GONE_S):
                for code, count in (("200", ok), ("500", bad)):
                    series = f'http_requests_total{{{labels},code="{code}"}}'
                    rows[code].append(f"{series} {count} {base + t:.3f}")
            t += SCRAPE_S
        for lines in rows.values():
            yield from lines
    yield "# EOF"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float, tuple]]:
    """Prometheus serving the fleet; its URL, the data's start and the sample at the start."""
    workdir: Path = tmp_path_factory.mktemp("fleet-sample")
    base = float(int(time.time()) - SECONDS - 600)
    sample = choose(NAMES)
    assert sample is not None
    with backfilled_prometheus(workdir, _series(base, sample[0], sample[1]), SCRAPE_S) as url:
        yield url, base, sample


FLEET_TRACK = 'track!~"canary|baseline"'
"""How the fleet's selection begins (``Subject.selector``)."""


class Reads(BatchingSource):
    """Every query a round asks, with its instant, besides the batched reads."""

    def __init__(self, source: PrometheusSource, clock: ReplayClock):
        super().__init__(source, clock)
        self.asked: list[tuple[str, float]] = []
        self.history_pods: set[str] = set()

    def vector(self, query, at=None):
        self.asked.append((query, self.clock.now() if at is None else at))
        return super().vector(query, at)

    def series(self, query, at=None):
        found = super().series(query, at)
        if FLEET_TRACK in query:
            self.history_pods |= {s.labels.get("pod", "") for s in found}
        return found


def _run(url: str, base: float):
    clock = ReplayClock(base + START_S)
    source = Reads(PrometheusSource(url, timeout=30), clock)
    subject = Subject("shop", "prod", baseline=True)
    run = AnalysisRun(
        AnalysisSpec.model_validate(SPEC), source, "shop", "prod", clock=clock, subject=subject
    )
    run.concurrent = False
    return run, source, clock


def _selected(url: str, selector: str, at: float) -> set[str]:
    """The pods ``selector`` selects in Prometheus at ``at``."""
    found = PrometheusSource(url, timeout=30).vector(f"group by (pod) ({selector})", at)
    return {s.labels.get("pod", "") for s in found}


@pytest.mark.slow
def test_a_200_pod_fleets_rounds_read_at_most_k_fleet_pods(fleet):
    url, base, sample = fleet
    run, source, clock = _run(url, base)
    window_started = clock.now()
    outcomes = []
    for round_no in range(1, 9):
        clock.sleep(10.0)
        outcomes += [m.outcome.value for m in run.measure(round_no, window_started)]
    assert outcomes[-1] == "pass", outcomes
    fleet_reads = [  # each read's key within its gate (a round's gates share a request)
        (k.split("/", 1)[1], read) for k, read in source.pinned if FLEET_TRACK in read.selector
    ]
    assert any(k.startswith(f"{FLEET}/") for k, _ in fleet_reads), "read beside the baseline"
    assert any(k.startswith("scrape-fleet/") for k, _ in fleet_reads), "probed for the scrape"
    read_pods: set[str] = set()
    for key, read in fleet_reads:
        pods = _selected(url, read.selector, read.at)
        assert len(pods) <= FLEET_SAMPLE_PODS, (key, len(pods))
        read_pods |= pods
    assert read_pods == set(sample), "the sample's pods, and only they"
    assert source.history_pods and source.history_pods <= set(sample), "the history too"
    discoveries = [q for q, _ in source.asked if q.startswith("group by (pod)")]
    assert len(discoveries) == 2, "rounds 1 and 7 of 8: not every look"


@pytest.mark.slow
def test_the_sample_stays_across_rounds_and_is_rechosen_when_a_sampled_pod_is_gone(fleet):
    url, base, sample = fleet
    gone, restarted = sample[0], sample[1]
    run, _, clock = _run(url, base)
    window_started = clock.now()
    chosen, largest, outcomes = [], [], []
    units: list[float] = []
    for round_no in range(1, ROUNDS + 1):
        clock.sleep(10.0)
        (judged,) = run.measure(round_no, window_started)
        outcomes.append(judged.outcome.value)
        chosen.append(run.fleet_sample.pods)
        largest.append(max(units, default=0.0))
        units.clear()
        if round_no == 1:  # the fleet's units as they are learnt from, round by round
            test = run.sequential_evidence["error-rate"].tests[None]
            learn = test.add_units

            def noted(found, seconds=None, learn=learn):
                units.extend(n for _, n in found)
                return learn(found, seconds)

            test.add_units = noted  # type: ignore[method-assign]
    # Gone from instant queries 5 minutes after its last sample (no staleness marker in
    # backfilled data), then replaced at the next discovery.
    gone_round = next(i for i, pods in enumerate(chosen) if gone not in (pods or ()))
    assert all(pods == sample for pods in chosen[:gone_round]), "the same sample until then"
    assert clock.now() > base + GONE_S + 300
    replaced = chosen[gone_round]
    assert replaced is not None and len(replaced) == FLEET_SAMPLE_PODS
    assert set(sample) - set(replaced) == {gone} and restarted in replaced
    assert all(pods == replaced for pods in chosen[gone_round:]), "and the new one after"
    gate = run.sequential_evidence["error-rate"]
    held = {dict(k)["pod"] for k in gate.counters[(FLEET, "exposure")].last or {}}
    assert held == set(replaced), "the gone pod's counters left, the new one's joined"
    assert not gate.fleet_joining
    # The joining pod started at its value: counted from 0, its ten minutes would be one
    # unit's requests beside the other pods' fifteen seconds (about 300 requests a scrape).
    assert 0 < max(largest[1:gone_round]) < 1_000 and max(largest[gone_round:]) < 1_000, largest
    assert "fail" not in outcomes and outcomes[-1] == "pass", outcomes


def test_the_offline_replay_answers_the_discovery_and_reads_only_the_sampled_pods():
    """The replay's source (``bench.streams.RecordedSource``) answers as Prometheus would, so
    a replayed fleet of more than ``FLEET_SAMPLE_PODS`` pods is judged through its sample."""
    from canaryflow.bench.streams import Fleet, RecordedSource, simulate

    recording = simulate(Fleet(stable_pods=30, baseline_pods=1), [(0.1, 60.0)], random.Random(3))
    source = RecordedSource(recording)
    exposure = METRICS["error-rate"].evidence_for("go").exposure
    whole = render(exposure, Subject("svc", "prod", baseline=True), FLEET, 60.0)
    found = {s.labels["pod"] for s in source.vector(discovery_query([(whole, False)]), 30.0)}
    stable = {pod.name for pod in recording.pods if pod.track == "stable"}
    assert found == stable and len(found) == 30
    sample = choose(found)
    assert sample is not None
    sampled = Subject("svc", "prod", baseline=True, fleet_pods=sample)
    read = source.vector(f"sum by (instance, pod) ({render(exposure, sampled, FLEET, 60.0)})", 30.0)
    assert {s.labels["pod"] for s in read} == set(sample)


def test_a_replayed_release_reads_a_30_pod_fleet_only_through_its_sample(monkeypatch):
    """The default gates of the replay (error-rate, and log-errors counting the fleet's lines
    beside its requests): every fleet read but the discovery selects the sample, and the
    discovery is asked at the first round and every ``FLEET_DISCOVERY_ROUNDS`` rounds."""
    from dataclasses import replace

    from canaryflow.bench import offline, streams

    asked: list[str] = []
    vector, series = streams.RecordedSource.vector, streams.RecordedSource.series

    def noted(read):
        def ask(self, query, at=None):
            asked.append(query)
            return read(self, query, at)

        return ask

    monkeypatch.setattr(streams.RecordedSource, "vector", noted(vector))
    monkeypatch.setattr(streams.RecordedSource, "series", noted(series))
    fleet = replace(offline.NOISY_FLEET, baseline_pods=1, stable_pods=30)
    steps = offline.BENCH_STEPS[:1]
    recording = streams.simulate(fleet, steps, random.Random(1))
    offline.judge_release(recording, steps, offline.bench_spec(), baseline=True, warmup_s=0.0)
    fleet_reads = [q for q in asked if FLEET_TRACK in q]
    discoveries = [q for q in fleet_reads if q.startswith("group by (pod)")]
    rounds = sum(1 for q in asked if q.startswith("sum by (instance, pod) (http_requests_total"))
    assert rounds and len(discoveries) >= 2
    assert all('pod=~"^(' in q for q in fleet_reads if q not in discoveries)
