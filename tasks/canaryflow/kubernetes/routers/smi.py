"""SMI: weights in a TrafficSplit (split.smi-spec.io/v1alpha4), the user's or canaryflow's own.

When the user already has a TrafficSplit of that name (plan ``router.route``, default the service
name), it is theirs, as the other routers treat a VirtualService or HTTPRoute: canaryflow keeps
its spec in the ``canaryflow.dev/original-route`` annotation, sends its traffic to
``<service>-stable`` and ``<service>-canary`` (Services canaryflow owns, selecting stable's
ReplicaSet by ``pod-template-hash`` and the canary's track: ``owned_services``), and puts the spec
back exactly, annotation gone, at promotion or rollback. Its one stable backend is not a backend
during the release, so it may select ``app`` alone; a promotion still moves its selector if it
names ``version``. A split with several weighted backends is refused before anything changes.
Without one, canaryflow creates its own (apex: the service; ``app.kubernetes.io/managed-by:
canaryflow``) and deletes it at the end.

Header routes would need an HTTPRouteGroup (specs.smi-spec.io), which this router does not
manage: ``CAPABILITIES["smi"]`` says so, and plan validation refuses a header with smi.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.canary_objects import MANAGED_BY
from canaryflow.kubernetes.discovery import require_served
from canaryflow.kubernetes.resources import TRAFFIC_SPLIT
from canaryflow.kubernetes.routers.backends import ORIGINAL_ANNOTATION, Backends
from canaryflow.plan.routers import CAPABILITIES, STABLE_SELECTION
from canaryflow.platform.protocol import HeaderRoute

Obj = dict[str, Any]


@dataclass
class SmiRouter:
    api: ClusterApi
    service: str
    traffic_split: str | None = None
    apex: str | None = None

    splits_by_service = True
    capabilities = CAPABILITIES["smi"]
    stable_selection = STABLE_SELECTION["smi"]

    def __post_init__(self) -> None:
        self.traffic_split = self.traffic_split or self.service
        self.apex = self.apex or self.service

    def preflight(self, backends: Backends) -> None:
        require_served(self.api, TRAFFIC_SPLIT)
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is not None and is_users(existing):
            users_stable_backend(existing, backends.canary_service)

    def prepare(self, backends: Backends) -> None:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is not None and is_users(existing):

            def edit(split: Obj) -> Obj:
                return adopted(split, backends.stable_service, backends.canary_service)

            self.api.update(TRAFFIC_SPLIT, self.traffic_split, edit)
            return
        weight = canary_weight(existing, backends.canary_service) if existing else 0
        self.api.apply(self._split(backends.stable_service, backends.canary_service, weight))

    def set_weight(self, canary_percent: int) -> None:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is None or not _split_by_us(existing):
            if canary_percent:
                raise PlatformError(
                    f"trafficsplit {self.api.namespace}/{self.traffic_split} is not split yet: "
                    "deploy the canary first"
                )
            return
        if ORIGINAL_ANNOTATION in _annotations(existing):

            def edit(split: Obj) -> Obj:
                return with_weight(split, canary_percent)

            self.api.update(TRAFFIC_SPLIT, self.traffic_split, edit)
            return
        stable, canary = (b["service"] for b in existing["spec"]["backends"])
        self.api.apply(self._split(stable, canary, canary_percent))

    def verify_weight(self, canary_percent: int) -> bool:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is None or not _split_by_us(existing):
            return canary_percent == 0
        weights = [b["weight"] for b in existing["spec"]["backends"]]
        return weights == [100 - canary_percent, canary_percent]

    def set_header_route(self, route: HeaderRoute) -> None:
        raise InputError(
            FieldError(
                "router.header",
                "header routes are not supported by the SMI TrafficSplit router (they need an "
                "HTTPRouteGroup): set router.header to null, or use istio, nginx-ingress or "
                "gateway-api",
            )
        )

    def withdraw_header_route(self) -> None:
        """Nothing to withdraw: SMI routes no header (see ``capabilities``)."""

    def header_route_withdrawn(self) -> bool:
        return True

    def select_stable(self, version: str | None, canary_version: str) -> None:
        """Nothing to do: stable is its Services, which the platform retargets."""

    def stable_backends(self) -> list[str]:
        """The user's split's stable backend (``checkout-v1``): it carries stable's share again
        once the split is given back, so the platform moves its selector at promotion like the
        stable Service's and checks that it still selects ready pods."""
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is None or not is_users(existing):
            return []
        return [users_stable_backend(existing, f"{self.service}-canary")]

    def remove_managed_routes(self) -> None:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is None:
            return
        if ORIGINAL_ANNOTATION in _annotations(existing):
            self.api.update(TRAFFIC_SPLIT, self.traffic_split, restored)
        elif not is_users(existing):
            self.api.delete(TRAFFIC_SPLIT, self.traffic_split)

    def reverted_edits(self) -> list[str]:
        """A split has nothing but its backends, all the canary's concern: none kept."""
        return []

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


