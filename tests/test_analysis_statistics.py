"""Mann-Whitney U and Hodges-Lehmann against examples worked by hand."""

from __future__ import annotations

import math

import pytest

from canaryflow.analysis.statistics import hodges_lehmann, mann_whitney_u, median, ranks


def test_ties_share_the_average_of_their_ranks():
    assert ranks([3, 1, 2, 2]) == [4.0, 1.0, 2.5, 2.5]


def test_separated_samples():
    # x = 1,2,3 and y = 4,5,6: rank sum of x is 6, so U = 6 - 3*4/2 = 0.
    # mean 4.5, variance 3*3/12 * 7 = 5.25; with continuity, z = (0 - 4.5 + 0.5)/sqrt(5.25).
    result = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert result.u == 0
    assert result.p_less == pytest.approx(0.040428, abs=1e-6)  # Phi(-1.745743)
    assert result.p_greater == pytest.approx(0.985452, abs=1e-6)  # 1 - Phi(-2.182179)


def test_ties_reduce_the_variance():
    # Combined 1,2,2,3 | 2,3,3,4: the 2s share rank 3, the 3s rank 6; x ranks 1+3+3+6 = 13,
    # U = 13 - 10 = 3. Tie term (27-3) * 2 = 48: variance 16/12 * (9 - 48/56) = 10.857143.
    result = mann_whitney_u([1, 2, 2, 3], [2, 3, 3, 4])
    assert result.u == 3
    assert result.p_less == pytest.approx(0.5 * math.erfc(1.365703 / math.sqrt(2)), abs=1e-6)
    assert result.p_less == pytest.approx(0.086017, abs=1e-6)


def test_identical_values_give_no_evidence_either_way():
    result = mann_whitney_u([5, 5, 5], [5, 5])
    assert result.p_greater == result.p_less == 1.0


def test_the_test_is_antisymmetric():
    x, y = [0.11, 0.13, 0.2, 0.25], [0.1, 0.12, 0.12, 0.14, 0.15]
    assert mann_whitney_u(x, y).p_greater == pytest.approx(mann_whitney_u(y, x).p_less)


def test_hodges_lehmann_is_the_median_pairwise_difference():
    # Differences x - y: -3 once, -2 four times, -1 six times, 0 four times, +1 once.
    assert hodges_lehmann([1, 2, 2, 3], [2, 3, 3, 4]) == -1
    assert hodges_lehmann([10, 11], [1, 2]) == 9


def test_median_and_empty_samples():
    assert median([3, 1, 2, 10]) == 2.5
    with pytest.raises(ValueError):
        mann_whitney_u([], [1])
