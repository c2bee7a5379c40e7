"""``analyze --fail-safe``: the analyze pod itself sets weight 0 and verifies it when a window
fails, before it exits; the workflow's rollback pod only removes the canary afterwards.

A real Prometheus (prom_fixtures) judges the canary; the router objects live in the stateful
fake API server (tests/kube), written and read back by the real kubernetes client.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest
import yaml
from kube.fixtures import CANARY_IMAGE, NAMESPACE, SERVICE, write_kubeconfig
from prom_fixtures import NAMESPACE as PROM_NAMESPACE
from prom_fixtures import fleet, prometheus  # noqa: F401 (fixtures)

from canaryflow.cli import main
from canaryflow.kubernetes.baseline import runs_in_cluster
from canaryflow.kubernetes.from_plan import platform_for
from canaryflow.kubernetes.platform import api_client_from_environment
from canaryflow.plan.load import load_plan
from canaryflow.plan.routers import THREE_WAY, can
from canaryflow.platform.split import split_for

pytestmark = pytest.mark.slow
assert NAMESPACE == PROM_NAMESPACE
INTERVAL_S = 1.0


@pytest.fixture
def kubeconfig(tmp_path, cluster):
    return write_kubeconfig(tmp_path / "kubeconfig", cluster.url)


def plan_file(
    tmp_path,
    url: str,
    router: str,
    failure_limit: int = 0,
    drain: str = "10s",
    baseline: str = "stable",
):
    """Judged against stable unless ``baseline="fresh"``: this Prometheus scrapes no baseline, so
    the first step's analyze pod would wait for one (up to the warm-up against stable, 45 s
    here) before every window; one test keeps the fresh baseline's share in the fail-safe."""
    path = tmp_path / "canaryflow.yaml"
    plan = {
        "service": {"name": SERVICE, "namespace": NAMESPACE},
        "router": {"kind": router, "drain": drain},
        "steps": [{"weight": 25, "duration": "4s"}, {"weight": 100, "duration": "2s"}],
        "analysis": {
            "prometheus": {"url": url},
            "interval": f"{INTERVAL_S:g}s",
            "queryWindow": "4s",
            "failureLimit": failure_limit,
            "baseline": baseline,
            # These tests time the fail-safe from the window's start: no warm-up before it.
            "warmup": "0s",
            # A fixed threshold: these tests are about the fail-safe, not the judgement.
            "gates": [{"metric": "error-rate", "threshold": {"max": 0.01}}],
        },
    }
    path.write_text(yaml.safe_dump(plan))
    return path


def weight_is(plan, kubeconfig, weight: int) -> bool:
    """The router applies ``weight`` as set-weight sets it: with the fresh baseline's share
    where one runs (gateway-api, istio), alone elsewhere and at 0."""
    client = api_client_from_environment(str(kubeconfig), None)
    release_plan = load_plan(plan)
    platform = platform_for(release_plan, client)
    fresh = runs_in_cluster(release_plan) and platform.baseline_running()
    split = split_for(weight, fresh)
    return platform.router.verify_weight(split.canary, split.baseline)


def analyze(plan, kubeconfig, canary: str, report) -> int:
    return main(
        [
            "analyze",
            "--plan",
            str(plan),
            "--step",
            "0",
            "--service",
            canary,  # which simulated canary Prometheus judges; the router is the plan's
            "--fail-safe",
            "--kubeconfig",
            str(kubeconfig),
            "--report-file",
            str(report),
        ]
    )


def open_canary(plan, kubeconfig) -> None:
    verb = ["--plan", str(plan), "--kubeconfig", str(kubeconfig)]
    assert main(["deploy-canary", *verb, "--image", CANARY_IMAGE, "--version", "v2"]) == 0
    assert main(["set-weight", *verb, "--weight", "25", "--header-route"]) == 0


def header_route_on(plan, kubeconfig) -> bool:
    client = api_client_from_environment(str(kubeconfig), None)
    return not platform_for(load_plan(plan), client).router.header_route_withdrawn()


USER_ROUTE = {"istio": "VirtualService", "nginx-ingress": "Ingress", "gateway-api": "HTTPRoute"}


