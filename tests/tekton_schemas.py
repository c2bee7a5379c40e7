"""Tekton's published CRDs (tests/schemas/tekton/, see SOURCES.md) as validators.

Tekton Pipelines v1.15.0 publishes full structural schemas in its CRDs: an object is checked
against the served version's ``openAPIV3Schema``, and any key the schema does not declare at
its position is reported (the API server would prune it silently). Tekton Triggers publishes
no field schema: its objects are checked against the CRDs (group, served version, kind) and
their keys against the JSON tags of the Go types, transcribed below from tektoncd/triggers
v0.37.0 pkg/apis/triggers/v1beta1/*_types.go.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from schema_walk import unknown_fields

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "tests/schemas/tekton"
CRDS = {
    "Task": "pipeline/300-task.yaml",
    "Pipeline": "pipeline/300-pipeline.yaml",
    "PipelineRun": "pipeline/300-pipelinerun.yaml",
    "TaskRun": "pipeline/300-taskrun.yaml",
    "CustomRun": "pipeline/300-customrun.yaml",
    "EventListener": "triggers/300-eventlistener.yaml",
    "Trigger": "triggers/300-trigger.yaml",
    "TriggerBinding": "triggers/300-triggerbinding.yaml",
    "TriggerTemplate": "triggers/300-triggertemplate.yaml",
}
# JSON tags of the Triggers v1beta1 Go types, by the path of the object in a document.
_SELECTOR = {"matchLabels": None, "matchExpressions": None}
_BINDINGS = [{"name": None, "value": None, "ref": None, "kind": None, "apiversion": None}]
_TEMPLATE = {"ref": None, "apiversion": None, "spec": None}
_INTERCEPTORS = [
    {
        "name": None,
        "ref": {"name": None, "kind": None, "apiVersion": None},
        "params": [{"name": None, "value": None}],
        "webhook": None,
    }
]
TRIGGER_FIELDS: dict[str, Any] = {
    "EventListener": {
        "serviceAccountName": None,
        # EventListenerTrigger (its bindings and template are the Trigger's types).
        "triggers": [
            {
                "bindings": _BINDINGS,
                "template": _TEMPLATE,
                "triggerRef": None,
                "name": None,
                "interceptors": _INTERCEPTORS,
                "serviceAccountName": None,
            }
        ],
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
        "bindings": _BINDINGS,
        "template": _TEMPLATE,
        "name": None,
        "interceptors": _INTERCEPTORS,
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


def violations(document: dict[str, Any]) -> list[str]:
    """Schema errors, pruned keys and (Triggers) untagged keys of one Tekton object."""
    schema = served_schema(document)
    found = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft7Validator(schema).iter_errors(document)
    ]
    found += [f"{path}: not in the schema" for path in unknown_fields(document, schema)]
    if document["kind"] in TRIGGER_FIELDS:
        spec = document.get("spec", {})
        found += [
            f"{path}: no such field"
            for path in untagged_fields(spec, TRIGGER_FIELDS[document["kind"]], ".spec")
        ]
    return found
