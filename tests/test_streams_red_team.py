"""The red team's noise (issue 20): each ``streams.Fleet`` field does what it says.

Restarts reset a pod's counters and start it cold; a drained pod's series end (stale) and a
new pod's begin; an HPA changes stable's pod set and spreads its share over the pods alive;
traffic ramps and spikes; clients retry failures on the same pod; pods burst matching log
lines; header traffic reaches only the canary. And the replay judges identical canaries of
these fleets without rolling them back (the full figures: BENCHMARKS.md).
"""

from __future__ import annotations

import itertools
import random
import statistics
from dataclasses import replace

import pytest

from canaryflow.bench.offline import (
    FLEET_KEYS,
    REPLAY_FLEETS,
    Tally,
    bench_spec,
    judge_many,
)
from canaryflow.bench.streams import Fleet, RecordedSource, simulate

QUIET = Fleet(
    stable_pods=4,
    rps=1000.0,
    scrape_s=5.0,
    stall_every_s=0.0,
    blip_every_s=0.0,
    history_s=60.0,
    cold_s=30.0,
    cold_factor=3.0,
)
STEPS = ((0.1, 300.0), (0.3, 300.0))


def _pod(recording, name):
    return next(p for p in recording.pods if p.name == name)


def _rate(points_events, points_exposure, start, end):
    """A pod's bad share between its first samples at or after ``start`` and ``end``."""
    events = [v for t, v in points_events if start <= t <= end]
    exposure = [v for t, v in points_exposure if start <= t <= end]
    return (events[-1] - events[0]) / (exposure[-1] - exposure[0])


def test_a_restarted_pod_counts_from_zero_again_under_its_name_and_starts_cold():
    fleet = replace(QUIET, restart_at_s=200.0)
    recording = simulate(fleet, STEPS, random.Random(1))
    pod = _pod(recording, "svc-0")
    drops = [(a, b) for a, b in itertools.pairwise(pod.exposure) if b[1] < a[1]]
    assert len(drops) == 1, "one reset"
    (before, after) = drops[0]
    assert before[0] < 200.0 <= after[0] and after[1] < 1000, "from 0 at the restart"
    cold = _rate(pod.events, pod.exposure, 201.0, 229.0)
    warm = _rate(pod.events, pod.exposure, 300.0, 600.0)
    assert 2.0 < cold / warm < 4.5, "cold_factor 3 for cold_s after the restart"
    others = [p for p in recording.pods if p.name != "svc-0"]
    assert all(b[1] >= a[1] for p in others for a, b in itertools.pairwise(p.exposure))
    assert [p.name for p in recording.pods] == [
        p.name for p in simulate(QUIET, STEPS, random.Random(1)).pods
    ]


def test_restarts_come_one_gap_apart_and_can_hit_the_canary():
    fleet = replace(QUIET, restart_at_s=100.0, restart_pods=2, restart_gap_s=60.0)
    recording = simulate(fleet, STEPS, random.Random(2))
    resets = {
        p.name: [b[0] for a, b in itertools.pairwise(p.exposure) if b[1] < a[1]]
        for p in recording.pods
    }
    assert 100 <= resets["svc-0"][0] < 105 and 160 <= resets["svc-1"][0] < 165
    assert resets["svc-2"] == resets["svc-3"] == resets["svc-canary-0"] == []
    canary = simulate(
        replace(QUIET, restart_at_s=100.0, restart_track="canary"), STEPS, random.Random(2)
    )
    assert [len(v) for v in _resets(canary).values()] == [0, 0, 0, 0, 1]


def _resets(recording):
    return {
        p.name: [b[0] for a, b in itertools.pairwise(p.exposure) if b[1] < a[1]]
        for p in recording.pods
    }


