"""Gate evaluators: numbers in, outcome and a readable reason out; no data is never a pass."""

from __future__ import annotations

import math

import pytest

from canaryflow.analysis.gates import (
    judge_logs,
    judge_relative,
    judge_statistical,
    judge_threshold,
    judge_traffic,
)
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.spec import LogsLimit, RelativeLimit, StatisticalLimit, ThresholdLimit

NAN, INF = math.nan, math.inf
MAX_1_PERCENT = ThresholdLimit(max=0.01)
P95 = RelativeLimit(max_ratio=1.2, floor=0.05)
P99 = StatisticalLimit(direction="increase", confidence=0.98, tolerance=0.25, min_samples=5)


def test_threshold_failure_reads_as_a_sentence_with_units():
    judgement = judge_threshold(MAX_1_PERCENT, [0.051], "error rate", "ratio")
    assert judgement.outcome is Outcome.FAIL
    assert judgement.reason == "canary error rate 5.1% > 1%"
    assert judgement.canary == 0.051


def test_threshold_pass_and_min_bound():
    assert judge_threshold(MAX_1_PERCENT, [0.001], "e", "ratio").outcome is Outcome.PASS
    floor = ThresholdLimit(min=10)
    assert judge_threshold(floor, [12, 9], "rps", "value").outcome is Outcome.FAIL


@pytest.mark.parametrize("values", [[], [NAN], [INF], [0.0, NAN]])
def test_no_data_nan_or_infinity_is_inconclusive_never_pass_nor_fail(values):
    assert judge_threshold(MAX_1_PERCENT, values, "e", "ratio").outcome is Outcome.INCONCLUSIVE
    assert judge_relative(P95, values, [0.1], "p95", "seconds").outcome is Outcome.INCONCLUSIVE


def test_relative_compares_with_stable_times_ratio():
    judgement = judge_relative(P95, [0.312], [0.2], "p95", "seconds")
    assert judgement.outcome is Outcome.FAIL
    assert judgement.reason == "canary p95 312ms > 240ms (stable 200ms x 1.2)"
    assert (judgement.canary, judgement.stable) == (0.312, 0.2)
    assert judge_relative(P95, [0.23], [0.2], "p95", "seconds").outcome is Outcome.PASS


def test_relative_floor_keeps_tiny_values_from_failing_on_ratio():
    # stable 10 ms x 1.2 = 12 ms, but 40 ms is under the 50 ms floor.
    assert judge_relative(P95, [0.04], [0.01], "p95", "seconds").outcome is Outcome.PASS
    assert judge_relative(P95, [0.06], [0.01], "p95", "seconds").outcome is Outcome.FAIL


def test_relative_without_stable_is_inconclusive():
    for stable in (None, [], [NAN]):
        judgement = judge_relative(P95, [0.1], stable, "p95", "seconds")
        assert judgement.outcome is Outcome.INCONCLUSIVE
        assert "nothing to compare with" in judgement.reason


def test_relative_min_ratio_catches_a_drop():
    throughput = RelativeLimit(min_ratio=0.8)
    assert judge_relative(throughput, [70], [100], "rps", "value").outcome is Outcome.FAIL
    assert judge_relative(throughput, [90], [100], "rps", "value").outcome is Outcome.PASS


STABLE_P99 = [0.100, 0.104, 0.098, 0.101, 0.103, 0.099, 0.102, 0.097]


def test_statistical_fails_a_significant_and_large_increase():
    canary = [v * 1.6 for v in STABLE_P99]
    judgement = judge_statistical(P99, canary, STABLE_P99, "p99", "seconds")
    assert judgement.outcome is Outcome.FAIL
    assert judgement.detail["p_value"] < 0.02
    assert judgement.detail["relative_shift"] == pytest.approx(0.6, abs=0.05)
    assert "significantly higher" in judgement.reason


def test_statistical_tolerates_a_significant_but_small_increase():
    canary = [v * 1.1 for v in STABLE_P99]
    judgement = judge_statistical(P99, canary, STABLE_P99, "p99", "seconds")
    assert judgement.detail["p_value"] < 0.02
    assert judgement.outcome is Outcome.PASS


def test_statistical_direction_decides_which_change_is_harmful():
    faster = [v * 0.5 for v in STABLE_P99]
    assert judge_statistical(P99, faster, STABLE_P99, "p99", "s").outcome is Outcome.PASS
    either = P99.model_copy(update={"direction": "either"})
    assert judge_statistical(either, faster, STABLE_P99, "p99", "s").outcome is Outcome.FAIL
    decrease = P99.model_copy(update={"direction": "decrease"})
    assert judge_statistical(decrease, faster, STABLE_P99, "p99", "s").outcome is Outcome.FAIL


def test_statistical_needs_enough_finite_samples_on_both_tracks():
    canary = [0.2, NAN, 0.21, INF, 0.22, 0.2]  # four finite samples, five required
    judgement = judge_statistical(P99, canary, STABLE_P99, "p99", "seconds")
    assert judgement.outcome is Outcome.INCONCLUSIVE
    assert judgement.reason == "only 4 canary samples of p99, need 5"
    assert judge_statistical(P99, STABLE_P99, None, "p99", "s").outcome is Outcome.INCONCLUSIVE


def test_logs_count_lines_matching_any_pattern():
    limit = LogsLimit(patterns=["context deadline exceeded", r"connection refused"], max=1)
    lines = [
        "GET / 200",
        "db: context deadline exceeded",
        "dial tcp 10.0.0.1:5432: connection refused",
    ]
    judgement = judge_logs(limit, lines)
    assert judgement.outcome is Outcome.FAIL
    assert judgement.canary == 2
    assert judgement.detail["first_match"] == "db: context deadline exceeded"
    assert judge_logs(limit, lines[:2]).outcome is Outcome.PASS


def test_too_little_canary_traffic_keeps_the_round_collecting():
    assert judge_traffic([], 20).outcome is Outcome.COLLECTING
    assert judge_traffic([19.0], 20).reason == (
        "canary served 19 requests in the query window, need 20"
    )
    assert judge_traffic([20.0], 20) is None


@pytest.mark.parametrize("bound", [math.nan, math.inf, -math.inf])
def test_a_non_finite_threshold_is_an_error_never_a_pass(bound):
    # model_construct: the validators refuse such a limit; the gate must not rely on them.
    limit = ThresholdLimit.model_construct(max=bound, min=None)
    judged = judge_threshold(limit, [0.99], "error rate", "ratio")
    assert judged.outcome is Outcome.ERROR
    assert "not a finite number" in judged.reason


@pytest.mark.parametrize("field", ["max_ratio", "min_ratio", "floor"])
def test_a_non_finite_relative_limit_is_an_error_never_a_pass(field):
    values = {"max_ratio": 2.0, "min_ratio": None, "floor": 0.0, field: math.nan}
    limit = RelativeLimit.model_construct(**values)
    judged = judge_relative(limit, [0.99], [0.01], "error rate", "ratio")
    assert judged.outcome is Outcome.ERROR
