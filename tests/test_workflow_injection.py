"""Hostile workflow parameters reach the task verbs as data, never as code.

Argo substitutes ``{{...}}`` by plain text replacement, so the only safe design is one where a
parameter fills a whole argv element (or an env value, or a raw artifact's file content) and
no shell ever re-reads it. ``render`` (tests/argo_expressions.py) does Argo's substitution,
including the ``{{=expression}}`` subset the templates use, and the tests follow every
parameter of the release, through the DAG and the step walk, into the containers of the task
library.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argo_expressions import render

from canaryflow.plan.load import load_plan
from canaryflow.release.walk import workflow_outputs
from canaryflow_workflows import WorkflowSettings, compile_documents

REPO = Path(__file__).resolve().parents[1]
HOSTILE = ["main; rm -rf /", "$(curl evil)", "`id`", "a\nb", "'\"", "{{workflow.name}}"]
STEPS = workflow_outputs(load_plan(REPO / "examples/plans/checkout.yaml"))
SAFE = {
    "workflow.parameters.repo": "https://git.example/shop/checkout.git",
    "workflow.parameters.revision": "0123abcd",
    "workflow.parameters.service": "checkout",
    "workflow.parameters.namespace": "shop",
    "workflow.parameters.image-repository": "registry.example/shop/checkout",
    "workflow.parameters.plan": "canaryflow.yaml",
    "workflow.parameters.plan-inline": "",
    "workflow.parameters.router-kind": "",
    "workflow.parameters.service-account": "canaryflow-release",
    "workflow.parameters.commit-status-url": "https://api.github.com/repos/o/r/statuses/0123abcd",
    "workflow.parameters.git-provider": "github",
    "workflow.name": "go-canary-release-x7k2p",
    "workflow.status": "Failed",
    "workflow.failures": "[]",
    "tasks.image-push.outputs.parameters.image": "registry.example/shop/checkout@sha256:00",
}
# Set by Argo from a node's phase, never by a person or a payload.
PHASES = {"tasks.rollback.status": "Succeeded", "tasks.flag-off.status": "Skipped"}
# The inputs of the step walk's templates, for its first step (from the example plan).
WALK = {
    "inputs.parameters.steps": STEPS["steps"],
    "inputs.parameters.step": "0",
    "inputs.parameters.last-step": STEPS["last-step"],
    "inputs.parameters.weight": "5",
}


def compiled() -> tuple[dict, dict[str, dict]]:
    documents = compile_documents(WorkflowSettings())
    release = documents["go-canary-release.workflowtemplate.yaml"]
    library = documents["canaryflow-tasks.clusterworkflowtemplate.yaml"]
    return release, {t["name"]: t for t in library["spec"]["templates"]}


RELEASE, LIBRARY = compiled()


def pod_inputs(template: dict, task: dict, values: dict[str, str]) -> dict[str, str]:
    """The template's ``inputs.parameters.*`` as the controller resolves them for a task."""
    inputs = {
        f"inputs.parameters.{p['name']}": p["default"]
        for p in template.get("inputs", {}).get("parameters", [])
        if "default" in p
    }
    for argument in task.get("arguments", {}).get("parameters", []):
        inputs[f"inputs.parameters.{argument['name']}"] = render(argument["value"], values)
    return inputs


def calls(template: dict) -> list[dict]:
    """The tasks of a DAG template, or the steps of a steps template, in order."""
    if "dag" in template:
        return template["dag"]["tasks"]
    return [step for group in template.get("steps", []) for step in group]


def rendered_pods(values: dict[str, str]) -> list[tuple[str, list[str], list[str]]]:
    """For every library call of the release, its step walk and its exit handler:
    (task, argv, env and file data)."""
    pods = []
    for own in RELEASE["spec"]["templates"]:
        scope = {**values, **PHASES, **(WALK if "steps" in own else {})}
        for task in calls(own):
            if "templateRef" not in task:
                continue  # a call of the walk's own templates: their steps are visited here
            template = LIBRARY[task["templateRef"]["template"]]
            inputs = pod_inputs(template, task, scope)
            if "container" not in template:
                continue
            container = template["container"]
            argv = [render(a, inputs) for a in container["command"] + container["args"]]
            data = [render(e["value"], inputs) for e in container.get("env", []) if "value" in e]
            data += [
                render(a["raw"]["data"], inputs)
                for a in template["inputs"].get("artifacts", [])
                if "raw" in a
            ]
            pods.append((task["name"], argv, data))
    return pods


