"""The workflow's Kubernetes verbs, run as the task pods run them: CLI, kubeconfig, exit codes.

The real kubernetes client talks HTTP to the stateful fake API server (tests/kube), which
validates every object written against the upstream schemas.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from kube.fixtures import CANARY_IMAGE, NAMESPACE, SERVICE, write_kubeconfig

from canaryflow.cli import main

ROUTERS = ["istio", "nginx-ingress", "gateway-api"]


@pytest.fixture
def kubeconfig(tmp_path, cluster):
    return write_kubeconfig(tmp_path / "kubeconfig", cluster.url)


def plan_file(tmp_path, router="istio", namespace=NAMESPACE):
    path = tmp_path / f"plan-{router}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "service": {"name": SERVICE, "namespace": namespace, "healthTimeout": "5s"},
                # no drain: what happens during one is tests/test_kubernetes_drain.py's
                "router": {"kind": router, "drain": "0s"},
            }
        )
    )
    return path


def verb(name, plan, kubeconfig, *extra):
    return main([name, "--plan", str(plan), "--kubeconfig", str(kubeconfig), *extra])


@pytest.mark.parametrize("router", ROUTERS)
def test_a_rolled_back_release_leaves_stable_exactly_as_it_was(
    tmp_path, kubeconfig, cluster, router
):
    plan = plan_file(tmp_path, router)
    stable_before = copy.deepcopy(cluster.get("Deployment", NAMESPACE, SERVICE))
    artifact = ["--image", CANARY_IMAGE, "--version", "v2"]
    assert verb("deploy-canary", plan, kubeconfig, *artifact) == 0
    assert verb("health-gate", plan, kubeconfig) == 0
    assert verb("set-weight", plan, kubeconfig, "--weight", "5", "--header-route") == 0
    assert verb("set-weight", plan, kubeconfig, "--weight", "50") == 0
    assert verb("rollback", plan, kubeconfig, "--reason", "error-rate 5% > 1%") == 0
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
    stable_after = cluster.get("Deployment", NAMESPACE, SERVICE)
    assert stable_after["spec"] == stable_before["spec"]
    assert verb("rollback", plan, kubeconfig) == 0, "rollback is idempotent"


def test_promotion_puts_the_canary_digest_on_stable_and_removes_the_canary(
    tmp_path, kubeconfig, cluster
):
    plan = plan_file(tmp_path)
    artifact = ["--image", CANARY_IMAGE, "--version", "v2"]
    assert verb("deploy-canary", plan, kubeconfig, *artifact) == 0
    assert verb("set-weight", plan, kubeconfig, "--weight", "100") == 0
    assert verb("promote", plan, kubeconfig, *artifact) == 0
    stable = cluster.get("Deployment", NAMESPACE, SERVICE)
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == CANARY_IMAGE
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None


def test_a_crash_looping_canary_fails_the_health_gate(tmp_path, kubeconfig, cluster):
    plan = plan_file(tmp_path)
    assert verb("deploy-canary", plan, kubeconfig, "--image", CANARY_IMAGE, "--version", "v2") == 0
    cluster.set_rollout(NAMESPACE, f"{SERVICE}-canary", "CrashLoopBackOff")
    assert verb("health-gate", plan, kubeconfig) == 1


def test_a_wrong_namespace_is_an_input_error_and_creates_nothing(
    tmp_path, kubeconfig, cluster, capsys
):
    plan = plan_file(tmp_path, namespace="shopp")
    assert verb("deploy-canary", plan, kubeconfig, "--image", CANARY_IMAGE, "--version", "v2") == 2
    assert "not found" in capsys.readouterr().err
    assert cluster.writes() == []


def test_an_image_not_pinned_by_digest_is_refused(tmp_path, kubeconfig, cluster, capsys):
    plan = plan_file(tmp_path)
    unpinned = ["--image", "checkout:latest", "--version", "v2"]
    assert verb("deploy-canary", plan, kubeconfig, *unpinned) == 2
    assert "@sha256" in capsys.readouterr().err
    assert cluster.writes() == []


def test_a_weight_outside_0_to_100_changes_nothing(tmp_path, kubeconfig, cluster):
    assert verb("set-weight", plan_file(tmp_path), kubeconfig, "--weight", "120") == 2
    assert cluster.writes() == []


def test_an_unreachable_api_server_is_a_clear_failure(tmp_path, kubeconfig, cluster, capsys):
    """Exit 3 (infrastructure unreachable: try again), after rollback's own attempts."""
    cluster.stop()
    assert verb("rollback", plan_file(tmp_path), kubeconfig) == 3
    assert "error: kubeconfig: kubernetes API" in capsys.readouterr().err


@pytest.mark.parametrize("router", ROUTERS)
def test_rollback_before_any_canary_changes_nothing(tmp_path, cluster, kubeconfig, router):
    """The exit handler rolls back every release that did not succeed, even one that failed
    in go-test: then there is nothing to undo, and nothing may be written but the Event."""
    kinds = ("Deployment", "Service", "Ingress", "VirtualService", "DestinationRule", "HTTPRoute")
    before = {kind: cluster.objects(kind) for kind in kinds}

    assert verb("rollback", plan_file(tmp_path, router), kubeconfig, "--reason", "go-test") == 0

    assert {w.kind for w in cluster.writes()} <= {"Event"}
    assert {kind: cluster.objects(kind) for kind in kinds} == before
