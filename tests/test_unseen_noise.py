"""Noise the judge was not built on: its identical canaries stay within alpha.

The offline replay's noisy fleet stalls each pod strictly once per 30 s and scrapes every 15 s;
the independent fault suite brings services and noise we have not seen. These are the noisy
fleet with one such noise each (``streams.Fleet``: stalls at random times, per-pod base rates,
a 30 s scrape, missed scrapes), judged against a fresh baseline as the product judges.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from canaryflow.analysis.measurement import Outcome
from canaryflow.bench.offline import (
    BENCH_FLEETS,
    BENCH_STEPS,
    Tally,
    bench_spec,
    judge_many,
    replay_run,
)
from canaryflow.bench.streams import simulate

SLOW_SCRAPE = dict(BENCH_FLEETS)["noisy, 30 s scrape"]


def _scrape_learnt(fleet, seconds: float) -> float | None:
    """The scrape interval the error-rate gate has learnt after ``seconds`` of a release."""
    spec = bench_spec()
    recording = simulate(fleet, BENCH_STEPS, random.Random(3))
    run = replay_run(recording, spec, carry=False, baseline=True)
    run.window(seconds)
    gate = next(g for g in spec.sequential_gates if g.metric == "error-rate")
    return run._sequential_state(gate).scrape_s


def test_the_scrape_interval_is_learnt_from_the_fleets_old_pods_not_the_young_baseline():
    """A fresh baseline 50 s old holds two samples of a 30 s scrape in the 120 s probe:
    range / count read that as a 60 s scrape, and every later look went two scrapes behind."""
    assert _scrape_learnt(SLOW_SCRAPE, 60.0) == 30.0
    assert _scrape_learnt(replace(SLOW_SCRAPE, scrape_s=15.0), 60.0) == 15.0


@pytest.mark.judgement
def test_identical_canaries_of_a_fleet_scraped_every_30_s_are_not_rolled_back():
    tally = Tally.of(judge_many(SLOW_SCRAPE, BENCH_STEPS, bench_spec(), 40, seed=51), None)
    assert tally.rolled_back <= 1, tally.failed_by  # alpha 1 %: 0.4 expected; was 9 of 40


def test_a_canary_with_three_times_the_errors_is_still_caught_on_a_30_s_scrape():
    judged = judge_many(SLOW_SCRAPE, BENCH_STEPS, bench_spec(), 10, seed=52, canary_factor=3.0)
    assert sum(j.outcome is Outcome.FAIL and j.gate == "error-rate" for j in judged) >= 6
