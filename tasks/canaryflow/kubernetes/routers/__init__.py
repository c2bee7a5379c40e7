"""Traffic routers for Kubernetes: one module per mesh or ingress, built by ``make_router``.

Each router implements ``KubernetesRouter`` (``protocol.py``): the platform's ``TrafficRouter``
plus ``preflight`` (read-only checks, so bad input changes nothing), ``prepare`` (create what it
needs at weight 0) and ``select_stable``, and declares its capabilities from the one table in
``canaryflow.plan.routers``. Only canaryflow's own routes are written; no managed route means
weight 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client import ApiClient

from canaryflow.errors import FieldError, InputError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.retry import DEFAULT_RETRY, RetryPolicy
from canaryflow.kubernetes.routers.backends import Backends
from canaryflow.kubernetes.routers.gateway_api import GatewayApiRouter
from canaryflow.kubernetes.routers.istio import IstioRouter
from canaryflow.kubernetes.routers.nginx_ingress import NginxIngressRouter
from canaryflow.kubernetes.routers.protocol import KubernetesRouter
from canaryflow.kubernetes.routers.smi import SmiRouter

ROUTERS: Mapping[str, Callable[..., KubernetesRouter]] = {
    "istio": IstioRouter,
    "nginx-ingress": NginxIngressRouter,
    "gateway-api": GatewayApiRouter,
    "smi": SmiRouter,
}

__all__ = ["ROUTERS", "Backends", "KubernetesRouter", "make_router"]


def make_router(
    kind: str,
    api_client: ApiClient,
    namespace: str,
    service: str,
    retry: RetryPolicy = DEFAULT_RETRY,
    **settings: Any,
) -> KubernetesRouter:
    """The router of ``kind`` for ``service``; ``settings`` are the router's own options."""
    if kind not in ROUTERS:
        raise InputError(
            FieldError(
                "router.kind",
                f"unknown router {kind!r}: use one of {', '.join(ROUTERS)}",
            )
        )
    api = ClusterApi(api_client, namespace, retry)
    try:
        return ROUTERS[kind](api, service, **settings)
    except TypeError as error:
        raise InputError(
            FieldError("router", f"{error}: check the {kind} router settings")
        ) from None
