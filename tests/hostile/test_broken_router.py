"""Broken parts are noticed: an nginx master or worker killed (-9) or stopped mid-window.

Real processes: the sample service built from source, both nginx tiers, Prometheus, load. The
window fails at once, the rollback brings stable back (restarting the router if it must) and
proves it with a request, the release is never promoted, and at exit no process of any nginx
process group is left, orphaned workers included.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from canaryflow.local.process import group_members
from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.load import plan_from_dict
from hostile.local_release import short_plan

pytestmark = pytest.mark.slow
pytest_plugins = ["hostile.local_release"]  # the build_dir fixture

PLAN = short_plan(first_step_s=8, rate=60)


def victim(stack, tier: str, role: str) -> int:
    instance = getattr(stack.platform.router, tier)
    if role == "master":
        return instance.master_pid
    return instance.accepting_workers()[0]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["kill-9", "sigstop"])
@pytest.mark.parametrize("role", ["master", "worker"])
@pytest.mark.parametrize("tier", ["edge", "splitter"])
def test_a_broken_router_fails_the_window_and_stable_serves_again(
    tier, role, sig, tmp_path, build_dir
):
    plan = plan_from_dict(PLAN)
    groups: list[int] = []
    with LocalStack(plan, sample_service("v1", build_dir), tmp_path) as stack:
        router = stack.platform.router
        groups = [router.edge.master_pid, router.splitter.master_pid]
        hit: list[int] = []

        def strike(event) -> None:
            if event.kind == "window-started" and event.data["step"] == 0 and not hit:
                pid = victim(stack, tier, role)
                hit.append(pid)
                threading.Timer(1.5, os.kill, (pid, sig)).start()

        result = stack.release(sample_service("v2", build_dir), listeners=[strike])
        kinds = [e.kind for e in result.record.events]
        assert result.phase == "rolled-back", result.reason
        assert "promoted" not in kinds
        window = result.record.first("window-ended")
        assert window is not None, f"no window ended: {result.reason!r}, events {kinds}"
        assert window.data["step"] == 0 and window.data["verdict"] == "fail"
        assert "router" in window.data["reason"]
        assert router.health() is None, "the router serves again"
        assert router.stable_serves() is None, "and it is stable that answers"
        groups += [router.edge.master_pid, router.splitter.master_pid]
        failed = stack.load.counters(result.record.events[0].at).failed
        print(f"{tier} {role} {sig.name}: users' failed requests {failed}, reason {result.reason}")
    for group in groups:
        assert group_members(group) == [], f"process group {group} left behind"


def test_a_router_that_dies_after_the_last_window_blocks_the_promotion(tmp_path, build_dir):
    plan = plan_from_dict({**PLAN, "steps": [{"weight": 30, "duration": "3s"}]})
    with LocalStack(plan, sample_service("v1", build_dir), tmp_path) as stack:
        router = stack.platform.router
        groups = [router.edge.master_pid, router.splitter.master_pid]

        def strike(event) -> None:
            if event.kind == "window-ended":  # synchronous: before the engine promotes
                os.kill(router.edge.master_pid, signal.SIGKILL)
                router.edge.process.popen.wait(5)

        result = stack.release(sample_service("v2", build_dir), listeners=[strike])
        assert result.phase == "rolled-back", result.reason
        assert "promotion" in result.reason and "router is broken" in result.reason
        assert result.record.first("promoted") is None
        assert router.stable_serves() is None
        groups += [router.edge.master_pid, router.splitter.master_pid]
    for group in groups:
        assert group_members(group) == []
