"""The fresh baseline's Deployment and Service, derived from the stable ones (pure functions).

A fresh baseline (``analysis.baseline: fresh``, ``canaryflow.platform.split``) runs stable's pod
template and image, with the canary's replica count, started with the canary: the canary is
judged against pods of its own age (Kayenta / Netflix ACA). Its pods are told apart like the
canary's:

- ``canaryflow.dev/track: baseline``: the scrape turns it into ``track="baseline"``
  (``canaryflow.kubernetes.scrape``), which the analysis selects (``analysis.query.Subject``);
  its Deployment and Service select by it, and the Istio ``baseline`` subset too.
- no ``version`` label: what selects stable by version (the stable Service of a Gateway API or
  SMI split, Istio's ``stable`` subset) must not reach the baseline pods, or stable's share would
  land on them. The other labels of stable's template are kept (minus the GitOps tracking keys,
  ``tracking.py``: a baseline claimed by stable's application would be pruned mid-release).
"""

from __future__ import annotations

from typing import Any

from canaryflow.analysis.query import BASELINE
from canaryflow.kubernetes.canary_objects import (
    MANAGED_BY,
    TRACK_LABEL,
    HealthCheck,
    canary_service,
    identity,
    track_deployment,
)
from canaryflow.kubernetes.tracking import without_tracking_labels
from canaryflow.plan.model import ReleasePlan
from canaryflow.plan.routers import THREE_WAY, can

Obj = dict[str, Any]


def runs_in_cluster(plan: ReleasePlan) -> bool:
    """True when a release of ``plan`` in a cluster runs a fresh baseline: the plan wants one and
    its router splits three ways (what ``KubernetesPlatform.baseline_problem`` says, decided
    from the plan alone so that the workflow's steps, each in its own pod, agree)."""
    return plan.analysis.baseline == "fresh" and can(plan.router.kind, THREE_WAY)


def baseline_name(service: str) -> str:
    return f"{service}-{BASELINE}"


def baseline_selector(service: str, selector: dict[str, str] | None = None) -> dict[str, str]:
    """What selects every baseline pod: the service's identity and the baseline track."""
    return {**identity(service, selector), TRACK_LABEL: BASELINE}


def baseline_deployment(
    stable: Obj,
    service: str,
    replicas: int,
    health: HealthCheck,
    container: str | None = None,
    selector: dict[str, str] | None = None,
) -> Obj:
    """Stable's pod template as it is (image included), relabelled as the baseline track."""
    labels = baseline_selector(service, selector)
    return track_deployment(
        stable,
        baseline_name(service),
        labels,
        replicas,
        health,
        container,
        service,
        drop_version=True,
    )


def baseline_service(
    stable_service: Obj, service: str, selector: dict[str, str] | None = None
) -> Obj:
    """As the canary's Service (stable's ports, ClusterIP), selecting the baseline pods."""
    ports = canary_service(stable_service, service, selector)["spec"]["ports"]
    labels = baseline_selector(service, selector)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": baseline_name(service),
            "namespace": stable_service["metadata"]["namespace"],
            "labels": {
                **without_tracking_labels(stable_service["metadata"].get("labels") or {}),
                **labels,
                **MANAGED_BY,
            },
        },
        "spec": {"type": "ClusterIP", "selector": labels, "ports": ports},
    }
