"""The Argo Workflows bundle, authored with Hera: the task library and the generic release.

Importing this package imports Hera; the task runtime never does (only ``canaryflow compile``
and the chart build do).
"""

from canaryflow_workflows.documents import compile_documents
from canaryflow_workflows.graph import ReleaseTask, release_tasks
from canaryflow_workflows.library import cluster_task_library, namespaced_task_library
from canaryflow_workflows.release import build_release_template
from canaryflow_workflows.settings import PodResources, WorkflowSettings

__all__ = [
    "PodResources",
    "ReleaseTask",
    "WorkflowSettings",
    "build_release_template",
    "cluster_task_library",
    "compile_documents",
    "namespaced_task_library",
    "release_tasks",
]
