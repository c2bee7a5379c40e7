"""Istio: weights on one http route of the user's VirtualService, subsets in our own
DestinationRule.

Like Argo Rollouts (``trafficRouting.istio.virtualService.routes``), canaryflow edits one route
of the user's VirtualService (plan ``router.route``, default the service name): the http route
the plan names (``router.rule``), else the only one, else the one whose destination is the
service host. Its destinations become the ``stable`` and ``canary`` subsets of that host. The
route as it was is kept in the ``canaryflow.dev/original-route`` annotation and put back by
``remove_managed_routes``; every other route is left as it is. The header route
``canaryflow-header`` goes right before the managed route (Istio matches in order) and behaves
like it: same matches plus the header, same timeout, retries, rewrite and header operations.

The stable subset selects stable's ReplicaSet by ``pod-template-hash``, the label the Deployment
controller puts on each of its pods (``owned_services``), as Argo Rollouts' Istio subset routing
does with ``rollouts-pod-template-hash`` (argo-rollouts v1.9.1,
``rollout/trafficrouting/istio/istio.go``, ``Reconciler.UpdateHash``): the stable pods need no
``version`` label and are not restarted. The canary subset selects the artifact version, which
canaryflow puts on the canary pods. While a promotion changes stable's ReplicaSet the stable
subset selects every endpoint of the host (``select_stable_hash(None)``). A fresh baseline is a
third subset, ``baseline`` (pods labelled ``canaryflow.dev/track: baseline``; their own
ReplicaSet's hash and no version label, so the stable subset never reaches them), added with its
destination the first time it gets a share; its destination is taken out before the route is
restored. They live in the DestinationRule
``<service>-canaryflow``; if you already have a DestinationRule for the host, Istio merges the
subsets of both only when their traffic policies do not conflict.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from canaryflow.errors import FieldError, InputError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.canary_objects import MANAGED_BY, TRACK_LABEL, VERSION_LABEL
from canaryflow.kubernetes.discovery import require_served
from canaryflow.kubernetes.owned_services import POD_TEMPLATE_HASH
from canaryflow.kubernetes.resources import DESTINATION_RULE, VIRTUAL_SERVICE
from canaryflow.kubernetes.routers.backends import Backends
from canaryflow.kubernetes.routers.managed_route import RouteList
from canaryflow.plan.routers import CAPABILITIES, STABLE_SELECTION
from canaryflow.platform.protocol import HeaderRoute
from canaryflow.platform.routes import HEADER_ROUTE_NAME

Obj = dict[str, Any]
STABLE, CANARY, BASELINE = "stable", "canary", "baseline"
ROUTES = RouteList("virtualservice", "http", "route", lambda r: r.get("name") == HEADER_ROUTE_NAME)


@dataclass
class IstioRouter:
    api: ClusterApi
    service: str
    virtual_service: str | None = None
    route: str | None = None
    destination_rule: str | None = None
    host: str | None = None

    splits_by_service = False
    capabilities = CAPABILITIES["istio"]
    stable_selection = STABLE_SELECTION["istio"]
    reverted: list[str] = field(default_factory=list, init=False)
    """What ``remove_managed_routes`` had to take back of the user's mid-release edits."""

    def __post_init__(self) -> None:
        self.virtual_service = self.virtual_service or self.service
        self.destination_rule = self.destination_rule or f"{self.service}-canaryflow"
        self.host = self.host or self.service

    def preflight(self, backends: Backends) -> None:
        require_served(self.api, VIRTUAL_SERVICE, DESTINATION_RULE)
        vs = self.api.get(VIRTUAL_SERVICE, self.virtual_service)
        if vs is None:
            raise InputError(
                FieldError(
                    "router.route",
                    f"virtualservice {self.api.namespace}/{self.virtual_service} not found: "
                    "create the VirtualService that routes to the service, or set router.route "
                    "to its name",
                )
            )
        self._managed(vs)
        if not backends.stable_version and not backends.stable_hash:
            raise InputError(
                FieldError(
                    "deployment.spec.template.metadata.labels.version",
                    f"the stable pods of {self.service} carry no '{VERSION_LABEL}' label: the "
                    "Istio router selects the stable subset by it; add it to the stable pod "
                    "template",
                )
            )
        if backends.stable_version == backends.canary_version:  # the canary subset's label
            raise InputError(
                FieldError(
                    "artifact.version",
                    f"{backends.canary_version!r} is also the stable pods' version label: "
                    "give the canary a new version so the subsets tell them apart",
                )
            )

    def prepare(self, backends: Backends) -> None:
        self.preflight(backends)
        stable = (
            {POD_TEMPLATE_HASH: backends.stable_hash}
            if backends.stable_hash
            else {VERSION_LABEL: backends.stable_version}
        )
        self.api.apply(self._destination_rule(stable, backends.canary_version))
        self.api.update(VIRTUAL_SERVICE, self.virtual_service, self._split_managed_route)

    def set_weight(self, canary_percent: int, baseline_percent: int = 0) -> None:
        def edit(vs: Obj) -> Obj:
            return with_weight(vs, self._managed(vs), canary_percent, baseline_percent)

        if baseline_percent:
            self._add_baseline_subset()
        if self._prepared() or canary_percent or baseline_percent:
            self.api.update(VIRTUAL_SERVICE, self.virtual_service, edit)

    def verify_weight(self, canary_percent: int, baseline_percent: int = 0) -> bool:
        vs = self.api.get(VIRTUAL_SERVICE, self.virtual_service)
        if not ROUTES.is_split(vs):
            return canary_percent == 0 and baseline_percent == 0
        weights = {
            d["destination"].get("subset"): d.get("weight", 0)
            for d in self._managed(vs).get("route", [])
        }
        expected = {STABLE: 100 - canary_percent - baseline_percent, CANARY: canary_percent}
        if BASELINE in weights or baseline_percent:  # a baseline's destination, 0 once unused
            expected[BASELINE] = baseline_percent
        return weights == expected

    def _add_baseline_subset(self) -> None:
        """The ``baseline`` subset appended to canaryflow's DestinationRule, its stable and
        canary subsets left as they are (a hash, a version, or widened)."""
        rule = self.api.get(DESTINATION_RULE, self.destination_rule)
        if rule is not None and not _has_subset(rule, BASELINE):
            self.api.update(DESTINATION_RULE, self.destination_rule, _with_baseline_subset)

    def set_header_route(self, route: HeaderRoute) -> None:
        def edit(vs: Obj) -> Obj:
            return with_header_route(vs, self._managed(vs), route)

        self.api.update(VIRTUAL_SERVICE, self.virtual_service, edit)

    def withdraw_header_route(self) -> None:
        if not self.header_route_withdrawn():
            self.api.update(VIRTUAL_SERVICE, self.virtual_service, ROUTES.without_header)

    def header_route_withdrawn(self) -> bool:
        return not ROUTES.has_header(self.api.get(VIRTUAL_SERVICE, self.virtual_service))

    def remove_managed_routes(self) -> None:
        self.reverted = []
        if self._prepared():
            self.api.update(VIRTUAL_SERVICE, self.virtual_service, self._without_managed_routes)
        self.api.delete(DESTINATION_RULE, self.destination_rule)

    def reverted_edits(self) -> list[str]:
        return list(self.reverted)

    def stable_backends(self) -> list[str]:
        """Stable's share goes to the stable Service (or subset) itself."""
        return []

    def select_stable(self, version: str | None, canary_version: str) -> None:
        """The stable subset selects ``version`` (None: every endpoint of the host); a subset
        of a DestinationRule written by a release that selected stable by version."""
        labels = None if version is None else {VERSION_LABEL: version}
        self._select(labels, canary_version)

    def select_stable_hash(self, pod_template_hash: str | None) -> None:
        """The stable subset selects stable's ReplicaSet ``pod_template_hash`` (None: every
        endpoint of the host, while a promotion changes stable's ReplicaSet)."""
        rule = self.api.get(DESTINATION_RULE, self.destination_rule)
        if rule is None:
            return
        canary = next(s for s in rule["spec"]["subsets"] if s["name"] == CANARY)
        labels = None if pod_template_hash is None else {POD_TEMPLATE_HASH: pod_template_hash}
        self._select(labels, canary["labels"][VERSION_LABEL])

    def stable_hash_selected(self) -> tuple[bool, str | None]:
        """Whether the stable subset selects by ``pod-template-hash``, and which (None: every
        endpoint of the host); (False, None) without our DestinationRule or for a subset of a
        version."""
        rule = self.api.get(DESTINATION_RULE, self.destination_rule)
        if rule is None:
            return False, None
        stable = next((s for s in rule["spec"]["subsets"] if s["name"] == STABLE), {})
        labels = stable.get("labels")
        if labels is None:
            return True, None
        return POD_TEMPLATE_HASH in labels, labels.get(POD_TEMPLATE_HASH)

    def _select(self, labels: dict[str, str] | None, canary_version: str) -> None:
        """Replace the subsets (read, modify, write: a subset's labels are dropped, not merged);
        a fresh baseline's subset stays while the rule has one."""
        rule = self.api.get(DESTINATION_RULE, self.destination_rule)
        if rule is None:
            return
        wanted = self._destination_rule(labels, canary_version)
        if _has_subset(rule, BASELINE):
            _add_baseline_subset(wanted)
        if rule["spec"] != wanted["spec"]:
            spec = wanted["spec"]
            self.api.update(DESTINATION_RULE, self.destination_rule, lambda r: {**r, "spec": spec})

    def _prepared(self) -> bool:
        return ROUTES.is_split(self.api.get(VIRTUAL_SERVICE, self.virtual_service))

    def _managed(self, vs: Obj) -> Obj:
        return managed_route(vs, self.route, self.host, self.api.namespace)

    def _split_managed_route(self, vs: Obj) -> Obj:
        return with_split_route(vs, self._managed(vs), self.host)

    def _without_managed_routes(self, vs: Obj) -> Obj:
        self.reverted = []
        managed = self._managed(vs)
        managed["route"] = [
            d for d in managed.get("route") or [] if d["destination"].get("subset") != BASELINE
        ]
        return without_managed_routes(vs, managed, self.host, self.reverted)

    def _destination_rule(self, stable_labels: dict[str, str] | None, canary_version: str) -> Obj:
        stable: Obj = {"name": STABLE}
        if stable_labels is not None:
            stable["labels"] = dict(stable_labels)
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


