"""The comparing log-errors gate weighs its aligned lines at the window's share of the requests.

Counted up to each pod's last scrape (``log_counts``), a chunk of lines and requests holds the
scrapes that fell into it, and its own canary share swings with their phase (the canary's scrape
beside one of stable's four pods' or beside all four). Weighed at that swinging share, a canary
writing three times the lines was caught in 57 of 100 releases against stable where the lines
counted as written had caught 92 (BENCHMARKS.md). The chunk is now weighed at the window's
share, but never below the bound at which identical versions' lines could look like a
regression beyond the tolerance (``evidence.aligned_share``).
"""

from __future__ import annotations

import math

import pytest

from canaryflow.analysis.catalogue import REQUESTS, Counts
from canaryflow.analysis.evidence import SequentialGate, aligned_share
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.sequential import canary_share
from canaryflow.bench.offline import (
    AA,
    BENCH_FAULTS,
    BENCH_FLEETS,
    BENCH_STEPS,
    bench_spec,
    judge_many,
    replay_seed,
)

LOGS_X3 = BENCH_FAULTS[2]
ALPHA = 0.005
"""The log gate's share of the bench plan's alpha 0.01."""


def _releases(fleet_name: str, fault, releases: int):
    """The bench's own first ``releases`` of ``fault`` on ``fleet_name`` (same seeds)."""
    number = [name for name, _ in BENCH_FLEETS].index(fleet_name)
    index = (AA, *BENCH_FAULTS).index(fault)
    return judge_many(
        BENCH_FLEETS[number][1],
        BENCH_STEPS,
        bench_spec(),
        releases,
        replay_seed(1, number, index, fault),
        fault.canary_factor,
        log_factor=fault.log_factor,
    )


@pytest.mark.judgement
def test_a_canary_logging_three_times_against_stable_is_caught_within_the_plan():
    judged = _releases("noisy, against stable", LOGS_X3, 30)

    caught = [j for j in judged if j.outcome is Outcome.FAIL and j.gate == "log-errors"]
    # Weighed at each chunk's own share: 20 of these 30 (57 of 100); at the window's: 24.
    assert len(caught) >= 23
    assert all(j.seconds is not None and j.seconds <= 405.0 for j in caught), "45 s + 3 x 120 s"


@pytest.mark.judgement
def test_identical_canaries_on_a_30s_scrape_are_not_rolled_back():
    judged = _releases("noisy, 30 s scrape", AA, 20)

    assert [j.outcome for j in judged] == [Outcome.PASS] * 20


def _gate() -> SequentialGate:
    gate = SequentialGate(
        "log-errors", Counts("log lines", REQUESTS["go"]), 1.0, ALPHA, 0.0, counted_at_look=True
    )
    gate.aligned_tracks = frozenset({"canary", "stable"})
    return gate


def _feed(gate: SequentialGate, canary: float, stable: float, rate: float, factor: float) -> None:
    """One look of ``canary`` and ``stable`` requests, each writing its expected lines."""
    gate.window_exposure += canary
    gate.window_reference += stable
    gate._add_lines((canary * rate * factor, canary, stable * rate, stable), None)


def _window_at_a_tenth(gate: SequentialGate) -> None:
    """The window so far: 150 s of the canary's 10 % of the requests (its lines weighed)."""
    gate.window_exposure, gate.window_reference = 15000.0, 135000.0


def test_an_identical_canary_scraped_beside_one_stable_pod_gains_no_evidence():
    gate = _gate()
    _window_at_a_tenth(gate)
    # Over and over, the canary's 15 s scrape beside one of four stable pods' 15 s (a chunk
    # share of 0.31, three times the window's), its lines exactly as many per request.
    for _ in range(20):
        _feed(gate, 1500.0, 3375.0, 0.05, 1.0)

    # At the window's share (0.1 to 0.11) its 75 lines against 169 would read as a canary
    # worse than the tolerated 2x, and cross; weighed no lower than the bound, they are no
    # evidence at all.
    assert gate.test.log_evidence < 0.0


def test_the_same_chunks_from_a_canary_logging_three_times_are_evidence():
    gate = _gate()
    _window_at_a_tenth(gate)
    for _ in range(20):
        _feed(gate, 1500.0, 3375.0, 0.05, 3.0)

    assert gate.test.rejects(ALPHA)


@pytest.mark.parametrize("tolerance", [0.0, 0.2, 1.0])
def test_no_chunk_is_weighed_below_its_identical_versions_line_share(tolerance):
    for window in (0.0, 0.01, 0.1, 0.3, 0.6, 0.9):
        for own in (0.001, 0.05, 0.1, 0.2, 0.31, 0.5, 0.8, 0.99):
            chunk = (0.0, own * 1000.0, 0.0, (1 - own) * 1000.0)
            share = aligned_share(window, chunk, tolerance)
            # The null's line fraction at the weighed share is at least the identical
            # canary's expected fraction (its own share): each chunk's likelihood ratio then
            # has expectation at most 1 for identical versions.
            assert canary_share(1.0 + tolerance, share) >= own - 1e-12
            assert share >= window
    assert aligned_share(0.1, (0.0, 300.0, 0.0, 700.0), 0.0) == pytest.approx(0.3)
    assert math.isclose(aligned_share(0.5, (0.0, 300.0, 0.0, 700.0), 1.0), 0.5)
