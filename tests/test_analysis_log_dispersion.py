"""A comparing logs gate on a lumpy fleet: lines counted per pod, their over-dispersion estimated
from the reference's pods as the counter gates' is, so identical releases stay inside alpha and
a canary that really logs three times as much is still caught.

The releases are simulated (``bench.streams``: 4 stable pods and a canary pod, 15 s scrape at
per-pod offsets, pods that stall 1 s every 30 s and log "context deadline exceeded" for half of
that second's failed requests, a lazily filled pool logging refused dials) and judged by the
real ``AnalysisRun`` through ``bench.offline.judge_release``; every class is seeded.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.log_counts import LogCounts
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.sequential import CountTest
from canaryflow.analysis.source import PodLogSource, Sample
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.analysis.statistics import clopper_pearson
from canaryflow.bench.offline import NOISY_FLEET, judge_release
from canaryflow.bench.replay import ReplayClock
from canaryflow.bench.streams import Fleet, RecordedLogs, simulate

LUMPY = replace(NOISY_FLEET, blip_every_s=0.0, cold_s=0.0)
"""The replay's noisy fleet without its shared blips and cold start: only the pods' own lumps."""
"""Lumpy pods logging bursts: each stall logs about 40 lines at once on a stable pod."""
STEADY = replace(LUMPY, stall_every_s=0.0, pool_size=0)
"""The same fleet with independent lines: what a real regression is measured on."""
SPEC = AnalysisSpec.model_validate(
    {"interval": "10s", "queryWindow": "30s", "gates": [{"metric": "log-errors"}]}
)
"""The catalogue's log-errors gate alone (tolerance 100 %), holding the plan's whole alpha."""
STEPS = ((0.1, 120.0), (0.3, 120.0))


def _rollbacks(fleet: Fleet, releases: int, seed: int, log_factor: float = 1.0) -> dict:
    rng = random.Random(seed)
    found: dict = {}
    for _ in range(releases):
        judged = judge_release(simulate(fleet, STEPS, rng, 1.0, log_factor), STEPS, SPEC)
        if judged.outcome is not Outcome.PASS:
            key = (judged.outcome, judged.gate)
            found[key] = found.get(key, 0) + 1
    return found


def _consistent_with_alpha(rolled_back: int, releases: int) -> bool:
    """The false-rollback rate's 95 % Clopper-Pearson interval reaches down to alpha."""
    low, _ = clopper_pearson(rolled_back, releases)
    return low <= SPEC.alpha


@pytest.mark.judgement
def test_identical_releases_with_lumpy_pods_logging_bursts_roll_back_within_alpha():
    found = _rollbacks(LUMPY, 100, seed=7)

    rolled_back = sum(found.values())
    assert _consistent_with_alpha(rolled_back, 100), f"{rolled_back}/100 rolled back: {found}"


@pytest.mark.judgement
def test_identical_releases_logging_often_on_lumpy_pods_roll_back_within_alpha():
    # 1 % of requests log: more lines per pod and look, so a scrape's offset between a pod's
    # lines and its requests would weigh more; the lines are split by long-run shares.
    found = _rollbacks(replace(LUMPY, log_rate=0.01), 100, seed=8)

    rolled_back = sum(found.values())
    assert _consistent_with_alpha(rolled_back, 100), f"{rolled_back}/100 rolled back: {found}"


@pytest.mark.judgement
def test_a_canary_logging_three_times_the_references_rate_steadily_is_still_caught():
    # Three times the lines against a tolerated ratio of 2, over 240 s at 10 % and 30 %: 32 of
    # these 40 since each pod's lines are counted up to its requests' last scrape. Counted as
    # written (before), 38 of 40, in part because a window's first looks weighed the lines at
    # a share of the requests below the canary's true one (its pod's first scrape covers less
    # of the window than the reference's), which made any canary look worse.
    found = _rollbacks(STEADY, 40, seed=9, log_factor=3.0)

    caught = found.get((Outcome.FAIL, "log-errors"), 0)
    assert caught >= 30, f"caught {caught}/40: {found}"


