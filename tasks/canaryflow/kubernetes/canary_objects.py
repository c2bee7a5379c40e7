"""The canary's Deployment and Service, derived from the stable ones (pure functions).

The canary pods keep the stable pods' ``app`` label, carry ``version=<artifact.version>`` and
``canaryflow.dev/track=canary``, and run the new image by digest. The stable objects are only
read. Labels and annotations copied from stable leave Argo CD's and Flux's tracking keys behind
(``tracking.py``): a canary claimed by stable's GitOps application would be pruned. The
canary's readiness probe is the plan's health check, so "available" means "answers
``GET <health path>``" as seen by the kubelet.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from canaryflow.errors import FieldError, InputError
from canaryflow.kubernetes.tracking import without_tracking_annotations, without_tracking_labels

Obj = dict[str, Any]

TRACK_LABEL = "canaryflow.dev/track"
VERSION_LABEL = "version"
MANAGED_BY = {"app.kubernetes.io/managed-by": "canaryflow"}
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/healthz"
    port: int | str = 8080
    period_s: int = 2
    failure_threshold: int = 3


def canary_name(service: str) -> str:
    return f"{service}-canary"


def identity(service: str, selector: dict[str, str] | None = None) -> dict[str, str]:
    """The labels that make a pod one of the service's (``service.selector``, else found from
    the stable Deployment by ``canaryflow.kubernetes.contract``); ``app: <service>`` when
    nothing says otherwise."""
    return dict(selector) if selector else {"app": service}


def canary_pod_labels(
    service: str, version: str, selector: dict[str, str] | None = None
) -> dict[str, str]:
    return {**identity(service, selector), VERSION_LABEL: version, TRACK_LABEL: "canary"}


def canary_selector(service: str, selector: dict[str, str] | None = None) -> dict[str, str]:
    """What selects every canary pod, whatever its version."""
    return {**identity(service, selector), TRACK_LABEL: "canary"}


def check_artifact(image: str | None, version: str) -> None:
    errors = []
    if not image or not DIGEST_REF.match(image):
        errors.append(
            FieldError(
                "artifact.image",
                f"{image!r} is not a reference by digest: use repo@sha256:<64 hex> "
                "(the digest the build pushed), so every pod runs exactly the tested image",
            )
        )
    if not version or len(version) > 63 or not LABEL_VALUE.match(version):
        errors.append(
            FieldError(
                "artifact.version",
                f"{version!r} is not a valid label value: use at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit",
            )
        )
    if errors:
        raise InputError(errors)


SIDECARS: frozenset[str] = frozenset(
    {"istio-proxy", "linkerd-proxy", "envoy", "envoy-sidecar", "cloud-sql-proxy", "vault-agent"}
)
"""Containers that meshes and agents inject beside the application; never the service."""


def main_container(
    template_spec: Obj, service: str, container: str | None, port: int | None = None
) -> Obj:
    """The container that runs the service (its image is replaced, its log is read): the named
    one (``service.container``), else the one named like the service, else the only one, else
    the one whose ports include the service's ``port``, else the first that is not a known
    sidecar (``SIDECARS``): a pod with a mesh proxy still has one application container."""
    containers = template_spec["containers"]
    wanted = container or service
    for candidate in containers:
        if candidate["name"] == wanted:
            return candidate
    if container is None and len(containers) == 1:
        return containers[0]
    if container is None:
        for candidate in containers:
            ports = [p.get("containerPort") for p in candidate.get("ports") or []]
            if port is not None and port in ports:
                return candidate
        apps = [c for c in containers if c["name"] not in SIDECARS]
        if apps:
            return apps[0]
    names = ", ".join(c["name"] for c in containers)
    raise InputError(
        FieldError(
            "service.container",
            f"no container named {wanted!r} in deployment {service} (containers: {names}): "
            "set service.container to the one running the service",
        )
    )


def stable_version(stable: Obj) -> str | None:
    return stable["spec"]["template"].get("metadata", {}).get("labels", {}).get(VERSION_LABEL)


def canary_deployment(
    stable: Obj,
    service: str,
    image: str,
    version: str,
    replicas: int,
    health: HealthCheck,
    container: str | None = None,
    selector: dict[str, str] | None = None,
) -> Obj:
    labels = canary_pod_labels(service, version, selector)
    return track_deployment(
        stable, canary_name(service), labels, replicas, health, container, service, image=image
    )


def track_deployment(
    stable: Obj,
    name: str,
    labels: dict[str, str],
    replicas: int,
    health: HealthCheck,
    container: str | None,
    service: str,
    image: str | None = None,
    drop_version: bool = False,
) -> Obj:
    """A Deployment beside stable running a track (the canary, a fresh baseline): stable's pod
    template relabelled with ``labels`` and without GitOps tracking labels (a tool that owns
    stable must not adopt or prune it), the health check as its readiness probe, ``image`` in
    the service's container when given. ``drop_version``: the track carries no ``version``
    label, so nothing that selects stable's version reaches its pods."""
    template = copy.deepcopy(stable["spec"]["template"])
    stable_meta = template.get("metadata", {})
    copied = without_tracking_labels(stable_meta.get("labels", {}), owned_pod=True)
    metadata_labels = without_tracking_labels(stable["metadata"].get("labels") or {})
    if drop_version:
        copied.pop(VERSION_LABEL, None)
        metadata_labels.pop(VERSION_LABEL, None)
    template["metadata"] = {"labels": {**copied, **labels}}
    annotations = without_tracking_annotations(stable_meta.get("annotations") or {})
    if annotations:
        template["metadata"]["annotations"] = annotations
    app = main_container(template["spec"], service, container, health.port)
    if image is not None:
        app["image"] = image
    app["readinessProbe"] = {
        "httpGet": {"path": health.path, "port": health.port},
        "periodSeconds": health.period_s,
        "failureThreshold": health.failure_threshold,
    }
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template}
    for kept in ("minReadySeconds", "progressDeadlineSeconds"):
        if kept in stable["spec"]:
            spec[kept] = stable["spec"][kept]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": stable["metadata"]["namespace"],
            "labels": {**metadata_labels, **labels, **MANAGED_BY},
        },
        "spec": spec,
    }


