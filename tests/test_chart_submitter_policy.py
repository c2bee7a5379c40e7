"""Submitter isolation: the chart's ValidatingAdmissionPolicy lets the per-team release accounts
be used only through the chart's release WorkflowTemplates, whatever a submitter puts in a
Workflow.

The rendered policy is checked against Kubernetes' own schema (kubernetes-validate, strict, for
``admissionregistration.k8s.io/v1``), and its CEL is evaluated with a real CEL implementation
(cel-python) the way the API server does: each of ``spec.variables`` in order into
``variables``, then every validation with ``object`` the admitted object; a validation that
is false denies. cel-python implements the CEL standard (``has``, macros, ``startsWith``,
``contains``) that the policy keeps to; Kubernetes' own CEL libraries are not used by it.
"""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import pytest
from admission_policy import denials
from chart_validation import CHART, NAMESPACE, WEBHOOK_VALUES, objects, of_kind, render, violations

TEMPLATE = "canaryflow/templates/submitter-policy.yaml"
PREFIX = "cf-canaryflow-release-"  # release "cf": <fullname>-release-<namespace>
TEAM = f"{PREFIX}bank"
Obj = dict[str, Any]


def policy_of(values: Obj | None = None) -> Obj:
    (policy,) = [o for o in render(values)[TEMPLATE] if o["kind"] == "ValidatingAdmissionPolicy"]
    return policy


def workflow(spec: Obj, kind: str = "Workflow", name: str = "w-x7k2p") -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


RELEASE_REF = {"workflowTemplateRef": {"name": "go-canary-release"}}
ARGUMENTS = {
    "parameters": [
        {"name": "repo", "value": "https://github.com/acme/payments.git"},
        {"name": "service", "value": "payments"},
        {"name": "namespace", "value": "bank"},
    ]
}
CONTAINER = {"image": "alpine", "command": ["sh", "-c", "kubectl get secrets -n bank"]}


def plain(**extra: Any) -> Obj:
    """A plain Workflow that does not reference the chart's template."""
    template = {"name": "main", "container": CONTAINER, **extra.pop("template", {})}
    return workflow({"entrypoint": "main", "templates": [template], **extra})


@pytest.fixture(scope="module")
def policy() -> Obj:
    return policy_of()


def test_the_rendered_policy_and_binding_are_valid_v1_objects_bound_to_the_release_namespace():
    rendered = render()[TEMPLATE]
    assert [o["kind"] for o in rendered] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    for obj in rendered:
        assert obj["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert violations(obj) == [], violations(obj)
    policy, binding = rendered
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
    }
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert set(rule["resources"]) == {
        "workflows",
        "workflowtemplates",
        "clusterworkflowtemplates",
        "cronworkflows",
    }
    assert set(rule["operations"]) == {"CREATE", "UPDATE"}


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("spec.serviceAccountName", plain(serviceAccountName=TEAM)),
        ("executor", plain(executor={"serviceAccountName": TEAM})),
        ("a template's account", plain(template={"serviceAccountName": TEAM})),
        ("a template's executor", plain(template={"executor": {"serviceAccountName": TEAM}})),
        ("templateDefaults", plain(templateDefaults={"serviceAccountName": TEAM})),
        ("podSpecPatch", plain(podSpecPatch=f'{{"serviceAccountName": "{TEAM}"}}')),
        (
            "a template's podSpecPatch",
            plain(template={"podSpecPatch": f"serviceAccountName: {TEAM}"}),
        ),
        (
            "an escaped podSpecPatch",
            plain(podSpecPatch='{"serviceAccountName": "\\u0063f-canaryflow-release-bank"}'),
        ),
        ("a YAML tag in podSpecPatch", plain(podSpecPatch="serviceAccountName: !!binary Y2Yt")),
        (
            "an inline step",
            plain(
                template={
                    "container": None,
                    "steps": [
                        [
                            {
                                "name": "s",
                                "inline": {"container": CONTAINER, "serviceAccountName": TEAM},
                            }
                        ]
                    ],
                }
            ),
        ),
        (
            "an inline dag task",
            plain(
                template={
                    "container": None,
                    "dag": {"tasks": [{"name": "d", "inline": {"serviceAccountName": TEAM}}]},
                }
            ),
        ),
        (
            "the release template with an account",
            workflow({**RELEASE_REF, "serviceAccountName": TEAM}),
        ),
        ("artifact GC's account", plain(artifactGC={"serviceAccountName": TEAM})),
        (
            "an output artifact's GC",
            plain(
                template={
                    "outputs": {
                        "artifacts": [
                            {"name": "a", "path": "/a", "artifactGC": {"serviceAccountName": TEAM}}
                        ]
                    }
                }
            ),
        ),
        (
            "another team's template",
            workflow({"serviceAccountName": TEAM, "templates": []}, "WorkflowTemplate", "evil"),
        ),
        (
            "a cluster template",
            workflow({"serviceAccountName": TEAM}, "ClusterWorkflowTemplate", "go-canary-release"),
        ),
    ],
)
def test_a_workflow_or_template_naming_a_team_account_is_denied(policy, name, obj):
    obj = copy.deepcopy(obj)
    for template in obj["spec"].get("templates", []):
        if template.get("container") is None:
            template.pop("container", None)
    assert any("per-team release accounts" in m for m in denials(policy, obj)), name