@pytest.mark.judgement
def test_a_canary_logging_three_times_the_references_lines_on_lumpy_pods_is_still_caught():
    # Stable's lines: 1 % steady + about 0.6 % from stalls; the canary writes five times
    # every line (``streams.simulate``'s ``log_factor``): 8 % of its requests.
    found = _rollbacks(replace(LUMPY, log_rate=0.01), 40, seed=10, log_factor=5.0)

    caught = found.get((Outcome.FAIL, "log-errors"), 0)
    assert caught >= 36, f"caught {caught}/40: {found}"


# The counts the gate is fed ----------------------------------------------------------------


def _requests(pod: str, value: float) -> Sample:
    return Sample({"pod": pod, "code": "200"}, value)


def test_the_references_lines_are_counted_per_pod_beside_those_pods_requests_only():
    counts = LogCounts()
    exposure = {"canary": [_requests("c-0", 50)], "stable": [_requests(p, 100) for p in "abc"]}

    looked = counts.look(
        {"canary": {"c-0": 2}, "stable": {"a": 1, "b": 7}}, exposure, exposure, share=2 / 3
    )

    assert looked["stable/events"] == [Sample({"pod": "a"}, 1.0), Sample({"pod": "b"}, 7.0)]
    assert looked["stable/exposure"] == [_requests("a", 100), _requests("b", 100)], (
        "pod c's log was not read: its requests are not the lines' exposure, and no share "
        "is assumed"
    )
    assert looked["canary/events"] == [Sample({}, 2.0)]
    assert looked["canary/exposure"] == [_requests("c-0", 50)]


def test_a_reference_pod_whose_lines_are_read_later_counts_from_then_not_from_its_birth():
    counts = LogCounts()
    first = {"stable": [_requests("a", 100), _requests("b", 5000)]}
    counts.look({"stable": {"a": 1}}, first, first)

    later = {"stable": [_requests("a", 200), _requests("b", 5100)]}
    looked = counts.look({"stable": {"a": 2, "b": 9}}, later)

    assert looked["stable/exposure"] == [_requests("a", 200), _requests("b", 0)]
    assert looked["stable/events"] == [Sample({"pod": "a"}, 3.0), Sample({"pod": "b"}, 0.0)]

    again = {"stable": [_requests("a", 300), _requests("b", 5150)]}
    looked = counts.look({"stable": {"a": 0, "b": 4}}, again)
    assert looked["stable/exposure"] == [_requests("a", 300), _requests("b", 50)]
    assert looked["stable/events"] == [Sample({"pod": "a"}, 3.0), Sample({"pod": "b"}, 4.0)]


def test_lines_without_pods_are_one_unit_with_the_requests_scaled_by_the_share_read():
    counts = LogCounts()
    exposure = {"stable": [_requests("a", 100), _requests("b", 300)]}

    looked = counts.look({"stable": {"": 4}}, exposure, share=0.5)

    assert looked["stable/events"] == [Sample({}, 4.0)]
    assert looked["stable/exposure"] == [_requests("a", 50), _requests("b", 150)]


@given(
    st.integers(0, 50),
    st.integers(1, 10_000),
    st.integers(0, 50),
    st.integers(1, 10_000),
    st.floats(0.0, 2.0),
)
def test_weighing_a_look_at_its_own_share_is_the_plain_count_test(ce, cn, se, sn, tolerance):
    plain, shared = CountTest(tolerance=tolerance), CountTest(tolerance=tolerance)

    plain.add(ce, cn, se, sn)
    shared.add_at_share(ce, cn, se, sn, cn / (cn + sn))

    assert shared.log_ratios == plain.log_ratios
    assert (shared.canary_exposure, shared.stable_exposure) == (cn, sn)


def test_the_replay_reads_each_pods_lines_under_the_name_its_counters_carry():
    recording = simulate(replace(LUMPY, history_s=30.0), ((0.1, 60.0),), random.Random(1))
    clock = ReplayClock(60.0)
    logs = RecordedLogs(recording, clock)

    assert isinstance(logs, PodLogSource)
    by_pod, share = logs.stable_pod_lines_since(0.0)
    stable = {pod.name for pod in recording.pods if pod.track == "stable"}
    assert set(by_pod) == stable and share == 1.0
    assert sorted(line for lines in by_pod.values() for line in lines) == sorted(
        logs.stable_lines_since(0.0)[0]
    )
    assert any(by_pod.values())
