"""What each traffic router can do: one declaration, read by the routers and by plan validation.

Kept free of the Kubernetes client so ``canaryflow validate`` (and ``--help``) stay light: a plan
asking a router for something it cannot do is refused before anything is deployed.
"""

from __future__ import annotations

from collections.abc import Mapping

HEADER_ROUTES = "header-routes"
"""Requests carrying the plan's header reach the canary whatever the weight."""
NAMED_RULES = "named-rules"
"""The plan can name which route/rule of the user's object is split (``router.rule``)."""

CAPABILITIES: Mapping[str, frozenset[str]] = {
    "istio": frozenset({HEADER_ROUTES, NAMED_RULES}),
    "nginx-ingress": frozenset({HEADER_ROUTES}),
    "gateway-api": frozenset({HEADER_ROUTES, NAMED_RULES}),
    "smi": frozenset(),  # header matches need an HTTPRouteGroup, which canaryflow does not manage
}


def routers_with(capability: str) -> list[str]:
    return [kind for kind, able in CAPABILITIES.items() if capability in able]
