"""A frozen canary is not a broken router (issue 23, item 11).

With the canary SIGSTOPped, 1 release in 5 ended "rollback incomplete" with 30 % still routed
to it: the router's health check went through the user port, landed on the frozen canary,
read "router broken", and the rollback gave up. Real processes: the sample service built
from source, both nginx tiers, Prometheus and load; the test stops only the canary it froze
(the stack stops what it started, by process group).
"""

from __future__ import annotations

import os
import signal

import pytest

from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.load import plan_from_dict
from hostile.local_release import short_plan

pytestmark = pytest.mark.slow
pytest_plugins = ["hostile.local_release"]  # the build_dir fixture

PLAN = short_plan(first_step_s=6, rate=40)


def test_a_sigstopped_canary_is_rolled_back_and_the_router_is_never_called_broken(
    tmp_path, build_dir
):
    plan = plan_from_dict(PLAN)
    probes: list[str | None] = []
    frozen: list = []
    with LocalStack(plan, sample_service("v1", build_dir), tmp_path) as stack:
        platform = stack.platform
        router = platform.router

        def freeze(event) -> None:  # synchronous, in the engine's thread, at 30 %
            if event.kind == "window-started" and event.data["step"] == 0 and not frozen:
                canary = platform.process("canary")
                frozen.append(canary)
                os.kill(canary.pid, signal.SIGSTOP)
                probes.extend(router.health() for _ in range(20))

        try:
            result = stack.release(sample_service("v2", build_dir), listeners=[freeze])
        finally:
            for canary in frozen:  # the canary this test froze, if the stack did not stop it
                if canary.popen.poll() is None:  # not reaped: the pid is still that process
                    os.kill(canary.pid, signal.SIGCONT)
        assert frozen, "the canary was frozen mid-window"
        assert probes == [None] * 20, "a frozen canary made the router look broken"
        assert result.phase == "rolled-back", result.reason
        assert "rollback incomplete" not in (result.reason or "")
        window = result.record.first("window-ended")
        assert window.data["verdict"] in ("fail", "error")
        assert not window.data["reason"].startswith("router")
        assert [router.stable_serves() for _ in range(20)] == [None] * 20
        assert router.state.canary is None and router.state.canary_percent == 0
