"""A comparing logs gate counts each pod's lines only up to its request counter's last scrape.

With a 30 s scrape one pod's requests in a look may span 1 s while its lines span 10 s: set
against the older requests, the lines read as a regression (BENCHMARKS.md, "Offline replay:
what unmodelled noise broke": 6 of 1,000 identical canaries rolled back by log-errors). Where
the log source tells when each line was written, the lines after the pod's last scrape wait
for the next look: counted once, never lost.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from canaryflow.analysis.log_counts import MAX_HELD_S, LogCounts
from canaryflow.analysis.source import Sample, StampedLogSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.offline import BENCH_FLEETS, EPOCH, replay_run
from canaryflow.bench.replay import ReplayClock
from canaryflow.bench.streams import Pod, RecordedLogs, Recording, simulate

SPEC = AnalysisSpec.model_validate(
    {"interval": "10s", "queryWindow": "30s", "gates": [{"metric": "log-errors"}]}
)
GATE = "log-errors"


def _counter(times: list[float], rate: float, born: float) -> tuple[tuple[float, float], ...]:
    return tuple((t, rate * (t - born)) for t in times)


def _recording() -> Recording:
    """Two stable pods scraped every 15 s (at -6, 9, 24, 39 s of the window), 100 requests
    and one matching line a second each; a canary pod born at 0, scraped at 1 s and 31 s
    only (a 30 s scrape), as many requests and lines a second."""
    stable_scrapes = [-21.0, -6.0, 9.0, 24.0, 39.0]
    canary_scrapes = [1.0, 31.0]
    pods = [
        Pod(
            f"svc-{i}",
            "stable",
            _counter(stable_scrapes, 0.0, -600.0),
            _counter(stable_scrapes, 100.0, -600.0),
            tuple((t + 0.5, "connection refused") for t in range(-30, 40)),
        )
        for i in range(2)
    ]
    pods.append(
        Pod(
            "svc-canary-0",
            "canary",
            _counter(canary_scrapes, 0.0, 0.0),
            _counter(canary_scrapes, 100.0, 0.0),
            tuple((t + 0.5, "connection refused") for t in range(40)),
        )
    )
    return Recording(pods=pods, duration_s=40.0)


def _looks(
    recording: Recording, seconds: float, baseline: bool = False
) -> list[dict[str, dict[str, float]]]:
    """Each look's matching lines counted so far, by track and pod (against the recording's
    fresh baseline with ``baseline``)."""
    counted: list[dict[str, dict[str, float]]] = []

    def after_round(batch, verdict) -> None:
        lines = run._log_counts[GATE].lines
        counted.append({track: dict(pods) for track, pods in lines.items()})

    run = replay_run(recording, SPEC, baseline=baseline)
    run.on_round = after_round
    run.spec = SPEC.model_copy(update={"max_extension": 0.0})
    run.window(seconds)
    return counted


def test_lines_written_after_a_pods_last_scrape_are_not_set_against_its_older_requests():
    first = _looks(_recording(), 10.0)[0]

    # At 10 s the canary's requests were last scraped at 1 s: 100 requests, and 1 line by then
    # (written at 0.5 s), not the 10 lines written by 10 s.
    assert first["canary"] == {"": 1.0}
    # Each stable pod's requests span -6 s to 9 s (its scrapes before the window and before
    # the look): its lines of the same 15 s, not those written in the window's 10 s.
    assert first["stable"] == {"svc-0": 15.0, "svc-1": 15.0}


def test_the_lines_after_a_scrape_are_counted_at_a_later_look_once():
    looks = _looks(_recording(), 40.0)

    canary = [look["canary"][""] for look in looks]
    # Scraped at 1 s and 31 s: the lines up to each, counted once each, none lost.
    assert canary == [1.0, 1.0, 1.0, 31.0]
    assert looks[-1]["stable"] == {"svc-0": 45.0, "svc-1": 45.0}  # (-6 s, 39 s]


def test_a_track_whose_lines_name_no_counters_pod_is_counted_up_to_each_look_once():
    counts = LogCounts()
    counts.since(100.0, 100.0)
    stamps = {"canary": [Sample({"pod": "c-0"}, 99.0)]}
    written = {"canary": {"elsewhere": [95.0, 100.5, 104.0, 112.0]}}
    exposure = {"canary": [Sample({"pod": "c-0"}, 10.0)]}

    counts.look({}, exposure, exposure, written=written, stamps=stamps, at=110.0)
    assert counts.lines["canary"] == {"": 2.0}, "(100 s, 110 s]: the look, not the scrape"
    assert counts.aligned == {"canary": False}

    later = {"canary": {"elsewhere": [104.0, 112.0, 118.0, 121.0]}}
    counts.look({}, exposure, written=later, stamps=stamps, at=120.0)
    assert counts.lines["canary"] == {"": 4.0}


def test_a_pod_not_scraped_yet_has_its_lines_wait_and_read_again():
    counts = LogCounts()
    assert counts.since(100.0, 100.0) == 100.0 - 120.0
    written = {"canary": {"c-0": [101.0, 105.0]}}

    counts.look({}, {"canary": []}, {"canary": []}, written=written, stamps={}, at=110.0)
    assert not counts.lines["canary"], "no line counted while no request is"
    assert counts.since(110.0, 120.0) == 100.0 - 120.0, "read again from the first read"

    stamps = {"canary": [Sample({"pod": "c-0"}, 112.0)]}
    exposure = {"canary": [Sample({"pod": "c-0"}, 20.0)]}
    written = {"canary": {"c-0": [101.0, 105.0, 111.0, 115.0]}}
    counts.look({}, exposure, written=written, stamps=stamps, at=120.0)
    assert counts.lines["canary"] == {"": 3.0}
    assert counts.since(120.0, 130.0) == 112.0
    assert counts.since(120.0, 112.0 + MAX_HELD_S + 60) == 112.0 + 60, "not read for ever"


@pytest.mark.parametrize("seed", [1, 2])
def test_the_replay_counts_every_pods_lines_up_to_its_scrapes_and_loses_none(seed):
    fleet = dict(BENCH_FLEETS)["noisy, 30 s scrape"]
    fleet = replace(fleet, history_s=60.0, log_rate=0.01)
    recording = simulate(fleet, ((0.1, 60.0),), random.Random(seed))
    looks = _looks(recording, 60.0, baseline=True)

    last_scrape = {
        pod.name: max((t for t, _ in pod.exposure if t <= 60.0), default=-math.inf)
        for pod in recording.pods
    }
    canary = [p for p in recording.pods if p.track == "canary"]
    baseline = [p for p in recording.pods if p.track == "baseline"]
    assert isinstance(RecordedLogs(recording, ReplayClock(EPOCH)), StampedLogSource)
    expected_canary = sum(
        1 for pod in canary for t, _ in pod.lines if 0 <= t <= last_scrape[pod.name]
    )
    assert looks[-1]["canary"] == {"": float(expected_canary)}
    expected = {
        pod.name: float(sum(1 for t, _ in pod.lines if 0 <= t <= last_scrape[pod.name]))
        for pod in baseline
    }
    assert looks[-1]["stable"] == expected


def test_the_local_platform_stamps_each_line_as_its_tail_first_sees_it(tmp_path):
    from types import SimpleNamespace

    from canaryflow.local.log_tail import LogTail
    from canaryflow.local.platform import LocalPlatform
    from canaryflow.platform.protocol import PodLogs, StampedLogs

    path = tmp_path / "canary.log"
    path.write_text("")
    tail = LogTail(path)
    path.write_text("connection refused\nhalf")
    tail.poll()
    seen = tail.stamped_since(0.0)
    assert [line for _, line in seen] == ["connection refused"], "a half line waits"
    assert tail.stamped_since(seen[0][0] + 1e-3) == []

    assert issubclass(LocalPlatform, StampedLogs) and issubclass(LocalPlatform, PodLogs)
    canary = SimpleNamespace(address="127.0.0.1:8081", log=tail)
    stable = SimpleNamespace(address="127.0.0.1:8080", log=LogTail(path))
    local = SimpleNamespace(_canary_log=canary, _baseline=None, _stable=stable)
    by_pod, share = LocalPlatform.logs_by_pod_stamped(local, "canary", 0.0)  # type: ignore[arg-type]
    assert by_pod == {"127.0.0.1:8081": seen} and share == 1.0
    assert LocalPlatform.logs_by_pod_stamped(local, "fleet", 0.0) == ({}, 1.0)  # type: ignore[arg-type]


def test_a_look_without_one_tracks_scrape_is_held_until_both_tracks_have_requests():
    from canaryflow.analysis.catalogue import REQUESTS, Counts
    from canaryflow.analysis.evidence import SequentialGate

    gate = SequentialGate(
        GATE, Counts("log lines", REQUESTS["go"]), 1.0, 0.01, 0.0, counted_at_look=True
    )
    gate.aligned_tracks = frozenset({"canary", "stable"})

    gate._add_lines((0.0, 0.0, 5.0, 1000.0), None)  # the canary's pod not scraped again
    assert (gate.test.stable_events, gate.test.stable_exposure) == (0.0, 0.0)
    gate._add_lines((4.0, 300.0, 1.0, 200.0), None)
    test = gate.test
    assert (test.canary_events, test.canary_exposure) == (4.0, 300.0)
    assert (test.stable_events, test.stable_exposure) == (6.0, 1200.0)
    assert gate.held_lines == (0.0, 0.0, 0.0, 0.0)
