"""The Tekton Tasks are the Argo task library's verbs, rendered, not a second definition."""

from __future__ import annotations

import copy
import re

import pytest

from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.library import OUTPUTS
from canaryflow_workflows.tekton.tasks import (
    RESULTS_DIR,
    TEKTON_INPUTS,
    UntranslatableTemplate,
    container_templates,
    render_task,
    task_retries,
    tekton_tasks,
)

SETTINGS = WorkflowSettings()
TEMPLATES = container_templates(SETTINGS)
TASKS = {t["metadata"]["name"].removeprefix("canaryflow-"): t for t in tekton_tasks(SETTINGS)}


def tekton_args(template: dict) -> list[str]:
    return [
        re.sub(r"\{\{inputs\.parameters\.([\w-]+)\}\}", r"$(params.\1)", arg)
        for arg in template["container"]["args"]
    ]


def test_every_container_verb_of_the_library_is_a_task_and_nothing_else_is():
    assert set(TASKS) == set(TEMPLATES)


@pytest.mark.parametrize("verb", sorted(TEMPLATES))
def test_each_task_runs_the_library_verb_with_the_same_container(verb):
    template, (step,) = TEMPLATES[verb], TASKS[verb]["spec"]["steps"]
    container = template["container"]
    assert step["command"] == container["command"] == ["canaryflow"]
    assert "script" not in step
    assert step["image"] == container["image"]
    assert step["computeResources"] == container["resources"]
    assert step["securityContext"] == container["securityContext"]
    assert step["env"] == container["env"]
    outputs = {o["valueFrom"]["path"] for o in template.get("outputs", {}).get("parameters", [])}
    extra = [(option, f"$(params.{p['name']})") for p, option in TEKTON_INPUTS.get(verb, [])]
    args = list(step["args"])
    for option, value in extra:  # the Tekton-only options, each an option and its value
        index = args.index(option)
        assert args[index + 1] == value
        del args[index : index + 2]
    for ours, theirs in zip(args, tekton_args(template), strict=True):
        if theirs in outputs:
            assert ours.startswith(("$(results.", "/workspace/reports/")), ours
        elif theirs == OUTPUTS:
            assert ours == RESULTS_DIR
        else:
            assert ours == theirs


@pytest.mark.parametrize("verb", sorted(TEMPLATES))
def test_each_task_takes_the_library_inputs_with_their_defaults(verb):
    inputs = {p["name"]: p for p in TEMPLATES[verb].get("inputs", {}).get("parameters", [])}
    tekton_only = {p["name"] for p, _ in TEKTON_INPUTS.get(verb, [])}
    for param in TASKS[verb]["spec"].get("params", []):
        if param["name"] in tekton_only:
            continue
        source = inputs[param["name"]]
        assert param.get("default") == source.get("default"), param["name"]
        assert param["description"] == source["description"]
    dropped = set(inputs) - {p["name"] for p in TASKS[verb]["spec"].get("params", [])}
    assert dropped <= {"plan-inline"}, dropped


def test_results_carry_the_image_by_digest_and_the_verdict():
    assert [r["name"] for r in TASKS["image-push"]["spec"]["results"]] == ["image"]
    assert [r["name"] for r in TASKS["analyze"]["spec"]["results"]] == ["verdict"]
    assert "$(results.image.path)" in TASKS["image-push"]["spec"]["steps"][0]["args"]


def test_workspaces_are_the_library_volumes():
    names = {verb: {w["name"] for w in t["spec"]["workspaces"]} for verb, t in TASKS.items()}
    assert names["go-build"] == names["go-test"] == {"source", "go-cache"}
    assert names["image-push"] == {"source", "registry-auth"}
    (auth,) = [w for w in TASKS["image-push"]["spec"]["workspaces"] if w["name"] == "registry-auth"]
    assert auth["optional"] and auth["readOnly"]
    assert all(names[verb] == {"source"} for verb in ("analyze", "rollback"))
    assert names["promote"] == {"source", "gitops-credentials"}  # GitOps mode's push Secret
    (gitops,) = [w for w in TASKS["promote"]["spec"]["workspaces"] if w["name"] != "source"]
    assert gitops["optional"] and gitops["readOnly"]


def test_retries_come_from_the_library_retry_strategy():
    assert task_retries(TEMPLATES["set-weight"]) == SETTINGS.retry_limit
    assert task_retries(TEMPLATES["analyze"]) == 0
    assert task_retries(TEMPLATES["go-build"]) == 1


def test_a_new_input_on_the_argo_side_reaches_the_task_without_a_second_edit():
    template = copy.deepcopy(TEMPLATES["health-gate"])
    template["inputs"]["parameters"].append(
        {"name": "timeout", "description": "Seconds to wait.", "default": "120"}
    )
    template["container"]["args"] += ["--timeout", "{{inputs.parameters.timeout}}"]
    task = render_task(template, SETTINGS)
    assert task["spec"]["params"][-1] == {
        "name": "timeout",
        "type": "string",
        "description": "Seconds to wait.",
        "default": "120",
    }
    assert task["spec"]["steps"][0]["args"][-2:] == ["--timeout", "$(params.timeout)"]


def test_an_argo_construct_without_a_tekton_rule_stops_the_build():
    template = copy.deepcopy(TEMPLATES["rollback"])
    template["container"]["args"].append("{{workflow.name}}")
    with pytest.raises(UntranslatableTemplate, match=r"workflow\.name"):
        render_task(template, SETTINGS)


def test_a_literal_dollar_paren_is_escaped_for_tekton():
    template = copy.deepcopy(TEMPLATES["rollback"])
    template["container"]["args"].append("$(not-a-variable)")
    task = render_task(template, SETTINGS)
    assert task["spec"]["steps"][0]["args"][-1] == "$$(not-a-variable)"


@pytest.mark.parametrize("verb", sorted(TEMPLATES))
def test_every_param_reaches_the_verb_as_one_whole_argument(verb):
    """No shell, and no param spliced into a longer argument: a revision such as
    ``main; rm -rf /`` or ``--help`` is one argv element after the flag that names it."""
    (step,) = TASKS[verb]["spec"]["steps"]
    for index, arg in enumerate(step["args"]):
        if "$(params." in arg:
            assert re.fullmatch(r"\$\(params\.[a-z0-9-]+\)", arg), arg
            previous = step["args"][index - 1]
            if (verb, arg) in POSITIONAL:
                continue
            assert previous.startswith("--"), (verb, arg)


# Known finding, from the library (the Argo side too): ``validate`` takes the plan path as a
# positional argument, so a plan parameter such as ``--help`` is read as a flag. The fix is in
# the verb or library (``--plan PATH`` or a ``--`` before it), not in the Tekton rendering.
POSITIONAL = {("validate-plan", "$(params.plan)")}
