"""What a PipelineRun gives its TaskRuns: the pod security context, the workspaces and, for the
verbs that run the repository's own code, their own identity.

Tekton Tasks carry only their steps' security context; the pod's (non-root user and group,
fsGroup for the workspaces, the seccomp profile) belongs to the run's pod template. Both come
from ``canaryflow_workflows.pods``, as for Argo.
"""

from __future__ import annotations

from typing import Any

from canaryflow_workflows import pods
from canaryflow_workflows.settings import WorkflowSettings
from canaryflow_workflows.tekton.pipeline import ON_SOURCE, PipelineTask
from canaryflow_workflows.tekton.tasks import (
    SOURCE_WORKSPACE,
    container_templates,
    workspace_volumes,
)


def pod_template() -> dict[str, Any]:
    context = pods.pod_security_context().model_dump(by_alias=True, exclude_none=True)
    return {"securityContext": context}


def run_workspaces(settings: WorkflowSettings) -> list[dict[str, Any]]:
    """``source`` is a fresh claim per run (deleted with it); every other workspace is bound to
    the volume the Argo library mounts for it (the registry Secret, ...), except those the
    Pipeline binds to a directory of ``source`` (the Go cache: one claim per TaskRun)."""
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
        if name in ON_SOURCE:
            continue
        # As the library mounts it: an optional Secret (registry credentials for registries
        # that take anonymous pushes) stays optional, so a missing one blocks no pod.
        bindings.append({"name": name, **{k: v for k, v in volume.items() if k != "name"}})
    return bindings


def isolated_verbs(settings: WorkflowSettings) -> dict[str, str]:
    """Verbs whose library template runs without a service-account token (go-test, go-build:
    the repository's own code), with the account the library gives them."""
    return {
        verb: template["serviceAccountName"]
        for verb, template in container_templates(settings).items()
        if template.get("automountServiceAccountToken") is False
    }


def task_run_specs(tasks: list[PipelineTask], settings: WorkflowSettings) -> list[dict[str, Any]]:
    """The library's build isolation in Tekton's terms: a Task cannot name a service account,
    so the PipelineRun gives each pipeline task running an isolated verb its own account and a
    pod template without the token (``taskRunSpecs[].serviceAccountName`` and ``podTemplate``,
    tekton.dev/v1 PipelineTaskRunSpec from v0.50.0; ``PipelineRun.GetTaskRunSpec`` merges that
    pod template over ``taskRunTemplate.podTemplate``, field by field, so the security context
    still comes from there). Argo's executor has no Tekton counterpart: results leave through
    the termination message, which needs no token."""
    isolated = isolated_verbs(settings)
    return [
        {
            "pipelineTaskName": task.name,
            "serviceAccountName": isolated[task.verb],
            "podTemplate": {"automountServiceAccountToken": False},
        }
        for task in tasks
        if task.verb in isolated
    ]
