"""Every compiled Tekton object against Tekton's published CRDs (tests/schemas/tekton/).

Tekton Pipelines v1.15.0 publishes full structural schemas in its CRDs: Tasks, Pipelines and
the PipelineRun the TriggerTemplate creates are validated against the ``v1`` schema, and any
key the schema does not declare at its position is rejected (the API server would prune it
silently). Tekton Triggers publishes no field schema (see SOURCES.md): its objects are checked
against the CRDs (group, served version, kind) and their keys against the JSON tags of the Go
types, transcribed below from tektoncd/triggers v0.37.0 pkg/apis/triggers/v1beta1/*_types.go.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from canaryflow.plan.load import load_plan
from canaryflow_workflows import WorkflowSettings, default_plan
from canaryflow_workflows.tekton.documents import compile_tekton_documents
from canaryflow_workflows.tekton.triggers import ServiceRoute, TriggerSettings

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "tests/schemas/tekton"
CRDS = {
    "Task": "pipeline/300-task.yaml",
    "Pipeline": "pipeline/300-pipeline.yaml",
    "PipelineRun": "pipeline/300-pipelinerun.yaml",
    "EventListener": "triggers/300-eventlistener.yaml",
    "Trigger": "triggers/300-trigger.yaml",
    "TriggerBinding": "triggers/300-triggerbinding.yaml",
    "TriggerTemplate": "triggers/300-triggertemplate.yaml",
}
# JSON tags of the Triggers v1beta1 Go types, by the path of the object in a document.
_SELECTOR = {"matchLabels": None, "matchExpressions": None}
TRIGGER_FIELDS: dict[str, Any] = {
    "EventListener": {
        "serviceAccountName": None,
        "triggers": None,
        "triggerGroups": None,
        "namespaceSelector": {"matchNames": None},
        "labelSelector": _SELECTOR,
        "resources": {
            "kubernetesResource": {
                "replicas": None,
                "serviceType": None,
                "servicePort": None,
                "serviceLoadBalancerClass": None,
                "spec": None,
            },
            "customResource": None,
        },
        "cloudEventURI": None,
    },
    "Trigger": {
        "bindings": [{"name": None, "value": None, "ref": None, "kind": None, "apiversion": None}],
        "template": {"ref": None, "apiversion": None, "spec": None},
        "name": None,
        "interceptors": [
            {
                "name": None,
                "ref": {"name": None, "kind": None, "apiVersion": None},
                "params": [{"name": None, "value": None}],
                "webhook": None,
            }
        ],
        "serviceAccountName": None,
    },
    "TriggerBinding": {"params": [{"name": None, "value": None}]},
    "TriggerTemplate": {
        "params": [{"name": None, "description": None, "default": None}],
        "resourcetemplates": None,
    },
}


@cache
def crd(kind: str) -> dict[str, Any]:
    return yaml.safe_load((SCHEMAS / CRDS[kind]).read_text())


def served_schema(document: dict[str, Any]) -> dict[str, Any]:
    definition = crd(document["kind"])
    group, version = document["apiVersion"].split("/")
    assert definition["spec"]["group"] == group
    assert definition["spec"]["names"]["kind"] == document["kind"]
    served = {v["name"]: v for v in definition["spec"]["versions"] if v["served"]}
    assert version in served, f"{document['apiVersion']} is not served: {sorted(served)}"
    return served[version]["schema"]["openAPIV3Schema"]


def unknown_fields(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """Keys a structural schema does not declare (and would prune)."""
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict) and "properties" in node:
        for key, item in value.items():
            if key not in node["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(item, node["properties"][key], f"{path}.{key}")
    elif isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        for key, item in value.items():
            found += unknown_fields(item, node["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            found += unknown_fields(item, node["items"], f"{path}[{index}]")
    return found


def untagged_fields(value: Any, fields: Any, path: str = "") -> list[str]:
    """Keys that no JSON tag of the Go type at that position names."""
    if fields is None:
        return []
    if isinstance(fields, list):
        return [
            bad for i, item in enumerate(value) for bad in untagged_fields(item, fields[0], path)
        ]
    found = []
    for key, item in value.items():
        if key not in fields:
            found.append(f"{path}.{key}")
        else:
            found += untagged_fields(item, fields[key], f"{path}.{key}")
    return found


def compiled() -> dict[str, dict[str, Any]]:
    checkout = load_plan(REPO / "examples/plans/checkout.yaml")
    hold = checkout.model_copy(
        update={"rollback": checkout.rollback.model_copy(update={"on_inconclusive": "hold"})}
    )
    routed = TriggerSettings(
        services=(
            ServiceRoute(
                "https://github.com/shop/checkout.git",
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