@pytest.mark.parametrize("router", ["istio", "nginx-ingress", "gateway-api"])
def test_a_failing_window_withdraws_the_header_route_too_and_rollback_then_restores_the_route(
    tmp_path,
    kubeconfig,
    cluster,
    prometheus,  # noqa: F811
    router,
):
    """Header users must not keep reaching a failing canary until the rollback pod runs."""
    plan = plan_file(tmp_path, prometheus.url, router, drain="0s")
    user_route = cluster.get(USER_ROUTE[router], NAMESPACE, SERVICE)
    open_canary(plan, kubeconfig)
    assert header_route_on(plan, kubeconfig)

    assert analyze(plan, kubeconfig, "erroring", tmp_path / "report.json") == 1

    assert weight_is(plan, kubeconfig, 0) and not header_route_on(plan, kubeconfig)
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is not None  # rollback's job
    for _ in range(2):  # the rollback pod after the fail-safe, and a retry of it
        verb = ["--plan", str(plan), "--kubeconfig", str(kubeconfig)]
        assert main(["rollback", *verb, "--reason", "gate failed"]) == 0
        assert _spec_and_annotations(cluster.get(USER_ROUTE[router], NAMESPACE, SERVICE)) == (
            _spec_and_annotations(user_route)
        )
        assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None


def _spec_and_annotations(obj) -> tuple:
    return obj["spec"], obj["metadata"].get("annotations") or {}


@pytest.mark.parametrize("router", ["istio", "nginx-ingress", "gateway-api"])
def test_a_failing_window_leaves_weight_0_verified_before_the_pod_exits(
    tmp_path,
    kubeconfig,
    cluster,
    prometheus,  # noqa: F811
    router,
):
    fresh = can(router, THREE_WAY)  # a two-way router runs no baseline: nothing to wait for
    plan = plan_file(tmp_path, prometheus.url, router, baseline="fresh" if fresh else "stable")
    open_canary(plan, kubeconfig)
    report = tmp_path / "report.json"

    assert analyze(plan, kubeconfig, "erroring", report) == 1

    assert weight_is(plan, kubeconfig, 0)
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is not None  # rollback's job
    result = json.loads(report.read_text())
    safe = result["failSafe"]
    assert safe["verified"] is True
    assert safe["weightZeroVerifiedAt"] >= safe["firstFailingMeasurementAt"]
    # Made safe at the first failure: no further measurement was taken before it (failureLimit
    # 0), and the seconds reported are those between the two.
    started = [m["started"] for m in result["measurements"]]
    assert max(started) == safe["firstFailingMeasurementAt"], result["measurements"]
    assert safe["seconds"] == pytest.approx(
        safe["weightZeroVerifiedAt"] - safe["firstFailingMeasurementAt"], abs=0.001
    )


def test_the_time_to_safety_counts_from_the_first_failing_measurement(
    tmp_path,
    kubeconfig,
    cluster,
    prometheus,  # noqa: F811
):
    plan = plan_file(tmp_path, prometheus.url, "istio", failure_limit=1)
    open_canary(plan, kubeconfig)
    report = tmp_path / "report.json"

    assert analyze(plan, kubeconfig, "erroring", report) == 1

    result = json.loads(report.read_text())
    failing = [m["started"] for m in result["measurements"] if m["outcome"] == "fail"]
    assert len(failing) == 2  # failureLimit 1: the second failure decides
    assert result["failSafe"]["firstFailingMeasurementAt"] == min(failing)
    # It counts from the first failure, not the deciding second one.
    assert result["failSafe"]["seconds"] >= max(failing) - min(failing) > 0


def test_a_passing_window_leaves_the_weight_alone(
    tmp_path,
    kubeconfig,
    cluster,
    prometheus,  # noqa: F811
):
    plan = plan_file(tmp_path, prometheus.url, "istio")
    open_canary(plan, kubeconfig)
    report = tmp_path / "report.json"

    assert analyze(plan, kubeconfig, "healthy", report) == 0

    assert weight_is(plan, kubeconfig, 25)
    result = json.loads(report.read_text())
    assert "failSafe" not in result and result["step"] == 0
    assert result["finished"] - result["started"] >= 3.5, "the window is step 0's 4s"


