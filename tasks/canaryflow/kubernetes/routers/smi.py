"""SMI: a TrafficSplit (split.smi-spec.io/v1alpha4) owned by canaryflow.

The apex is the stable Service (clients keep calling it); its backends are the stable and canary
Services with integer weights. Header routes would need an HTTPRouteGroup (specs.smi-spec.io),
which this router does not manage, so ``set_header_route`` is refused as an input error and
``supports_header_routes`` is False for the plan to check up front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.canary_objects import MANAGED_BY
from canaryflow.kubernetes.resources import TRAFFIC_SPLIT
from canaryflow.kubernetes.routers.backends import Backends
from canaryflow.platform.protocol import HeaderRoute

Obj = dict[str, Any]


@dataclass
class SmiRouter:
    api: ClusterApi
    service: str
    traffic_split: str | None = None
    apex: str | None = None

    splits_by_service = True
    supports_header_routes = False

    def __post_init__(self) -> None:
        self.traffic_split = self.traffic_split or self.service
        self.apex = self.apex or self.service

    def preflight(self, backends: Backends) -> None:
        """Nothing to read: the TrafficSplit is canaryflow's own."""

    def prepare(self, backends: Backends) -> None:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        weight = canary_weight(existing, backends.canary_service) if existing else 0
        self.api.apply(self._split(backends.stable_service, backends.canary_service, weight))

    def set_weight(self, canary_percent: int) -> None:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is None:
            if canary_percent:
                raise PlatformError(
                    f"trafficsplit {self.api.namespace}/{self.traffic_split} not found: "
                    "deploy the canary first"
                )
            return
        stable, canary = (b["service"] for b in existing["spec"]["backends"])
        self.api.apply(self._split(stable, canary, canary_percent))

    def verify_weight(self, canary_percent: int) -> bool:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is None:
            return canary_percent == 0
        weights = [b["weight"] for b in existing["spec"]["backends"]]
        return weights == [100 - canary_percent, canary_percent]

    def set_header_route(self, route: HeaderRoute) -> None:
        raise InputError(
            FieldError(
                "router.kind",
                "header routes are not supported by the SMI TrafficSplit router (they need an "
                "HTTPRouteGroup): remove the header route from the plan or use istio, "
                "nginx-ingress or gateway-api",
            )
        )

    def select_stable(self, version: str | None, canary_version: str) -> None:
        """Nothing to do: stable is its Service, which the platform retargets."""

    def remove_managed_routes(self) -> None:
        self.api.delete(TRAFFIC_SPLIT, self.traffic_split)

    def _split(self, stable: str, canary: str, canary_percent: int) -> Obj:
        return {
            "apiVersion": TRAFFIC_SPLIT.api_version,
            "kind": TRAFFIC_SPLIT.kind,
            "metadata": {
                "name": self.traffic_split,
                "namespace": self.api.namespace,
                "labels": dict(MANAGED_BY),
            },
            "spec": {
                "service": self.apex,
                "backends": [
                    {"service": stable, "weight": 100 - canary_percent},
                    {"service": canary, "weight": canary_percent},
                ],
            },
        }


def canary_weight(split: Obj, canary_service: str) -> int:
    return next(
        (int(b["weight"]) for b in split["spec"]["backends"] if b["service"] == canary_service), 0
    )