def canary_service(
    stable_service: Obj, service: str, selector: dict[str, str] | None = None
) -> Obj:
    ports = [
        {k: port[k] for k in ("name", "port", "targetPort", "protocol", "appProtocol") if k in port}
        for port in stable_service["spec"].get("ports", [])
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": canary_name(service),
            "namespace": stable_service["metadata"]["namespace"],
            "labels": {
                **without_tracking_labels(stable_service["metadata"].get("labels") or {}),
                **canary_selector(service, selector),
                **MANAGED_BY,
            },
        },
        "spec": {
            "type": "ClusterIP",
            "selector": canary_selector(service, selector),
            "ports": ports,
        },
    }


def check_promotable(
    canary: Obj | None,
    artifact: Any,
    service: str,
    container: str | None,
    name: Callable[[str], str],
) -> None:
    """Only the canary that ran is promoted: its digest and its version label."""
    if canary is None:
        raise InputError(
            FieldError(
                "artifact.image",
                f"no canary runs ({name(canary_name(service))} not found): a promotion makes "
                "stable run the canary's digest; deploy the canary and let its analysis pass",
            )
        )
    running = main_container(canary["spec"]["template"]["spec"], service, container)["image"]
    labels = canary["spec"]["selector"].get("matchLabels") or {}
    errors = []
    if running != artifact.image:
        errors.append(
            FieldError(
                "artifact.image",
                f"{artifact.image} is not the running canary's image ({running}): promote "
                "passes the digest that was deployed as the canary and analysed",
            )
        )
    if labels.get(VERSION_LABEL) not in (None, artifact.version):
        errors.append(
            FieldError(
                "artifact.version",
                f"{artifact.version!r} is not the running canary's version "
                f"({labels[VERSION_LABEL]!r}): pass the version the canary was deployed with",
            )
        )
    if errors:
        raise InputError(errors)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def version_pinned(deployment: Obj) -> bool:
    """True when the Deployment's (immutable) selector names the version label, so its pods
    can never be relabelled with another version."""
    return VERSION_LABEL in (deployment["spec"]["selector"].get("matchLabels") or {})


def promoted(
    deployment: Obj,
    service: str,
    image: str,
    version: str,
    container: str | None = None,
    port: int | None = None,
) -> Obj:
    """The stable ``deployment`` running ``image``, its pods labelled ``version`` (promotion).

    Both change in the same template edit, so the one rolling restart that brings the new image
    also brings the label the analysis, the Istio subsets and the next release read. A version
    pinned by the selector is kept: the API server would reject a template it no longer selects.
    """
    template = deployment["spec"]["template"]
    main_container(template["spec"], service, container, port)["image"] = image
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if VERSION_LABEL in labels and not version_pinned(deployment):
        labels[VERSION_LABEL] = version
    return deployment
