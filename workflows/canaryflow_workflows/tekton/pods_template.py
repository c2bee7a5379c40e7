"""What a PipelineRun gives its TaskRuns: the pod security context and the workspaces.

Tekton Tasks carry only their steps' security context; the pod's (non-root user and group,
fsGroup for the workspaces, the seccomp profile) belongs to the run's pod template. Both come
from ``canaryflow_workflows.pods``, as for Argo.
"""

from __future__ import annotations

from typing import Any

from canaryflow_workflows import pods
from canaryflow_workflows.settings import WorkflowSettings


def pod_template() -> dict[str, Any]:
    context = pods.pod_security_context().model_dump(by_alias=True, exclude_none=True)
    return {"securityContext": context}


def run_workspaces(settings: WorkflowSettings) -> list[dict[str, Any]]:
    """``source`` is a fresh claim per run (deleted with it); the Go cache is the shared PVC;
    the registry credentials the Secret the Argo library mounts."""
    claim: dict[str, Any] = {
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": settings.workspace_size}},
        }
    }
    if settings.workspace_storage_class:
        claim["spec"]["storageClassName"] = settings.workspace_storage_class
    return [
        {"name": "source", "volumeClaimTemplate": claim},
        {"name": "go-cache", "persistentVolumeClaim": {"claimName": settings.go_cache_pvc}},
        {"name": "registry-auth", "secret": {"secretName": settings.registry_secret}},
    ]
