"""The load generator holds its rate, counts every outcome (never retrying a failure), reads the
serving track from the router, and stops by itself at its deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from backends import start_backend

from canaryflow.errors import InputError
from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.process import ProcessGroup, free_port
from canaryflow.local.router import NginxRouter
from canaryflow.platform.protocol import HeaderRoute

pytestmark = pytest.mark.slow


@pytest.fixture
def group(tmp_path: Path):
    with ProcessGroup(tmp_path / "processes") as processes:
        yield processes


def run(config: LoadConfig, seconds: float) -> LoadGenerator:
    with LoadGenerator(config) as load:
        time.sleep(seconds)
    return load


def test_it_holds_the_requested_rate(group: ProcessGroup):
    backend = start_backend(group, "v1")

    load = run(LoadConfig(f"http://{backend}", rate=80, clients=4), 2.0)

    counters = load.counters()
    assert 140 <= counters.total <= 170
    assert counters.ok == counters.total and counters.failed == 0
    assert counters.by_track == {"unknown": counters.total}


def test_server_errors_count_as_failed(group: ProcessGroup):
    backend = start_backend(group, "v1", fail_rate=0.3)

    counters = run(LoadConfig(f"http://{backend}", rate=150, clients=4), 2.0).counters()

    assert counters.failed == counters.http_5xx
    assert 0.15 <= counters.http_5xx / counters.total <= 0.45
    assert counters.ok + counters.http_5xx == counters.total


def test_requests_without_an_answer_count_as_failed_and_are_not_retried():
    closed_port = free_port()

    load = run(LoadConfig(f"http://127.0.0.1:{closed_port}", rate=50, clients=2), 1.0)

    counters = load.counters()
    assert 40 <= counters.total <= 60
    assert counters.no_answer == counters.failed == counters.total
    assert all(event.failed and event.track == "unknown" for event in load.failures())


def test_it_stops_by_itself_at_its_deadline(group: ProcessGroup):
    backend = start_backend(group, "v1")
    load = LoadGenerator(LoadConfig(f"http://{backend}", rate=100, clients=2, max_duration_s=0.5))

    load.start()
    time.sleep(1.2)

    assert not load.running
    stopped_at = load.counters().total
    # Paced to the schedule: never more than the deadline's share of requests (a loaded machine
    # may send fewer), and nothing after it stopped.
    assert 0 < stopped_at <= 100 * 0.5 + 2
    time.sleep(0.3)
    assert load.counters().total == stopped_at
    load.stop()


def test_tracks_override_share_and_user_ids_reach_the_service(group: ProcessGroup, tmp_path: Path):
    stable, canary = start_backend(group, "v1"), start_backend(group, "v2")
    with NginxRouter(tmp_path / "router", group, stable) as router:
        router.set_canary_upstream(canary)
        router.set_header_route(HeaderRoute())
        assert router.verify_weight(0)

        load = run(LoadConfig(router.url, rate=150, clients=4, override_share=0.25), 2.0)

    counters = load.counters()
    assert set(counters.by_track) == {"stable", "canary"}
    assert 0.15 <= counters.canary_share() <= 0.35
    canary_log = next(p for p in group.workdir.glob("backend-v2-*.log"))
    users = {
        line.split("user=")[1] for line in canary_log.read_text().splitlines() if " GET / " in line
    }
    assert len(users) > 20 and all(user.startswith("user-") for user in users)


def test_the_timeline_answers_questions_about_a_time_window(group: ProcessGroup):
    backend = start_backend(group, "v1")
    with LoadGenerator(LoadConfig(f"http://{backend}", rate=100, clients=2)) as load:
        time.sleep(0.6)
        middle = time.time()
        time.sleep(0.6)

    before, after = load.counters(end=middle), load.counters(start=middle)
    assert before.total > 0 and after.total > 0
    assert before.total + after.total == load.counters().total
    assert all(event.at < middle for event in load.events(end=middle))
    assert all(event.latency_s > 0 for event in load.events())


def test_bad_settings_are_input_errors_naming_the_field():
    with pytest.raises(InputError) as error:
        LoadGenerator(LoadConfig("ftp://x", rate=0, clients=0, paths=("nope",), override_share=2))

    message = str(error.value)
    for field in ("rate:", "clients:", "paths:", "override_share:", "url:"):
        assert field in message