def test_sigterm_mid_window_makes_traffic_safe_before_the_pod_goes(
    tmp_path,
    kubeconfig,
    cluster,
    prometheus,  # noqa: F811
):
    """``argo stop`` and the deadline SIGTERM the pod: it makes traffic safe on its way out."""
    plan = plan_file(tmp_path, prometheus.url, "istio")
    open_canary(plan, kubeconfig)
    argv = [sys.executable, "-m", "canaryflow", "analyze", "--plan", str(plan), "--step", "0"]
    argv += ["--service", "healthy", "--fail-safe", "--kubeconfig", str(kubeconfig)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = _first_round(process, timeout_s=60)  # the window is running: measurements
        assert first.startswith("round 1"), first
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, err
    assert weight_is(plan, kubeconfig, 0), out + err
    assert "fail-safe: canary weight 0 and header route withdrawn, verified" in out


def _first_round(process: subprocess.Popen, timeout_s: float) -> str:
    """The first line the analysis prints, waiting at most ``timeout_s`` (a slow start under
    load is not a failure; a process that never measures is)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            return process.stdout.readline()
        assert process.poll() is None, process.stderr.read()
    raise AssertionError("no measurement within the timeout")


def test_a_stop_while_the_pod_is_still_loading_waits_for_the_fail_safe(tmp_path, monkeypatch):
    """``argo stop`` can land during the seconds of imports and router set-up, before the
    window's guard exists: the stop is held, then delivered inside the guard, so traffic is
    still made safe (without the hold the pod ended at once and left its weight)."""
    from canaryflow.commands import analyze as analyze_verb

    happened: list[str] = []

    class StopDuringSetUp:
        def __init__(self, plan, kubeconfig):
            os.kill(os.getpid(), signal.SIGTERM)
            happened.append("router loaded")

        def make_safe(self, first_failing):
            happened.append("made safe")
            return {"verified": True, "summary": "weight 0 verified"}

    monkeypatch.setattr(analyze_verb, "_FailSafe", StopDuringSetUp)
    plan = plan_file(tmp_path, "http://127.0.0.1:9", "istio")
    code = main(["analyze", "--plan", str(plan), "--step", "0", "--fail-safe"])
    assert code == 130
    assert happened == ["router loaded", "made safe"]


def test_analyze_pods_carry_the_evidence_on_the_canary_and_a_tampered_state_fails_safe(
    tmp_path,
    kubeconfig,
    cluster,
    prometheus,  # noqa: F811
):
    """The workflow's analyze pods (``--carry-evidence``): step 0 leaves its tests in the canary
    Deployment's annotation; a state edited since is refused at step 1, which then makes
    traffic safe like any failing window; the rollback removes the state with the canary."""
    from canaryflow.analysis import carried
    from canaryflow.kubernetes.api import ClusterApi
    from canaryflow.kubernetes.resources import DEPLOYMENT

    plan = plan_file(tmp_path, prometheus.url, "istio", drain="0s")
    data = yaml.safe_load(plan.read_text())
    data["analysis"] |= {"gates": [{"metric": "error-rate"}], "scrapeInterval": "1s"}
    plan.write_text(yaml.safe_dump(data))
    open_canary(plan, kubeconfig)
    report = tmp_path / "report.json"

    def analyze_step(step: int) -> int:
        verb = ["--plan", str(plan), "--kubeconfig", str(kubeconfig), "--service", "healthy"]
        more = ["--step", str(step), "--carry-evidence", "--fail-safe"]
        return main(["analyze", *verb, *more, "--report-file", str(report)])

    def annotation() -> str:
        canary = cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary")
        return canary["metadata"]["annotations"][carried.ANNOTATION]

    assert analyze_step(0) == 0, json.loads(report.read_text())["reason"]
    state = carried.parse(annotation(), load_plan(plan).analysis, step=1)
    assert state.step == 0 and state.exported == ("error-rate",)

    edited = json.loads(annotation())
    edited["gates"]["error-rate"]["tests"][0]["log_ratios"] = [-50.0] * 8  # "looks good"
    api = ClusterApi(api_client_from_environment(str(kubeconfig), None), NAMESPACE)
    patch = {"metadata": {"annotations": {carried.ANNOTATION: json.dumps(edited)}}}
    api.merge_patch(DEPLOYMENT, f"{SERVICE}-canary", patch)

    assert analyze_step(1) == 1
    result = json.loads(report.read_text())
    assert result["outcome"] == "error" and result["measurements"] == []
    assert "checksum does not match" in result["reason"]
    assert result["failSafe"]["verified"] and weight_is(plan, kubeconfig, 0)
    verb = ["--plan", str(plan), "--kubeconfig", str(kubeconfig)]
    assert main(["rollback", *verb, "--reason", "evidence refused"]) == 0
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