@pytest.mark.parametrize(
    "override",
    [
        {"entrypoint": "promote"},  # start the release midway, past its gates
        {"podSpecPatch": '{"hostNetwork": true}'},
        {"templates": [{"name": "release", "container": CONTAINER}]},
        {"securityContext": {"runAsUser": 0}},
        {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]},
        {"artifactGC": {"podSpecPatch": '{"hostNetwork": true}'}},  # CVE-2026-54526's way
    ],
    ids=["entrypoint", "podSpecPatch", "templates", "securityContext", "volumes", "artifactGC"],
)
def test_a_workflow_overriding_the_release_template_beyond_its_arguments_is_denied(
    policy, override
):
    obj = workflow({**RELEASE_REF, "arguments": ARGUMENTS, **override})
    assert any("may set only spec.arguments" in m for m in denials(policy, obj))


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("argo submit --from", workflow({**RELEASE_REF, "arguments": ARGUMENTS})),
        (
            "argo stop",
            workflow({**RELEASE_REF, "arguments": ARGUMENTS, "shutdown": "Stop"}),
        ),
        (
            "a clean-up override",
            workflow({**RELEASE_REF, "ttlStrategy": {"secondsAfterSuccess": 60}, "podGC": {}}),
        ),
        ("another team's plain workflow", plain(serviceAccountName="argo-workflow")),
        ("the generic account", plain(serviceAccountName="canaryflow-release")),
        ("an unrelated podSpecPatch", plain(podSpecPatch='{"priority": 1}')),
        (
            "another template referenced",
            workflow({"workflowTemplateRef": {"name": "nightly"}, "entrypoint": "x"}),
        ),
    ],
)
def test_what_releases_and_other_users_submit_is_admitted(policy, name, obj):
    assert denials(policy, obj) == [], name


def cron(workflow_spec: Obj) -> Obj:
    """A CronWorkflow: the Workflows it creates carry ``workflow_spec`` as their spec."""
    workflow_spec = copy.deepcopy(workflow_spec)
    for template in workflow_spec.get("templates", []):
        if template.get("container") is None:
            template.pop("container", None)
    obj = workflow({"schedules": ["0 3 * * *"], "workflowSpec": workflow_spec}, "CronWorkflow")
    assert violations(obj) == [], violations(obj)  # a CronWorkflow the API server would take
    return obj


def plain_spec(**extra: Any) -> Obj:
    return plain(**extra)["spec"]


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("workflowSpec.serviceAccountName", cron(plain_spec(serviceAccountName=TEAM))),
        ("its executor", cron(plain_spec(executor={"serviceAccountName": TEAM}))),
        ("a template's account", cron(plain_spec(template={"serviceAccountName": TEAM}))),
        ("templateDefaults", cron(plain_spec(templateDefaults={"serviceAccountName": TEAM}))),
        ("artifactGC", cron(plain_spec(artifactGC={"serviceAccountName": TEAM}))),
        ("podSpecPatch", cron(plain_spec(podSpecPatch=f"serviceAccountName: {TEAM}"))),
        ("an escaped podSpecPatch", cron(plain_spec(podSpecPatch='{"a": "\\u0063f"}'))),
        (
            "an inline DAG task",
            cron(
                plain_spec(
                    template={
                        "container": None,
                        "dag": {
                            "tasks": [
                                {
                                    "name": "d",
                                    "inline": {"container": CONTAINER, "serviceAccountName": TEAM},
                                }
                            ]
                        },
                    }
                )
            ),
        ),
    ],
)
def test_a_cron_workflow_naming_a_team_account_is_denied(policy, name, obj):
    """A CronWorkflow is refused at its creation, not only each Workflow it creates later
    (which the policy refuses too): the schedule never runs as a team."""
    assert any("a CronWorkflow's spec.workflowSpec may name no" in m for m in denials(policy, obj))


