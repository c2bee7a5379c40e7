"""Every compiled Tekton object against Tekton's published CRDs (see tests/tekton_schemas.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from tekton_schemas import TRIGGER_FIELDS, served_schema, unknown_fields, untagged_fields

from canaryflow.plan.load import load_plan
from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.documents import compile_tekton_documents, default_plan
from canaryflow_workflows.tekton.triggers import ServiceRoute, TriggerSettings

REPO = Path(__file__).resolve().parents[1]


def compiled() -> dict[str, dict[str, Any]]:
    checkout = load_plan(REPO / "examples/plans/checkout.yaml")
    hold = checkout.model_copy(
        update={"rollback": checkout.rollback.model_copy(update={"on_inconclusive": "hold"})}
    )
    routed = TriggerSettings(
        services=(
            ServiceRoute(
                "shop/checkout",
                "checkout",
                "shop",
                "registry.example.com/shop/checkout",
            ),
        )
    )
    variants = {
        "default": (default_plan(), None),
        "checkout": (checkout, None),
        "checkout-hold": (hold, routed),
    }
    return {
        f"{variant}/{name}": document
        for variant, (plan, triggers) in variants.items()
        for name, document in compile_tekton_documents(plan, WorkflowSettings(), triggers).items()
    }


COMPILED = compiled()
PIPELINE_KINDS = {"Task", "Pipeline"}


def pipeline_runs() -> dict[str, dict[str, Any]]:
    return {
        name: template
        for name, document in COMPILED.items()
        if document["kind"] == "TriggerTemplate"
        for template in document["spec"]["resourcetemplates"]
    }


STRUCTURAL = {n: d for n, d in COMPILED.items() if d["kind"] in PIPELINE_KINDS} | pipeline_runs()


@pytest.mark.parametrize("name", sorted(STRUCTURAL))
def test_tasks_pipelines_and_runs_validate_against_the_tekton_v1_crd_schema(name):
    document = STRUCTURAL[name]
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft7Validator(served_schema(document)).iter_errors(document)
    ]
    assert errors == []


@pytest.mark.parametrize("name", sorted(STRUCTURAL))
def test_no_task_pipeline_or_run_carries_a_field_the_crd_would_prune(name):
    document = STRUCTURAL[name]
    assert unknown_fields(document, served_schema(document)) == []


def test_the_strict_walk_catches_a_misspelt_field():
    document = copy.deepcopy(COMPILED["checkout/go-canary-release.pipeline.yaml"])
    document["spec"]["finally"][0]["whenn"] = []
    assert unknown_fields(document, served_schema(document)) == [".spec.finally[0].whenn"]


def test_the_schema_rejects_a_wrong_type():
    document = copy.deepcopy(COMPILED["default/canaryflow-analyze.task.yaml"])
    document["spec"]["steps"][0]["args"] = "analyze --plan x"
    assert list(Draft7Validator(served_schema(document)).iter_errors(document))


TRIGGERS = {n: d for n, d in COMPILED.items() if d["kind"] in TRIGGER_FIELDS}


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_triggers_objects_are_served_kinds_with_only_known_fields(name):
    document = TRIGGERS[name]
    schema = served_schema(document)
    assert list(Draft7Validator(schema).iter_errors(document)) == []
    assert set(document) == {"apiVersion", "kind", "metadata", "spec"}
    assert untagged_fields(document["spec"], TRIGGER_FIELDS[document["kind"]], ".spec") == []


def test_the_field_check_catches_a_misspelt_trigger_field():
    document = copy.deepcopy(COMPILED["default/canaryflow-github-push.trigger.yaml"])
    document["spec"]["interceptors"][1]["ref"]["nmae"] = "cel"
    assert untagged_fields(document["spec"], TRIGGER_FIELDS["Trigger"], ".spec") == [
        ".spec.interceptors.ref.nmae"
    ]


def test_every_verb_has_a_task_and_every_task_its_own_file():
    tasks = {d["metadata"]["name"] for n, d in COMPILED.items() if n.startswith("default/")}
    for verb in (
        "checkout", "validate-plan", "go-test", "go-build", "image-push", "deploy-canary",
        "health-gate", "set-weight", "analyze", "promote", "rollback", "notify",
        "flag-rollout", "flag-off",
    ):  # fmt: skip
        assert f"canaryflow-{verb}" in tasks, verb


def test_every_workspace_the_pipeline_needs_is_bound_by_the_triggered_run():
    """Tekton rejects a PipelineRun that leaves a non-optional workspace unbound
    (pipelinerunresolution.go, ValidateWorkspaceBindings)."""
    pipeline = COMPILED["checkout/go-canary-release.pipeline.yaml"]
    (run,) = COMPILED["checkout/go-canary-release.triggertemplate.yaml"]["spec"][
        "resourcetemplates"
    ]
    bound = {w["name"] for w in run["spec"]["workspaces"]}
    needed = {w["name"] for w in pipeline["spec"]["workspaces"] if not w.get("optional")}
    assert needed <= bound
    assert bound <= {w["name"] for w in pipeline["spec"]["workspaces"]}
    declared = {p["name"] for p in pipeline["spec"]["params"]}
    assert {p["name"] for p in run["spec"]["params"]} <= declared
    assert all(
        "default" in p
        for p in pipeline["spec"]["params"]
        if p["name"] not in {q["name"] for q in run["spec"]["params"]}
    )
