"""The sequential count test: error control under repeated looks, and detection of real shifts.

A/A streams (canary and stable the same) are simulated with a look after every batch of
requests; the share of streams that *ever* cross 1/alpha must stay under alpha, within the
simulation's sampling error. Shifted streams must be caught, and sooner the larger the shift.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canaryflow.analysis.sequential import (
    AlphaBudget,
    CountTest,
    bernoulli_kl,
    canary_share,
    gate_alpha,
    information_limit,
)


def _binomial(n: int, p: float, rng: random.Random) -> int:
    return sum(rng.random() < p for _ in range(n))


def stream(
    p_canary: float,
    p_stable: float,
    looks: int,
    alpha: float,
    rng: random.Random,
    tolerance: float = 0.0,
) -> int | None:
    """The look at which the test rejects, or None. Traffic per look varies, as real load does."""
    test = CountTest(tolerance=tolerance)
    for look in range(1, looks + 1):
        n_canary = rng.randint(5, 25)
        n_stable = rng.randint(50, 200)
        test.add(
            _binomial(n_canary, p_canary, rng),
            n_canary,
            _binomial(n_stable, p_stable, rng),
            n_stable,
        )
        if test.rejects(alpha):
            return look
    return None


def _upper(alpha: float, runs: int) -> float:
    """alpha plus three standard errors of a simulated rate of ``runs`` streams."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


@pytest.mark.parametrize("p", [0.002, 0.02, 0.1, 0.4])
def test_a_a_streams_looked_at_every_batch_rarely_cross(p):
    alpha, runs, looks = 0.05, 300, 60
    rng = random.Random(hash(p) & 0xFFFF)
    alarms = sum(stream(p, p, looks, alpha, rng) is not None for _ in range(runs))
    assert alarms / runs <= _upper(alpha, runs), f"{alarms} of {runs} A/A streams rejected"


def test_a_canary_within_the_tolerance_is_not_a_regression():
    alpha, runs = 0.05, 200
    rng = random.Random(7)
    alarms = sum(stream(0.12, 0.1, 60, alpha, rng, tolerance=0.2) is not None for _ in range(runs))
    assert alarms / runs <= _upper(alpha, runs)


@pytest.mark.parametrize(
    ("p_canary", "p_stable", "within"),
    [(0.05, 0.001, 15), (0.021, 0.001, 60), (0.3, 0.1, 15)],
)
def test_real_regressions_are_detected(p_canary, p_stable, within):
    alpha, runs = 0.01 / 30, 100  # a release of 10 gates over 3 windows
    rng = random.Random(11)
    caught = [stream(p_canary, p_stable, 200, alpha, rng) for _ in range(runs)]
    assert all(look is not None for look in caught)
    assert sorted(caught)[runs // 2] <= within


def test_larger_shifts_are_detected_sooner():
    rng = random.Random(3)
    medians = []
    for p_canary in (0.02, 0.05, 0.2):
        looks = sorted(stream(p_canary, 0.001, 400, 0.001, rng) or 401 for _ in range(60))
        medians.append(looks[30])
    assert medians == sorted(medians, reverse=True) and medians[0] > medians[-1]


counts = st.floats(min_value=0, max_value=1e4, allow_nan=False)


@settings(max_examples=200)
@given(st.lists(st.tuples(counts, counts, counts, counts), max_size=30))
def test_evidence_stays_a_finite_number_whatever_the_counts(increments):
    test = CountTest()
    for canary_events, canary_n, stable_events, stable_n in increments:
        test.add(min(canary_events, canary_n), canary_n, min(stable_events, stable_n), stable_n)
    assert math.isfinite(test.log_evidence)


@settings(max_examples=200)
@given(st.lists(st.tuples(counts, st.floats(1, 1e4), counts, st.floats(1, 1e4)), max_size=30))
def test_looks_in_which_only_stable_failed_never_add_evidence_against_the_canary(increments):
    test = CountTest()
    before = test.log_evidence
    for _, canary_n, stable_events, stable_n in increments:
        test.add(0, canary_n, stable_events, stable_n)
        assert test.log_evidence <= before + 1e-9
        before = test.log_evidence


@settings(max_examples=100)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=20),
    st.floats(0.01, 0.99),
)
def test_at_a_constant_traffic_split_the_looks_do_not_change_the_evidence(batches, share):
    """Looking after every batch or once at the end gives the same evidence: only the counts
    matter, so looking more often cannot manufacture evidence."""
    often, once = CountTest(), CountTest()
    for canary_events, stable_events in batches:
        often.add(canary_events, 100 * share, stable_events, 100 * (1 - share))
    once.add(
        sum(b[0] for b in batches),
        100 * share * len(batches),
        sum(b[1] for b in batches),
        100 * (1 - share) * len(batches),
    )
    assert often.log_evidence == pytest.approx(once.log_evidence, abs=1e-6)


def test_a_100_percent_step_adds_no_evidence_either_way():
    test = CountTest()
    test.add(50, 1000, 0, 0)
    assert test.log_evidence == 0.0
    assert test.canary_events == 50


def test_negative_or_non_finite_counts_are_refused():
    with pytest.raises(ValueError, match="finite and non-negative"):
        CountTest().add(-1, 10, 0, 10)
    with pytest.raises(ValueError, match="finite and non-negative"):
        CountTest().add(math.nan, 10, 0, 10)


def test_the_canary_share_of_events_follows_the_rate_ratio():
    assert canary_share(1.0, 0.1) == pytest.approx(0.1)
    assert canary_share(2.0, 0.5) == pytest.approx(2 / 3)


def test_the_release_alpha_is_split_among_gates_and_windows():
    assert gate_alpha(0.01, 10, 4) == pytest.approx(0.00025)
    assert gate_alpha(0.01, 0, 0) == 0.01


def test_the_information_limit_of_the_issues_example():
    """5xx at 2.1 % against 0.1 %, alpha 1 %: about 100 requests."""
    requests = information_limit(bernoulli_kl(0.021, 0.001), 0.01)
    assert 95 < requests < 110
    assert information_limit(0.0, 0.01) == math.inf


def test_a_releases_alpha_is_shared_once_among_the_gates_the_service_exports():
    budget = AlphaBudget(0.01, ("error-rate", "latency-p99", "cache-miss-rate"))
    assert budget.share("error-rate") == pytest.approx(0.01 / 3), "before data: every gate"
    budget.allocate(["error-rate", "latency-p99"])
    assert budget.share("error-rate") == pytest.approx(0.005)
    assert budget.share("cache-miss-rate") == 0.0, "not exported: no alpha, cannot fail"
    budget.allocate(["error-rate"])  # later rounds never re-split it
    assert budget.share("latency-p99") == pytest.approx(0.005)


def test_alpha_is_split_over_windows_only_when_each_window_is_a_test_of_its_own():
    budget = AlphaBudget(0.01, ("error-rate",), windows=3)
    budget.allocate(["error-rate"])
    assert budget.share("error-rate") == pytest.approx(0.01 / 3)
