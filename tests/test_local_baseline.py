"""The local platform runs a fresh baseline as it runs the canary: a process of stable's artifact
behind the same nginx, split three ways, scraped as ``track="baseline"``, and gone (after traffic
has left it) when the release rolls back or promotes."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from backends import backend_command

from canaryflow.errors import PlatformError
from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.platform import LocalPlatform, ScrapeTarget
from canaryflow.platform.protocol import Artifact, BaselinePlatform

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


def test_the_baseline_takes_its_share_and_leaves_with_the_canary_on_rollback(
    platform: LocalPlatform, published: list[list[ScrapeTarget]]
):
    assert isinstance(platform, BaselinePlatform) and platform.baseline_problem() is None
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    assert platform.router.verify_weight(0, 0), "a new baseline takes no traffic yet"
    baseline = platform.process("baseline")
    assert baseline is not None and baseline.pid != platform.process("stable").pid
    platform.router.set_weight(30, 30)
    assert platform.router.verify_weight(30, 30)
    assert not platform.router.verify_weight(30), "the baseline share is part of the weight"

    with LoadGenerator(LoadConfig(platform.url, rate=150, clients=4, max_duration_s=30)) as load:
        time.sleep(2.0)
        split_until = time.time()
        platform.rollback()
        rolled_back_at = time.time()
        time.sleep(1.0)

    assert load.counters().failed == 0, load.failures()[:5]
    during = load.counters(end=split_until).by_track
    assert set(during) == {"stable", "canary", "baseline"}, during
    assert during["baseline"] > 20 and during["canary"] > 20
    after = load.counters(start=rolled_back_at)
    assert after.by_track == {"stable": after.total}
    assert not baseline.alive(), "the baseline stops with the canary"
    assert platform.process("baseline") is None

    tracks = [sorted(t.labels["track"] for t in targets) for targets in published]
    assert ["baseline", "canary", "stable"] in tracks
    assert tracks[-1] == ["stable"]
    versions = {t.labels["track"]: t.labels["version"] for t in published[-2]}
    assert versions["baseline"] == "v1", "the baseline runs stable's version"


def test_a_promotion_stops_the_baseline_too(platform: LocalPlatform):
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    baseline = platform.process("baseline")
    platform.router.set_weight(100)
    assert platform.router.verify_weight(100)
    platform.promote(V2)
    assert not baseline.alive()
    assert platform.router.verify_weight(0, 0)
    assert platform.router.served().baseline is None


def test_a_baseline_share_without_a_baseline_is_refused(platform: LocalPlatform):
    platform.deploy_canary(V2)
    with pytest.raises(PlatformError, match="no baseline is deployed"):
        platform.router.set_weight(10, 10)
    assert platform.router.verify_weight(0)


def test_the_comparing_logs_gate_reads_the_baselines_lines_while_it_runs(platform: LocalPlatform):
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    time.sleep(0.5)
    since = time.time()
    for track, count in (("baseline", 3), ("stable", 2)):
        service = platform._baseline if track == "baseline" else platform._stable
        address = service.address
        for _ in range(count):
            urllib.request.urlopen(f"http://{address}/", timeout=5).read()
    time.sleep(0.5)

    lines, share = platform.stable_logs(since)
    assert len([line for line in lines if "GET / 200" in line]) == 3, "the baseline's only"
    assert share == 1.0
    platform.rollback()
    lines, _ = platform.stable_logs(since)
    # stable's 2, and the rollback's own check that stable serves through the router
    assert len([line for line in lines if "GET / 200" in line]) == 3, "stable's again"
