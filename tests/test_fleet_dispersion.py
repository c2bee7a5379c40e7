"""Against a fresh baseline the over-dispersion is learnt from the stable fleet's pods.

The canary (one pod) is compared with a one-pod baseline born with it: no history, no second
pod, so the reference alone cannot show how lumpy the service's pods are and ``phi`` stayed 1
(lumpy pods read as regressions: 6.5 % of identical releases rolled back in the offline
replay). Over-dispersion belongs to the service's version and pods, not to which of them are
compared, so the sequential gates learn it from the stable fleet (``query.FLEET``: neither
canary nor baseline), its history and its pods during the release, scaled to the compared
pods' load (``sequential.CountTest.dispersion_at``), while the comparison stays canary
against baseline.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canaryflow.analysis import carried
from canaryflow.analysis.catalogue import Counts
from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.query import FLEET, Subject
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.sequential import AlphaBudget, CountTest, band_load, load_band
from canaryflow.analysis.source import Sample
from canaryflow.bench.offline import (
    AA,
    BENCH_FAULTS,
    BENCH_FLEETS,
    BENCH_STEPS,
    NOISY_FLEET,
    Tally,
    bench_spec,
    information_limit_s,
    judge_many,
    lines_per_request,
    replay_run,
    with_warmup,
)
from canaryflow.bench.streams import simulate

# Which pods are read -----------------------------------------------------------------------


def test_the_fleet_is_every_pod_neither_canary_nor_baseline_and_stable_still_means_baseline():
    subject = Subject("svc", "prod", baseline=True)
    assert subject.selector(FLEET) == 'app="svc",namespace="prod",track!~"canary|baseline"'
    assert subject.selector("stable") == 'app="svc",namespace="prod",track="baseline"'
    assert subject.workload(FLEET) == "svc" and subject.workload("stable") == "svc-baseline"
    assert subject.separate_fleet


def test_without_a_baseline_the_fleet_is_the_reference_and_nothing_more_is_read():
    subject = Subject("svc", "prod")
    assert not subject.separate_fleet
    assert subject.selector(FLEET) == subject.selector("stable")
    flag = Subject("svc", "prod", "variant", {"canary": "on", "stable": "off"}, baseline=True)
    assert not flag.separate_fleet, "a flag's variants have no fleet apart"


# Where phi comes from ---------------------------------------------------------------------


def _pod(name: str, value: float) -> Sample:
    return Sample({"pod": name}, value)


def _look(pods: dict[str, list[tuple[float, float]]], look: int) -> dict:
    """Cumulative counters after ``look`` looks of per-look (events, requests) per pod."""
    now: dict = {}
    for track, units in pods.items():
        events = [_pod(f"{track}-{i}", e * look) for i, (e, _) in enumerate(units)]
        served = [_pod(f"{track}-{i}", n * look) for i, (_, n) in enumerate(units)]
        now[track] = {"events": events, "exposure": served}
    return now


unit = st.tuples(st.integers(0, 40), st.integers(100, 400))


@settings(max_examples=40, deadline=None)
@given(
    fleet=st.lists(unit, min_size=0, max_size=5),
    reference=st.lists(unit, min_size=1, max_size=3),
    looks=st.integers(1, 4),
)
def test_phi_is_learnt_from_the_fleets_pods_else_from_the_references_own(fleet, reference, looks):
    """Each look is a unit: its degrees of freedom are the fleet's pods less one where at least
    two fleet pods served requests, else the reference's pods less one (today's behaviour)."""
    gate = SequentialGate("error-rate", Counts("x_total", "x_total"), 0.2, 0.005, 0.0, fleet=True)
    pods = {"canary": [(5, 100)], "stable": reference, FLEET: fleet}
    gate.observe(_look(pods, 0), _look(pods, 0))
    for look in range(1, looks + 1):
        gate.observe(_look(pods, look), elapsed=10.0 * look)
    learnt = fleet if len(fleet) >= 2 else reference
    rate = sum(e for e, _ in learnt) / sum(n for _, n in learnt)
    usable = len(learnt) >= 2 and 0 < rate < 1
    assert gate.test.dof == (looks * (len(learnt) - 1) if usable else 0)


def _noisy_run(seed: int = 3) -> AnalysisRun:
    """One identical release of the benchmark's noisy fleet judged against its fresh baseline
    through the real ``AnalysisRun``, as ``bench.offline.judge_release`` drives it."""
    fleet = dict(BENCH_FLEETS)["noisy"]
    spec = bench_spec()
    warmup = spec.warmup_for(fleet.scrape_s)
    recording = simulate(fleet, with_warmup(BENCH_STEPS, warmup), random.Random(seed))
    run = replay_run(recording, spec, baseline=True)
    run.clock.sleep(warmup)
    run.window(BENCH_STEPS[0][1])
    return run


def test_against_a_one_pod_baseline_every_gate_learns_phi_from_the_stable_fleet():
    run = _noisy_run()
    for name in ("error-rate", "log-errors"):
        gate = run.sequential_evidence[name]
        assert gate.fleet, name
        assert gate.test.dof > 0, f"{name}: one baseline pod alone has no spread to learn"
        assert gate.test.dispersion > 1.5, f"{name}: the fleet's pods stall in lumps"
        assert gate.test.learnt_load is not None
    error_rate = run.sequential_evidence["error-rate"]
    history = error_rate.test.dof
    assert history >= 3 * 30, "ten minutes of the fleet's four pods before the release"


def test_phi_is_scaled_to_the_compared_pods_load():
    """NB2: phi - 1 grows with the load, so a canary pod at a tenth of the traffic is judged
    at its own load, not the fleet's pods' (each busier at 10 %)."""
    test = CountTest(tolerance=0.2, chi2=300.0, dof=30.0, unit_exposure=6000.0)
    test.unit_pod_seconds = 30.0  # 200 requests per pod per second learnt
    assert math.isclose(test.learnt_load or 0, 200.0)
    phi = test.dispersion
    assert math.isclose(test.dispersion_at(100.0), 1 + (phi - 1) / 2)
    assert math.isclose(test.dispersion_at(400.0), 1 + (phi - 1) * 2)
    test.add(40, 1000, 10, 1000, load=100.0)
    test.add(40, 1000, 10, 1000)  # no load: divided by phi itself
    quiet, lumpy = test.dispersion_at(band_load(load_band(100.0))), test.dispersion
    ratios = [
        band[i] / quiet + (r - band[i]) / lumpy
        for band in test.banded.values()
        for i, r in enumerate(test.log_ratios)
    ]
    top = max(ratios)
    mixture = top + math.log(sum(math.exp(r - top) for r in ratios) / len(ratios))
    assert math.isclose(test.log_evidence, mixture, rel_tol=1e-9)


# Carried between the workflow's pods ------------------------------------------------------


def test_the_carried_evidence_round_trips_the_fleets_counters_loads_and_bands():
    run = _noisy_run()
    spec = run.spec
    budget = AlphaBudget(spec.alpha, tuple(g.name for g in spec.sequential_gates))
    budget.allocate(["error-rate", "log-errors"])
    gates = run.sequential_evidence
    state = carried.parse(carried.snapshot(spec, 0, budget, gates).to_text(), spec, 1)
    assert state.version == carried.VERSION == 5
    error_rate = state.gates["error-rate"]
    assert error_rate.fleet and {c.track for c in error_rate.counters} == {
        "canary",
        "stable",
        FLEET,
    }
    for name, gate in gates.items():
        resumed = SequentialGate(
            name, gate.evidence, gate.tolerance, gate.alpha, 0.0, fleet=gate.fleet
        )
        carried.resume(resumed, state.gates[name])
        assert resumed.test.banded == gate.test.banded and gate.test.banded
        assert resumed.test.learnt_load == gate.test.learnt_load
        assert math.isclose(resumed.log_evidence, gate.log_evidence)
        assert math.isclose(resumed.test.dispersion, gate.test.dispersion)
    fleet_counters = next(
        c for c in gates["error-rate"].counters.items() if c[0] == (FLEET, "exposure")
    )
    resumed = SequentialGate(
        "error-rate", gates["error-rate"].evidence, 0.2, 0.005, 0.0, fleet=True
    )
    carried.resume(resumed, error_rate)
    assert resumed.counters[(FLEET, "exposure")].last == fleet_counters[1].last


def test_a_version_1_state_is_read_and_its_counters_dropped_where_the_fleet_is_now_read():
    run = _noisy_run()
    spec = run.spec
    budget = AlphaBudget(spec.alpha, tuple(g.name for g in spec.sequential_gates))
    state = carried.snapshot(spec, 0, budget, run.sequential_evidence)
    data = json.loads(state.to_text())
    data["version"] = 1
    for written in data["gates"].values():
        for field in ("held_lines", "lines"):  # a comparing logs gate's, from version 3 on
            written.pop(field, None)
        for test in written["tests"]:
            test.pop("largest", None)  # from version 5 on
    gate = data["gates"]["error-rate"]
    for field in ("fleet",):
        gate.pop(field)
    gate["counters"] = [c for c in gate["counters"] if c["track"] != FLEET]
    for test in gate["tests"]:
        for field in ("unit_exposure", "unit_pod_seconds", "banded"):
            test.pop(field)
    data["checksum"] = ""
    old = carried.CarriedEvidence.model_validate(data).sealed()
    parsed = carried.parse(old.to_text(), spec, 1)
    resumed = SequentialGate(
        "error-rate", run.sequential_evidence["error-rate"].evidence, 0.2, 0.005, 0.0, fleet=True
    )
    carried.resume(resumed, parsed.gates["error-rate"])
    assert not resumed.counters, "no fleet counters carried: the window counts from its start"
    assert resumed.test.dof == run.sequential_evidence["error-rate"].test.dof


# The replay: the same code path, the fleet's stable pods fed ------------------------------


@pytest.mark.judgement
def test_identical_releases_on_the_noisy_fleet_against_a_baseline_rarely_roll_back():
    """A modest seeded run of the benchmark's noisy fleet (6.5 % rolled back before: 65 of
    1000): with phi learnt from the fleet, at most 1 of 60 (the target is 1 %)."""
    fleet = dict(BENCH_FLEETS)["noisy"]
    judged = judge_many(fleet, BENCH_STEPS, bench_spec(), 60, seed=11)
    tally = Tally.of(judged, AA.gate)
    assert tally.rolled_back <= 1, tally.failed_by


def test_a_log_fault_multiplies_every_error_line_and_its_limit_counts_them_all():
    fleet = replace(NOISY_FLEET, baseline_pods=1)
    # steady 0.2 % + half of the stalls' (35 % of 1 s in 30) and blips' (30 % of 2 s in 120)
    expected = 0.002 + 0.5 * (0.35 / 30 + 0.3 * 2 / 120)
    assert math.isclose(lines_per_request(fleet), expected)
    log_fault = next(f for f in BENCH_FAULTS if f.gate == "log-errors")
    steady_only = replace(fleet, stall_log_share=0.0)
    assert information_limit_s(fleet, log_fault, bench_spec(), 0.1) < information_limit_s(
        steady_only, log_fault, bench_spec(), 0.1
    )
    quiet = replace(fleet, log_rate=0.0, blip_every_s=0.0, pool_size=0)
    good = simulate(quiet, BENCH_STEPS, random.Random(2))
    bad = simulate(quiet, BENCH_STEPS, random.Random(2), log_factor=3.0)
    lines = {
        name: sum(len(p.lines) for p in rec.pods if p.track == "canary")
        for name, rec in (("good", good), ("bad", bad))
    }
    assert lines["bad"] > 2 * lines["good"] > 0, "the stalls' lines are multiplied too"


def test_every_count_gate_reads_the_fleets_pods_and_history_not_the_baselines_history():
    """Histogram cuts and counters alike (latency, outbound, error-rate): the fleet's pods are
    read at each look beside the compared tracks, and its history, not the young baseline's."""
    from canaryflow.analysis.catalogue import METRICS
    from canaryflow.analysis.evidence import roles, selector
    from canaryflow.analysis.query import render

    subject = Subject("svc", "prod", baseline=True)
    for metric in ("latency-p99", "outbound-error-rate", "error-rate"):
        evidence = METRICS[metric].evidence_for("go")
        gate = SequentialGate(metric, evidence, 0.2, 0.005, 0.0, fleet=True)
        selectors = {
            (track, role): render(selector(evidence, role), subject, track, 30.0)
            for track in gate.tracks
            for role in roles(evidence)
        }
        reads = gate.plan(selectors, 1000.0)
        role = roles(evidence)[-1]
        assert f"{FLEET}/{role}/now/v0" in reads and f"{FLEET}/{role}/history" in reads, metric
        assert f"stable/{role}/history" not in reads, metric
        assert 'track!~"canary|baseline"' in reads[f"{FLEET}/{role}/history"].query, metric
