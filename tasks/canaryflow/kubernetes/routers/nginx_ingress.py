"""NGINX Ingress: a canary Ingress beside the user's, steered by ingress-nginx canary annotations.

The canary Ingress ``<service>-canary`` copies the hosts and paths of the stable Ingress that lead
to the stable Service, with the canary Service as backend (ingress-nginx pairs them by host and
path). ``canary-weight`` sets the split, ``canary-by-header`` / ``canary-by-header-value`` send
matching requests to the canary whatever the weight. The user's Ingress is only read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.canary_objects import MANAGED_BY
from canaryflow.kubernetes.resources import INGRESS
from canaryflow.kubernetes.routers.backends import Backends
from canaryflow.plan.routers import CAPABILITIES, STABLE_SELECTION
from canaryflow.platform.protocol import HeaderRoute

Obj = dict[str, Any]
ANNOTATION = "nginx.ingress.kubernetes.io/"
CANARY, WEIGHT = f"{ANNOTATION}canary", f"{ANNOTATION}canary-weight"
BY_HEADER, BY_HEADER_VALUE = f"{ANNOTATION}canary-by-header", f"{ANNOTATION}canary-by-header-value"


@dataclass
class NginxIngressRouter:
    api: ClusterApi
    service: str
    ingress: str | None = None
    canary_ingress: str | None = None

    splits_by_service = True
    capabilities = CAPABILITIES["nginx-ingress"]
    stable_selection = STABLE_SELECTION["nginx-ingress"]
    reverted: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.ingress = self.ingress or self.service
        self.canary_ingress = self.canary_ingress or f"{self.service}-canary"

    def preflight(self, backends: Backends) -> Obj:
        stable = self.api.get(INGRESS, self.ingress)
        if stable is None:
            raise InputError(
                FieldError(
                    "router.route",
                    f"ingress {self.api.namespace}/{self.ingress} not found: the nginx-ingress "
                    "router copies the stable Ingress; create it or set router.route to its name",
                )
            )
        canary_ingress(stable, self.canary_ingress, backends)
        return stable

    def prepare(self, backends: Backends) -> None:
        stable = self.preflight(backends)
        existing = self.api.get(INGRESS, self.canary_ingress)
        wanted = canary_ingress(stable, self.canary_ingress, backends)
        if existing is not None:
            kept = {k: v for k, v in _annotations(existing).items() if k.startswith(ANNOTATION)}
            wanted["metadata"]["annotations"] |= kept
        self.api.apply(wanted)

    def set_weight(self, canary_percent: int) -> None:
        self._annotate({WEIGHT: str(canary_percent)}, required=canary_percent > 0)

    def verify_weight(self, canary_percent: int) -> bool:
        canary = self.api.get(INGRESS, self.canary_ingress)
        if canary is None:
            return canary_percent == 0
        return _annotations(canary).get(WEIGHT) == str(canary_percent)

    def set_header_route(self, route: HeaderRoute) -> None:
        self._annotate({BY_HEADER: route.name, BY_HEADER_VALUE: route.value}, required=True)

    def withdraw_header_route(self) -> None:
        """The by-header annotations removed (JSON merge patch: null deletes a key)."""
        self._annotate({BY_HEADER: None, BY_HEADER_VALUE: None}, required=False)

    def header_route_withdrawn(self) -> bool:
        canary = self.api.get(INGRESS, self.canary_ingress)
        return canary is None or BY_HEADER not in _annotations(canary)

    def stable_backends(self) -> list[str]:
        """Stable's share goes to the stable Service (or subset) itself."""
        return []

    def select_stable(self, version: str | None, canary_version: str) -> None:
        """Nothing to do: stable is its Service, which the platform retargets."""

    def remove_managed_routes(self) -> None:
        self.reverted = self._edits_of_ours()
        self.api.delete(INGRESS, self.canary_ingress)

    def reverted_edits(self) -> list[str]:
        """The user's Ingress is only read, so their edits to it always stand; what they
        added to the canary Ingress (canaryflow's own) goes with it, and is reported."""
        return list(self.reverted)

    def _edits_of_ours(self) -> list[str]:
        canary = self.api.get(INGRESS, self.canary_ingress)
        if canary is None:
            return []
        ours = (CANARY, WEIGHT, BY_HEADER, BY_HEADER_VALUE)
        added = {k: v for k, v in _annotations(canary).items() if k not in ours}
        edits = [f"annotations {added}"] if added else []
        stable = self.api.get(INGRESS, self.ingress)
        backends = Backends(self.service, f"{self.service}-canary", 0, None, "")
        try:
            wanted = canary_ingress(stable, self.canary_ingress, backends) if stable else None
        except InputError:
            wanted = None
        if wanted is not None and canary["spec"] != wanted["spec"]:
            edits.append(f"spec {canary['spec']}")
        return [
            f"ingress {self.api.namespace}/{self.canary_ingress} (canaryflow's own) was edited "
            f"during the release ({edit}); it is deleted with the canary: make such settings "
            f"on your Ingress {self.ingress}"
            for edit in edits
        ]

    def _annotate(self, annotations: dict[str, str | None], required: bool) -> None:
        patched = self.api.merge_patch(
            INGRESS, self.canary_ingress, {"metadata": {"annotations": annotations}}
        )
        if patched is None and required:
            raise PlatformError(
                f"ingress {self.api.namespace}/{self.canary_ingress} not found: "
                "deploy the canary first"
            )


def canary_ingress(stable: Obj, name: str, backends: Backends) -> Obj:
    rules = []
    for rule in stable["spec"].get("rules", []):
        paths = [
            _to_canary(path, backends)
            for path in rule.get("http", {}).get("paths", [])
            if path["backend"].get("service", {}).get("name") == backends.stable_service
        ]
        if paths:
            rules.append(
                {**({"host": rule["host"]} if "host" in rule else {}), "http": {"paths": paths}}
            )
    if not rules:
        raise InputError(
            FieldError(
                "router.route",
                f"ingress {stable['metadata']['name']} has no path to service "
                f"{backends.stable_service}: point it at the stable Service or set router.route "
                "to another Ingress",
            )
        )
    spec: Obj = {"rules": rules}
    if "ingressClassName" in stable["spec"]:
        spec["ingressClassName"] = stable["spec"]["ingressClassName"]
    return {
        "apiVersion": INGRESS.api_version,
        "kind": INGRESS.kind,
        "metadata": {
            "name": name,
            "namespace": stable["metadata"]["namespace"],
            "labels": dict(MANAGED_BY),
            "annotations": {CANARY: "true", WEIGHT: "0"},
        },
        "spec": spec,
    }


def _to_canary(path: Obj, backends: Backends) -> Obj:
    path = copy.deepcopy(path)
    path["backend"]["service"]["name"] = backends.canary_service
    return path


def _annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}
