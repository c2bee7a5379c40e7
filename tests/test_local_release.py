"""Whole releases on the embedded platform, with real parts: Go binaries built from source,
nginx as the router, Prometheus scraping both tracks, a load generator as the users.

Each test states one promise of a release: healthy canaries are promoted without a failed
request; a fault (errors, latency, a crash, Prometheus going away) ends with all traffic on
stable, the stable process untouched, and never a promotion.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.load import plan_from_dict

pytestmark = pytest.mark.slow

PLAN = {
    "service": {"name": "checkout", "namespace": "e2e", "healthTimeout": "15s"},
    "steps": [{"weight": 20, "duration": "6s"}, {"weight": 60, "duration": "6s"}],
    "analysis": {
        "interval": "1s",
        "queryWindow": "4s",
        "minCanaryRequests": 10,
        "inconclusiveLimit": 4,
        # These tests time rollbacks from faults injected seconds after the start: no warm-up
        # (the default waits a scrape + 30 s first); the fresh baseline stays (the default).
        "warmup": "0s",
        "gates": [
            {"metric": "error-rate", "threshold": {"max": 0.02}},
            {"metric": "latency-p95", "relative": {"maxRatio": 1.5, "floor": 0.05}},
            {"metric": "log-errors"},
        ],
    },
    "local": {"load": {"rate": 120, "clients": 6}},
}


@pytest.fixture(scope="session")
def build_dir(sample_builds) -> Path:
    """The run's sample-service builds (tests/conftest.py): each version is built once."""
    return sample_builds


@pytest.fixture
def stack(tmp_path, build_dir):
    with LocalStack(plan_from_dict(PLAN), sample_service("v1", build_dir), tmp_path) as running:
        yield running
    pids = [p.pid for p in running.group.processes]
    assert pids == [], "the stack stops every process it started"


def stable_pid(stack) -> int:
    return stack.platform.process("stable").pid


def assert_back_on_stable(stack, result, pid_before):
    assert result.phase == "rolled-back"
    assert stack.platform.router.verify_weight(0)
    assert stack.platform.process("canary") is None
    assert stack.platform.process("baseline") is None, "the fresh baseline goes with the canary"
    assert stable_pid(stack) == pid_before, "stable is never touched by a rollback"
    time.sleep(1.0)
    since = time.time()
    time.sleep(1.5)
    after = stack.load.counters(since)
    assert after.by_track.get("canary", 0) <= after.total * 0.05, "only header traffic may remain"
    assert after.failed == 0


def test_a_healthy_canary_is_promoted_without_a_failed_request(stack, build_dir):
    started = time.time()
    result = stack.release(sample_service("v2", build_dir))
    assert result.phase == "promoted", result.reason
    assert stack.load.counters(started).failed == 0
    assert stack.platform.targets()[0].labels["version"] == "v2"


def test_a_healthy_canary_is_judged_against_a_fresh_baseline_after_the_warm_up(tmp_path, build_dir):
    analysis = {**PLAN["analysis"], "warmup": "3s"}
    plan = plan_from_dict({**PLAN, "analysis": analysis})
    with LocalStack(plan, sample_service("v1", build_dir), tmp_path / "stack") as stack:
        result = stack.release(sample_service("v2", build_dir))
        baseline_alive_after = stack.platform.process("baseline")
    assert result.phase == "promoted", result.reason
    kinds = [event.kind for event in result.record.events]
    order = ["canary-deployed", "baseline-deployed", "weight-verified", "warmup", "window-started"]
    assert [kinds.index(kind) for kind in order] == sorted(kinds.index(kind) for kind in order)
    assert result.record.first("warmup").data["seconds"] == 3.0
    assert result.record.first("weight-set").data == {"step": 0, "weight": 20, "baseline": 20}
    queries = [
        query
        for event in result.record.events
        if event.kind == "measurements"
        for item in event.data["items"]
        for query in item.get("evidence", {}).get("queries", {}).values()
    ]
    assert queries and all('track!="canary"' not in query for query in queries)
    assert any('track="baseline"' in query for query in queries), "judged against the baseline"
    assert baseline_alive_after is None


def test_errors_appearing_mid_release_roll_back_within_seconds(stack, build_dir):
    pid = stable_pid(stack)
    faulty = sample_service("v2", build_dir, ("-error-rate", "0.3", "-after", "9"))
    result = stack.release(faulty)
    assert_back_on_stable(stack, result, pid)
    record = result.record
    safe = record.first("traffic-safe").at
    deployed = record.first("canary-deployed").at
    assert safe - deployed < 9 + 10, "rolled back well within 10 s of the fault"


def test_a_latency_regression_rolls_back(stack, build_dir):
    pid = stable_pid(stack)
    slow = sample_service("v2", build_dir, ("-latency-ms", "200", "-latency-share", "1"))
    result = stack.release(slow)
    assert_back_on_stable(stack, result, pid)
    assert "latency-p95" in result.reason


def test_a_crashing_canary_rolls_back(stack, build_dir):
    pid = stable_pid(stack)

    def crash_when_traffic_starts(event):
        if event.kind == "window-started" and event.data["step"] == 0:
            stack.platform.process("canary").kill()

    result = stack.release(sample_service("v2", build_dir), listeners=[crash_when_traffic_starts])
    assert_back_on_stable(stack, result, pid)
    assert "not healthy" in result.reason


def test_prometheus_dying_mid_release_ends_in_rollback_never_promotion(stack, build_dir):
    pid = stable_pid(stack)

    def kill_prometheus(event):
        if event.kind == "window-started" and event.data["step"] == 0:
            stack.prometheus.kill()

    result = stack.release(sample_service("v2", build_dir), listeners=[kill_prometheus])
    assert result.phase == "rolled-back"
    assert "error" in result.reason
    assert stack.platform.router.verify_weight(0)
    assert stable_pid(stack) == pid


def test_the_header_reaches_the_canary_at_any_weight(stack, build_dir):
    seen = {}

    def probe(event):
        if event.kind == "weight-verified" and event.data["step"] == 0:
            import urllib.request

            for header in (None, "canary"):
                request = urllib.request.Request(stack.platform.url + "/")
                if header:
                    request.add_header("x-release-channel", header)
                tracks = set()
                for _ in range(30):
                    with urllib.request.urlopen(request, timeout=2) as response:
                        tracks.add(response.headers.get("X-Canaryflow-Track"))
                seen[header] = tracks

    stack.release(sample_service("v2", build_dir), listeners=[probe])
    assert seen["canary"] == {"canary"}
    assert "stable" in seen[None]


def test_the_demo_plan_is_valid_for_the_local_platform():
    assert os.path.exists(Path(__file__).parent.parent / "examples" / "plans" / "demo.yaml")