def _add_baseline_subset(rule: Obj) -> None:
    """Within the host's endpoints (the service's pods) the track label is enough."""
    rule["spec"]["subsets"].append({"name": BASELINE, "labels": {TRACK_LABEL: BASELINE}})


def _with_baseline_subset(rule: Obj) -> Obj:
    _add_baseline_subset(rule)
    return rule


def _has_subset(rule: Obj, name: str) -> bool:
    return any(subset["name"] == name for subset in rule["spec"].get("subsets") or [])


def managed_route(vs: Obj, name: str | None, host: str, namespace: str) -> Obj:
    """The http route canaryflow splits: the one named ``name``; else the only one; else the one
    routing to ``host`` (short name or ``host.namespace[.svc…]``). The header route never counts."""
    http = [r for r in vs["spec"].get("http", []) if r.get("name") != HEADER_ROUTE_NAME]
    names = ", ".join(repr(r.get("name")) for r in http if r.get("name")) or "none"
    where = f"virtualservice {vs['metadata']['name']}"
    if name is not None:
        found = [r for r in http if r.get("name") == name]
        problem = f"{where} has no http route named {name!r} (named routes: {names})"
    elif len(http) == 1:
        found = http
    else:
        found = [r for r in http if any(_is_host(d, host, namespace) for d in r.get("route", []))]
        problem = f"{where} has {len(found)} http routes to {host} among {len(http)}"
    if len(found) == 1:
        return found[0]
    raise InputError(
        FieldError(
            "router.rule",
            f"{problem}: give the route that serves the service a name (http[].name) and set "
            "router.rule to it",
        )
    )


