"""The log-errors gate learns the scrape interval from its request counters' samples.

Its lines are counted at the look, but its exposure is the request counters, scraped like a
count gate's, and its units of stable's pods for the over-dispersion last ``unit_span_s``: a
scrape interval at least. It read no scrape timing, so without a configured or discovered
interval it kept the 15 s default: on the replay's 30 s-scrape fleet its units were 20 s (two
looks), each holding the scrapes of two or three of the four pods (BENCHMARKS.md, the
paragraph on branch log-dof). It now probes its request counters as the count gates probe
their series (``SequentialGate.scrape_reads``), so each unit of 30 s holds every pod's scrape.
"""

from __future__ import annotations

import random

import pytest

from canaryflow.analysis import carried
from canaryflow.analysis.measurement import Outcome
from canaryflow.bench.offline import (
    BENCH_FLEETS,
    BENCH_STEPS,
    EPOCH,
    bench_spec,
    replay_run,
    with_warmup,
)
from canaryflow.bench.replay import ReplayClock
from canaryflow.bench.streams import simulate

GATE = "log-errors"


def _release(fleet_name: str, seed: int, log_factor: float = 1.0):
    """A release of the bench's fleet ``fleet_name`` as the replay judges it, the log gate's
    (seconds into the window, scrape interval, unit span, units seen, degrees of freedom)
    after every look, and how it ended."""
    fleet = dict(BENCH_FLEETS)[fleet_name]
    spec = bench_spec()
    baseline = fleet.baseline_pods > 0
    warmup = spec.warmup_for(fleet.scrape_s, baseline)
    recording = simulate(
        fleet, with_warmup(BENCH_STEPS, warmup), random.Random(seed), 1.0, log_factor
    )
    run = replay_run(recording, spec, windows=len(BENCH_STEPS), baseline=baseline)
    run.clock.sleep(warmup)
    started = run.clock.now()
    looks = []

    def after_round(batch, verdict) -> None:
        state = run.sequential_evidence[GATE]
        looks.append(
            (
                round(run.clock.now() - started),
                state.scrape_s,
                state.unit_span_s,
                state.units_seen,
                state.test.dof,
            )
        )

    run.on_round = after_round
    for _, seconds in BENCH_STEPS:
        result = run.window(seconds)
        if result.verdict.outcome is not Outcome.PASS:
            break
    failed = [m.gate for m in result.measurements if m.outcome is Outcome.FAIL]
    return looks, result.verdict.outcome, failed


def test_on_a_30s_scrape_the_log_gate_learns_30s_and_each_unit_holds_every_pods_scrape():
    looks, outcome, _ = _release("noisy, 30 s scrape", 3)

    # Learnt at the first look from the stable fleet's request counters, kept after.
    assert {(scrape, span) for _, scrape, span, _, _ in looks} == {(30.0, 30.0)}
    # A unit ends at the first look 30 s or more after the last: every third look of 10 s.
    ended = [
        look[0] for look, before in zip(looks[1:], looks[:-1], strict=True) if look[3] > before[3]
    ]
    assert ended[:4] == [30, 60, 90, 120]
    # Each of the stable fleet's four pods is scraped once in it: 3 degrees of freedom a
    # unit, DISPERSION_DOF in the first (with 20 s units: 0 or 1 in the first, 3 at 40 s).
    dof = {at: d for at, *_, d in looks}
    assert [dof[30], dof[60], dof[90], dof[120]] == [3.0, 6.0, 9.0, 12.0]
    assert outcome is Outcome.PASS


def test_against_stable_the_log_gate_learns_15s_from_stables_request_counters():
    looks, outcome, _ = _release("noisy, against stable", 3)

    assert {(scrape, span) for _, scrape, span, _, _ in looks} == {(15.0, 15.0)}
    assert outcome is Outcome.PASS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_canary_writing_ten_times_the_lines_is_still_failed_by_the_log_gate(seed):
    looks, outcome, failed = _release("noisy, 30 s scrape", seed, log_factor=10.0)

    assert looks[-1][1:3] == (30.0, 30.0)
    assert outcome is Outcome.FAIL and GATE in failed
    assert looks[-1][0] <= 120, "within the first step"


def test_the_scrape_interval_the_log_gate_learnt_is_carried_to_the_next_windows_pod():
    spec = bench_spec().model_copy(update={"max_extension": 0.0})
    fleet = dict(BENCH_FLEETS)["noisy, 30 s scrape"]
    recording = simulate(fleet, with_warmup(BENCH_STEPS, 0.0), random.Random(1))
    weights = [round(weight * 100) for weight, _ in BENCH_STEPS]
    clock = ReplayClock(EPOCH)
    first = replay_run(recording, spec, baseline=True, clock=clock)
    carried.begin_window(first, None, spec, 0, 0, weights)
    first.window(BENCH_STEPS[0][1])
    state = carried.snapshot(spec, 0, first.budget, first.sequential_evidence, None, "baseline")

    second = replay_run(recording, spec, baseline=True, clock=clock)
    carried.begin_window(second, state.to_text(), spec, 1, 0, weights)

    # Before the next window's first look: no probing again, its units 30 s from the start.
    assert second.sequential_evidence[GATE].scrape_s == 30.0
    assert second.sequential_evidence[GATE].unit_span_s == 30.0