INJECTABLE = [key for key in SAFE if key != "workflow.parameters.service-account"]


@pytest.mark.parametrize("hostile", HOSTILE, ids=repr)
@pytest.mark.parametrize("source", INJECTABLE)
def test_a_hostile_value_arrives_as_one_whole_argv_element_or_file(source, hostile):
    values = {**SAFE, source: hostile}
    seen = 0
    for task, argv, data in rendered_pods(values):
        for element in argv + data:
            if hostile in element:
                assert element == hostile, f"{task}: {source} spliced into {element!r}"
                seen += 1
    assert seen, f"{source} reaches no container"


@pytest.mark.parametrize("hostile", HOSTILE, ids=repr)
def test_an_inline_plan_is_written_to_a_file_and_only_read_as_the_default(hostile):
    values = {**SAFE, "workflow.parameters.plan-inline": hostile}
    validate = next(p for p in rendered_pods(values) if p[0] == "validate-plan")
    _, argv, data = validate
    assert argv[:2] == ["canaryflow", "validate"] and argv[-2:] == ["--", "canaryflow.yaml"]
    assert argv[argv.index("--default-plan") + 1] == "/inputs/plan-inline.yaml"
    assert hostile in data


def test_a_plan_path_that_looks_like_an_option_stays_the_plan_path(tmp_path, capsys):
    """validate-plan passes the plan after ``--``: ``-h`` is a file name, not a flag."""
    from canaryflow.cli import main

    values = {**SAFE, "workflow.parameters.plan": "--help"}
    validate = next(p for p in rendered_pods(values) if p[0] == "validate-plan")
    argv = validate[1][1:]
    argv[argv.index("/tmp/outputs")] = str(tmp_path / "outputs")
    argv[argv.index("/workspace/plan.yaml")] = str(tmp_path / "plan.yaml")
    argv.remove("/inputs/plan-inline.yaml")
    argv.remove("--default-plan")

    assert main(argv) == 2
    assert "--help: cannot read the plan" in capsys.readouterr().err


def test_no_template_runs_a_shell_or_a_script():
    for name, template in LIBRARY.items():
        assert "script" not in template, name
        if "container" in template:
            argv = template["container"]["command"] + template["container"].get("args", [])
            assert argv[0] == "canaryflow", name
            assert not {"sh", "bash", "/bin/sh", "/bin/bash", "-c"} & set(argv), name


def test_every_parameter_reference_resolves():
    for task, argv, _ in rendered_pods(SAFE):
        assert not any("{{" in element for element in argv), task


def test_the_service_account_parameter_only_names_the_pods_account():
    spec = RELEASE["spec"]
    assert render(spec["serviceAccountName"], {**SAFE, **{k: "x" for k in HOSTILE}}) == (
        "canaryflow-release"
    )
    assert all("service-account" not in str(template) for template in LIBRARY.values())


def test_the_step_walk_reads_each_field_of_the_step_it_runs():
    """jsonpath on validate-plan's JSON: the weight and approval text of step N, as strings."""
    plan_step = next(t for t in RELEASE["spec"]["templates"] if t["name"] == "plan-step")
    (traffic, approval), _, (recurse,) = plan_step["steps"]
    at = {**WALK, "inputs.parameters.step": "3"}

    assert render(traffic["when"].split(" == ")[0], at) == "approve"
    message = next(a for a in approval["arguments"]["parameters"] if a["name"] == "message")
    assert render(message["value"], at) == json.loads(STEPS["steps"])[3]["message"]
    weight = traffic["arguments"]["parameters"][0]["value"]
    assert render(weight, {**WALK, "inputs.parameters.step": "1"}) == "25"
    step = next(a for a in recurse["arguments"]["parameters"] if a["name"] == "step")
    assert render(step["value"], at) == "4"
