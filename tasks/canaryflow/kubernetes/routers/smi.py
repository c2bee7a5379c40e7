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

A fresh baseline is a third backend, the ``<service>-baseline`` Service
(``canaryflow.kubernetes.baseline``), appended the first time it gets a share and kept at 0
afterwards, as Gateway API's third backendRef; the user's split comes back from its annotation
without it. A TrafficSplit takes any number of backends: the spec
(servicemeshinterface/smi-spec ``apis/traffic-split/v1alpha4/traffic-split.md``: "Implementations
will weight outgoing traffic between the services referenced by ``spec.backends``", weights
whole numbers, relative) and the CRD (smi-sdk-go ``crds/split.yaml``, v1alpha4: ``backends`` an
array of ``{service, weight}`` with no ``maxItems``; v1alpha1..v1alpha3 alike) set no limit, and
the implementations turn every backend into a weighted destination: Linkerd's SMI adaptor
(linkerd/linkerd-smi ``pkg/adaptor/controller.go``, ``toServiceProfile`` /
``updateDstOverrides``: one ServiceProfile ``dstOverrides`` entry per backend), Open Service Mesh
(openservicemesh/osm ``pkg/catalog``, ``listOutboundTrafficPoliciesForTrafficSplits``: one
``WeightedCluster`` per backend). Weights are written as percentages adding up to 100.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.baseline import baseline_name
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
        baseline = _weight_of(existing, self._baseline) if existing else None
        self.api.apply(
            self._split(backends.stable_service, backends.canary_service, weight, baseline)
        )

    def set_weight(self, canary_percent: int, baseline_percent: int = 0) -> None:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is None or not _split_by_us(existing):
            if canary_percent or baseline_percent:
                raise PlatformError(
                    f"trafficsplit {self.api.namespace}/{self.traffic_split} is not split yet: "
                    "deploy the canary first"
                )
            return
        if ORIGINAL_ANNOTATION in _annotations(existing):

            def edit(split: Obj) -> Obj:
                return with_weight(split, canary_percent, baseline_percent, self._baseline)

            self.api.update(TRAFFIC_SPLIT, self.traffic_split, edit)
            return
        stable, canary = (b["service"] for b in existing["spec"]["backends"][:2])
        kept = _weight_of(existing, self._baseline)
        baseline = baseline_percent if baseline_percent or kept is not None else None
        self.api.apply(self._split(stable, canary, canary_percent, baseline))

    def verify_weight(self, canary_percent: int, baseline_percent: int = 0) -> bool:
        existing = self.api.get(TRAFFIC_SPLIT, self.traffic_split)
        if existing is None or not _split_by_us(existing):
            return canary_percent == 0 and baseline_percent == 0
        weights = [b["weight"] for b in existing["spec"]["backends"]]
        stable = 100 - canary_percent - baseline_percent
        if len(weights) > 2:  # the baseline's backend, at 0 once it has no share
            return weights == [stable, canary_percent, baseline_percent]
        return weights == [stable, canary_percent] and baseline_percent == 0

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

    @property
    def _baseline(self) -> str:
        return baseline_name(self.service)

    def _split(
        self, stable: str, canary: str, canary_percent: int, baseline_percent: int | None = None
    ) -> Obj:
        """canaryflow's own split: stable, canary and, once the baseline has had a share (
        ``baseline_percent`` not None), the baseline's backend third."""
        backends = [
            {"service": stable, "weight": 100 - canary_percent - (baseline_percent or 0)},
            {"service": canary, "weight": canary_percent},
        ]
        if baseline_percent is not None:
            backends.append({"service": self._baseline, "weight": baseline_percent})
        return {
            "apiVersion": TRAFFIC_SPLIT.api_version,
            "kind": TRAFFIC_SPLIT.kind,
            "metadata": {
                "name": self.traffic_split,
                "namespace": self.api.namespace,
                "labels": dict(MANAGED_BY),
            },
            "spec": {"service": self.apex, "backends": backends},
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


def with_weight(
    split: Obj, canary_percent: int, baseline_percent: int = 0, baseline: str | None = None
) -> Obj:
    """The adopted split's stable, canary (and baseline: the third backend, appended the first
    time it gets a share, kept at 0 afterwards) weighted to add up to 100."""
    backends = split["spec"]["backends"]
    if baseline_percent and len(backends) < 3:
        if baseline is None:
            raise ValueError("a baseline share needs the baseline Service's name")
        backends.append({"service": baseline, "weight": 0})
    stable, canary = backends[0], backends[1]
    stable["weight"] = 100 - canary_percent - baseline_percent
    canary["weight"] = canary_percent
    if len(backends) > 2:
        backends[2]["weight"] = baseline_percent
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


def _weight_of(split: Obj, service: str) -> int | None:
    """The weight of ``service``'s backend, None when the split has no such backend."""
    return next(
        (int(b["weight"]) for b in split["spec"]["backends"] if b["service"] == service), None
    )


def _annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}
