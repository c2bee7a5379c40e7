"""Istio: weights on one named http route of the user's VirtualService, subsets in our own
DestinationRule.

Like Argo Rollouts, canaryflow edits a route the user names (``route``, default
``canaryflow-primary``) in their VirtualService (``virtual_service``, default the service name):
its destinations become the ``stable`` and ``canary`` subsets of the service host. The route as
it was is kept in the ``canaryflow.dev/original-route`` annotation and put back by
``remove_managed_routes``; every other route is left as it is. The header route
``canaryflow-header`` goes right before the managed route (Istio matches in order).

Subsets select pods by their ``version`` label: the stable pods' comes from the stable pod
template (required), the canary's is the artifact version. They live in the DestinationRule
``<service>-canaryflow``; if you already have a DestinationRule for the host, Istio merges the
subsets of both only when their traffic policies do not conflict.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.canary_objects import MANAGED_BY, VERSION_LABEL
from canaryflow.kubernetes.resources import DESTINATION_RULE, VIRTUAL_SERVICE
from canaryflow.kubernetes.routers.backends import (
    HEADER_ROUTE_NAME,
    MANAGED_ROUTE_NAME,
    ORIGINAL_ANNOTATION,
    Backends,
)
from canaryflow.platform.protocol import HeaderRoute

Obj = dict[str, Any]
STABLE, CANARY = "stable", "canary"


@dataclass
class IstioRouter:
    api: ClusterApi
    service: str
    virtual_service: str | None = None
    route: str = MANAGED_ROUTE_NAME
    destination_rule: str | None = None
    host: str | None = None

    splits_by_service = False

    def __post_init__(self) -> None:
        self.virtual_service = self.virtual_service or self.service
        self.destination_rule = self.destination_rule or f"{self.service}-canaryflow"
        self.host = self.host or self.service

    def preflight(self, backends: Backends) -> None:
        vs = self.api.get(VIRTUAL_SERVICE, self.virtual_service)
        if vs is None:
            raise InputError(
                FieldError(
                    "router.virtual_service",
                    f"virtualservice {self.api.namespace}/{self.virtual_service} not found: "
                    "create the VirtualService that routes to the service, or name it here",
                )
            )
        managed_route(vs, self.route)
        if not backends.stable_version:
            raise InputError(
                FieldError(
                    "deployment.spec.template.metadata.labels.version",
                    f"the stable pods of {self.service} carry no '{VERSION_LABEL}' label: the "
                    "Istio router selects the stable subset by it; add it to the stable pod "
                    "template",
                )
            )
        if backends.stable_version == backends.canary_version:
            raise InputError(
                FieldError(
                    "artifact.version",
                    f"{backends.canary_version!r} is also the stable pods' version label: "
                    "give the canary a new version so the subsets tell them apart",
                )
            )

    def prepare(self, backends: Backends) -> None:
        self.preflight(backends)
        self.api.apply(self._destination_rule(backends.stable_version, backends.canary_version))
        self.api.update(VIRTUAL_SERVICE, self.virtual_service, self._split_managed_route)

    def set_weight(self, canary_percent: int) -> None:
        def edit(vs: Obj) -> Obj:
            return with_weight(vs, self.route, canary_percent)

        if self._prepared() or canary_percent:
            self.api.update(VIRTUAL_SERVICE, self.virtual_service, edit)

    def verify_weight(self, canary_percent: int) -> bool:
        vs = self.api.get(VIRTUAL_SERVICE, self.virtual_service)
        if vs is None or ORIGINAL_ANNOTATION not in _annotations(vs):
            return canary_percent == 0
        weights = {
            d["destination"].get("subset"): d.get("weight", 0)
            for d in managed_route(vs, self.route).get("route", [])
        }
        return weights == {STABLE: 100 - canary_percent, CANARY: canary_percent}

    def set_header_route(self, route: HeaderRoute) -> None:
        def edit(vs: Obj) -> Obj:
            return with_header_route(vs, self.route, route)

        self.api.update(VIRTUAL_SERVICE, self.virtual_service, edit)

    def remove_managed_routes(self) -> None:
        if self._prepared():
            self.api.update(VIRTUAL_SERVICE, self.virtual_service, without_managed_routes)
        self.api.delete(DESTINATION_RULE, self.destination_rule)

    def select_stable(self, version: str | None, canary_version: str) -> None:
        """The stable subset selects ``version`` (None: every endpoint of the host)."""
        if self.api.get(DESTINATION_RULE, self.destination_rule) is not None:
            self.api.apply(self._destination_rule(version, canary_version))

    def _prepared(self) -> bool:
        vs = self.api.get(VIRTUAL_SERVICE, self.virtual_service)
        return vs is not None and ORIGINAL_ANNOTATION in _annotations(vs)

    def _split_managed_route(self, vs: Obj) -> Obj:
        return with_split_route(vs, self.route, self.host)

    def _destination_rule(self, stable_version: str | None, canary_version: str) -> Obj:
        stable = {"name": STABLE}
        if stable_version is not None:
            stable["labels"] = {VERSION_LABEL: stable_version}
        return {
            "apiVersion": DESTINATION_RULE.api_version,
            "kind": DESTINATION_RULE.kind,
            "metadata": {
                "name": self.destination_rule,
                "namespace": self.api.namespace,
                "labels": dict(MANAGED_BY),
            },
            "spec": {
                "host": self.host,
                "subsets": [stable, {"name": CANARY, "labels": {VERSION_LABEL: canary_version}}],
            },
        }


def managed_route(vs: Obj, name: str) -> Obj:
    for route in vs["spec"].get("http", []):
        if route.get("name") == name:
            return route
    raise InputError(
        FieldError(
            "router.route",
            f"virtualservice {vs['metadata']['name']} has no http route named {name!r}: name the "
            "route that serves the service (http[].name) and set router.route to it",
        )
    )


def with_split_route(vs: Obj, name: str, host: str) -> Obj:
    """The managed route sends 100 % to the stable subset, 0 % to canary; original kept aside."""
    route = managed_route(vs, name)
    annotations = vs["metadata"].setdefault("annotations", {})
    if ORIGINAL_ANNOTATION not in annotations:
        annotations[ORIGINAL_ANNOTATION] = json.dumps(route, sort_keys=True)
    template = copy.deepcopy(route.get("route", [{}])[0].get("destination", {}))
    template["host"] = host
    if not route.get("route") or route["route"][0]["destination"].get("subset") != STABLE:
        route["route"] = [
            {"destination": {**template, "subset": STABLE}, "weight": 100},
            {"destination": {**template, "subset": CANARY}, "weight": 0},
        ]
    return vs


def with_weight(vs: Obj, name: str, canary_percent: int) -> Obj:
    if ORIGINAL_ANNOTATION not in _annotations(vs):
        raise PlatformError(
            f"virtualservice {vs['metadata']['name']}: route {name!r} is not split yet; "
            "deploy the canary first"
        )
    for destination in managed_route(vs, name)["route"]:
        subset = destination["destination"].get("subset")
        destination["weight"] = canary_percent if subset == CANARY else 100 - canary_percent
    return vs


def with_header_route(vs: Obj, name: str, header: HeaderRoute) -> Obj:
    """Insert (or refresh) the header route right before the managed route."""
    http = [r for r in vs["spec"]["http"] if r.get("name") != HEADER_ROUTE_NAME]
    vs["spec"]["http"] = http
    managed = managed_route(vs, name)
    canary = next(d for d in managed["route"] if d["destination"].get("subset") == CANARY)
    header_match = {header.name.lower(): {"exact": header.value}}
    matches = [
        {**match, "headers": {**match.get("headers", {}), **header_match}}
        for match in managed.get("match") or [{}]
    ]
    http.insert(
        http.index(managed),
        {
            "name": HEADER_ROUTE_NAME,
            "match": matches,
            "route": [{"destination": copy.deepcopy(canary["destination"]), "weight": 100}],
        },
    )
    return vs


def without_managed_routes(vs: Obj) -> Obj:
    """The VirtualService as the user wrote it: header route gone, managed route restored."""
    annotations = vs["metadata"].get("annotations", {})
    original = annotations.pop(ORIGINAL_ANNOTATION, None)
    if not annotations:
        vs["metadata"].pop("annotations", None)
    http = [r for r in vs["spec"].get("http", []) if r.get("name") != HEADER_ROUTE_NAME]
    if original is not None:
        restored = json.loads(original)
        http = [restored if r.get("name") == restored.get("name") else r for r in http]
    vs["spec"]["http"] = http
    return vs


def _annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}
