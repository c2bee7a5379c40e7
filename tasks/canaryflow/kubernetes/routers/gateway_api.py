"""Gateway API: backendRef weights on one rule of the user's HTTPRoute (v1).

canaryflow edits one rule of the user's HTTPRoute (plan ``router.route``, default the service
name): the rule the plan names (``router.rule``, ``rules[].name``), else the only one, else the
one whose backendRefs lead to the stable Service. Its backendRefs become ``<service>-stable`` and
``<service>-canary`` with weights: Services canaryflow owns for the release, selecting stable's
ReplicaSet by ``pod-template-hash`` and the canary's track (``owned_services``), so the user's
Service may select ``app`` alone. The rule as it was is kept in the
``canaryflow.dev/original-route`` annotation and put back by ``remove_managed_routes``. The
header rule ``canaryflow-header`` repeats the managed rule's matches plus the header, and its
filters, timeouts and retry; Gateway API gives it precedence because it has more header matches,
whatever its position. An HTTPRoute holds at most 16 rules and 128 matches in all
(``apis/v1/httproute_types.go``: ``MaxItems=16`` and the CEL rule on ``spec.rules``), so
preflight refuses a route the header rule would overflow.

A fresh baseline is a third backendRef, the ``<service>-baseline`` Service, appended to the
managed rule the first time it gets a share and taken out before the rule is restored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from canaryflow.errors import FieldError, InputError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.baseline import baseline_name
from canaryflow.kubernetes.discovery import require_served
from canaryflow.kubernetes.owned_services import stable_service_name
from canaryflow.kubernetes.resources import HTTP_ROUTE
from canaryflow.kubernetes.routers.backends import Backends
from canaryflow.kubernetes.routers.managed_route import RouteList
from canaryflow.plan.routers import CAPABILITIES, STABLE_SELECTION
from canaryflow.platform.protocol import HeaderRoute
from canaryflow.platform.routes import HEADER_ROUTE_NAME

Obj = dict[str, Any]
MAX_RULES, MAX_MATCHES = 16, 128
COPIED_TO_HEADER_RULE = ("filters", "timeouts", "retry")


@dataclass
class GatewayApiRouter:
    api: ClusterApi
    service: str
    http_route: str | None = None
    rule: str | None = None
    header_rule: bool = True
    """Whether the release adds the header rule (the plan's ``router.header`` is set)."""
    backend: str | None = None
    """The user's Service the route leads to (the plan's ``service.service``), default the
    service name: how the managed rule is found among several."""

    splits_by_service = True
    capabilities = CAPABILITIES["gateway-api"]
    stable_selection = STABLE_SELECTION["gateway-api"]
    reverted: list[str] = field(default_factory=list, init=False)
    """What ``remove_managed_routes`` had to take back of the user's mid-release edits."""

    def __post_init__(self) -> None:
        self.http_route = self.http_route or self.service

    def preflight(self, backends: Backends) -> None:
        require_served(self.api, HTTP_ROUTE)
        route = self.api.get(HTTP_ROUTE, self.http_route)
        if route is None:
            raise InputError(
                FieldError(
                    "router.route",
                    f"httproute {self.api.namespace}/{self.http_route} not found: create the "
                    "HTTPRoute that routes to the service, or set router.route to its name",
                )
            )
        managed = self._managed(route)
        if self.header_rule:
            check_room_for_header_rule(route, managed, self._canary)

    def prepare(self, backends: Backends) -> None:
        self.preflight(backends)

        def edit(route: Obj) -> Obj:
            return with_split_rule(route, self._managed(route), backends)

        self.api.update(HTTP_ROUTE, self.http_route, edit)

    def set_weight(self, canary_percent: int, baseline_percent: int = 0) -> None:
        def edit(route: Obj) -> Obj:
            managed = self._managed(route)
            baseline = baseline_name(self.service)
            return with_weight(
                route, managed, canary_percent, self._canary, baseline_percent, baseline
            )

        if self._prepared() or canary_percent or baseline_percent:
            self.api.update(HTTP_ROUTE, self.http_route, edit)

    def verify_weight(self, canary_percent: int, baseline_percent: int = 0) -> bool:
        route = self.api.get(HTTP_ROUTE, self.http_route)
        if not rules_of(self._canary).is_split(route):
            return canary_percent == 0 and baseline_percent == 0
        weights = [ref.get("weight", 1) for ref in self._managed(route)["backendRefs"]]
        stable = 100 - canary_percent - baseline_percent
        if len(weights) > 2:  # a baseline's backendRef, at 0 once it has no share
            return weights == [stable, canary_percent, baseline_percent]
        return weights == [stable, canary_percent] and baseline_percent == 0

    def set_header_route(self, route: HeaderRoute) -> None:
        def edit(http_route: Obj) -> Obj:
            return with_header_rule(http_route, self._managed(http_route), route, self._canary)

        self.api.update(HTTP_ROUTE, self.http_route, edit)

    def withdraw_header_route(self) -> None:
        if not self.header_route_withdrawn():
            self.api.update(HTTP_ROUTE, self.http_route, rules_of(self._canary).without_header)

    def header_route_withdrawn(self) -> bool:
        route = self.api.get(HTTP_ROUTE, self.http_route)
        return not rules_of(self._canary).has_header(route)

    def stable_backends(self) -> list[str]:
        """Stable's share goes to the stable Service (or subset) itself."""
        return []

    def select_stable(self, version: str | None, canary_version: str) -> None:
        """Nothing to do: stable is its Service, which the platform retargets."""

    def remove_managed_routes(self) -> None:
        def edit(route: Obj) -> Obj:
            self.reverted = []
            managed = self._managed(route)
            without_baseline(managed, baseline_name(self.service))
            backends = self._backends(managed)
            return without_managed_rules(route, managed, backends, self.reverted)

        self.reverted = []
        if self._prepared():
            self.api.update(HTTP_ROUTE, self.http_route, edit)

    def reverted_edits(self) -> list[str]:
        return list(self.reverted)

    def _backends(self, managed: Obj) -> Backends:
        """The Services the split wrote (the port: as written, when the original had none)."""
        refs = managed.get("backendRefs") or [{}]
        return Backends(self._stable, self._canary, refs[0].get("port", 0), None, "")

    @property
    def _canary(self) -> str:
        return f"{self.service}-canary"

    @property
    def _stable(self) -> str:
        return stable_service_name(self.service)

    def _managed(self, route: Obj) -> Obj:
        users = self.backend or self.service
        return managed_rule(route, self.rule, (users, self._stable), self._canary)

    def _prepared(self) -> bool:
        return rules_of(self._canary).is_split(self.api.get(HTTP_ROUTE, self.http_route))


def _is_header_rule(rule: Obj, canary: str) -> bool:
    refs = rule.get("backendRefs") or []
    only_canary = bool(refs) and all(ref.get("name") == canary for ref in refs)
    return rule.get("name") == HEADER_ROUTE_NAME or only_canary


def rules_of(canary: str) -> RouteList:
    """An HTTPRoute's rules; a rule leading only to ``canary`` is a header rule too."""
    return RouteList("httproute", "rules", "rule", lambda rule: _is_header_rule(rule, canary))


def managed_rule(route: Obj, name: str | None, services: tuple[str, ...], canary: str) -> Obj:
    """The rule canaryflow splits: the one named ``name``; else the only one; else the one whose
    backendRefs lead to one of ``services`` (the user's Service before the split, the stable
    Service canaryflow owns during it). The header rule never counts."""
    rules = [r for r in route["spec"].get("rules", []) if not _is_header_rule(r, canary)]
    where = f"httproute {route['metadata']['name']}"
    if name is not None:
        found = [r for r in rules if r.get("name") == name]
        names = ", ".join(repr(r["name"]) for r in rules if r.get("name")) or "none"
        problem = f"{where} has no rule named {name!r} (named rules: {names})"
    elif len(rules) == 1:
        found = rules
    else:
        found = [
            r
            for r in rules
            if any(ref.get("name") in services for ref in r.get("backendRefs") or [])
        ]
        problem = f"{where} has {len(found)} rules leading to service {services[0]}"
    if len(found) == 1:
        return found[0]
    raise InputError(
        FieldError(
            "router.rule",
            f"{problem} among {len(rules)}: give the rule that serves the service a name "
            "(rules[].name) and set router.rule to it",
        )
    )


def check_room_for_header_rule(route: Obj, managed: Obj, canary: str) -> None:
    """The header rule must fit: at most 16 rules and 128 matches per HTTPRoute."""
    rules = [r for r in route["spec"].get("rules", []) if not _is_header_rule(r, canary)]
    matches = sum(max(1, len(r.get("matches") or [])) for r in rules)
    header_matches = max(1, len(managed.get("matches") or []))
    name = route["metadata"]["name"]
    if len(rules) + 1 > MAX_RULES or matches + header_matches > MAX_MATCHES:
        raise InputError(
            FieldError(
                "router.header",
                f"httproute {name} has {len(rules)} rules and {matches} matches; the header rule "
                f"would add 1 rule and {header_matches} matches, past Gateway API's limit of "
                f"{MAX_RULES} rules and {MAX_MATCHES} matches per HTTPRoute: set router.header "
                "to null, or move some rules to another HTTPRoute",
            )
        )


def with_split_rule(route: Obj, rule: Obj, backends: Backends) -> Obj:
    """The managed rule's backendRefs: stable at 100, canary at 0; original kept aside."""
    if not rules_of(backends.canary_service).keep_original(route, rule):
        return route
    refs = rule.get("backendRefs") or [{"name": backends.stable_service}]
    stable = copy.deepcopy(refs[0])
    stable.update(name=backends.stable_service, port=stable.get("port", backends.port))
    canary = {**copy.deepcopy(stable), "name": backends.canary_service}
    rule["backendRefs"] = [{**stable, "weight": 100}, {**canary, "weight": 0}]
    return route


def with_weight(
    route: Obj,
    rule: Obj,
    canary_percent: int,
    canary: str,
    baseline_percent: int = 0,
    baseline: str | None = None,
) -> Obj:
    """stable, canary (and baseline, the third backendRef: added, as a copy of the canary's
    ref, the first time it gets a share; kept at 0 afterwards) weighted to add up to 100."""
    rules_of(canary).require_split(route)
    refs = rule["backendRefs"]
    stable_ref, canary_ref = refs[0], refs[1]
    if baseline_percent and len(refs) < 3:
        if baseline is None:
            raise ValueError("a baseline share needs the baseline Service's name")
        refs.append({**copy.deepcopy(canary_ref), "name": baseline})
    if len(refs) > 2:
        refs[2]["weight"] = baseline_percent
    stable_ref["weight"] = 100 - canary_percent - baseline_percent
    canary_ref["weight"] = canary_percent
    return route


def without_baseline(rule: Obj, baseline: str) -> Obj:
    """The managed rule without the baseline's backendRef (before the rule is restored)."""
    refs = rule.get("backendRefs") or []
    rule["backendRefs"] = [ref for ref in refs if ref.get("name") != baseline]
    return rule


def with_header_rule(route: Obj, managed: Obj, header: HeaderRoute, canary: str) -> Obj:
    refs = managed["backendRefs"]
    canary_ref = copy.deepcopy(refs[min(1, len(refs) - 1)])  # the canary's, never a baseline's
    header_match = {"type": "Exact", "name": header.name, "value": header.value}
    matches = [
        {**match, "headers": [*match.get("headers", []), header_match]}
        for match in managed.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
    ]
    header_rule = {
        "name": HEADER_ROUTE_NAME,
        "matches": matches,
        "backendRefs": [{**canary_ref, "weight": 1}],
    }
    return rules_of(canary).insert_header(route, managed, header_rule, COPIED_TO_HEADER_RULE)


def without_managed_rules(
    route: Obj, managed: Obj, backends: Backends, reverted: list[str] | None = None
) -> Obj:
    """The HTTPRoute as the user wrote it: header rule gone, the managed rule's backendRefs
    restored, the user's other mid-release edits of it (filters, timeouts, matches) kept."""

    def written(original: Obj) -> object:
        with_split_rule({"metadata": {}}, original, backends)
        return original.get("backendRefs")

    return rules_of(backends.canary_service).restore(
        route, managed, "backendRefs", written, reverted
    )
