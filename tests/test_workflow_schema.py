"""Every compiled Argo object is valid for Argo Workflows v4.0.5 (the version Hera 7 targets),
carries no field Argo does not know, and runs hardened, sized pods.

The upstream JSON Schema has no ``additionalProperties: false``, so a misspelt field would pass
it and be silently dropped by the API server: the strict walk below rejects any key that is not
in the schema's ``properties`` for that position.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import schema_walk
import yaml
from jsonschema import Draft202012Validator
from upstream import SCHEMAS

from canaryflow_workflows import WorkflowSettings, compile_documents

REPO = Path(__file__).resolve().parents[1]
SCHEMA = SCHEMAS / "argo-workflows" / "schema.json"
DEFINITION = "io.argoproj.workflow.v1alpha1.{kind}"
RETRIED = {"checkout", "image-push", "deploy-canary", "set-weight", "promote", "rollback", "notify"}
NEVER_RETRIED = {"analyze", "go-test", "validate-plan", "health-gate", "approve"}


@cache
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


def documents() -> dict[str, dict]:
    settings = {
        "cluster": WorkflowSettings(),
        "namespaced": WorkflowSettings(cluster_scoped_tasks=False, namespace="ci"),
    }
    return {
        f"{variant}/{file}": document
        for variant, chosen in settings.items()
        for file, document in compile_documents(chosen).items()
    }


def validator_for(kind: str) -> Draft202012Validator:
    root = {key: value for key, value in schema().items() if key != "oneOf"}
    root["$ref"] = "#/definitions/" + DEFINITION.format(kind=kind)
    return Draft202012Validator(root)


def unknown_fields(value: object, node: dict, path: str = "") -> list[str]:
    """Paths of keys that Argo's schema does not declare at their position."""
    return schema_walk.unknown_fields(value, node, path, resolve=_definition)


def _definition(node: dict) -> dict:
    if "$ref" in node:
        return schema()["definitions"][node["$ref"].removeprefix("#/definitions/")]
    return node


COMPILED = documents()


@pytest.mark.parametrize("name", sorted(COMPILED))
def test_every_document_validates_against_the_argo_schema_of_its_kind(name):
    document = COMPILED[name]
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_for(document["kind"]).iter_errors(document)
    ]
    assert errors == []


@pytest.mark.parametrize("name", sorted(COMPILED))
def test_no_document_carries_a_field_argo_does_not_know(name):
    document = COMPILED[name]
    definition = {"$ref": "#/definitions/" + DEFINITION.format(kind=document["kind"])}
    assert unknown_fields(document, definition) == []


def test_the_strict_walk_catches_a_misspelt_field():
    document = json.loads(json.dumps(COMPILED["cluster/go-canary-release.workflowtemplate.yaml"]))
    document["spec"]["templates"][0]["dag"]["tasks"][0]["dependz"] = "x"
    definition = {"$ref": "#/definitions/" + DEFINITION.format(kind="WorkflowTemplate")}
    assert unknown_fields(document, definition) == [".spec.templates[0].dag.tasks[0].dependz"]


def library_templates() -> list[dict]:
    return COMPILED["cluster/canaryflow-tasks.clusterworkflowtemplate.yaml"]["spec"]["templates"]