def test_a_drained_pod_goes_stale_and_a_new_pod_of_another_name_takes_its_place():
    fleet = replace(QUIET, restart_at_s=200.0, restart_renamed=True)
    recording = simulate(fleet, STEPS, random.Random(3))
    old, new = _pod(recording, "svc-0"), _pod(recording, "svc-4")
    assert old.gone_s == 200.0 and old.exposure[-1][0] < 200.0
    assert new.track == "stable" and 200.0 <= new.exposure[0][0] < 205.0
    assert new.exposure[0][1] < 1000, "a new pod counts from 0"
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(new.exposure))
    source = RecordedSource(recording)
    selector = 'http_requests_total{service="svc",track="stable"}'
    seen = {s.labels["pod"] for s in source.vector(selector, at=199.0)}
    assert "svc-0" in seen and "svc-4" not in seen
    seen = {s.labels["pod"] for s in source.vector(selector, at=230.0)}
    assert "svc-0" not in seen and "svc-4" in seen, "Prometheus marks the gone pod's series stale"


def test_an_hpa_changes_stables_pod_set_and_spreads_its_share_over_the_pods_alive():
    out = simulate(replace(QUIET, scale_at_s=300.0, scale_to=1.5), STEPS, random.Random(4))
    stable = [p for p in out.pods if p.track == "stable"]
    assert [p.name for p in stable] == [f"svc-{i}" for i in range(6)]
    joined = [p for p in stable if p.name in ("svc-4", "svc-5")]
    assert all(300.0 <= p.exposure[0][0] < 305.0 and p.gone_s is None for p in joined)
    per_pod_after = _rate_of_requests(_pod(out, "svc-0"), 400.0, 600.0)
    assert 0.9 * 700 * 0.7 / 6 < per_pod_after < 1.1 * 1000 * 0.7 / 6, "six pods share 70 %"
    inward = simulate(replace(QUIET, scale_at_s=300.0, scale_to=0.5), STEPS, random.Random(4))
    gone = {p.name: p.gone_s for p in inward.pods if p.track == "stable"}
    assert gone == {"svc-0": None, "svc-1": None, "svc-2": 300.0, "svc-3": 300.0}
    per_pod_after = _rate_of_requests(_pod(inward, "svc-0"), 400.0, 600.0)
    assert 0.9 * 1000 * 0.7 / 2 < per_pod_after < 1.1 * 1000 * 0.7 / 2, "two pods share 70 %"


def _rate_of_requests(pod, start, end):
    points = [(t, v) for t, v in pod.exposure if start <= t <= end]
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def test_traffic_ramps_over_the_release_and_spikes_for_its_seconds():
    ramp = simulate(replace(QUIET, traffic_end=2.0), STEPS, random.Random(5))
    pod = _pod(ramp, "svc-1")  # stable's share: 90 % then 70 % of the service
    early = _rate_of_requests(pod, 5.0, 60.0) / 0.9
    late = _rate_of_requests(pod, 540.0, 600.0) / 0.7
    assert 1.7 < late / early < 2.1, "twice the requests per second at the end"
    spike = simulate(replace(QUIET, spike_at_s=400.0, spike_s=30.0), STEPS, random.Random(5))
    pod = _pod(spike, "svc-1")
    assert 2.6 < _rate_of_requests(pod, 402.0, 428.0) / _rate_of_requests(pod, 450, 590) < 3.4


def test_a_retried_failure_is_a_group_of_failures_on_the_same_pod():
    fleet = replace(QUIET, cold_s=0.0, base_rate=0.02, retries=2, retry_fail=1.0)
    recording = simulate(fleet, STEPS, random.Random(6))
    for pod in recording.pods:
        share = pod.events[-1][1] / pod.exposure[-1][1]
        # Every failure fails twice more: 3 p bad of 1 + 2 p requests.
        assert abs(share - 0.06 / 1.04) < 0.006, (pod.name, share)
    none = simulate(replace(fleet, retries=0), STEPS, random.Random(6))
    assert all(abs(p.events[-1][1] / p.exposure[-1][1] - 0.02) < 0.003 for p in none.pods)


def test_pods_burst_20_to_50_matching_lines_at_once_now_and_then_on_both_tracks():
    fleet = replace(QUIET, log_burst_every_s=100.0, baseline_pods=1)
    recording = simulate(fleet, STEPS, random.Random(7))
    bursts = {}
    for pod in recording.pods:
        seconds = [int(t) for t, text in pod.lines if text == "redial: connection refused"]
        sizes = [len(list(group)) for _, group in itertools.groupby(seconds)]
        assert all(20 <= size <= 50 for size in sizes), (pod.name, sizes)
        bursts[pod.name] = len(sizes)
    assert 1.5 < statistics.mean(bursts.values()) < 12, "about 6 in 600 s a pod"
    assert bursts["svc-canary-0"] + bursts["svc-baseline-0"] > 0
    assert not any(p.lines for p in simulate(QUIET, STEPS, random.Random(7)).pods)


