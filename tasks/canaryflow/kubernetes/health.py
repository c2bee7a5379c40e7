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


@dataclass(frozen=True)
class RolloutProgress:
    """A Deployment's status counts; ``pods`` is ``status.replicas``, old and new pods alike
    (during a rolling update the old pods are still ready and counted in ``ready``)."""

    desired: int
    ready: int
    updated: int
    observed: bool
    pods: int | None = None

    @property
    def done(self) -> bool:
        """As ``kubectl rollout status``: every pod updated and no old pod left, all ready."""
        old_pods_left = self.pods is not None and self.pods > self.updated
        return (
            self.observed
            and self.ready == self.desired
            and self.updated == self.desired
            and not old_pods_left
        )

    def describe(self) -> str:
        seen = "" if self.observed else ", latest spec not yet observed by the controller"
        old = (self.pods or 0) - self.updated
        left = f", {old} old pods pending termination" if old > 0 else ""
        return f"{self.ready}/{self.desired} pods ready{left}{seen}"


def rollout_progress(deployment: Obj) -> RolloutProgress:
    status = deployment.get("status", {})
    return RolloutProgress(
        desired=deployment["spec"].get("replicas", 1),
        ready=status.get("readyReplicas", 0),
        updated=status.get("updatedReplicas", 0),
        observed=status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0),
        pods=status.get("replicas"),
    )


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
