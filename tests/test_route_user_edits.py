"""A user's edit of a managed route made during the release is kept where it does not concern
the canary: restoring puts back only the field the split rewrote (Istio: the managed route's
destinations; Gateway API: the managed rule's backendRefs) onto the object as it is now. An edit
of that field itself, or of canaryflow's own canary Ingress, is taken back and reported: a
Warning Event ``RouteEditReverted`` and a line in the rollback's record."""

from __future__ import annotations

import copy

import pytest
from kube.fixtures import HTTP_ROUTE, NAMESPACE, SERVICE, VIRTUAL_SERVICE, cluster
from test_kubernetes_platform import V2, make_platform

from canaryflow.kubernetes.resources import HTTP_ROUTE as HTTP_ROUTE_KIND
from canaryflow.kubernetes.resources import INGRESS
from canaryflow.kubernetes.resources import VIRTUAL_SERVICE as VIRTUAL_SERVICE_KIND
from canaryflow.platform.protocol import HeaderRoute

__all__ = ["cluster"]
HEADER = HeaderRoute("x-release-channel", "canary")


def events(server, reason: str) -> list[dict]:
    return [e for e in server.objects("Event", NAMESPACE) if e["reason"] == reason]


def entry(obj: dict, key: str, name: str) -> dict:
    return next(e for e in obj["spec"][key] if e.get("name") == name)


def mid_release(server, kind: str):
    platform = make_platform(server, kind)
    platform.deploy_canary(V2)
    platform.router.set_header_route(HEADER)
    platform.router.set_weight(30)
    return platform


def finish(platform, ending: str) -> str:
    if ending == "promote":
        platform.promote(V2)
        return ""
    return platform.rollback()


@pytest.mark.parametrize("ending", ["rollback", "promote"])
def test_istio_keeps_a_timeout_the_user_set_on_the_managed_route_mid_release(cluster, ending):
    platform = mid_release(cluster, "istio")

    def user_edit(vs: dict) -> dict:
        entry(vs, "http", "canaryflow-primary")["timeout"] = "30s"
        entry(vs, "http", "admin")["retries"] = {"attempts": 2}
        return vs

    platform.api.update(VIRTUAL_SERVICE_KIND, SERVICE, user_edit)

    finish(platform, ending)

    vs = cluster.get("VirtualService", NAMESPACE, SERVICE)
    expected = copy.deepcopy(VIRTUAL_SERVICE["spec"])
    entry({"spec": expected}, "http", "canaryflow-primary")["timeout"] = "30s"
    entry({"spec": expected}, "http", "admin")["retries"] = {"attempts": 2}
    assert vs["spec"] == expected
    assert "annotations" not in vs["metadata"]
    assert events(cluster, "RouteEditReverted") == []


def test_istio_reports_an_edit_of_the_destinations_it_takes_back(cluster):
    platform = mid_release(cluster, "istio")

    def user_edit(vs: dict) -> dict:
        route = entry(vs, "http", "canaryflow-primary")["route"]
        route[0]["destination"]["port"] = {"number": 8080}
        return vs

    platform.api.update(VIRTUAL_SERVICE_KIND, SERVICE, user_edit)

    outcome = platform.rollback()

    vs = cluster.get("VirtualService", NAMESPACE, SERVICE)
    assert vs["spec"] == VIRTUAL_SERVICE["spec"]
    (event,) = events(cluster, "RouteEditReverted")
    assert event["type"] == "Warning"
    assert event["message"].startswith(
        "virtualservice checkout: http[canaryflow-primary].route was edited during the release"
    )
    assert f"reverted: {event['message']}" in outcome


@pytest.mark.parametrize("ending", ["rollback", "promote"])
def test_gateway_api_keeps_timeouts_and_filters_the_user_set_on_the_managed_rule(cluster, ending):
    platform = mid_release(cluster, "gateway-api")
    header = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": []}}
    header["requestHeaderModifier"]["add"].append({"name": "x-shop", "value": "1"})

    def user_edit(route: dict) -> dict:
        rule = entry(route, "rules", "canaryflow-primary")
        rule["timeouts"] = {"request": "30s"}
        rule["filters"] = [header]
        return route

    platform.api.update(HTTP_ROUTE_KIND, SERVICE, user_edit)

    finish(platform, ending)

    route = cluster.get("HTTPRoute", NAMESPACE, SERVICE)
    expected = copy.deepcopy(HTTP_ROUTE["spec"])
    rule = entry({"spec": expected}, "rules", "canaryflow-primary")
    rule |= {"timeouts": {"request": "30s"}, "filters": [header]}
    assert route["spec"] == expected
    assert events(cluster, "RouteEditReverted") == []


def test_gateway_api_reports_an_edit_of_the_backend_refs_it_takes_back(cluster):
    platform = mid_release(cluster, "gateway-api")

    def user_edit(route: dict) -> dict:
        entry(route, "rules", "canaryflow-primary")["backendRefs"][0]["port"] = 8080
        return route

    platform.api.update(HTTP_ROUTE_KIND, SERVICE, user_edit)

    outcome = platform.rollback()

    assert cluster.get("HTTPRoute", NAMESPACE, SERVICE)["spec"] == HTTP_ROUTE["spec"]
    (event,) = events(cluster, "RouteEditReverted")
    assert (
        "rules[canaryflow-primary].backendRefs was edited during the release" in (event["message"])
    )
    assert "reverted: httproute checkout" in outcome


@pytest.mark.parametrize("ending", ["rollback", "promote"])
def test_nginx_never_touches_the_users_ingress_and_reports_edits_of_its_own(cluster, ending):
    platform = mid_release(cluster, "nginx-ingress")
    timeout = {"nginx.ingress.kubernetes.io/proxy-read-timeout": "30"}

    def annotate(ingress: dict) -> dict:
        ingress["metadata"].setdefault("annotations", {}).update(timeout)
        return ingress

    platform.api.update(INGRESS, SERVICE, annotate)
    platform.api.update(INGRESS, f"{SERVICE}-canary", annotate)

    finish(platform, ending)

    assert cluster.get("Ingress", NAMESPACE, SERVICE)["metadata"]["annotations"] == timeout
    (event,) = events(cluster, "RouteEditReverted")
    assert event["message"].startswith(
        "ingress shop/checkout-canary (canaryflow's own) was edited during the release "
        "(annotations {'nginx.ingress.kubernetes.io/proxy-read-timeout': '30'})"
    )
