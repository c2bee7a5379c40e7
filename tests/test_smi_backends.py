"""SMI: during the release the user's TrafficSplit sends stable's share to checkout-stable, the
Service canaryflow owns; the split's own stable backend carries it again afterwards, so it is
moved with stable at promotion, and a promotion never gives the split back pointing at a
Service with no ready pod."""

from __future__ import annotations

import copy

import pytest
from kube.fixtures import NAMESPACE, SERVICE, STABLE_DEPLOYMENT, USER_OBJECTS, api_server
from test_kubernetes_platform import V2
from test_router_defects import BACKEND_V1, USERS_SPLIT, platform_with

from canaryflow.errors import PlatformError

__all__ = ["api_server"]


def backend(selector: dict) -> dict:
    service = copy.deepcopy(BACKEND_V1)
    service["spec"]["selector"] = selector
    return service


def seed(server, backend_selector: dict, pinned: bool = False):
    """The user's split (100 % to checkout-v1) and stable selected by app alone (unless pinned)."""
    for obj in USER_OBJECTS:
        if obj is STABLE_DEPLOYMENT and not pinned:
            obj = copy.deepcopy(obj)
            obj["spec"]["selector"] = {"matchLabels": {"app": SERVICE}}
        server.seed(obj)
    server.seed(USERS_SPLIT)
    server.seed(backend(backend_selector))
    return server


def selector_of(server, name: str) -> dict:
    return server.get("Service", NAMESPACE, name)["spec"]["selector"]


def ready_pods_selected(server, name: str) -> int:
    selector = selector_of(server, name)
    return sum(
        all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())
        and all(c["ready"] for c in p["status"]["containerStatuses"])
        for p in server.objects("Pod", NAMESPACE)
    )


def test_a_backend_selecting_app_alone_carries_no_share_while_checkout_stable_does(api_server):
    """The user's backend would select the canary pods too; during the release the split's
    stable share goes to checkout-stable (stable's ReplicaSet only) instead, and the user's
    split comes back exactly."""
    seed(api_server, {"app": SERVICE})
    platform = platform_with(api_server, "smi")
    platform.deploy_canary(V2)
    platform.router.set_weight(30)

    split = api_server.get("TrafficSplit", NAMESPACE, SERVICE)
    assert split["spec"]["backends"] == [
        {"service": f"{SERVICE}-stable", "weight": 70},
        {"service": f"{SERVICE}-canary", "weight": 30},
    ]
    stable_pods = selected_pods(api_server, f"{SERVICE}-stable")
    assert len(stable_pods) == 3
    assert all(p["metadata"]["labels"]["version"] == "v1" for p in stable_pods)
    platform.rollback()
    assert api_server.get("TrafficSplit", NAMESPACE, SERVICE)["spec"] == USERS_SPLIT["spec"]
    assert api_server.get("Service", NAMESPACE, f"{SERVICE}-stable") is None


def selected_pods(server, name: str) -> list[dict]:
    selector = selector_of(server, name)
    return [
        p
        for p in server.objects("Pod", NAMESPACE)
        if all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())
    ]


def test_promotion_moves_the_backend_with_stable_and_gives_the_split_back(api_server):
    seed(api_server, {"app": SERVICE, "version": "v1"})
    platform = platform_with(api_server, "smi")
    platform.deploy_canary(V2)
    platform.router.set_weight(30)

    platform.promote(V2)

    assert selector_of(api_server, "checkout-v1") == {"app": SERVICE, "version": "v2"}
    assert ready_pods_selected(api_server, "checkout-v1") == 3
    split = api_server.get("TrafficSplit", NAMESPACE, SERVICE)
    assert split["spec"]["backends"] == [{"service": "checkout-v1", "weight": 100}]


def test_a_promotion_that_would_leave_the_backend_selecting_no_pod_is_undone(api_server):
    """``{version: v1}`` alone cannot be widened (an empty selector selects nothing): after the
    rollout it would select no pod, so the promotion fails and stable comes back."""
    seed(api_server, {"version": "v1"})
    platform = platform_with(api_server, "smi")
    platform.deploy_canary(V2)
    platform.router.set_weight(30)

    with pytest.raises(PlatformError, match=r"^promotion failed, stable restored: .*checkout-v1"):
        platform.promote(V2)

    assert selector_of(api_server, "checkout-v1") == {"version": "v1"}
    assert ready_pods_selected(api_server, "checkout-v1") == 3
    assert platform.router.verify_weight(0)
    platform.rollback()
    assert api_server.get("TrafficSplit", NAMESPACE, SERVICE)["spec"] == USERS_SPLIT["spec"]
