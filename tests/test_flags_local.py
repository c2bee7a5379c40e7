"""Real flag rollouts: the sample service reading a flag file, Prometheus, nginx and load."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys

import pytest
import yaml

from canaryflow.flags.document import UserRange, flag_off, flag_state, segment_document
from canaryflow.flags.store import FileFlagStore, replace_with
from canaryflow.local.flag_demo import DEMO_PLAN, run_local
from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.model import ReleasePlan
from canaryflow.release.decision import Phase

pytestmark = pytest.mark.slow
KEY = "new-checkout"


def short_plan() -> ReleasePlan:
    document = copy.deepcopy(DEMO_PLAN)
    document["flag"]["steps"] = [
        {"users": "0-199", "duration": "3s"},
        {"percent": 50, "duration": "3s"},
    ]
    return ReleasePlan.model_validate(document)


def test_a_healthy_feature_reaches_everyone(tmp_path):
    plan = short_plan()
    result = run_local(plan, tmp_path)
    assert result.phase is Phase.PROMOTED, result.reason
    store = FileFlagStore(tmp_path / "flags.json")
    assert flag_state(store.read(), KEY) == "on"
    windows = result.record.of_kind("window-ended")
    assert [e.data["verdict"] for e in windows] == ["pass", "pass"]
    # Each exposure was judged only once the service reported serving it (through Prometheus).
    applied = result.record.of_kind("flag-applied")
    assert [e.data["segment"] for e in applied][-1] == "everyone"
    # Confirmed by the service's report, not the flat wait of applyTimeout, and before the
    # step's window opened.
    assert all(0 < e.data["after_s"] < plan.flag.apply_timeout for e in applied)
    kinds = [(e.kind, e.data.get("step")) for e in result.record.events]
    for step in (0, 1):
        assert kinds.index(("flag-applied", step)) < kinds.index(("window-started", step))


def test_a_feature_failing_flag_on_requests_is_switched_off_at_once(tmp_path):
    result = run_local(short_plan(), tmp_path, faults=("-error-rate", "0.3", "-flag-on-only"))
    assert result.phase is Phase.ROLLED_BACK
    assert "error-rate" in result.reason
    store = FileFlagStore(tmp_path / "flags.json")
    assert store.read() == flag_off(KEY)
    assert store.previous() == segment_document(KEY, UserRange(0, 199, "user-"))
    failed = [
        item
        for event in result.record.of_kind("measurements")
        for item in event.data["items"]
        if item["outcome"] == "fail"
    ]
    assert failed, "a gate measured the failing flag-on requests"
    # The flag goes off in the round that saw the failure: no round is measured between them,
    # and the rollback is reported done only once the service served the flag off.
    events = result.record.events
    failing = next(i for i, e in enumerate(events) if e.kind == "measurements" and any(
        item["outcome"] == "fail" for item in e.data["items"]))  # fmt: skip
    switched_off = next(i for i, e in enumerate(events) if e.kind == "flag-off")
    assert failing < switched_off
    assert not [e for e in events[failing + 1 : switched_off] if e.kind == "measurements"]
    later = [e.kind for e in events[switched_off:]]
    assert later.index("flag-off-applied") < later.index("rolled-back")


def test_sigterm_mid_window_switches_the_flag_off_before_the_process_ends(tmp_path):
    """What ``argo stop`` or a pod deletion does to the flag-rollout task: SIGTERM."""
    plan = short_plan()
    plan_document = plan.model_dump(mode="json", by_alias=True, exclude_none=True)
    plan_document["flag"]["steps"][0]["duration"] = "60s"
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan_document))
    store = FileFlagStore(tmp_path / "flags.json")
    store.update(replace_with(flag_off(KEY)))
    stable = sample_service("v1", tmp_path / "build", ("-flags-file", str(store.path)))
    with LocalStack(plan, stable, tmp_path / "stack") as stack:
        assert stack.prometheus is not None
        argv = [sys.executable, "-m", "canaryflow", "flag-rollout", "--plan", str(plan_path),
                "--flags-file", str(store.path), "--prometheus", stack.prometheus.url]  # fmt: skip
        rollout = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        try:
            for line in rollout.stdout:
                if '"window-started"' in line:
                    break
            assert flag_state(store.read(), KEY) == "partial"
            rollout.send_signal(signal.SIGTERM)
            assert rollout.wait(timeout=10) == 130
        finally:
            if rollout.poll() is None:
                rollout.kill()
                rollout.wait()
    assert store.read() == flag_off(KEY)
    assert flag_state(store.previous(), KEY) == "partial"
