"""What stable was before a promotion, kept in the cluster so any pod can put it back (pure).

A promotion edits objects the user owns: the stable Deployment's pod template (image and
``version`` label), the selectors of the Services that pick stable pods (the stable Service; with
SMI the split's stable backend), and the Istio stable subset. Before the first of those writes
the promotion stores this record as an annotation on the canary Deployment: the workflow's
``rollback`` runs in another pod (and may follow a promote pod killed mid-way), so the record
must outlive the process. Deleting the canary Deployment is the commit: a record found means a
promotion that did not complete, and ``rollback`` restores stable from it exactly.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from canaryflow.errors import PlatformError

Obj = dict[str, Any]

ANNOTATION = "canaryflow.dev/stable-before-promotion"


class StableRecord(BaseModel):
    """Stable as it was: the Deployment's template, selector and labels, every Service
    selector a promotion may move, and the stable pods' version (the Istio stable subset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: Obj
    selector: Obj
    labels: dict[str, str]
    services: dict[str, dict[str, str]]
    version: str | None
    pod_template_hash: str | None = None
    """Stable's ReplicaSet hash, which an Istio stable subset selects (``owned_services``);
    None when the router selects stable otherwise (and in records written before it)."""

    def annotation(self) -> dict[str, str]:
        return {ANNOTATION: self.model_dump_json()}


def record_of(
    stable: Obj, services: list[Obj], version: str | None, pod_template_hash: str | None = None
) -> StableRecord:
    return StableRecord(
        pod_template_hash=pod_template_hash,
        template=copy.deepcopy(stable["spec"]["template"]),
        selector=copy.deepcopy(stable["spec"]["selector"]),
        labels=dict(stable["metadata"].get("labels") or {}),
        services={s["metadata"]["name"]: dict(s["spec"].get("selector") or {}) for s in services},
        version=version,
    )


def recorded(canary: Obj | None) -> StableRecord | None:
    """The record on the canary Deployment; None when no promotion is under way."""
    text = ((canary or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION)
    if text is None:
        return None
    try:
        return StableRecord.model_validate(json.loads(text))
    except (ValueError, ValidationError) as error:
        raise PlatformError(
            f"the annotation {ANNOTATION} on the canary Deployment is unreadable ({error}): "
            "stable cannot be restored from it; compare the stable Deployment with its previous "
            "ReplicaSet (kubectl rollout history) and undo it by hand"
        ) from None


def restored_deployment(stable: Obj, record: StableRecord) -> Obj:
    """``stable`` with its template and labels as recorded (its selector is immutable and was
    never changed; a different one means another object of the same name, refused)."""
    if stable["spec"]["selector"] != record.selector:
        raise PlatformError(
            f"deployment {stable['metadata']['name']} has selector {stable['spec']['selector']}, "
            f"not the recorded {record.selector}: it was replaced during the promotion; restore "
            "it by hand"
        )
    stable["spec"]["template"] = copy.deepcopy(record.template)
    stable["metadata"]["labels"] = dict(record.labels)
    if not record.labels:
        stable["metadata"].pop("labels", None)
    return stable


def restored_service(service: Obj, selector: dict[str, str]) -> Obj:
    service["spec"]["selector"] = dict(selector)
    return service