@pytest.mark.parametrize(
    "override",
    [
        {"entrypoint": "promote"},
        {"podSpecPatch": '{"hostNetwork": true}'},
        {"templates": [{"name": "release", "container": CONTAINER}]},
        {"artifactGC": {"podSpecPatch": '{"hostNetwork": true}'}},
    ],
    ids=["entrypoint", "podSpecPatch", "templates", "artifactGC"],
)
def test_a_cron_workflow_overriding_the_release_template_beyond_its_arguments_is_denied(
    policy, override
):
    obj = cron({**RELEASE_REF, "arguments": ARGUMENTS, **override})
    assert any("may set only spec.workflowSpec.arguments" in m for m in denials(policy, obj))


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("a nightly release", cron({**RELEASE_REF, "arguments": ARGUMENTS})),
        (
            "a nightly release, cleaned up",
            cron(
                {**RELEASE_REF, "arguments": ARGUMENTS, "ttlStrategy": {"secondsAfterSuccess": 9}}
            ),
        ),
        ("another team's cron job", cron(plain_spec(serviceAccountName="argo-workflow"))),
        ("an unrelated podSpecPatch", cron(plain_spec(podSpecPatch='{"priority": 1}'))),
        (
            "another template referenced",
            cron({"workflowTemplateRef": {"name": "nightly"}, "entrypoint": "x"}),
        ),
    ],
)
def test_cron_workflows_that_run_the_release_or_name_no_team_account_are_admitted(
    policy, name, obj
):
    assert denials(policy, obj) == [], name


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"templates": {"scope": "cluster"}},
        {"fullnameOverride": "team-a", **copy.deepcopy(WEBHOOK_VALUES)},
        {"monitoring": {"argoMetrics": {"enabled": True}}, **copy.deepcopy(WEBHOOK_VALUES)},
    ],
    ids=["defaults", "cluster-scope", "fullnameOverride", "events"],
)
def test_the_charts_own_argo_objects_and_the_sensors_workflows_are_admitted(values):
    """The release templates name `<prefix>-{{workflow.parameters.namespace}}` themselves: they
    are the exception the policy makes; every other chart object names no team account."""
    rendered = objects(values)
    policy = policy_of(values)
    argo = [
        o
        for o in rendered
        if o["kind"] in ("WorkflowTemplate", "ClusterWorkflowTemplate", "Workflow")
    ]
    assert argo
    for obj in argo:
        assert denials(policy, obj) == [], obj["metadata"]["name"]
    for sensor in of_kind(rendered, "Sensor"):
        for trigger in sensor["spec"]["triggers"]:
            created = copy.deepcopy(trigger["template"]["k8s"]["source"]["resource"])
            created["metadata"]["name"] = "checkout-x7k2p"
            assert created["spec"]["workflowTemplateRef"]["name"].endswith("go-canary-release")
            assert denials(policy, created) == []


def test_the_prefix_and_template_names_follow_the_release():
    policy = policy_of({"fullnameOverride": "team-a"})
    renamed = "team-a-go-canary-release"
    team = "team-a-release-bank"
    release = workflow({"workflowTemplateRef": {"name": renamed}, "arguments": ARGUMENTS})
    assert denials(policy, release) == []
    assert denials(policy, plain(serviceAccountName=team))
    assert denials(policy, workflow({"workflowTemplateRef": {"name": renamed}, "entrypoint": "x"}))
    assert (
        denials(policy, workflow({"serviceAccountName": team}, "WorkflowTemplate", renamed)) == []
    )


def test_a_release_named_canaryflow_keeps_the_generic_account_usable():
    """Release "canaryflow": the prefix is canaryflow-release-, the generic account
    canaryflow-release (Tekton's, a hand-made Workflow's: executor rights only) stays usable."""
    policy = policy_of({"fullnameOverride": "canaryflow"})
    assert denials(policy, plain(serviceAccountName="canaryflow-release")) == []
    assert denials(policy, plain(serviceAccountName="canaryflow-release-bank"))


def test_the_policy_is_optional_per_engine_and_its_actions_are_values():
    """With engine tekton the policy of the same name covers Tekton's runs instead
    (tests/test_chart_submitter_policy_tekton.py): no rule of the Argo one is rendered."""
    assert render({"submitterPolicy": {"enabled": False}})[TEMPLATE] == []
    tekton = {"engine": "tekton", **copy.deepcopy(WEBHOOK_VALUES)}
    assert render({**tekton, "submitterPolicy": {"enabled": False}})[TEMPLATE] == []
    (tekton_policy, _) = render(tekton)[TEMPLATE]
    (rule, *_) = tekton_policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == ["tekton.dev"]
    assert tekton_policy["metadata"]["name"] == policy_of()["metadata"]["name"]
    (_, binding) = render({"submitterPolicy": {"validationActions": ["Warn", "Audit"]}})[TEMPLATE]
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]


@pytest.mark.parametrize(
    "actions", [["Deny", "Warn"], [], ["Block"]], ids=["deny-and-warn", "none", "unknown"]
)
def test_the_values_schema_refuses_actions_kubernetes_refuses(actions):
    with pytest.raises(Exception, match="validationActions"):
        render({"submitterPolicy": {"validationActions": actions}})


def test_the_notes_name_the_policy_when_it_is_on():
    with helm.Chart.load(CHART) as chart:
        notes = chart.render(name="cf", namespace=NAMESPACE, is_install=True)[
            "canaryflow/templates/NOTES.txt"
        ]
        off = chart.render({"submitterPolicy": {"enabled": False}}, name="cf", namespace=NAMESPACE)[
            "canaryflow/templates/NOTES.txt"
        ]
    assert f"ValidatingAdmissionPolicy {policy_of()['metadata']['name']} (Deny)" in notes
    assert "ValidatingAdmissionPolicy" not in off
