"""The compiled bundle: every Argo object canaryflow installs, as plain dicts.

This is the seam the Helm chart and ``canaryflow compile`` share: file name -> object, ready
for ``yaml.safe_dump``. Hera stays inside ``canaryflow_workflows``; callers get data. No
plan goes in: every release reads its own plan at run time.
"""

from __future__ import annotations

from canaryflow_workflows.library import cluster_task_library, namespaced_task_library
from canaryflow_workflows.release import build_flag_template, build_release_template
from canaryflow_workflows.settings import WorkflowSettings


def compile_documents(settings: WorkflowSettings) -> dict[str, dict]:
    """``{file name: Argo object}``: the task library (both kinds), the release, the flag
    rollout."""
    library_name = settings.cluster_tasks_name
    return {
        f"{library_name}.clusterworkflowtemplate.yaml": cluster_task_library(settings).to_dict(),
        f"{library_name}.workflowtemplate.yaml": namespaced_task_library(settings).to_dict(),
        f"{settings.release_template_name}.workflowtemplate.yaml": build_release_template(
            settings
        ).to_dict(),
        f"{settings.flag_template_name}.workflowtemplate.yaml": build_flag_template(
            settings
        ).to_dict(),
    }
