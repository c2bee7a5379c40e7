"""Evidence that holds on production telemetry: aligned counters and lumpy pods.

A real fleet is scraped every 15 s at a different offset per pod, and its pods stall now and
then, turning a lump of requests bad at once. The gate reads every counter at one common
instant (a scrape and a margin behind the look) and scales its evidence by the
over-dispersion of stable's pods, so an identical canary is rolled back at most alpha of the
time, while a canary with three times the errors is still caught. Simulated releases
(``canaryflow.bench.streams``) are judged by the real ``SequentialGate``, seeded, in a few seconds.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.alignment import (
    AlignedCounters,
    history_steps,
    interpolate,
    key_of,
    scrape_interval,
    stamp_query,
    value_query,
)
from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.evidence import SequentialGate, roles, selector
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.query import Subject, render
from canaryflow.analysis.sequential import CountTest
from canaryflow.analysis.source import Sample, Series
from canaryflow.analysis.statistics import clopper_pearson, rate_upper_bound
from canaryflow.bench.streams import Fleet, RecordedSource, Recording, simulate

ERRORS = METRICS["error-rate"].evidence["go"]
LOOK_S = 10.0


# Reading counters at one instant ---------------------------------------------------------------


def pod(name: str, value: float, **labels: str) -> Sample:
    return Sample({"instance": name, "pod": name, **labels}, value)


def test_a_pods_counter_is_read_between_its_scrapes_by_linear_interpolation():
    # Pod a scraped at 0 and 15 (100 -> 130), pod b at 7 and 22 (200 -> 230); both read at 10.
    before = [pod("a", 100.0), pod("b", 200.0)]
    after = [pod("a", 130.0), pod("b", 230.0)]
    stamps_before = [pod("a", 0.0), pod("b", 7.0)]
    stamps_after = [pod("a", 15.0), pod("b", 22.0)]
    values = interpolate(before, after, stamps_before, stamps_after, 10.0)
    assert [values[key_of(s.labels)] for s in before] == pytest.approx([120.0, 206.0])


@given(
    rate=st.floats(0.1, 1000),
    offset=st.floats(0, 14.99),
    scrape=st.sampled_from([1.0, 5.0, 15.0, 30.0]),
    at=st.floats(100, 200),
)
def test_whatever_a_pods_scrape_offset_a_steady_counter_is_read_at_its_true_value(
    rate, offset, scrape, at
):
    """Pods scraped at different offsets are read as of the same instant, not as of their
    last scrape."""
    t0 = offset + scrape * ((at - offset) // scrape)  # the last scrape at or before ``at``
    t1 = t0 + scrape
    values = interpolate(
        [pod("a", rate * t0)], [pod("a", rate * t1)], [pod("a", t0)], [pod("a", t1)], at
    )
    assert values[key_of(pod("a", 0).labels)] == pytest.approx(rate * at, rel=1e-9)


def test_a_pod_without_a_later_scrape_keeps_its_last_value_and_a_restart_is_not_interpolated():
    values = interpolate(
        [pod("a", 100.0), pod("b", 50.0)],
        [pod("a", 100.0), pod("b", 3.0)],  # b restarted between its scrapes
        [pod("a", 0.0), pod("b", 0.0)],
        [pod("a", 0.0), pod("b", 15.0)],
        10.0,
    )
    assert values[key_of(pod("a", 0).labels)] == 100.0
    assert values[key_of(pod("b", 0).labels)] == 50.0


def test_a_series_born_after_the_instant_counts_from_zero_and_a_smaller_value_is_a_restart():
    counters = AlignedCounters()
    a, b, c = (key_of(pod(n, 0).labels) for n in "abc")
    counters.start({a: 100.0, b: 50.0})
    steps = counters.advance({a: 110.0, b: 3.0, c: 2.0})
    assert [s.value for s in steps] == [10.0, 3.0, 2.0]


def test_stables_history_is_cut_into_steps_of_every_pod():
    series = [
        Series({"pod": "a"}, ((0.0, 10.0), (10.0, 25.0), (20.0, 27.0))),
        Series({"pod": "b"}, ((0.0, 5.0), (10.0, 1.0), (20.0, 4.0))),  # b restarted at 10
    ]
    steps = history_steps(series)
    assert {t: [s.value for s in v] for t, v in steps.items()} == {10.0: [15.0], 20.0: [2.0, 3.0]}


def test_the_scrape_interval_is_read_from_how_many_samples_the_oldest_series_holds():
    assert scrape_interval({10.0: 10, 30.0: 30, 120.0: 120}) == 1.0
    assert scrape_interval({10.0: 1, 30.0: 2, 120.0: 8}) == 15.0
    # Series only 20 s old hold fewer samples over two minutes: the short range decides.
    assert scrape_interval({10.0: 10, 30.0: 20, 120.0: 20}) == 1.0
    assert scrape_interval({10.0: 0, 30.0: 0, 120.0: 1}) == 120.0, "a minute or more"
    assert scrape_interval({}) is None


def test_one_sample_of_a_series_younger_than_the_longest_range_tells_no_scrape_interval():
    """A fresh baseline's pod 10 s old holds one sample in every range: it is young, not
    scraped every two minutes (which would lag every look by four minutes)."""
    young = {10.0: 1, 30.0: 1, 120.0: 1}
    assert scrape_interval(young, age=10.0) is None, "ask again at the next look"
    assert scrape_interval(young, age=120.0) == 120.0, "old enough: a minute or more"
    assert scrape_interval({10.0: 1, 30.0: 2, 120.0: 2}, age=20.0) == 15.0


def test_pods_are_summed_in_promql_so_a_round_reads_a_few_numbers_per_pod():
    selector = 'http_requests_total{app="svc"}'
    assert value_query(selector, by_le=False) == f"sum by (instance, pod) ({selector})"
    assert value_query(selector, by_le=True) == f"sum by (instance, pod, le) ({selector})"
    assert stamp_query(selector) == f"max by (instance, pod) (timestamp({selector}))"


# Over-dispersion from stable's pods -------------------------------------------------------------


def test_pods_that_agree_up_to_binomial_noise_leave_the_evidence_as_it_is():
    rng = random.Random(3)
    test = CountTest()
    for _ in range(200):
        test.add_units([(sum(rng.random() < 0.02 for _ in range(500)), 500) for _ in range(4)])
    assert test.chi2 / test.dof == pytest.approx(1.0, abs=0.15)
    assert test.dispersion < 1.3, "its upper bound stays close to 1 with 600 degrees of freedom"


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
    """True if the gate, reading every pod at a common instant, ever fails the canary."""
    source = RecordedSource(recording)
    subject = Subject("svc", "prod")
    selectors = {
        (track, role): render(selector(ERRORS, role), subject, track, 30.0)
        for track in TRACKS
        for role in roles(ERRORS)
    }
    gate = SequentialGate("error-rate", ERRORS, 0.2, alpha, 20, grace_s=30.0, unit_s=LOOK_S)
    gate.start_at(0.0)
    now = LOOK_S
    while now <= recording.duration_s:
        answers = {
            key: (source.series if read.series else source.vector)(read.query, read.at)
            for key, read in gate.plan(selectors, now).items()
        }
        if gate.observe_reads(answers, now, elapsed=now).outcome is Outcome.FAIL:
            return True
        now += LOOK_S
    return False


def _judge_latest(recording: Recording, alpha: float) -> bool:
    """The naive reading: each track's latest samples summed at the look, requests taken as
    independent (the reading before counters were aligned and pods compared)."""

    def latest(track: str, role: str, now: float) -> list[Sample]:
        found = recording.read(track, role, -1e9, now)
        return [Sample({}, sum(s.points[-1][1] for s in found))] if found else []

    gate = SequentialGate("error-rate", ERRORS, 0.2, alpha, 20)
    looks = [LOOK_S * i for i in range(int(recording.duration_s // LOOK_S) + 1)]
    at = {now: {t: {r: latest(t, r, now) for r in ERRORS_ROLES} for t in TRACKS} for now in looks}
    gate.observe(at[looks[1]], baseline=at[0.0])
    return any(gate.observe(at[now]).outcome is Outcome.FAIL for now in looks[2:])


ERRORS_ROLES = ("events", "exposure")
TRACKS = ("canary", "stable")


def _releases(count: int, seed: int, factor: float, release=RELEASE) -> list[Recording]:
    rng = random.Random(seed)
    return [simulate(LUMPY, release, rng, canary_factor=factor) for _ in range(count)]


@pytest.mark.judgement
def test_identical_canaries_of_a_lumpy_fleet_are_rolled_back_at_most_alpha_of_the_time():
    releases = _releases(200, seed=20, factor=1.0)
    false_fails = sum(_judge_aligned(r, ALPHA) for r in releases)
    assert rate_upper_bound(false_fails, len(releases)) <= ALPHA, false_fails
    # The same streams read the naive way (latest samples, requests taken as independent)
    # roll back identical canaries far more often than its alpha allows: a hard fleet.
    strict = 0.002
    naive = sum(_judge_latest(r, strict) for r in releases[:100])
    assert clopper_pearson(naive, 100)[0] > strict, naive


def test_a_canary_with_three_times_the_errors_is_still_caught_within_ten_minutes():
    releases = _releases(40, seed=21, factor=3.0, release=[(0.2, 600.0)])
    caught = sum(_judge_aligned(r, ALPHA) for r in releases)
    assert caught >= 38, caught


def test_with_one_stable_pod_there_is_nothing_to_compare_and_the_evidence_stays_binomial():
    gate = SequentialGate("error-rate", ERRORS, 0.2, ALPHA, 20)
    gate._add_dispersion(
        {"events": [Sample({"pod": "a"}, 10)], "exposure": [Sample({"pod": "a"}, 100)]}
    )
    assert gate.test.dispersion == 1.0
    assert math.isfinite(gate.test.log_evidence)
