"""The canary's capacity follows its weight: scaled (and available) before each shift, sized
from stable or from the HPA that scales stable; and what a rollback leaves of it."""

from __future__ import annotations

import copy

import pytest
from kube.fixtures import NAMESPACE, SERVICE, STABLE_DEPLOYMENT, USER_OBJECTS, api_server
from test_kubernetes_platform import V2, canary_weight_written, event_reasons, make_platform

from canaryflow.errors import PlatformError
from canaryflow.kubernetes.capacity import canary_replicas_for
from canaryflow.platform.protocol import Artifact
from canaryflow.platform.state import Phase

__all__ = ["api_server"]
CANARY = f"{SERVICE}-canary"


def seed(server, stable_replicas: int = 10):
    for obj in USER_OBJECTS:
        if obj is STABLE_DEPLOYMENT:
            obj = copy.deepcopy(obj)
            obj["spec"]["replicas"] = stable_replicas
        server.seed(obj)
    return server


def canary_replicas(server) -> int:
    return server.get("Deployment", NAMESPACE, CANARY)["spec"]["replicas"]


def test_the_rule_is_ceil_of_stable_times_weight_never_below_the_minimum():
    assert canary_replicas_for(10, 5, 2) == 2
    assert canary_replicas_for(10, 25, 2) == 3
    assert canary_replicas_for(10, 50, 1) == 5
    assert canary_replicas_for(3, 100, 1) == 3
    assert canary_replicas_for(7, 1, 1) == 1


@pytest.mark.parametrize("kind", ["istio", "nginx-ingress", "gateway-api", "smi"])
def test_each_weight_gets_its_pods_before_its_traffic(api_server, kind):
    seed(api_server, stable_replicas=10)
    platform = make_platform(api_server, kind)  # canaryReplicas 2
    platform.deploy_canary(V2)
    platform.wait_healthy(2)

    sizes = {}
    for weight in (5, 25, 50, 100):
        platform.router.set_weight(weight)
        sizes[weight] = canary_replicas(api_server)

    assert sizes == {5: 2, 25: 3, 50: 5, 100: 10}
    log = api_server.requests
    scaled_to_5 = next(
        i
        for i, r in enumerate(log)
        if r.method == "PATCH" and r.name == CANARY and r.body.get("spec", {}).get("replicas") == 5
    )
    shifted_to_50 = next(i for i, r in enumerate(log) if canary_weight_written(r) == 50)
    assert scaled_to_5 < shifted_to_50
    assert "CanaryScaled" in event_reasons(api_server)


def test_no_traffic_moves_until_the_new_pods_are_available(api_server):
    seed(api_server, stable_replicas=10)
    platform = make_platform(api_server, "nginx-ingress")
    platform.deploy_canary(V2)
    platform.router.set_weight(5)
    api_server.set_rollout(NAMESPACE, CANARY, "progressing")

    with pytest.raises(PlatformError, match=r"not available for 50% within 1s \(0/5 pods ready"):
        platform.router.set_weight(50)

    assert platform.router.verify_weight(5)
    assert canary_replicas(api_server) == 5


def test_crash_looping_new_pods_stop_the_shift_at_once(api_server):
    seed(api_server, stable_replicas=10)
    platform = make_platform(api_server, "nginx-ingress")
    platform.deploy_canary(V2)
    api_server.set_rollout(NAMESPACE, CANARY, "CrashLoopBackOff")

    with pytest.raises(PlatformError, match=r"CrashLoopBackOff.*not shifting 50% to it"):
        platform.router.set_weight(50)
    assert platform.router.verify_weight(0)


def test_an_hpa_that_scales_stable_up_sizes_the_canary_and_stable_is_never_written(api_server):
    seed(api_server, stable_replicas=4)
    api_server.seed(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "checkout-cpu", "namespace": NAMESPACE},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVICE},
                "minReplicas": 4,
                "maxReplicas": 30,
            },
            "status": {"currentReplicas": 4, "desiredReplicas": 12},
        }
    )
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)

    platform.router.set_weight(50)

    assert canary_replicas(api_server) == 6
    assert not [w for w in api_server.writes("Deployment") if w.name == SERVICE]


def test_re_running_deploy_keeps_the_capacity_the_weight_was_given(api_server):
    seed(api_server, stable_replicas=10)
    platform = make_platform(api_server, "istio")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)

    platform.deploy_canary(V2)

    assert canary_replicas(api_server) == 5


def test_scale_to_zero_keeps_the_rolled_back_canary_at_zero_pods(api_server):
    seed(api_server)
    platform = make_platform(api_server, "istio")
    platform.canary_after_rollback = "scale-to-zero"
    platform.deploy_canary(V2)
    platform.router.set_weight(25)

    platform.rollback()
    platform.rollback()  # the exit handler runs it again

    canary = api_server.get("Deployment", NAMESPACE, CANARY)
    assert canary["spec"]["replicas"] == 0
    assert not [
        p for p in api_server.objects("Pod", NAMESPACE) if "canary" in p["metadata"]["name"]
    ]
    assert platform.current_state().phase == Phase.ROLLED_BACK
    assert platform.router.verify_weight(0)

    platform.deploy_canary(V2)  # a new attempt starts afresh, with the plan's replicas

    assert canary_replicas(api_server) == 2
    assert platform.current_state().phase == Phase.DEPLOYED


def test_delete_is_the_default_and_removes_the_canary(api_server):
    seed(api_server)
    platform = make_platform(api_server, "smi")
    platform.deploy_canary(V2)

    platform.rollback()

    assert api_server.get("Deployment", NAMESPACE, CANARY) is None
    assert platform.current_state() is None


def test_a_new_version_replaces_a_canary_scaled_to_zero(api_server):
    seed(api_server)
    platform = make_platform(api_server, "istio")
    platform.canary_after_rollback = "scale-to-zero"
    platform.deploy_canary(V2)
    platform.rollback()

    platform.deploy_canary(Artifact("v3", "registry.local/checkout@sha256:" + "3" * 64))

    assert platform.current_state().version == "v3"
    assert canary_replicas(api_server) == 2
