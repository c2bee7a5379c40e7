"""One termination grace for every task pod: what the pod gets and what its verb is told.

A stopped promotion or rollback (``argo stop``, the deadline: SIGTERM) bounds its restore by
``CANARYFLOW_TERMINATION_GRACE_S`` (``kubernetes.platform``, less ``EXIT_MARGIN_S``), which is
only right when it is the pod's own ``terminationGracePeriodSeconds``. Both come from one
setting: ``WorkflowSettings.termination_grace_seconds`` in the compiled templates (Argo: each
template's ``podSpecPatch``), ``workflows.terminationGracePeriodSeconds`` in the chart. Tekton
has no field for it (its pods keep Kubernetes' 30 s), so its Tasks say 30.
"""

from __future__ import annotations

import copy
import json

import pytest
from chart_validation import objects, of_kind, violations

from canaryflow.kubernetes.from_plan import timeouts_from
from canaryflow.kubernetes.grace import TERMINATION_GRACE_ENV, TERMINATION_GRACE_S
from canaryflow_workflows import WorkflowSettings, compile_documents
from canaryflow_workflows.tekton.tasks import tekton_tasks

LIBRARIES = ("ClusterWorkflowTemplate", "WorkflowTemplate")


def task_templates(documents) -> list[dict]:
    """Every container template of the compiled or rendered task libraries."""
    return [
        template
        for document in documents
        if document["kind"] in LIBRARIES
        for template in document["spec"]["templates"]
        if "container" in template
    ]


def grace_of(template: dict) -> tuple[int | None, str | None]:
    """(the pod's terminationGracePeriodSeconds, the verb's CANARYFLOW_TERMINATION_GRACE_S)."""
    patch = json.loads(template.get("podSpecPatch") or "{}")
    env = {e["name"]: e.get("value") for e in template["container"].get("env", [])}
    return patch.get("terminationGracePeriodSeconds"), env.get(TERMINATION_GRACE_ENV)


@pytest.mark.parametrize("grace", [int(TERMINATION_GRACE_S), 90])
def test_every_argo_task_pod_gets_the_grace_its_verb_is_told(grace):
    documents = compile_documents(WorkflowSettings(termination_grace_seconds=grace)).values()

    templates = task_templates(documents)

    assert len(templates) > 10
    for template in templates:
        assert grace_of(template) == (grace, str(grace)), template["name"]
        assert set(json.loads(template["podSpecPatch"])) == {"terminationGracePeriodSeconds"}
        told = {TERMINATION_GRACE_ENV: grace_of(template)[1]}
        assert timeouts_from(told).termination_grace_s == grace  # what the verb bounds by
    for document in documents:
        assert violations(document) == [], document["metadata"]["name"]


def test_tekton_tasks_say_the_kubernetes_default_their_pods_keep():
    """A TaskRun's pod template (Tekton v1.15.0 ``PodTemplate``) has no
    ``terminationGracePeriodSeconds``: whatever the Argo side is given, a Tekton task pod is
    deleted (cancel, timeout) with Kubernetes' 30 s, and its verb is told 30."""
    for task in tekton_tasks(WorkflowSettings(termination_grace_seconds=90)):
        (step,) = task["spec"]["steps"]
        env = {e["name"]: e.get("value") for e in step.get("env", [])}
        assert env[TERMINATION_GRACE_ENV] == "30", task["metadata"]["name"]
        assert "podSpecPatch" not in json.dumps(task)


@pytest.mark.parametrize(
    ("values", "grace"),
    [(None, 30), ({"workflows": {"terminationGracePeriodSeconds": 120}}, 120)],
    ids=["default", "configured"],
)
def test_the_charts_value_reaches_every_task_pod_and_its_verb(values, grace):
    rendered = objects(copy.deepcopy(values))

    templates = task_templates(rendered)

    assert len(templates) > 10
    assert {grace_of(t) for t in templates} == {(grace, str(grace))}
    for obj in rendered:
        assert violations(obj) == [], obj["metadata"]["name"]


def test_the_charts_tekton_tasks_keep_30_whatever_the_value():
    values = {"engine": "tekton", "workflows": {"terminationGracePeriodSeconds": 120}}

    tasks = of_kind(objects(values), "Task")

    assert tasks
    for task in tasks:
        (step,) = task["spec"]["steps"]
        env = {e["name"]: e.get("value") for e in step.get("env", [])}
        assert env[TERMINATION_GRACE_ENV] == "30", task["metadata"]["name"]


@pytest.mark.parametrize("bad", [5, 0, "30s", 12.5])
def test_the_schema_refuses_a_grace_too_short_to_make_traffic_safe_or_not_whole_seconds(bad):
    with pytest.raises(Exception, match="terminationGracePeriodSeconds"):
        objects({"workflows": {"terminationGracePeriodSeconds": bad}})
