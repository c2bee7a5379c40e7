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

THREE_WAY = "three-way"
"""Splits stable / fresh baseline / canary (``analysis.baseline: fresh``): weighted backendRefs
(Gateway API), destinations (Istio) or TrafficSplit backends (SMI: any number, see
``kubernetes.routers.smi``). NGINX Ingress' canary annotations split one canary Ingress off the
main one: two ways only."""

CAPABILITIES: Mapping[str, frozenset[str]] = {
    "istio": frozenset({HEADER_ROUTES, NAMED_RULES, THREE_WAY}),
    "nginx-ingress": frozenset({HEADER_ROUTES}),
    "gateway-api": frozenset({HEADER_ROUTES, NAMED_RULES, THREE_WAY}),
    # header matches need an HTTPRouteGroup, which canaryflow does not manage
    "smi": frozenset({THREE_WAY}),
}

OWNED_SERVICE = "owned-service"
"""Stable's share goes to ``<service>-stable``, a Service canaryflow creates for the release
selecting stable's ReplicaSet by ``pod-template-hash`` (Argo Rollouts' ``stableService``); the
canary's to ``<service>-canary``. The user's Service may select ``app`` alone."""
HASH_SUBSET = "hash-subset"
"""Stable is a DestinationRule subset selecting stable's ``pod-template-hash`` (as Argo
Rollouts' Istio subset routing does with ``rollouts-pod-template-hash``): no Service needed."""
USER_SERVICE = "user-service"
"""Stable's share goes to the user's own Service, so its selector must miss the canary pods
(a ``version`` label): ingress-nginx's canary Ingress is an annotation on a copy of the
user's Ingress, whose backend stays the user's Service. Pointing that backend at an owned
Service would mean editing the user's Ingress itself, which a GitOps tool's self-heal reverts
mid-release (the canary Ingress is canaryflow's own object, the main one is not), for a router
that is retired upstream (``DEPRECATED``)."""

STABLE_SELECTION: Mapping[str, str] = {
    "istio": HASH_SUBSET,
    "nginx-ingress": USER_SERVICE,
    "gateway-api": OWNED_SERVICE,
    "smi": OWNED_SERVICE,
}
"""How each router keeps stable's share off the canary pods."""


DEFAULT_ROUTER_KIND = "gateway-api"
"""A plan without ``router.kind``: Gateway API, the Kubernetes project's own routing API,
served by most ingress controllers and meshes (and the successor ingress-nginx points to)."""

DEPRECATED: Mapping[str, str] = {
    "nginx-ingress": "ingress-nginx was retired upstream in March 2026 (no more releases or "
    "security fixes): move to gateway-api (most controllers, ingress-nginx's successors "
    "included, serve HTTPRoute)",
    "smi": "the SMI specification is archived and Flagger is removing its SMI support: move "
    "to gateway-api (Linkerd and other meshes serve HTTPRoute) or istio",
}
"""Kinds that still work, with why to move off them: ``canaryflow validate`` warns, never
refuses (an error would stop releases that work today)."""


def deprecation(kind: str) -> str | None:
    """The warning for a deprecated router kind, naming the field and the way off it."""
    note = DEPRECATED.get(kind)
    return f"router.kind: {kind} is deprecated: {note}" if note else None


def routers_with(capability: str) -> list[str]:
    return [kind for kind, able in CAPABILITIES.items() if capability in able]


def can(kind: str, capability: str) -> bool:
    return capability in CAPABILITIES[kind]
