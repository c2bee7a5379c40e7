"""Routers touch only canaryflow's routes: the user's own routes survive unchanged."""

from __future__ import annotations

import json

import pytest
from kube.fake_apiserver import FakeApiServer
from kube.fixtures import HTTP_ROUTE, NAMESPACE, SERVICE, VIRTUAL_SERVICE, api_server, cluster
from kubernetes.client import ApiClient, AppsV1Api, Configuration, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from test_kubernetes_platform import V2, make_platform
from test_router_defects import platform_with

from canaryflow.errors import InputError, PlatformError
from canaryflow.kubernetes.routers import ROUTERS, KubernetesRouter, make_router
from canaryflow.kubernetes.routers.managed_route import RouteList
from canaryflow.plan.routers import CAPABILITIES, ROUTER_KINDS
from canaryflow.platform.protocol import HeaderRoute

__all__ = ["api_server", "cluster"]

HEADER = HeaderRoute("x-release-channel", "canary")


def user_view(server: FakeApiServer, kind: str, name: str) -> dict:
    """The object without what the API server adds."""
    obj = server.get(kind, NAMESPACE, name)
    for added in ("resourceVersion", "uid", "creationTimestamp", "generation"):
        obj["metadata"].pop(added)
    return obj


def stable_pods(server: FakeApiServer) -> list[dict]:
    pods = server.objects("Pod", NAMESPACE)
    return [p for p in pods if "canaryflow.dev/track" not in p["metadata"]["labels"]]


def test_istio_splits_only_the_managed_route_and_puts_the_header_route_before_it(cluster):
    platform = make_platform(cluster, "istio")
    platform.deploy_canary(V2)
    platform.router.set_weight(30)
    platform.router.set_header_route(HEADER)

    http = cluster.get("VirtualService", NAMESPACE, SERVICE)["spec"]["http"]
    assert [r["name"] for r in http] == ["admin", "canaryflow-header", "canaryflow-primary"]
    assert http[0] == VIRTUAL_SERVICE["spec"]["http"][0]
    assert http[1]["match"] == [{"headers": {"x-release-channel": {"exact": "canary"}}}]
    assert http[1]["route"] == [
        {
            "destination": {"host": SERVICE, "port": {"number": 80}, "subset": "canary"},
            "weight": 100,
        }
    ]
    assert [(d["destination"]["subset"], d["weight"]) for d in http[2]["route"]] == [
        ("stable", 70),
        ("canary", 30),
    ]
    subsets = cluster.get("DestinationRule", NAMESPACE, f"{SERVICE}-canaryflow")["spec"]["subsets"]
    (stable_hash,) = {p["metadata"]["labels"]["pod-template-hash"] for p in stable_pods(cluster)}
    assert subsets == [
        {"name": "stable", "labels": {"pod-template-hash": stable_hash}},
        {"name": "canary", "labels": {"version": "v2"}},
    ]


def test_istio_gives_the_virtual_service_back_as_the_user_wrote_it(cluster):
    before = user_view(cluster, "VirtualService", SERVICE)
    platform = make_platform(cluster, "istio")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    platform.router.set_header_route(HEADER)

    platform.rollback()

    assert user_view(cluster, "VirtualService", SERVICE) == before
    assert cluster.get("DestinationRule", NAMESPACE, f"{SERVICE}-canaryflow") is None


def test_gateway_api_weights_the_managed_rule_and_adds_a_header_rule(cluster):
    platform = make_platform(cluster, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(10)
    platform.router.set_header_route(HEADER)

    rules = cluster.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
    assert [r["name"] for r in rules] == ["admin", "canaryflow-header", "canaryflow-primary"]
    assert rules[0] == HTTP_ROUTE["spec"]["rules"][0]
    assert rules[1]["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/checkout"},
            "headers": [{"type": "Exact", "name": "x-release-channel", "value": "canary"}],
        }
    ]
    assert rules[2]["backendRefs"] == [
        {"name": f"{SERVICE}-stable", "port": 80, "weight": 90},
        {"name": f"{SERVICE}-canary", "port": 80, "weight": 10},
    ]


def test_gateway_api_gives_the_http_route_back_as_the_user_wrote_it(cluster):
    before = user_view(cluster, "HTTPRoute", SERVICE)
    platform = make_platform(cluster, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(60)
    platform.router.set_header_route(HEADER)

    platform.promote(V2)

    assert user_view(cluster, "HTTPRoute", SERVICE) == before


def test_nginx_ingress_adds_a_canary_ingress_and_leaves_the_users_ingresses_alone(cluster):
    ingresses_before = cluster.objects("Ingress", NAMESPACE)
    platform = make_platform(cluster, "nginx-ingress")
    platform.deploy_canary(V2)
    platform.router.set_weight(5)

    canary = cluster.get("Ingress", NAMESPACE, f"{SERVICE}-canary")
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "5",
    }
    assert canary["spec"]["ingressClassName"] == "nginx"
    assert canary["spec"]["rules"] == [
        {
            "host": "shop.example.com",
            "http": {
                "paths": [
                    {
                        "path": "/checkout",
                        "pathType": "Prefix",
                        "backend": {
                            "service": {"name": f"{SERVICE}-canary", "port": {"number": 80}}
                        },
                    }
                ]
            },
        }
    ]
    platform.rollback()
    assert cluster.objects("Ingress", NAMESPACE) == ingresses_before