def test_header_traffic_reaches_only_the_canary_with_its_own_mix():
    fleet = replace(QUIET, cold_s=0.0, header_rps=20.0, header_rate=0.2)
    plain = replace(fleet, header_rps=0.0)
    with_header = simulate(fleet, STEPS, random.Random(8))
    without = simulate(plain, STEPS, random.Random(8))
    canary, canary_plain = _pod(with_header, "svc-canary-0"), _pod(without, "svc-canary-0")
    extra = _rate_of_requests(canary, 10.0, 290.0) - _rate_of_requests(canary_plain, 10.0, 290.0)
    assert 15 < extra < 25, "20 requests/s more, whatever the weight"
    share = canary.events[-1][1] / canary.exposure[-1][1]
    expected = (0.01 * 100 * 300 + 0.01 * 300 * 300 + 0.2 * 20 * 600) / (
        100 * 300 + 300 * 300 + 20 * 600
    )
    assert abs(share - expected) < 0.003
    stable = _rate_of_requests(_pod(with_header, "svc-1"), 10.0, 290.0)
    assert abs(stable - _rate_of_requests(_pod(without, "svc-1"), 10.0, 290.0)) < 15


def test_the_red_teams_fleets_are_named_for_the_command_line_after_the_old_ones():
    names = [name for name, _ in REPLAY_FLEETS]
    keys = list(FLEET_KEYS)
    assert keys.index("restarts") > keys.index("all-unseen")
    assert names.index(FLEET_KEYS["unseen-2"]) == 22, "its seed as in its first runs"


@pytest.mark.judgement
def test_identical_canaries_of_the_red_teams_fleets_are_not_rolled_back():
    """A sample (the figures of 500 releases a fleet: BENCHMARKS.md): alpha 1 % expects 0.2."""
    fleets = dict(REPLAY_FLEETS)
    for key in ("canary-replaced", "unseen-2"):
        judged = judge_many(
            fleets[FLEET_KEYS[key]], ((0.1, 120.0), (0.3, 120.0)), bench_spec(), 10, 61
        )
        assert Tally.of(judged, None).rolled_back <= 1, key


def test_the_canarys_pods_follow_its_weight_and_the_baselines_match_them_cold():
    fleet = replace(QUIET, baseline_pods=1, scale_with_weight=True)
    steps = ((0.1, 100.0), (0.3, 100.0), (0.6, 100.0))
    recording = simulate(fleet, steps, random.Random(9))
    born = {
        track: sorted(round(p.exposure[0][0] // 5 * 5) for p in recording.pods if p.track == track)
        for track in ("canary", "baseline")
    }
    # 4 stable pods: ceil(0.4) = 1, ceil(1.2) = 2, ceil(2.4) = 3 pods, each born at its step.
    assert born["canary"] == born["baseline"] == [0, 100, 200]
    newest = _pod(recording, "svc-canary-2")
    cold = _rate(newest.events, newest.exposure, 201.0, 229.0)
    warm = _rate(newest.events, newest.exposure, 240.0, 300.0)
    assert cold / warm > 2.0, "the added pod starts cold"


def test_a_loaded_pod_fails_more_of_its_requests():
    fleet = replace(QUIET, cold_s=0.0, baseline_pods=1, capacity_rps=500.0)
    recording = simulate(fleet, ((0.6, 600.0),), random.Random(10))
    canary, baseline = _pod(recording, "svc-canary-0"), _pod(recording, "svc-baseline-0")
    # 600 requests/s on the canary's pod (u 0.9 at most), 200 on the baseline's (u 0.4).
    assert abs(canary.events[-1][1] / canary.exposure[-1][1] - 0.01 / 0.1) < 0.01
    assert abs(baseline.events[-1][1] / baseline.exposure[-1][1] - 0.01 / 0.6) < 0.002