def _is_host(destination: Obj, host: str, namespace: str) -> bool:
    parts = destination.get("destination", {}).get("host", "").split(".")
    return parts[0] == host and (len(parts) == 1 or parts[1] == namespace)


def with_split_route(vs: Obj, route: Obj, host: str) -> Obj:
    """The managed route sends 100 % to the stable subset, 0 % to canary; original kept aside."""
    ROUTES.keep_original(vs, route)
    template = copy.deepcopy(route.get("route", [{}])[0].get("destination", {}))
    template["host"] = host
    if not route.get("route") or route["route"][0]["destination"].get("subset") != STABLE:
        route["route"] = [
            {"destination": {**template, "subset": STABLE}, "weight": 100},
            {"destination": {**template, "subset": CANARY}, "weight": 0},
        ]
    return vs


def with_weight(vs: Obj, route: Obj, canary_percent: int, baseline_percent: int = 0) -> Obj:
    """Subset weights adding up to 100; a baseline's destination (a copy of the canary's with
    the ``baseline`` subset) is added the first time it gets a share."""
    ROUTES.require_split(vs)
    subsets = [d["destination"].get("subset") for d in route["route"]]
    if baseline_percent and BASELINE not in subsets:
        canary = next(d for d in route["route"] if d["destination"].get("subset") == CANARY)
        baseline = copy.deepcopy(canary)
        baseline["destination"]["subset"] = BASELINE
        route["route"].append(baseline)
    shares = {CANARY: canary_percent, BASELINE: baseline_percent}
    for destination in route["route"]:
        subset = destination["destination"].get("subset")
        destination["weight"] = shares.get(subset, 100 - canary_percent - baseline_percent)
    return vs


COPIED_TO_HEADER_ROUTE = ("timeout", "retries", "rewrite", "headers", "corsPolicy")
"""What a request on the header route gets exactly as on the managed route."""


def with_header_route(vs: Obj, managed: Obj, header: HeaderRoute) -> Obj:
    """Insert (or refresh) the header route right before the managed route."""
    canary = next(d for d in managed["route"] if d["destination"].get("subset") == CANARY)
    header_match = {header.name.lower(): {"exact": header.value}}
    matches = [
        {**match, "headers": {**match.get("headers", {}), **header_match}}
        for match in managed.get("match") or [{}]
    ]
    header_route = {
        "name": HEADER_ROUTE_NAME,
        "match": matches,
        "route": [{"destination": copy.deepcopy(canary["destination"]), "weight": 100}],
    }
    return ROUTES.insert_header(vs, managed, header_route, COPIED_TO_HEADER_ROUTE)


def without_managed_routes(
    vs: Obj, managed: Obj, host: str, reverted: list[str] | None = None
) -> Obj:
    """The VirtualService as the user wrote it: header route gone, the managed route's
    destinations restored, the user's other mid-release edits of it kept."""

    def written(original: Obj) -> object:
        with_split_route({"metadata": {}}, original, host)
        return original.get("route")

    return ROUTES.restore(vs, managed, "route", written, reverted)
