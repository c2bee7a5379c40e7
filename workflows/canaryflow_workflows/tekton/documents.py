"""The compiled Tekton bundle, as plain dicts: file name -> object (``canaryflow compile
--engine tekton`` and the chart share it, as ``canaryflow_workflows.documents`` for Argo)."""

from __future__ import annotations

from typing import Any

from canaryflow.plan.model import ReleasePlan, ServiceSpec
from canaryflow_workflows.settings import WorkflowSettings
from canaryflow_workflows.tekton.pipeline import build_flag_pipeline, build_release_pipeline
from canaryflow_workflows.tekton.tasks import tekton_tasks
from canaryflow_workflows.tekton.triggers import TriggerSettings, trigger_documents


def default_plan() -> ReleasePlan:
    """The plan a repository gets with only ``service.name`` set: the model's defaults (the
    Pipeline's steps when ``canaryflow compile --engine tekton`` is given no plan)."""
    return ReleasePlan(service=ServiceSpec(name="service"))


def file_name(document: dict[str, Any]) -> str:
    return f"{document['metadata']['name']}.{document['kind'].lower()}.yaml"


def compile_tekton_documents(
    plan: ReleasePlan,
    settings: WorkflowSettings,
    triggers: TriggerSettings | None = None,
) -> dict[str, dict[str, Any]]:
    """Every Tekton object: the Tasks, both Pipelines, and the push Triggers."""
    documents = [
        *tekton_tasks(settings),
        build_release_pipeline(plan, settings),
        build_flag_pipeline(settings),
        *trigger_documents(triggers or TriggerSettings(), settings, plan),
    ]
    return {file_name(document): document for document in documents}