@pytest.mark.parametrize("template", library_templates(), ids=lambda t: t["name"])
def test_every_task_pod_is_non_root_read_only_unprivileged_and_sized(template):
    if "suspend" in template:
        return
    container = template["container"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert template["securityContext"]["runAsNonRoot"] is True
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["command"] == ["canaryflow"]


def test_idempotent_steps_retry_and_judging_steps_never_do():
    by_name = {t["name"]: t for t in library_templates()}
    for name in RETRIED:
        retry = by_name[name]["retryStrategy"]
        assert int(retry["limit"]) >= 1 and retry["retryPolicy"] == "Always", name
        assert retry["expression"] == "lastRetry.exitCode != '2'", name
        assert "backoff" in retry, name
    for name in NEVER_RETRIED:
        assert "retryStrategy" not in by_name[name], name


def test_go_tasks_build_static_on_the_shared_cache():
    by_name = {t["name"]: t for t in library_templates()}
    for name in ("go-test", "go-build"):
        env = {e["name"]: e["value"] for e in by_name[name]["container"]["env"]}
        assert env["CGO_ENABLED"] == "0"
        assert not {"GOPROXY", "GOFLAGS", "GOPRIVATE"} & set(env)  # Go's defaults, the user's
        assert env["GOCACHE"].startswith("/cache/") and env["GOMODCACHE"].startswith("/cache/")
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in by_name[name]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == [WorkflowSettings().go_cache_pvc]
        assert by_name[name]["container"]["args"][3:5] == ["--plan", "{{inputs.parameters.plan}}"]


def test_go_tasks_and_validate_plan_run_what_was_pushed_without_an_api_token():
    """go-test and go-build run the repository's code; validate-plan reads its plan."""
    by_name = {t["name"]: t for t in library_templates()}
    build_account = WorkflowSettings().build_service_account
    tokenless = ("go-test", "go-build", "validate-plan")
    for name in tokenless:
        template = by_name[name]
        assert template["automountServiceAccountToken"] is False
        assert template["serviceAccountName"] == build_account
        assert template["executor"] == {"serviceAccountName": build_account}
    for name, template in by_name.items():
        if name not in tokenless:
            assert "automountServiceAccountToken" not in template, name


def test_without_a_cache_claim_the_go_tasks_get_an_empty_dir():
    from canaryflow_workflows.library import namespaced_task_library

    settings = WorkflowSettings(go_cache_pvc=None)
    library = namespaced_task_library(settings).to_dict()
    for template in library["spec"]["templates"]:
        if template["name"] in ("go-test", "go-build"):
            (cache,) = [v for v in template["volumes"] if v["name"] == "go-cache"]
            assert cache == {"name": "go-cache", "emptyDir": {"sizeLimit": "10Gi"}}


def test_the_release_is_serialised_per_service_bounded_and_cleaned_up():
    spec = COMPILED["cluster/go-canary-release.workflowtemplate.yaml"]["spec"]
    assert spec["synchronization"] == {
        "mutexes": [
            {"name": "canaryflow-{{workflow.parameters.namespace}}-{{workflow.parameters.service}}"}
        ]
    }
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["podGC"]["strategy"] == "OnPodSuccess"
    assert spec["ttlStrategy"] == {"secondsAfterSuccess": 86400, "secondsAfterFailure": 604800}
    assert [c["metadata"]["name"] for c in spec["volumeClaimTemplates"]] == ["workspace"]
    assert spec["onExit"] == "exit-handler"
    assert spec["serviceAccountName"] == "{{workflow.parameters.service-account}}"


def test_the_release_calls_the_library_by_template_ref_of_the_chosen_scope():
    names = {t["name"] for t in library_templates()}
    for variant, cluster in (("cluster", True), ("namespaced", None)):
        spec = COMPILED[f"{variant}/go-canary-release.workflowtemplate.yaml"]["spec"]
        own = {t["name"] for t in spec["templates"]}
        for template in spec["templates"]:
            steps = [s for group in template.get("steps", []) for s in group]
            for call in template.get("dag", {}).get("tasks", []) + steps:
                if "template" in call:
                    assert call["template"] in own
                    continue
                ref = call["templateRef"]
                assert ref["name"] == "canaryflow-tasks" and ref.get("clusterScope") is cluster
                assert ref["template"] in names


def test_both_library_kinds_hold_the_same_templates():
    cluster = COMPILED["cluster/canaryflow-tasks.clusterworkflowtemplate.yaml"]
    namespaced = COMPILED["cluster/canaryflow-tasks.workflowtemplate.yaml"]
    assert (cluster["kind"], namespaced["kind"]) == ("ClusterWorkflowTemplate", "WorkflowTemplate")
    assert cluster["spec"] == namespaced["spec"]


def test_every_input_and_output_is_documented():
    for template in library_templates():
        for parameter in template.get("inputs", {}).get("parameters", []):
            assert parameter.get("description"), (template["name"], parameter["name"])
        for parameter in template.get("outputs", {}).get("parameters", []):
            assert parameter.get("description"), (template["name"], parameter["name"])


def test_compile_writes_one_yaml_file_per_template(tmp_path):
    from canaryflow.cli import main

    out = tmp_path / "argo"
    assert main(["compile", "--out", str(out), "--namespace", "ci"]) == 0
    written = {p.name: yaml.safe_load(p.read_text()) for p in out.iterdir()}
    assert set(written) == set(compile_documents(WorkflowSettings()))
    release = written["go-canary-release.workflowtemplate.yaml"]
    assert release["metadata"]["namespace"] == "ci"
    assert {"release", "plan-step", "traffic-step", "exit-handler"} == {
        t["name"] for t in release["spec"]["templates"]
    }


def test_compile_for_the_namespaced_library_drops_cluster_scope(tmp_path):
    from canaryflow.cli import main

    out = tmp_path / "argo"
    assert main(["compile", "--out", str(out), "--task-scope", "namespace"]) == 0
    release = yaml.safe_load((out / "go-canary-release.workflowtemplate.yaml").read_text())
    refs = [
        call["templateRef"]
        for template in release["spec"]["templates"]
        for call in template.get("dag", {}).get("tasks", [])
        + [s for group in template.get("steps", []) for s in group]
        if "templateRef" in call
    ]
    assert refs and all("clusterScope" not in ref for ref in refs)


def test_the_compile_verb_does_not_import_hera_until_it_runs():
    probe = (
        "import argparse, sys\n"
        "import canaryflow.cli\n"
        "from canaryflow.commands import compile as verb\n"
        "parser = argparse.ArgumentParser(prog='canaryflow compile')\n"
        "verb.configure(parser)\n"
        "parser.format_help()\n"
        "print('hera' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "False"
