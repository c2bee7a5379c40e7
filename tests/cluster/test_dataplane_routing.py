"""The data plane's routing decisions follow each router's specification (fast, no processes)."""

from __future__ import annotations

from .bed import HOST, USER_PATH, ServiceSpec, route_object
from .dataplane import Request, gateway_backends, ingress_nginx_backends, istio_backends

PLAIN = Request(HOST, USER_PATH)
TAGGED = Request(HOST, USER_PATH, {"x-release-channel": "canary"})


def service(name: str, selector: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": selector, "ports": [{"port": 80}]},
    }


def test_istio_takes_the_first_matching_route_and_narrows_by_subset(api_server):
    spec = ServiceSpec("checkout", "shop", "istio")
    vs = route_object(spec)
    vs["spec"]["http"].insert(
        1,
        {
            "name": "canaryflow-header",
            "match": [{"headers": {"x-release-channel": {"exact": "canary"}}}],
            "route": [{"destination": {"host": "checkout", "subset": "canary"}}],
        },
    )
    vs["spec"]["http"][2]["route"] = [
        {"destination": {"host": "checkout", "subset": "stable"}, "weight": 70},
        {"destination": {"host": "checkout", "subset": "canary"}, "weight": 30},
    ]
    api_server.seed(vs)
    api_server.seed(service("checkout", {"app": "checkout"}))
    api_server.seed(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "checkout-canaryflow", "namespace": "shop"},
            "spec": {
                "host": "checkout",
                "subsets": [
                    {"name": "stable", "labels": {"version": "v1"}},
                    {"name": "canary", "labels": {"version": "v2"}},
                ],
            },
        }
    )

    assert istio_backends(api_server, "shop", "checkout", PLAIN) == [
        ({"app": "checkout", "version": "v1"}, 70.0),
        ({"app": "checkout", "version": "v2"}, 30.0),
    ]
    assert istio_backends(api_server, "shop", "checkout", TAGGED) == [
        ({"app": "checkout", "version": "v2"}, 100.0)
    ]
    assert istio_backends(api_server, "shop", "checkout", Request(HOST, "/admin/x")) == [
        ({}, 100.0)
    ]


def test_ingress_nginx_puts_the_canary_header_before_the_weight(api_server):
    spec = ServiceSpec("cart", "shop", "nginx-ingress")
    api_server.seed(route_object(spec))
    api_server.seed(service("cart", {"app": "cart", "track": "stable"}))
    api_server.seed(service("cart-canary", {"app": "cart", "track": "canary"}))
    canary = route_object(spec)
    canary["metadata"] = {
        "name": "cart-canary",
        "namespace": "shop",
        "annotations": {
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "0",
            "nginx.ingress.kubernetes.io/canary-by-header": "x-release-channel",
            "nginx.ingress.kubernetes.io/canary-by-header-value": "canary",
        },
    }
    canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "cart-canary"
    api_server.seed(canary)

    stable, to_canary = {"app": "cart", "track": "stable"}, {"app": "cart", "track": "canary"}
    assert ingress_nginx_backends(api_server, "shop", PLAIN) == [(stable, 100.0), (to_canary, 0.0)]
    assert ingress_nginx_backends(api_server, "shop", TAGGED) == [(to_canary, 1.0)]
    assert ingress_nginx_backends(api_server, "shop", Request("other.example.com", "/")) == []


def test_gateway_api_prefers_the_rule_with_more_header_matches(api_server):
    spec = ServiceSpec("search", "shop", "gateway-api")
    route = route_object(spec)
    primary = route["spec"]["rules"][0]
    primary["backendRefs"] = [
        {"name": "search", "port": 80, "weight": 75},
        {"name": "search-canary", "port": 80, "weight": 25},
    ]
    header = {"type": "Exact", "name": "x-release-channel", "value": "canary"}
    route["spec"]["rules"].append(
        {
            "name": "canaryflow-header",
            "matches": [{"path": {"type": "PathPrefix", "value": USER_PATH}, "headers": [header]}],
            "backendRefs": [{"name": "search-canary", "port": 80}],
        }
    )
    api_server.seed(route)
    api_server.seed(service("search", {"app": "search", "track": "stable"}))
    api_server.seed(service("search-canary", {"app": "search", "track": "canary"}))

    stable, canary = {"app": "search", "track": "stable"}, {"app": "search", "track": "canary"}
    assert gateway_backends(api_server, "shop", "search", PLAIN) == [(stable, 75.0), (canary, 25.0)]
    assert gateway_backends(api_server, "shop", "search", TAGGED) == [(canary, 1.0)]
