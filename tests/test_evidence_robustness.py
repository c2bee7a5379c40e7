"""Evidence that holds on production telemetry: aligned counters and lumpy pods.

A real fleet is scraped every 15 s at a different offset per pod, and its pods stall now and
then, turning a lump of requests bad at once. The gate reads every counter at one common
instant (two scrapes behind the look) and scales its evidence by the over-dispersion of stable's
pods, so an identical canary is rolled back at most alpha of the time, while a canary with three
times the errors is still caught. Simulated releases (``canaryflow.bench.streams``) are judged
by the real ``SequentialGate``, seeded, in a few seconds.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.evidence import (
    SequentialGate,
    corrected,
    increments_between,
    scrape_interval,
    value_at,
)
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.sequential import CountTest
from canaryflow.analysis.source import Sample, Series
from canaryflow.analysis.statistics import clopper_pearson, rate_upper_bound
from canaryflow.bench.streams import Fleet, Recording, simulate

ERRORS = METRICS["error-rate"].evidence["go"]
LOOK_S = 10.0


# Reading counters at one instant ---------------------------------------------------------------


def test_a_counter_is_read_between_its_samples_by_linear_interpolation():
    points = corrected([(0.0, 100.0), (15.0, 130.0), (30.0, 160.0)])
    assert value_at(points, 7.5) == pytest.approx(115.0)
    assert value_at(points, 40.0) == 160.0, "after the last sample: the last value"
    assert value_at(points, -1.0) == 0.0, "before the first: not yet born"


def test_a_reset_counter_adds_to_what_it_had_counted():
    assert corrected([(0, 50.0), (15, 80.0), (30, 5.0), (45, 20.0)])[-1] == (45, 100.0)


def test_increments_of_differently_scraped_series_describe_the_same_interval():
    # Both pods serve 10 requests a second; one is scraped at :00, the other at :07.
    early = Series({"pod": "a"}, tuple((t, 10.0 * t) for t in (0.0, 15.0, 30.0, 45.0)))
    late = Series({"pod": "b"}, tuple((t, 10.0 * t) for t in (7.0, 22.0, 37.0, 52.0)))
    steps = increments_between([early, late], 10.0, 35.0)
    assert [s.value for s in steps] == pytest.approx([250.0, 250.0])


def test_the_scrape_interval_is_discovered_from_the_samples():
    series = [Series({}, ((0.0, 0.0), (15.0, 1.0), (30.0, 2.0))), Series({}, ((4.0, 0.0),))]
    assert scrape_interval(series) == 15.0
    assert scrape_interval([Series({}, ((0.0, 0.0),))]) is None


@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=20),
    st.floats(0, 1),
)
def test_increments_over_consecutive_instants_add_up_whatever_the_resets(values, cut):
    points = [(15.0 * i, v) for i, v in enumerate(values)]
    series = [Series({"pod": "a"}, tuple(points))]
    end = 15.0 * (len(values) - 1)
    middle = cut * end
    whole = increments_between(series, 0.0, end)[0].value
    halves = sum(increments_between(series, a, b)[0].value for a, b in ((0, middle), (middle, end)))
    assert halves == pytest.approx(whole, rel=1e-9, abs=1e-6)
    assert whole >= 0


# Over-dispersion from stable's pods -------------------------------------------------------------


def test_pods_that_agree_up_to_binomial_noise_leave_the_evidence_as_it_is():
    rng = random.Random(3)
    test = CountTest()
    for _ in range(200):
        test.add_units([(sum(rng.random() < 0.02 for _ in range(500)), 500) for _ in range(4)])
    assert test.dispersion == pytest.approx(1.0, abs=0.15)


def test_lumpy_pods_scale_the_evidence_down_by_their_dispersion():
    test = CountTest()
    test.add(30, 1000, 40, 4000)
    sharp = test.log_evidence
    test.add_units([(10, 1000), (210, 1000), (10, 1000), (10, 1000)])
    assert test.dispersion > 10
    assert test.log_evidence < sharp


# A/A releases of a lumpy fleet, and real regressions ---------------------------------------------

LUMPY = Fleet(
    stable_pods=4,
    canary_pods=1,
    rps=1000.0,  # 200 requests/s per pod at a 20 % canary weight
    scrape_s=15.0,
    base_rate=0.01,
    stall_every_s=30.0,  # each pod stalls 1 s every 30 s, at its own phase
    stall_s=1.0,
    stall_share=0.35,  # a third of a stalled second's requests time out
    blip_every_s=120.0,  # and a shared dependency blips for 2 s every 2 minutes or so
    history_s=120.0,
)
RELEASE = [(0.2, 300.0)]
ALPHA = 0.05


def _judge_aligned(recording: Recording, alpha: float) -> bool:
    """True if the gate reading raw samples at a common instant ever fails the canary."""
    gate = SequentialGate("error-rate", ERRORS, 0.2, alpha, 20, unit_s=LOOK_S)
    gate.start_at(0.0)
    now = LOOK_S
    while now <= recording.duration_s:
        back = gate.read_range_s(now)
        read = {
            track: {role: recording.read(track, role, now - back, now) for role in ERRORS_ROLES}
            for track in ("canary", "stable")
        }
        if gate.observe_series(read, now, elapsed=now).outcome is Outcome.FAIL:
            return True
        now += LOOK_S
    return False


def _judge_latest(recording: Recording, alpha: float) -> bool:
    """The naive reading: each series' latest sample at the look, binomial evidence."""

    def latest(track: str, role: str, now: float) -> list[Sample]:
        return [Sample(s.labels, s.points[-1][1]) for s in recording.read(track, role, -1e9, now)]

    gate = SequentialGate("error-rate", ERRORS, 0.2, alpha, 20)
    looks = [LOOK_S * i for i in range(int(recording.duration_s // LOOK_S) + 1)]
    at = {now: {t: {r: latest(t, r, now) for r in ERRORS_ROLES} for t in TRACKS} for now in looks}
    gate.observe(at[looks[1]], baseline=at[0.0])
    return any(gate.observe(at[now]).outcome is Outcome.FAIL for now in looks[2:])


ERRORS_ROLES = ("events", "exposure")
TRACKS = ("canary", "stable")


def _releases(count: int, seed: int, factor: float) -> list[Recording]:
    rng = random.Random(seed)
    return [simulate(LUMPY, RELEASE, rng, canary_factor=factor) for _ in range(count)]


def test_identical_canaries_of_a_lumpy_fleet_are_rolled_back_at_most_alpha_of_the_time():
    releases = _releases(240, seed=20, factor=1.0)
    false_fails = sum(_judge_aligned(r, ALPHA) for r in releases)
    assert rate_upper_bound(false_fails, len(releases)) <= ALPHA, false_fails
    # The same streams read the naive way (latest samples, requests taken as independent)
    # roll back identical canaries far more often than its alpha allows: a hard fleet.
    strict = 0.002
    naive = sum(_judge_latest(r, strict) for r in releases[:120])
    assert clopper_pearson(naive, 120)[0] > strict, naive


def test_a_canary_with_three_times_the_errors_is_still_caught():
    releases = _releases(40, seed=21, factor=3.0)
    caught = sum(_judge_aligned(r, ALPHA) for r in releases)
    assert caught >= 38, caught


def test_with_one_stable_pod_there_is_nothing_to_compare_and_the_evidence_stays_binomial():
    gate = SequentialGate("error-rate", ERRORS, 0.2, ALPHA, 20)
    gate._add_dispersion(
        {"events": [Sample({"pod": "a"}, 10)], "exposure": [Sample({"pod": "a"}, 100)]}
    )
    assert gate.test.dispersion == 1.0
    assert math.isfinite(gate.test.log_evidence)
