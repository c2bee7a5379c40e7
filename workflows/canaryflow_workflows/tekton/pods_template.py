"""What a PipelineRun gives its TaskRuns: the pod security context and the workspaces.

Tekton Tasks carry only their steps' security context; the pod's (non-root user and group,
fsGroup for the workspaces, the seccomp profile) belongs to the run's pod template. Both come
from ``canaryflow_workflows.pods``, as for Argo.
"""

from __future__ import annotations

from typing import Any

from canaryflow_workflows import pods
from canaryflow_workflows.settings import WorkflowSettings
from canaryflow_workflows.tekton.tasks import SOURCE_WORKSPACE, workspace_volumes


def pod_template() -> dict[str, Any]:
    context = pods.pod_security_context().model_dump(by_alias=True, exclude_none=True)
    return {"securityContext": context}


def run_workspaces(settings: WorkflowSettings) -> list[dict[str, Any]]:
    """``source`` is a fresh claim per run (deleted with it); every other workspace is bound to
    the volume the Argo library mounts for it (the Go cache PVC, the registry Secret, ...)."""
    claim: dict[str, Any] = {
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": settings.workspace_size}},
        }
    }
    if settings.workspace_storage_class:
        claim["spec"]["storageClassName"] = settings.workspace_storage_class
    bindings = [{"name": SOURCE_WORKSPACE, "volumeClaimTemplate": claim}]
    for name, volume in workspace_volumes(settings).items():
        # As the library mounts it: an optional Secret (registry credentials for registries
        # that take anonymous pushes) stays optional, so a missing one blocks no pod.
        bindings.append({"name": name, **{k: v for k, v in volume.items() if k != "name"}})
    return bindings


# Pipeline tasks that read what a repository pushed: their pods get no service-account token.
TOKENLESS_TASKS = ("validate-plan",)


def tokenless_task_runs() -> list[dict[str, Any]]:
    """``taskRunSpecs`` giving the tasks that read a pushed plan no service-account token
    (``automountServiceAccountToken: false`` in their pod template), as the Argo templates do:
    nothing a plan says can reach the API with the release's rights. Results need no token
    (Tekton reads them from the termination message)."""
    template = {**pod_template(), "automountServiceAccountToken": False}
    return [{"pipelineTaskName": name, "podTemplate": template} for name in TOKENLESS_TASKS]