def is_users(split: Obj) -> bool:
    """A TrafficSplit canaryflow did not create (it may have adopted it)."""
    labels = split["metadata"].get("labels") or {}
    return not all(labels.get(k) == v for k, v in MANAGED_BY.items())


def _split_by_us(split: Obj) -> bool:
    return not is_users(split) or ORIGINAL_ANNOTATION in _annotations(split)


def users_stable_backend(split: Obj, canary_service: str) -> str:
    """The one backend of the user's split that serves stable (as the user wrote it, also
    while adopted); several are refused."""
    if ORIGINAL_ANNOTATION in _annotations(split):
        original = json.loads(_annotations(split)[ORIGINAL_ANNOTATION])
        split = {"metadata": {"name": split["metadata"]["name"]}, "spec": original}
    weighted = [b for b in split["spec"].get("backends", []) if b.get("weight", 0) > 0]
    if len(weighted) != 1 or weighted[0]["service"] == canary_service:
        listed = ", ".join(f"{b['service']}={b.get('weight', 0)}" for b in weighted) or "none"
        raise InputError(
            FieldError(
                "router.route",
                f"trafficsplit {split['metadata']['name']} is yours and sends traffic to "
                f"{listed}: canaryflow adds the canary beside exactly one stable backend; give "
                "it a single backend, or set router.route to a TrafficSplit name that does not "
                "exist so canaryflow creates its own",
            )
        )
    return weighted[0]["service"]


def adopted(split: Obj, stable_service: str, canary_service: str) -> Obj:
    """The user's split sending everything to ``stable_service`` and nothing to the canary;
    its spec kept aside."""
    annotations = split["metadata"].setdefault("annotations", {})
    if ORIGINAL_ANNOTATION in annotations:
        return split
    users_stable_backend(split, canary_service)  # refuses several weighted backends
    annotations[ORIGINAL_ANNOTATION] = json.dumps(split["spec"], sort_keys=True)
    split["spec"]["backends"] = [
        {"service": stable_service, "weight": 100},
        {"service": canary_service, "weight": 0},
    ]
    return split


def with_weight(split: Obj, canary_percent: int) -> Obj:
    stable, canary = split["spec"]["backends"]
    stable["weight"], canary["weight"] = 100 - canary_percent, canary_percent
    return split


def restored(split: Obj) -> Obj:
    """The user's split exactly as it was: its spec back, our annotation gone."""
    annotations = split["metadata"].get("annotations") or {}
    original = annotations.pop(ORIGINAL_ANNOTATION, None)
    if not annotations:
        split["metadata"].pop("annotations", None)
    if original is not None:
        split["spec"] = json.loads(original)
    return split


def canary_weight(split: Obj, canary_service: str) -> int:
    return next(
        (int(b["weight"]) for b in split["spec"]["backends"] if b["service"] == canary_service), 0
    )


def _annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}
