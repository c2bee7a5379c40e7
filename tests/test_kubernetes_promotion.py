"""Promotion relabels stable with the released version in the one restart that ships it, and
whatever selects stable by version (its Service, Istio's stable subset) follows without ever
selecting no pod at all."""

from __future__ import annotations

import copy

import pytest
from kube.fixtures import NAMESPACE, SERVICE, STABLE_DEPLOYMENT, USER_OBJECTS, api_server
from test_kubernetes_platform import V2, event_reasons, make_platform

__all__ = ["api_server"]


def unpinned_stable() -> dict:
    """The stable Deployment as most charts write it: selected by app alone."""
    stable = copy.deepcopy(STABLE_DEPLOYMENT)
    stable["spec"]["selector"] = {"matchLabels": {"app": SERVICE}}
    return stable


@pytest.fixture
def unpinned_cluster(api_server):
    for obj in USER_OBJECTS:
        api_server.seed(unpinned_stable() if obj is STABLE_DEPLOYMENT else obj)
    return api_server


def write_index(server, method: str, kind: str, name: str, after: int = -1) -> int:
    return next(
        i
        for i, r in enumerate(server.requests)
        if i > after and (r.method, r.kind, r.name) == (method, kind, name) and r.status < 400
    )


@pytest.mark.parametrize("kind", ["nginx-ingress", "gateway-api", "smi", "istio"])
def test_promotion_relabels_stable_pods_with_the_released_version(unpinned_cluster, kind):
    platform = make_platform(unpinned_cluster, kind)
    platform.deploy_canary(V2)
    platform.router.set_weight(50)

    platform.promote(V2)

    stable = unpinned_cluster.get("Deployment", NAMESPACE, SERVICE)
    assert stable["spec"]["template"]["metadata"]["labels"] == {"app": SERVICE, "version": "v2"}
    pods = unpinned_cluster.objects("Pod", NAMESPACE)
    assert pods and {p["metadata"]["labels"]["version"] for p in pods} == {"v2"}
    service = unpinned_cluster.get("Service", NAMESPACE, SERVICE)
    assert service["spec"]["selector"] == {"app": SERVICE, "version": "v2"}
    assert "VersionLabelKept" not in event_reasons(unpinned_cluster)


def test_the_stable_service_selects_every_pod_of_the_service_while_stable_rolls(unpinned_cluster):
    platform = make_platform(unpinned_cluster, "nginx-ingress")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    unpinned_cluster.requests.clear()

    platform.promote(V2)

    selectors = [
        (i, r.body["spec"]["selector"])
        for i, r in enumerate(unpinned_cluster.requests)
        if r.kind == "Service" and r.name == SERVICE and r.method == "PUT"
    ]
    rolled = write_index(unpinned_cluster, "PUT", "Deployment", SERVICE)
    assert [s for _, s in selectors] == [{"app": SERVICE}, {"app": SERVICE, "version": "v2"}]
    assert selectors[0][0] < rolled < selectors[1][0]


def test_istio_widens_the_stable_subset_before_the_roll_and_narrows_it_by_version_after(
    unpinned_cluster,
):
    platform = make_platform(unpinned_cluster, "istio")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    unpinned_cluster.requests.clear()

    platform.promote(V2)

    subsets = [
        (i, r.body["spec"]["subsets"][0])
        for i, r in enumerate(unpinned_cluster.requests)
        if r.kind == "DestinationRule" and r.method == "PUT"
    ]
    rolled = write_index(unpinned_cluster, "PUT", "Deployment", SERVICE)
    assert [s for _, s in subsets] == [
        {"name": "stable"},
        {"name": "stable", "labels": {"version": "v2"}},
    ]
    assert subsets[0][0] < rolled < subsets[1][0]


def test_a_version_pinned_by_the_immutable_selector_is_kept_with_a_warning(api_server):
    for obj in USER_OBJECTS:
        api_server.seed(obj)
    platform = make_platform(api_server, "nginx-ingress")
    platform.deploy_canary(V2)

    platform.promote(V2)

    stable = api_server.get("Deployment", NAMESPACE, SERVICE)
    assert stable["spec"]["template"]["metadata"]["labels"]["version"] == "v1"
    assert api_server.get("Service", NAMESPACE, SERVICE)["spec"]["selector"]["version"] == "v1"
    warning = next(
        e for e in api_server.objects("Event", NAMESPACE) if e["reason"] == "VersionLabelKept"
    )
    assert warning["type"] == "Warning" and "pins it" in warning["message"]
