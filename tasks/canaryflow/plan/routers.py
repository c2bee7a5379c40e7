"""The traffic routers a plan can name and what each can do: one declaration.

Read by plan validation (a plan asking a router for something it cannot do is refused before
anything is deployed), by each router in ``canaryflow.kubernetes.routers`` (its
``capabilities``), by the runbook and by the workflow compilers (the ``router-kind`` choices).
A spec, free of the Kubernetes client, so ``canaryflow validate`` and ``--help`` stay light.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

RouterKind = Literal["nginx-ingress", "istio", "gateway-api", "smi"]
ROUTER_KINDS: tuple[str, ...] = get_args(RouterKind)

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


def can(kind: str, capability: str) -> bool:
    return capability in CAPABILITIES[kind]
