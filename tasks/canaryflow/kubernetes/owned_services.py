"""The stable Service canaryflow owns, so the user's Service may select on anything (pure).

A router that splits by Service needs a stable backend that misses the canary pods. The user's
Service usually selects ``app`` alone, which the canary pods carry too, so a share sent to it
would partly reach the canary. Argo Rollouts solves this with a ``stableService`` and a
``canaryService`` whose selectors it extends with ``rollouts-pod-template-hash`` (argo-rollouts
v1.9.1, ``rollout/service.go``: ``reconcileStableAndCanaryService`` and ``ensureSVCTargets``,
the key ``DefaultRolloutUniqueLabelKey`` in ``pkg/apis/rollouts/v1alpha1/types.go``).

canaryflow does the same without a controller of its own and without restarting stable: the
Deployment controller already labels every pod of a Deployment's ReplicaSet with
``pod-template-hash`` and names the ReplicaSet ``<deployment>-<hash>`` (Kubernetes v1.30
``pkg/controller/deployment/sync.go``, ``getNewReplicaSet``; the key is
``apps/v1.DefaultDeploymentUniqueLabelKey``). ``<service>-stable`` selects the service's
identity plus the hash of stable's one ReplicaSet; ``<service>-canary`` (``canary_objects``)
selects the canary track. Both carry ``app.kubernetes.io/managed-by: canaryflow`` and no GitOps
tracking label (``tracking.py``): no Argo CD application claims or prunes them.

Like ``ensureSVCTargets``, which delays a switch to a ReplicaSet that is not available, the
hash is only read from a finished rollout: a stable Deployment with pods of two templates is
refused before anything changes, and the release is started again once it has rolled out.
"""

from __future__ import annotations

from typing import Any

from canaryflow.errors import FieldError, InputError
from canaryflow.kubernetes.canary_objects import MANAGED_BY, TRACK_LABEL
from canaryflow.kubernetes.health import pod_ready, rollout_progress, terminating
from canaryflow.kubernetes.tracking import without_tracking_labels

Obj = dict[str, Any]

POD_TEMPLATE_HASH = "pod-template-hash"
"""What the Deployment controller adds to each pod of a ReplicaSet (``apps/v1``
``DefaultDeploymentUniqueLabelKey``)."""
ROLE_LABEL = "canaryflow.dev/role"
"""On the Services canaryflow owns: ``stable`` or ``canary``."""


def stable_service_name(service: str) -> str:
    return f"{service}-stable"


def controlling_replica_set(pod: Obj) -> str | None:
    owners = pod["metadata"].get("ownerReferences") or []
    return next(
        (o["name"] for o in owners if o.get("kind") == "ReplicaSet" and o.get("controller")),
        None,
    )


def pods_of_deployment(deployment: Obj, pods: list[Obj]) -> dict[str, list[Obj]]:
    """``pods`` (those the Deployment's selector matches) that its own ReplicaSets made, by
    ``pod-template-hash``: a pod belongs when its controlling ReplicaSet is
    ``<deployment>-<its hash>``, so the canary's, a baseline's or a stray pod with the same
    labels is never taken for stable. Pods being deleted (``health.terminating``) are left
    out, as the controllers leave them out: the old pods of a finished roll, still draining,
    are no second ReplicaSet."""
    name = deployment["metadata"]["name"]
    by_hash: dict[str, list[Obj]] = {}
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        value = labels.get(POD_TEMPLATE_HASH)
        if (
            value
            and not terminating(pod)
            and labels.get(TRACK_LABEL) is None
            and controlling_replica_set(pod) == (f"{name}-{value}")
        ):
            by_hash.setdefault(value, []).append(pod)
    return by_hash


def stable_pod_template_hash(deployment: Obj, pods: list[Obj]) -> str:
    """The ``pod-template-hash`` of the stable Deployment's one ReplicaSet, once it rolled out
    (every pod of one template, all ready); an ``InputError`` otherwise, nothing changed."""
    where = f"deployment {deployment['metadata'].get('namespace')}/{deployment['metadata']['name']}"
    by_hash = pods_of_deployment(deployment, pods)
    progress = rollout_progress(deployment, pods)
    ready = {h: sum(pod_ready(p) for p in of_hash) for h, of_hash in by_hash.items()}
    if len(by_hash) == 1 and progress.done and all(ready.values()):
        return next(iter(by_hash))
    if not by_hash:
        problem = (
            f"{where} has no pod carrying {POD_TEMPLATE_HASH} from one of its ReplicaSets, so "
            "canaryflow cannot select stable's pods without the canary's"
        )
        fix = "scale it up and wait until its pods run"
    else:
        counts = ", ".join(f"{h}: {ready[h]}/{len(p)} ready" for h, p in sorted(by_hash.items()))
        problem = (
            f"{where} is rolling out ({progress.describe()}; pods by {POD_TEMPLATE_HASH}: {counts})"
        )
        fix = f"wait until `kubectl rollout status {where.split()[1]}` reports it done"
    raise InputError(
        FieldError(
            "service.deployment",
            f"{problem}: the stable Service canaryflow owns selects one ReplicaSet's pods; {fix}, "
            "then deploy the canary again",
        )
    )


def stable_service(
    user_service: Obj, service: str, identity: dict[str, str], pod_template_hash: str
) -> Obj:
    """``<service>-stable``: the user's Service's ports, selecting stable's one ReplicaSet."""
    ports = [
        {k: port[k] for k in ("name", "port", "targetPort", "protocol", "appProtocol") if k in port}
        for port in user_service["spec"].get("ports", [])
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": stable_service_name(service),
            "namespace": user_service["metadata"]["namespace"],
            "labels": {
                **without_tracking_labels(user_service["metadata"].get("labels") or {}),
                **identity,
                ROLE_LABEL: "stable",
                **MANAGED_BY,
            },
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {**identity, POD_TEMPLATE_HASH: pod_template_hash},
            "ports": ports,
        },
    }


def widened(service: Obj) -> Obj:
    """``<service>-stable`` selecting every pod of the service, whatever its ReplicaSet: during
    a promotion stable's hash changes, and the old ReplicaSet's pods go. Old, new and canary
    pods (the canary runs the very image being promoted) then all serve stable's share, so it
    never meets an empty selection."""
    service["spec"]["selector"].pop(POD_TEMPLATE_HASH, None)
    return service


def check_name_free(existing: Obj | None, namespace: str, service: str) -> None:
    """``<service>-stable`` is canaryflow's or does not exist yet: a Service of the user's of
    that name is never overwritten (``deploy-canary`` and ``validate --cluster`` refuse)."""
    if existing is not None and not is_owned(existing):
        raise InputError(
            FieldError(
                "service.name",
                f"service {namespace}/{stable_service_name(service)} exists and is not "
                "canaryflow's (no app.kubernetes.io/managed-by: canaryflow): canaryflow "
                "creates a Service of that name for stable's share; rename yours",
            )
        )


def is_owned(service: Obj | None) -> bool:
    labels = (service or {}).get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items()) and ROLE_LABEL in labels