def test_smi_splits_with_a_traffic_split_and_refuses_header_routes(cluster):
    platform = make_platform(cluster, "smi")
    platform.deploy_canary(V2)
    platform.router.set_weight(15)

    split = cluster.get("TrafficSplit", NAMESPACE, SERVICE)
    assert split["spec"] == {
        "service": SERVICE,
        "backends": [
            {"service": f"{SERVICE}-stable", "weight": 85},
            {"service": f"{SERVICE}-canary", "weight": 15},
        ],
    }
    with pytest.raises(
        InputError, match=r"^router\.header: header routes are not supported by the SMI"
    ):
        platform.router.set_header_route(HEADER)


def test_a_route_the_plan_names_but_the_object_lacks_is_an_input_error_naming_router_rule(
    cluster,
):
    cluster.requests.clear()
    platform = platform_with(cluster, "istio", route="main")

    with pytest.raises(InputError) as error:
        platform.deploy_canary(V2)
    assert str(error.value) == (
        "router.rule: virtualservice checkout has no http route named 'main' (named routes: "
        "'admin', 'canaryflow-primary'): give the route that serves the service a name "
        "(http[].name) and set router.rule to it"
    )
    assert cluster.writes() == []


def test_weight_without_a_deployed_canary_is_refused_but_weight_zero_is_a_no_op(cluster):
    platform = make_platform(cluster, "istio")

    platform.router.set_weight(0)
    assert platform.router.verify_weight(0)
    assert cluster.writes() == []
    with pytest.raises(PlatformError, match="not split yet; deploy the canary first"):
        platform.router.set_weight(10)


def test_the_fake_api_server_rejects_objects_a_real_one_would(cluster):
    """The harness itself: unknown fields are 422, stale resourceVersions are 409."""
    client = cluster.api_client()
    apps = AppsV1Api(client)
    stable = apps.read_namespaced_deployment(SERVICE, NAMESPACE)
    body = cluster.get("Deployment", NAMESPACE, SERVICE)
    body["spec"]["replicass"] = 2
    with pytest.raises(ApiException) as invalid:
        CustomObjectsApi(client).replace_namespaced_custom_object(
            "apps", "v1", NAMESPACE, "deployments", SERVICE, body
        )
    assert invalid.value.status == 422
    assert "replicass" in json.loads(invalid.value.body)["message"]

    stale = cluster.get("Deployment", NAMESPACE, SERVICE)
    apps.patch_namespaced_deployment(SERVICE, NAMESPACE, {"spec": {"replicas": 4}})
    with pytest.raises(ApiException) as conflict:
        apps.replace_namespaced_deployment(SERVICE, NAMESPACE, stale)
    assert conflict.value.status == 409
    assert apps.read_namespaced_deployment(SERVICE, NAMESPACE).spec.replicas == 4
    assert stable.spec.replicas == 3


# -- one protocol, one table, one header-route algorithm -----------------------------------------


def test_every_router_kind_is_a_kubernetes_router_with_its_row_of_the_one_table():
    client = ApiClient(Configuration())
    assert set(ROUTERS) == set(ROUTER_KINDS) == set(CAPABILITIES)
    for kind in ROUTER_KINDS:
        router = make_router(kind, client, NAMESPACE, SERVICE)
        assert isinstance(router, KubernetesRouter), kind
        assert router.capabilities is CAPABILITIES[kind]


@pytest.mark.parametrize("key", ["http", "rules"])
def test_the_shared_algorithm_puts_back_exactly_what_the_user_wrote(key):
    routes = RouteList("thing", key, "entry", lambda e: e.get("name") == "ours")
    user = {"metadata": {"name": "r"}, "spec": {key: [{"name": "a"}, {"name": "b", "x": [1]}]}}
    obj = json.loads(json.dumps(user))
    managed = obj["spec"][key][1]
    assert routes.keep_original(obj, managed) and not routes.keep_original(obj, managed)
    managed["x"] = [2]  # split
    routes.insert_header(obj, managed, {"name": "ours"}, copied=("x",))
    routes.insert_header(obj, managed, {"name": "ours"}, copied=())  # a re-run replaces it
    assert [e["name"] for e in obj["spec"][key]] == ["a", "ours", "b"]
    assert routes.is_split(obj)
    assert routes.restore(obj, managed, "x", lambda e: [2]) == user
    with pytest.raises(PlatformError, match="thing r: the managed entry is not split yet"):
        routes.require_split(obj)
