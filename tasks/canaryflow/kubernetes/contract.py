"""What a service must look like to be released, checked against its objects: pure.

A plan names the service (``service.name``) and, when the cluster spells it otherwise, the
stable Deployment (``service.deployment``), the Service in front of its pods
(``service.service``) and the labels that make a pod the service's (``service.selector``).
Without a selector it is found from the Deployment: its ``spec.selector.matchLabels`` less
the ones a release changes or must not copy (``version``, canaryflow's track label, the
ReplicaSet's ``pod-template-hash`` and Argo CD's tracking label ``app.kubernetes.io/instance``,
which would make Argo CD prune the canary as its own). Metrics are selected by ``app``: the
scrape copies the pod label ``app``, else ``app.kubernetes.io/name``, onto it
(``canaryflow.kubernetes.scrape``), so the pods must carry one of them with the value the
plan's gates select (``ServiceSpec.app_label``).

``resolve`` is called by ``deploy-canary`` before anything changes and by
``canaryflow validate --cluster`` before anything is built; every broken rule is one
``FieldError`` naming the field and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canaryflow.errors import FieldError, InputError
from canaryflow.kubernetes.canary_objects import TRACK_LABEL, VERSION_LABEL

Obj = dict[str, Any]
APP_LABELS: tuple[str, ...] = ("app", "app.kubernetes.io/name")
"""The pod labels the scrape copies onto ``app`` (first found wins)."""
NOT_IDENTITY = frozenset(
    {VERSION_LABEL, TRACK_LABEL, "pod-template-hash", "app.kubernetes.io/instance"}
)


@dataclass(frozen=True)
class ServiceContract:
    """The objects and labels a release of the service works with."""

    deployment: str
    service: str
    selector: dict[str, str]
    """The service's pods' identity: the canary's pods, Deployment and Service carry it."""


def pod_app(labels: Mapping[str, str]) -> tuple[str, str] | None:
    """The (label, value) the scrape turns into ``app``, or None when the pods carry neither."""
    return next(((name, labels[name]) for name in APP_LABELS if labels.get(name)), None)


def resolve(
    namespace: str,
    deployment_name: str,
    service_name: str,
    selector: Mapping[str, str] | None,
    app_label: str,
    deployment: Obj | None,
    service: Obj | None,
) -> ServiceContract:
    """The contract, or an ``InputError`` listing every rule the objects break."""
    errors: list[FieldError] = []
    where = f"{namespace}/{deployment_name}"
    pod_labels: dict[str, str] = {}
    found: dict[str, str] = dict(selector or {})
    if deployment is None:
        errors.append(
            FieldError(
                "service.deployment",
                f"deployment {where} not found: deploy the stable version first, or set "
                "service.deployment to the stable Deployment's name",
            )
        )
    else:
        pod_labels = deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
        match = deployment["spec"].get("selector", {}).get("matchLabels") or {}
        if selector:
            missing = {k: v for k, v in selector.items() if pod_labels.get(k) != v}
            if missing:
                errors.append(
                    FieldError(
                        "service.selector",
                        f"the pods of deployment {where} do not carry {missing} (they carry "
                        f"{pod_labels}): make service.selector a subset of those labels",
                    )
                )
        else:
            found = {k: v for k, v in match.items() if k not in NOT_IDENTITY}
            if not found:
                errors.append(
                    FieldError(
                        "service.selector",
                        f"deployment {where} selects its pods only by {sorted(match)}: set "
                        "service.selector to the labels that make a pod the service's, e.g. "
                        f"{{app.kubernetes.io/name: {app_label}}}",
                    )
                )
        app = pod_app(pod_labels)
        if app is None:
            errors.append(
                FieldError(
                    "service.selector",
                    f"the pods of deployment {where} carry neither app nor "
                    "app.kubernetes.io/name, which the gates select metrics by: label the pod "
                    f"template app.kubernetes.io/name: {app_label}",
                )
            )
        elif app[1] != app_label:
            errors.append(
                FieldError(
                    "service.selector",
                    f"the gates select metrics by app={app_label!r} but the pods of "
                    f"deployment {where} carry {app[0]}={app[1]!r}: set service.selector to "
                    f"{{{app[0]}: {app[1]}}}",
                )
            )
    service_where = f"{namespace}/{service_name}"
    if service is None or not service.get("spec", {}).get("ports"):
        errors.append(
            FieldError(
                "service.service",
                f"service {service_where} not found or without ports: set service.service to "
                "the Service in front of the stable pods, or create it",
            )
        )
    elif pod_labels:
        selects = service["spec"].get("selector") or {}
        # version is the routers' business (a stable Service may select it; promotion moves it).
        identity = {k: v for k, v in selects.items() if k != VERSION_LABEL}
        if not selects or not identity.items() <= pod_labels.items():
            errors.append(
                FieldError(
                    "service.service",
                    f"service {service_where} selects {selects}, which the pods of deployment "
                    f"{where} ({pod_labels}) do not all carry: set service.service to the "
                    "Service in front of them, or fix its selector",
                )
            )
    if errors:
        raise InputError(errors)
    return ServiceContract(deployment_name, service_name, found)
