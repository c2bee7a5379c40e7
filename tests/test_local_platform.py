"""The local platform runs stable and canary as processes behind nginx: a rollback leaves stable
alone and the canary gone, a promotion swaps versions without failing a request, a crashed
canary is noticed, and Prometheus is told where to scrape."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from backends import backend_command

from canaryflow.errors import InputError, PlatformError
from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.platform import LocalPlatform, ScrapeTarget
from canaryflow.platform.protocol import Artifact, HeaderRoute, Platform

pytestmark = pytest.mark.slow

V1 = Artifact(version="v1", command=backend_command("v1"))
V2 = Artifact(version="v2", command=backend_command("v2"))


@pytest.fixture
def published() -> list[list[ScrapeTarget]]:
    return []


@pytest.fixture
def platform(tmp_path: Path, published: list):
    with LocalPlatform(
        tmp_path, V1, app="shop", start_timeout_s=10, on_targets_changed=published.append
    ) as running:
        yield running


def served_version(platform: LocalPlatform, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(platform.url + "/", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode().strip()


def test_it_is_a_platform(platform: LocalPlatform):
    assert isinstance(platform, Platform)


def test_deploy_then_rollback_leaves_stable_serving_everything(platform: LocalPlatform):
    stable_pid = platform.process("stable").pid
    platform.deploy_canary(V2)
    assert platform.wait_healthy(10).healthy
    canary_process = platform.process("canary")
    platform.router.set_weight(50)
    assert platform.router.verify_weight(50)

    with LoadGenerator(LoadConfig(platform.url, rate=100, clients=4, max_duration_s=20)) as load:
        time.sleep(1.0)
        platform.rollback()
        rolled_back_at = time.time()
        time.sleep(1.0)

    assert load.counters().failed == 0, load.failures()[:5]
    assert load.counters(end=rolled_back_at).by_track.get("canary", 0) > 10
    assert load.counters(start=rolled_back_at).by_track == {
        "stable": load.counters(start=rolled_back_at).total
    }
    assert not canary_process.alive()
    assert not platform.canary_alive()
    assert platform.process("stable").pid == stable_pid
    assert served_version(platform, {"X-Release-Channel": "canary"}) == "version=v1"


def test_promotion_swaps_versions_without_failing_a_request(platform: LocalPlatform):
    old_stable = platform.process("stable")
    platform.deploy_canary(V2)
    assert platform.wait_healthy(10).healthy
    canary_process = platform.process("canary")
    platform.router.set_weight(100)
    assert platform.router.verify_weight(100)

    with LoadGenerator(LoadConfig(platform.url, rate=100, clients=4, max_duration_s=20)) as load:
        time.sleep(0.5)
        platform.promote(V2)
        time.sleep(0.5)

    assert load.counters().total > 80
    assert load.counters().failed == 0, load.failures()[:5]
    assert not old_stable.alive() and not canary_process.alive()
    assert served_version(platform) == "version=v2"
    assert platform.router.served().canary is None
    assert [t.labels["version"] for t in platform.targets()] == ["v2"]


def test_a_killed_canary_is_detected(platform: LocalPlatform):
    platform.deploy_canary(V2)
    assert platform.wait_healthy(10).healthy

    platform.process("canary").kill()

    assert not platform.canary_alive()
    report = platform.wait_healthy(2)
    assert not report.healthy
    assert "exited" in report.detail


def test_a_canary_that_never_gets_healthy_is_reported(platform: LocalPlatform):
    platform.deploy_canary(Artifact(version="v3", command=["sleep", "30"]))

    report = platform.wait_healthy(0.5)

    assert not report.healthy
    assert "not ready" in report.detail
    platform.rollback()
    assert not platform.canary_alive()


def test_canary_logs_are_the_lines_written_since_a_time(platform: LocalPlatform):
    platform.deploy_canary(V2)
    assert platform.wait_healthy(10).healthy
    platform.router.set_header_route(HeaderRoute())
    assert platform.router.verify_weight(0)
    time.sleep(0.5)
    since = time.time()

    for _ in range(3):
        served_version(platform, {"X-Release-Channel": "canary"})
    time.sleep(0.5)

    lines = platform.canary_logs(since)
    assert len([line for line in lines if "GET / 200" in line]) == 3
    assert not any("/healthz" in line for line in lines)
    assert platform.canary_logs(time.time() + 1) == []


def test_each_processs_lines_are_read_under_the_address_its_counters_are_scraped_at(
    platform: LocalPlatform, published: list[list[ScrapeTarget]]
):
    platform.deploy_canary(V2)
    assert platform.wait_healthy(10).healthy
    platform.router.set_header_route(HeaderRoute())
    assert platform.router.verify_weight(0)
    since = time.time()

    served_version(platform, {"X-Release-Channel": "canary"})
    served_version(platform)
    time.sleep(0.5)

    scraped = {target.labels["track"]: target.address for target in published[-1]}
    canary = platform.canary_logs_by_pod(since)
    stable, share = platform.stable_logs_by_pod(since)
    assert list(canary) == [scraped["canary"]]
    assert (list(stable), share) == ([scraped["stable"]], 1.0)
    assert any("GET / 200" in line for line in canary[scraped["canary"]])
    assert any("GET / 200" in line for line in stable[scraped["stable"]])


def test_prometheus_is_told_about_every_process_change(
    platform: LocalPlatform, published: list[list[ScrapeTarget]]
):
    platform.deploy_canary(V2)
    platform.rollback()

    tracks = [[(t.labels["track"], t.labels["version"]) for t in targets] for targets in published]
    assert tracks == [
        [("stable", "v1")],
        [("stable", "v1"), ("canary", "v2")],
        [("stable", "v1")],
    ]
    assert published[1][1].labels == {
        "track": "canary",
        "version": "v2",
        "app": "shop",
        "namespace": "local",
    }
    assert published[1][1].address.startswith("127.0.0.1:")


def test_a_new_canary_starts_without_traffic_whatever_was_set_before(platform: LocalPlatform):
    platform.router.set_weight(70)
    platform.router.set_header_route(HeaderRoute())

    platform.deploy_canary(V2)

    assert platform.router.verify_weight(0)
    assert platform.router.served().header is None
    assert served_version(platform, {"X-Release-Channel": "canary"}) == "version=v1"


def test_a_second_canary_is_refused_while_one_runs(platform: LocalPlatform):
    platform.deploy_canary(V2)
    with pytest.raises(PlatformError, match="already deployed"):
        platform.deploy_canary(V2)


def test_an_artifact_without_a_command_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match=r"artifact.command: empty"):
        LocalPlatform(tmp_path, Artifact(version="v1"))


def test_a_stable_that_cannot_start_stops_everything_and_says_why(tmp_path: Path):
    broken = Artifact(version="v1", command=["sh", "-c", "echo no config file; exit 3"])
    platform = LocalPlatform(tmp_path, broken, start_timeout_s=5)

    with pytest.raises(PlatformError, match="no config file"):
        platform.start()

    assert platform.group.processes == []


def test_a_failing_scrape_side_does_not_make_a_done_rollback_fail(tmp_path: Path):
    prometheus_up = [True]

    def retarget(targets: list[ScrapeTarget]) -> None:
        if not prometheus_up[0]:
            raise OSError("Prometheus: connection refused")

    with LocalPlatform(tmp_path, V1, on_targets_changed=retarget) as platform:
        platform.deploy_canary(V2)
        canary = platform.process("canary")
        prometheus_up[0] = False

        platform.rollback()

        assert not canary.alive()
        assert isinstance(platform.targets_error, OSError)
        with pytest.raises(OSError, match="connection refused"):
            platform.deploy_canary(V2)
        platform.rollback()
        assert not platform.canary_alive()
        assert platform.router.served().canary is None
