"""Routers as a real cluster has them: the user's own TrafficSplit kept and given back exactly,
routes/rules chosen by the plan (or the only one / the one to the service), every capability and
limit checked before anything is deployed, and errors whose advice names a real plan key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from kube.fixtures import (
    HTTP_ROUTE,
    NAMESPACE,
    SERVICE,
    USER_OBJECTS,
    VIRTUAL_SERVICE,
    api_server,
    cluster,
)
from test_kubernetes_platform import FAST_RETRY, V2

from canaryflow.errors import InputError
from canaryflow.kubernetes.from_plan import router_settings
from canaryflow.kubernetes.platform import KubernetesPlatform, Timeouts
from canaryflow.kubernetes.routers import make_router
from canaryflow.plan.load import load_plan
from canaryflow.plan.model import RouterSpec
from canaryflow.platform.protocol import HeaderRoute

__all__ = ["api_server", "cluster"]
HEADER = HeaderRoute("x-release-channel", "canary")
ROUTERS = Path(__file__).resolve().parents[1] / "tasks" / "canaryflow" / "kubernetes"


def platform_with(server, kind: str, **settings) -> KubernetesPlatform:
    client = server.api_client()
    router = make_router(kind, client, NAMESPACE, SERVICE, retry=FAST_RETRY, **settings)
    timeouts = Timeouts(verify_weight_s=1, canary_scale_s=1, poll_s=0.02)
    return KubernetesPlatform(client, NAMESPACE, SERVICE, router, 2, timeouts=timeouts)


def user_view(server, kind: str, name: str) -> dict:
    obj = server.get(kind, NAMESPACE, name)
    for added in ("resourceVersion", "uid", "creationTimestamp", "generation"):
        obj["metadata"].pop(added)
    return obj


def seed(server, *replacing: dict) -> None:
    kinds = {obj["kind"]: obj for obj in replacing}
    for obj in USER_OBJECTS:
        server.seed(kinds.pop(obj["kind"], obj))
    for obj in kinds.values():
        server.seed(obj)


USERS_SPLIT = {
    "apiVersion": "split.smi-spec.io/v1alpha4",
    "kind": "TrafficSplit",
    "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {"team": "payments"}},
    "spec": {"service": SERVICE, "backends": [{"service": "checkout-v1", "weight": 100}]},
}
BACKEND_V1 = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "checkout-v1", "namespace": NAMESPACE},
    "spec": {
        "selector": {"app": SERVICE, "version": "v1"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
    },
}


# -- SMI: the user's TrafficSplit ---------------------------------------------------------------


@pytest.mark.parametrize("ending", ["rollback", "promote"])
def test_smi_keeps_the_users_traffic_split_and_gives_it_back_exactly(api_server, ending):
    seed(api_server, USERS_SPLIT)
    api_server.seed(BACKEND_V1)
    before = user_view(api_server, "TrafficSplit", SERVICE)
    platform = platform_with(api_server, "smi")
    platform.deploy_canary(V2)
    platform.router.set_weight(30)

    split = api_server.get("TrafficSplit", NAMESPACE, SERVICE)
    assert split["spec"]["backends"] == [
        {"service": f"{SERVICE}-stable", "weight": 70},
        {"service": f"{SERVICE}-canary", "weight": 30},
    ]
    assert split["metadata"]["labels"] == {"team": "payments"}  # never marked as ours
    assert platform.router.verify_weight(30)

    platform.rollback() if ending == "rollback" else platform.promote(V2)

    assert user_view(api_server, "TrafficSplit", SERVICE) == before
    assert platform.router.verify_weight(0)


def test_smi_refuses_a_users_split_with_several_backends_and_changes_nothing(api_server):
    split = copy.deepcopy(USERS_SPLIT)
    split["spec"]["backends"] = [
        {"service": "checkout-v1", "weight": 90},
        {"service": "checkout-v1b", "weight": 10},
    ]
    seed(api_server, split)
    api_server.requests.clear()

    with pytest.raises(InputError, match=r"^router\.route: trafficsplit checkout is yours"):
        platform_with(api_server, "smi").deploy_canary(V2)
    assert api_server.writes() == []


def test_smi_without_a_users_split_creates_and_deletes_its_own(cluster):
    platform = platform_with(cluster, "smi")
    platform.deploy_canary(V2)
    labels = cluster.get("TrafficSplit", NAMESPACE, SERVICE)["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/managed-by": "canaryflow"}

    platform.rollback()

    assert cluster.get("TrafficSplit", NAMESPACE, SERVICE) is None


# -- capabilities at validate time --------------------------------------------------------------


def test_smi_with_the_default_header_is_refused_by_validate_naming_router_header():
    with pytest.raises(InputError) as error:
        load_plan("service: {name: checkout}\nrouter: {kind: smi}\n")
    assert str(error.value).startswith(
        "router.header: the smi router cannot route by header: set router.header to null, or "
        "use istio, nginx-ingress or gateway-api"
    )
    assert load_plan("service: {name: checkout}\nrouter: {kind: smi, header: null}\n")


def test_a_rule_for_a_router_without_rules_is_refused():
    with pytest.raises(InputError, match=r"^router\.rule: the nginx-ingress router has no rules"):
        load_plan("service: {name: checkout}\nrouter: {kind: nginx-ingress, rule: main}\n")


def test_every_router_declares_its_capabilities_and_validation_reads_the_same_table():
    from canaryflow.kubernetes.routers import ROUTERS
    from canaryflow.plan.routers import CAPABILITIES

    assert (
        set(ROUTERS)
        == set(CAPABILITIES)
        == set(RouterSpec.model_fields["kind"].annotation.__args__)
    )
    for kind, router in ROUTERS.items():
        assert router.capabilities is CAPABILITIES[kind]


def test_the_plan_names_the_route_object_the_rule_and_whether_a_header_rule_comes():
    plan = load_plan(
        "service: {name: checkout}\n"
        "router: {kind: gateway-api, route: storefront, rule: checkout-api}\n"
    )
    assert router_settings(plan) == {
        "http_route": "storefront",
        "rule": "checkout-api",
        "header_rule": True,
    }
    plan = load_plan("service: {name: checkout}\nrouter: {kind: istio, rule: primary}\n")
    assert router_settings(plan) == {"route": "primary"}


def test_every_plan_key_an_error_advises_exists():
    keys = set()
    for path in ROUTERS.rglob("*.py"):
        keys |= set(re.findall(r"(?<![\w.])router\.([a-zA-Z]+)", path.read_text()))
    aliases = {field.alias or name for name, field in RouterSpec.model_fields.items()}
    assert keys and keys <= aliases, keys - aliases


# -- choosing the route / rule ------------------------------------------------------------------


def unnamed_virtual_service(*extra_routes: dict) -> dict:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    vs["spec"]["http"] = [
        *extra_routes,
        {
            "route": [{"destination": {"host": f"{SERVICE}.{NAMESPACE}.svc.cluster.local"}}],
            "timeout": "3s",
            "retries": {"attempts": 2, "perTryTimeout": "1s", "retryOn": "5xx"},
        },
    ]
    return vs


def test_istio_splits_the_only_route_unnamed_and_restores_it_exactly(api_server):
    seed(api_server, unnamed_virtual_service())
    before = user_view(api_server, "VirtualService", SERVICE)
    platform = platform_with(api_server, "istio")
    platform.deploy_canary(V2)
    platform.router.set_header_route(HEADER)
    platform.router.set_weight(40)

    http = api_server.get("VirtualService", NAMESPACE, SERVICE)["spec"]["http"]
    header, managed = http
    assert [(d["destination"]["subset"], d["weight"]) for d in managed["route"]] == [
        ("stable", 60),
        ("canary", 40),
    ]
    assert header["timeout"] == "3s"
    assert header["retries"] == {"attempts": 2, "perTryTimeout": "1s", "retryOn": "5xx"}

    platform.rollback()
    assert user_view(api_server, "VirtualService", SERVICE) == before


def test_istio_picks_the_route_to_the_service_host_among_several(api_server):
    admin = {
        "match": [{"uri": {"prefix": "/admin"}}],
        "route": [{"destination": {"host": "admin"}}],
    }
    seed(api_server, unnamed_virtual_service(admin))
    platform = platform_with(api_server, "istio")
    platform.deploy_canary(V2)
    platform.router.set_weight(10)

    http = api_server.get("VirtualService", NAMESPACE, SERVICE)["spec"]["http"]
    assert http[0] == admin
    assert platform.router.verify_weight(10)


def test_istio_refuses_to_guess_between_two_routes_to_the_service(api_server):
    other = {"match": [{"uri": {"prefix": "/v2"}}], "route": [{"destination": {"host": SERVICE}}]}
    seed(api_server, unnamed_virtual_service(other))
    api_server.requests.clear()

    with pytest.raises(InputError, match=r"^router\.rule: virtualservice checkout has 2 http"):
        platform_with(api_server, "istio").deploy_canary(V2)
    assert api_server.writes() == []


def test_the_header_route_copies_the_managed_routes_timeout_and_retries_when_named(cluster):
    vs = cluster.get("VirtualService", NAMESPACE, SERVICE)
    platform = platform_with(cluster, "istio", route="canaryflow-primary")
    assert vs["spec"]["http"][1]["name"] == "canaryflow-primary"
    platform.deploy_canary(V2)
    platform.router.set_header_route(HEADER)
    header = cluster.get("VirtualService", NAMESPACE, SERVICE)["spec"]["http"][1]
    assert header["name"] == "canaryflow-header"
    assert "timeout" not in header  # the managed route has none: nothing invented


def http_route_with(rules: list[dict]) -> dict:
    route = copy.deepcopy(HTTP_ROUTE)
    route["spec"]["rules"] = rules
    return route


def test_gateway_api_splits_the_only_rule_unnamed_and_restores_it_exactly(api_server):
    rule = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [{"name": SERVICE, "port": 80}],
        "timeouts": {"request": "5s"},
    }
    seed(api_server, http_route_with([rule]))
    before = user_view(api_server, "HTTPRoute", SERVICE)
    platform = platform_with(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_header_route(HEADER)
    platform.router.set_weight(20)

    header, managed = api_server.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
    assert [r["weight"] for r in managed["backendRefs"]] == [80, 20]
    assert header["timeouts"] == {"request": "5s"}

    platform.promote(V2)
    assert user_view(api_server, "HTTPRoute", SERVICE) == before


def many_rules(count: int) -> list[dict]:
    rules = [
        {
            "name": f"r{i}",
            "matches": [{"path": {"type": "PathPrefix", "value": f"/r{i}"}}],
            "backendRefs": [{"name": "other", "port": 80}],
        }
        for i in range(count - 1)
    ]
    return [*rules, {"name": "main", "backendRefs": [{"name": SERVICE, "port": 80}]}]


def test_gateway_api_refuses_in_preflight_a_header_rule_past_16_rules(api_server):
    seed(api_server, http_route_with(many_rules(16)))
    api_server.requests.clear()

    with pytest.raises(InputError) as error:
        platform_with(api_server, "gateway-api").deploy_canary(V2)
    assert str(error.value).startswith(
        "router.header: httproute checkout has 16 rules and 16 matches; the header rule would "
        "add 1 rule and 1 matches, past Gateway API's limit of 16 rules and 128 matches"
    )
    assert api_server.writes() == []


def test_gateway_api_with_16_rules_and_no_header_rule_deploys(api_server):
    seed(api_server, http_route_with(many_rules(16)))
    platform_with(api_server, "gateway-api", header_rule=False).deploy_canary(V2)
    assert api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is not None
    assert len(api_server.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]) == 16


def test_gateway_api_with_15_rules_takes_the_header_rule(api_server):
    seed(api_server, http_route_with(many_rules(15)))
    platform = platform_with(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_header_route(HEADER)
    assert len(api_server.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]) == 16
