"""Is a Deployment rolled out, still coming up, or stuck? (pure decisions over API objects)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from canaryflow.platform.protocol import HealthReport

Obj = dict[str, Any]

STUCK_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
"""The ``Progressing`` condition's reason once a rollout made no progress for
``progressDeadlineSeconds`` (``TimedOutReason`` in the Deployment controller's
``pkg/controller/deployment/util/deployment_util.go``)."""
DEFAULT_PROGRESS_DEADLINE_S = 600
"""What the API server defaults ``spec.progressDeadlineSeconds`` to (``apps/v1`` defaults.go)."""


@dataclass(frozen=True)
class RolloutProgress:
    """A Deployment's status counts; ``pods`` is ``status.replicas``, old and new pods alike
    (during a rolling update the old pods are still ready and counted in ``ready``), so
    ``new_ready`` (the ready pods of the current template, counted from the pods) is what a
    message may call ready while old pods remain."""

    desired: int
    ready: int
    updated: int
    observed: bool
    pods: int | None = None
    new_ready: int | None = None
    timed_out: str | None = None
    """The controller's message once it reported ``ProgressDeadlineExceeded``, else None."""
    available: int | None = None
    """``status.availableReplicas``: ready for ``minReadySeconds`` (None: taken as ``ready``,
    for a ``RolloutProgress`` built by hand)."""

    @property
    def done(self) -> bool:
        """As ``kubectl rollout status`` (k8s.io/kubectl
        ``pkg/polymorphichelpers/rollout_status.go``, ``DeploymentStatusViewer.Status``: no
        ``TimedOutReason``, ``updatedReplicas`` not below ``spec.replicas``, ``replicas`` not
        above ``updatedReplicas``, ``availableReplicas`` not below ``updatedReplicas``): the
        controller observed the latest spec, every replica updated, no old pod pending
        termination, and every updated replica *available* (ready for ``minReadySeconds``),
        not merely ready. "Pending termination" is kubectl's word for an old replica still
        counted in ``status.replicas``; a pod already being deleted is not counted there
        (``terminating``), so old pods still draining after a roll leave it done. The
        timed-out case is ``timed_out``, which callers report."""
        old_pods_left = self.pods is not None and self.pods > self.updated
        return (
            self.observed
            and self.updated == self.desired
            and not old_pods_left
            and self._available >= self.desired
        )

    @property
    def _available(self) -> int:
        return self.ready if self.available is None else self.available

    def describe(self) -> str:
        seen = "" if self.observed else ", latest spec not yet observed by the controller"
        old = (self.pods or 0) - self.updated
        if old > 0:
            new = (
                f"{self.new_ready}/{self.desired} new pods ready"
                if self.new_ready is not None
                else f"{self.updated}/{self.desired} pods updated"
            )
            return f"{new}, {old} old pods pending termination{seen}"
        if self._available < self.ready:
            return f"{self.ready}/{self.desired} pods ready, {self._available} available{seen}"
        return f"{self.ready}/{self.desired} pods ready{seen}"


def rollout_progress(deployment: Obj, pods: list[Obj] | None = None) -> RolloutProgress:
    """The rollout's state; with ``pods`` (those the Deployment selects) the ready pods of the
    current template are counted too."""
    status = deployment.get("status", {})
    progressing = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    timed_out = (
        progressing.get("message") or DEADLINE_EXCEEDED
        if progressing.get("status") == "False" and progressing.get("reason") == DEADLINE_EXCEEDED
        else None
    )
    return RolloutProgress(
        desired=deployment["spec"].get("replicas", 1),
        ready=status.get("readyReplicas", 0),
        # omitempty: the API server leaves a count of 0 out, so a missing one is 0, never ready
        available=status.get("availableReplicas", 0),
        updated=status.get("updatedReplicas", 0),
        observed=status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0),
        pods=status.get("replicas"),
        new_ready=None if pods is None else ready_of_template(deployment, pods),
        timed_out=timed_out,
    )


def progress_deadline_s(deployment: Obj) -> float:
    return float(deployment["spec"].get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_S))


def ready_of_template(deployment: Obj, pods: list[Obj]) -> int:
    """Ready pods made from the Deployment's current template: its labels (plus the
    controller's ``pod-template-hash``) and its containers' images."""
    template = deployment["spec"]["template"]
    labels = (template.get("metadata") or {}).get("labels") or {}
    images = [c.get("image") for c in template["spec"]["containers"]]

    def of_template(pod: Obj) -> bool:
        pod_labels = dict(pod["metadata"].get("labels") or {})
        pod_labels.pop("pod-template-hash", None)
        pod_images = [c.get("image") for c in pod.get("spec", {}).get("containers", [])]
        return pod_labels == labels and pod_images == images

    return sum(1 for pod in pods if of_template(pod) and pod_ready(pod))


def pod_ready(pod: Obj) -> bool:
    """The pod's Ready condition, else every container ready (as the kubelet reports)."""
    conditions = pod.get("status", {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is not None:
        return ready.get("status") == "True"
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all(c.get("ready") for c in statuses)


def terminating(pod: Obj) -> bool:
    """The pod is being deleted (``metadata.deletionTimestamp``): it is leaving, whatever its
    readiness while it drains. The ReplicaSet controller counts only the other, active pods
    (``controller.FilterActivePods``, pkg/controller/controller_utils.go), so a Deployment's
    ``status.replicas`` leaves it out, and ``kubectl rollout status`` calls a rollout complete
    with old pods still terminating."""
    return bool(pod["metadata"].get("deletionTimestamp"))


def stuck_containers(pods: list[Obj]) -> list[str]:
    """``pod/container: Reason (message)`` for every container that will not come up alone."""
    stuck = []
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses", []):
            waiting = status.get("state", {}).get("waiting", {})
            if waiting.get("reason") in STUCK_REASONS:
                detail = f" ({waiting['message']})" if waiting.get("message") else ""
                stuck.append(
                    f"{pod['metadata']['name']}/{status['name']}: {waiting['reason']}{detail}"
                )
    return stuck


def assess(deployment: Obj, pods: list[Obj]) -> HealthReport | None:
    """A final verdict, or None while the canary is still coming up."""
    name = deployment["metadata"]["name"]
    stuck = stuck_containers(pods)
    if stuck:
        return HealthReport(False, f"canary deployment {name} is failing: " + "; ".join(stuck))
    progress = rollout_progress(deployment)
    if progress.done:
        return HealthReport(True, f"canary deployment {name} available: {progress.describe()}")
    return None
