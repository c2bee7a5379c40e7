"""Gateway API: backendRef weights on one named rule of the user's HTTPRoute (v1).

canaryflow edits the rule the user names (``rule``, default ``canaryflow-primary``;
``rules[].name``) in their HTTPRoute (``http_route``, default the service name): its backendRefs
become the stable and canary Services with weights. The rule as it was is kept in the
``canaryflow.dev/original-route`` annotation and put back by ``remove_managed_routes``. The header
rule ``canaryflow-header`` repeats the managed rule's matches plus the header; Gateway API gives
it precedence because it has more header matches, whatever its position.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.resources import HTTP_ROUTE
from canaryflow.kubernetes.routers.backends import (
    HEADER_ROUTE_NAME,
    MANAGED_ROUTE_NAME,
    ORIGINAL_ANNOTATION,
    Backends,
)
from canaryflow.platform.protocol import HeaderRoute

Obj = dict[str, Any]


@dataclass
class GatewayApiRouter:
    api: ClusterApi
    service: str
    http_route: str | None = None
    rule: str = MANAGED_ROUTE_NAME

    splits_by_service = True

    def __post_init__(self) -> None:
        self.http_route = self.http_route or self.service

    def preflight(self, backends: Backends) -> None:
        route = self.api.get(HTTP_ROUTE, self.http_route)
        if route is None:
            raise InputError(
                FieldError(
                    "router.http_route",
                    f"httproute {self.api.namespace}/{self.http_route} not found: create the "
                    "HTTPRoute that routes to the service, or name it here",
                )
            )
        managed_rule(route, self.rule)

    def prepare(self, backends: Backends) -> None:
        self.preflight(backends)

        def edit(route: Obj) -> Obj:
            return with_split_rule(route, self.rule, backends)

        self.api.update(HTTP_ROUTE, self.http_route, edit)

    def set_weight(self, canary_percent: int) -> None:
        def edit(route: Obj) -> Obj:
            return with_weight(route, self.rule, canary_percent)

        if self._prepared() or canary_percent:
            self.api.update(HTTP_ROUTE, self.http_route, edit)

    def verify_weight(self, canary_percent: int) -> bool:
        route = self.api.get(HTTP_ROUTE, self.http_route)
        if route is None or ORIGINAL_ANNOTATION not in _annotations(route):
            return canary_percent == 0
        weights = [ref.get("weight", 1) for ref in managed_rule(route, self.rule)["backendRefs"]]
        return weights == [100 - canary_percent, canary_percent]

    def set_header_route(self, route: HeaderRoute) -> None:
        def edit(http_route: Obj) -> Obj:
            return with_header_rule(http_route, self.rule, route)

        self.api.update(HTTP_ROUTE, self.http_route, edit)

    def select_stable(self, version: str | None, canary_version: str) -> None:
        """Nothing to do: stable is its Service, which the platform retargets."""

    def remove_managed_routes(self) -> None:
        if self._prepared():
            self.api.update(HTTP_ROUTE, self.http_route, without_managed_rules)

    def _prepared(self) -> bool:
        route = self.api.get(HTTP_ROUTE, self.http_route)
        return route is not None and ORIGINAL_ANNOTATION in _annotations(route)


def managed_rule(route: Obj, name: str) -> Obj:
    for rule in route["spec"].get("rules", []):
        if rule.get("name") == name:
            return rule
    raise InputError(
        FieldError(
            "router.rule",
            f"httproute {route['metadata']['name']} has no rule named {name!r}: name the rule "
            "that serves the service (rules[].name) and set router.rule to it",
        )
    )


def with_split_rule(route: Obj, name: str, backends: Backends) -> Obj:
    """The managed rule's backendRefs: stable at 100, canary at 0; original kept aside."""
    rule = managed_rule(route, name)
    annotations = route["metadata"].setdefault("annotations", {})
    if ORIGINAL_ANNOTATION in annotations:
        return route
    annotations[ORIGINAL_ANNOTATION] = json.dumps(rule, sort_keys=True)
    refs = rule.get("backendRefs") or [{"name": backends.stable_service}]
    stable = copy.deepcopy(refs[0])
    stable.update(name=backends.stable_service, port=stable.get("port", backends.port))
    canary = {**copy.deepcopy(stable), "name": backends.canary_service}
    rule["backendRefs"] = [{**stable, "weight": 100}, {**canary, "weight": 0}]
    return route


def with_weight(route: Obj, name: str, canary_percent: int) -> Obj:
    if ORIGINAL_ANNOTATION not in _annotations(route):
        raise PlatformError(
            f"httproute {route['metadata']['name']}: rule {name!r} is not split yet; "
            "deploy the canary first"
        )
    stable, canary = managed_rule(route, name)["backendRefs"]
    stable["weight"], canary["weight"] = 100 - canary_percent, canary_percent
    return route


def with_header_rule(route: Obj, name: str, header: HeaderRoute) -> Obj:
    rules = [r for r in route["spec"]["rules"] if r.get("name") != HEADER_ROUTE_NAME]
    route["spec"]["rules"] = rules
    managed = managed_rule(route, name)
    canary = copy.deepcopy(managed["backendRefs"][-1])
    header_match = {"type": "Exact", "name": header.name, "value": header.value}
    matches = [
        {**match, "headers": [*match.get("headers", []), header_match]}
        for match in managed.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
    ]
    rules.insert(
        rules.index(managed),
        {"name": HEADER_ROUTE_NAME, "matches": matches, "backendRefs": [{**canary, "weight": 1}]},
    )
    return route


def without_managed_rules(route: Obj) -> Obj:
    """The HTTPRoute as the user wrote it: header rule gone, managed rule restored."""
    annotations = route["metadata"].get("annotations", {})
    original = annotations.pop(ORIGINAL_ANNOTATION, None)
    if not annotations:
        route["metadata"].pop("annotations", None)
    rules = [r for r in route["spec"].get("rules", []) if r.get("name") != HEADER_ROUTE_NAME]
    if original is not None:
        restored = json.loads(original)
        rules = [restored if r.get("name") == restored.get("name") else r for r in rules]
    route["spec"]["rules"] = rules
    return route


def _annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}
