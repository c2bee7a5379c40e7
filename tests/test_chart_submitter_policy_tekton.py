"""Submitter isolation on Tekton: with ``engine: tekton`` the chart's ValidatingAdmissionPolicy
lets a per-team release account run only the chart's Pipelines, for the namespace the run
names, with the build tasks isolated, and lets only Tekton's controller create TaskRuns and
CustomRuns as one.

The policy's CEL is evaluated with cel-python as the API server evaluates it (each of
``spec.variables`` in order, then every validation; a false one denies) with ``object``,
``oldObject`` and ``request`` (``operation``, ``userInfo.username``) bound as in Kubernetes'
admission/plugin/policy/validating (Kubernetes 1.30). The PipelineRuns are the chart's own: the
rendered TriggerTemplate instantiated by tests/tekton_triggers_sim.py for a push of each
registered service. The TaskRuns are what tektoncd/pipeline v1.15.0
pkg/reconciler/pipelinerun/pipelinerun.go ``createTaskRun`` builds for each pipeline task
(account and pod template from ``PipelineRun.GetTaskRunSpec``, workspaces from
``getTaskrunWorkspaces``: tests/tekton_sim.py ``TaskRunBuilder``). Every Tekton object used
here is valid against Tekton's v1.15.0 CRD schema (tests/tekton_schemas.py).
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import pytest
from admission_policy import denials as admission_denials
from admission_policy import program
from chart_validation import NAMESPACE, WEBHOOK_VALUES, objects, render, violations
from tekton_schemas import crd as tekton_crd
from tekton_schemas import violations as tekton_violations
from tekton_sim import TaskRunBuilder
from tekton_triggers_sim import Listener, payload

from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.pods_template import isolated_verbs

TEMPLATE = "canaryflow/templates/submitter-policy.yaml"
CONTROLLER = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller"
USER = "alice@example.com"
TRIGGERS = f"system:serviceaccount:{NAMESPACE}:cf-canaryflow-triggers"
PREFIX = "cf-canaryflow-release-"
SERVICES = {
    "acme/payments": {"namespace": "bank"},
    "acme/checkout": {"namespace": "shop"},
    "acme/basket": {"namespace": "shop", "service": "cart"},
    "acme/ledger": {},  # the release namespace
}
TEKTON = {
    "engine": "tekton",
    "events": {**copy.deepcopy(WEBHOOK_VALUES["events"]), "services": SERVICES},
}
TRIGGER_KINDS = {"EventListener", "Trigger", "TriggerBinding", "TriggerTemplate"}
Obj = dict[str, Any]

# The messages, one per rule (a hostile case must be refused for its own reason).
PIPELINE = "must reference the chart's Pipeline"
NAMESPACE_RULE = "only as the release account of the namespace it releases in"
BUILD = "without a token"
KEYS = "may set only spec.pipelineRef"
WORKSPACES = "binds only the chart's workspaces"
CHILD = "is created only by the Tekton Pipelines controller"


def values_with(**extra: Any) -> Obj:
    values = copy.deepcopy(TEKTON)
    for key, value in extra.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    return values


def denials(policy: Obj, obj: Obj, user: str = USER, operation: str = "CREATE",
            old: Obj | None = None) -> list[str]:  # fmt: skip
    """``admission_policy.denials`` as a user (``USER``) submits by default."""
    return admission_denials(policy, obj, user, operation, old)


def variable(policy: Obj, name: str) -> Any:
    """A variable of the policy that reads no object (a constant), as plain Python."""
    (expression,) = [v["expression"] for v in policy["spec"]["variables"] if v["name"] == name]
    return json.loads(json.dumps(program(expression).evaluate({}), default=str))


def refused_for(policy: Obj, obj: Obj, reason: str, **request: Any) -> bool:
    return any(reason in message for message in denials(policy, obj, **request))


@functools.cache
def _rendered(key: str) -> list[Obj]:
    return objects(json.loads(key))


def rendered(values: Obj) -> list[Obj]:
    return copy.deepcopy(_rendered(json.dumps(values, sort_keys=True)))


def policy_of(values: Obj) -> Obj:
    (policy,) = [o for o in rendered(values) if o["kind"] == "ValidatingAdmissionPolicy"]
    return policy


def push(repository: str) -> Obj:
    """A GitHub push to main of ``repository`` (the sample payload, renamed)."""
    event = payload("github-push-main.json")
    event["body"]["repository"]["full_name"] = repository
    event["body"]["repository"]["name"] = repository.split("/")[1]
    event["body"]["repository"]["clone_url"] = f"https://github.com/{repository}.git"
    return event


def trigger_runs(values: Obj) -> list[Obj]:
    """The PipelineRun Tekton Triggers creates for a push of each registered service, named
    as the API server names a ``generateName`` object."""
    listener = Listener([o for o in rendered(values) if o["kind"] in TRIGGER_KINDS])
    runs = []
    for index, repository in enumerate(sorted(values["events"]["services"])):
        (run,) = listener.runs(push(repository))
        metadata = run["metadata"]
        metadata["name"] = f"{metadata.pop('generateName')}x7k2{index}"
        metadata["namespace"] = NAMESPACE
        assert tekton_violations(run) == [], tekton_violations(run)
        runs.append(run)
    return runs


def param(run: Obj, name: str) -> str:
    (value,) = [p["value"] for p in run["spec"]["params"] if p["name"] == name]
    return value


def task_runs(run: Obj, pipeline: Obj) -> list[Obj]:
    """The TaskRuns Tekton's controller creates for ``run``: tektoncd/pipeline v1.15.0
    pipelinerun.go ``createTaskRun`` (name ``<run>-<task>``, owner, labels, retries, params,
    the account and pod template of ``GetTaskRunSpec``, taskRef, workspaces, timeout)."""
    builder = TaskRunBuilder(run)
    created = []
    for member, tasks in (
        ("tasks", pipeline["spec"]["tasks"]),
        ("finally", pipeline["spec"].get("finally", [])),
    ):
        for task in tasks:
            account, pod = builder.identity(task["name"])
            spec: Obj = {
                "params": task.get("params", []),
                "serviceAccountName": account,
                "taskRef": task["taskRef"],
                "workspaces": builder.workspaces(task),
                "timeout": task.get("timeout", "23h45m0s"),
            }
            if pod:
                spec["podTemplate"] = pod
            if "retries" in task:
                spec["retries"] = task["retries"]
            task_run = {
                "apiVersion": "tekton.dev/v1",
                "kind": "TaskRun",
                "metadata": {
                    "name": f"{run['metadata']['name']}-{task['name']}",
                    "namespace": run["metadata"]["namespace"],
                    "ownerReferences": [
                        {
                            "apiVersion": "tekton.dev/v1",
                            "kind": "PipelineRun",
                            "name": run["metadata"]["name"],
                            "uid": builder.uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                    "labels": {
                        **run["metadata"].get("labels", {}),
                        "tekton.dev/pipelineRun": run["metadata"]["name"],
                        "tekton.dev/pipelineTask": task["name"],
                        "tekton.dev/memberOf": member,
                    },
                },
                "spec": spec,
            }
            assert tekton_violations(task_run) == [], tekton_violations(task_run)
            created.append(task_run)
    return created


def pipeline_of(values: Obj, name: str) -> Obj:
    (pipeline,) = [
        o for o in rendered(values) if o["kind"] == "Pipeline" and o["metadata"]["name"] == name
    ]
    return pipeline


CONFIGURATIONS = {
    "defaults": TEKTON,
    "fullnameOverride": values_with(fullnameOverride="team-a"),
    "serviceAccount.name": values_with(serviceAccount={"name": "canaryflow"}),
    "buildServiceAccount.name": values_with(buildServiceAccount={"name": "go-builder"}),
    "plan.inline": values_with(plan={"inline": "service:\n  name: x\n"}),
    "scheduling": values_with(
        nodeSelector={"pool": "ci"},
        tolerations=[{"key": "ci", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={"nodeAffinity": {}},
        imagePullSecrets=[{"name": "pull"}],
        priorityClassName="ci",
    ),
    "secret names": values_with(
        gitops={"credentialsSecret": "gitops-push"}, notifications={"secretName": "hooks"}
    ),
    **{
        f"routerKind {kind}": values_with(release={"routerKind": kind})
        for kind in ("istio", "gateway-api", "nginx-ingress", "smi")
    },
}


@pytest.mark.parametrize("values", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_the_triggers_runs_and_their_task_runs_are_admitted(values):
    """Every push of a registered service: its PipelineRun passes as the EventListener's
    account creates it, and each TaskRun the controller creates for it passes as the
    controller's and is refused as a user's."""
    policy = policy_of(values)
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == [
        "pipelineruns",
        "taskruns",
    ]
    runs = trigger_runs(values)
    assert len(runs) == len(values["events"]["services"])
    prefix = variable(policy, "prefix")
    for run in runs:
        namespace = param(run, "namespace")
        assert run["spec"]["taskRunTemplate"]["serviceAccountName"] == prefix + namespace
        assert denials(policy, run, user=TRIGGERS) == [], run["metadata"]["name"]
        assert denials(policy, run, user=TRIGGERS, operation="UPDATE", old=run) == []
    # The TaskRuns of one run (the others' differ only in the team account's name).
    run = runs[0]
    pipeline = pipeline_of(values, run["spec"]["pipelineRef"]["name"])
    children = task_runs(run, pipeline)
    build = variable(policy, "buildAccount")  # the chart's build ServiceAccount:
    assert [
        o
        for o in rendered(values)
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == build
    ]
    accounts = {
        t["metadata"]["labels"]["tekton.dev/pipelineTask"]: t["spec"]["serviceAccountName"]
        for t in children
    }
    assert {task for task, account in accounts.items() if account == build} == {
        "validate-plan",
        "go-test",
        "go-build",
    }
    team = [t for t in children if t["spec"]["serviceAccountName"] != build]
    assert {t["spec"]["serviceAccountName"] for t in team} == {prefix + param(run, "namespace")}
    for task_run in children:
        assert denials(policy, task_run, user=CONTROLLER) == [], task_run["metadata"]["name"]
    for task_run in team:
        assert refused_for(policy, task_run, CHILD), task_run["metadata"]["name"]


def test_every_registered_namespace_gets_its_own_account_and_no_other():
    runs = {param(r, "namespace"): r for r in trigger_runs(TEKTON)}
    assert set(runs) == {"bank", "shop", NAMESPACE}
    policy = policy_of(TEKTON)
    for namespace, run in runs.items():
        for other in set(runs) - {namespace}:
            hostile = copy.deepcopy(run)
            hostile["spec"]["taskRunTemplate"]["serviceAccountName"] = PREFIX + other
            assert refused_for(policy, hostile, NAMESPACE_RULE), (namespace, other)


def test_the_build_tasks_are_the_ones_the_chart_isolates():
    """The policy's list of build tasks per Pipeline is what the chart runs as the build
    account without a token: the TriggerTemplate's taskRunSpecs for the release, and every
    pipeline task of a Pipeline whose Task runs an isolated verb (the library's
    automountServiceAccountToken: false)."""
    policy = policy_of(TEKTON)
    build_tasks = variable(policy, "buildTasks")
    isolated = {f"canaryflow-{verb}" for verb in isolated_verbs(WorkflowSettings())}
    assert isolated == {"canaryflow-validate-plan", "canaryflow-go-test", "canaryflow-go-build"}
    for name in ("go-canary-release", "feature-flag-rollout"):
        tasks = pipeline_of(TEKTON, name)["spec"]["tasks"]
        assert sorted(build_tasks[name]) == sorted(
            t["name"] for t in tasks if t["taskRef"]["name"] in isolated
        )
    (run, *_) = trigger_runs(TEKTON)
    assert sorted(build_tasks["go-canary-release"]) == sorted(
        s["pipelineTaskName"] for s in run["spec"]["taskRunSpecs"]
    )


@pytest.fixture(scope="module")
def policy() -> Obj:
    return policy_of(TEKTON)


@pytest.fixture(scope="module")
def bank_run() -> Obj:
    (run,) = [r for r in trigger_runs(TEKTON) if param(r, "namespace") == "bank"]
    # HOSTILE edits the first two workspaces by position.
    assert [w["name"] for w in run["spec"]["workspaces"]][:2] == ["source", "registry-auth"]
    return run


def edited(run: Obj, edit) -> Obj:
    hostile = copy.deepcopy(run)
    edit(hostile["spec"])
    assert tekton_violations(hostile) == [], tekton_violations(hostile)
    return hostile


def _set_param(spec: Obj, name: str, value: str) -> None:
    for entry in spec["params"]:
        if entry["name"] == name:
            entry["value"] = value


def _build_entry(spec: Obj, task: str) -> Obj:
    (entry,) = [s for s in spec["taskRunSpecs"] if s["pipelineTaskName"] == task]
    return entry


INLINE = {
    "tasks": [
        {
            "name": "steal",
            "taskSpec": {
                "steps": [
                    {
                        "name": "s",
                        "image": "bitnami/kubectl",
                        "script": "kubectl -n bank get secrets",
                    }
                ]
            },
        }
    ]
}
HOSTILE = {
    "an inline pipelineSpec": (
        PIPELINE,
        lambda s: (s.pop("pipelineRef"), s.update(pipelineSpec=INLINE)),
    ),
    "another Pipeline": (PIPELINE, lambda s: s.update(pipelineRef={"name": "nightly"})),
    "a resolver": (
        PIPELINE,
        lambda s: s.update(
            pipelineRef={
                "resolver": "git",
                "params": [{"name": "url", "value": "https://github.com/evil/p.git"}],
            }
        ),
    ),
    "the namespace param of another team": (
        NAMESPACE_RULE,
        lambda s: _set_param(s, "namespace", "shop"),
    ),
    "an empty namespace param": (NAMESPACE_RULE, lambda s: _set_param(s, "namespace", "")),
    "a second namespace param": (
        NAMESPACE_RULE,
        lambda s: s["params"].append({"name": "namespace", "value": "bank"}),
    ),
    "another team's account for one task": (
        NAMESPACE_RULE,
        lambda s: s["taskRunSpecs"].append(
            {"pipelineTaskName": "deploy-canary", "serviceAccountName": f"{PREFIX}shop"}
        ),
    ),
    "go-build as the team's account": (
        BUILD,
        lambda s: _build_entry(s, "go-build").update(serviceAccountName=f"{PREFIX}bank"),
    ),
    "go-test with its token": (
        BUILD,
        lambda s: _build_entry(s, "go-test")["podTemplate"].update(
            automountServiceAccountToken=True
        ),
    ),
    "no entry for validate-plan": (
        BUILD,
        lambda s: s.update(
            taskRunSpecs=[e for e in s["taskRunSpecs"] if e["pipelineTaskName"] != "validate-plan"]
        ),
    ),
    "a second go-build entry": (
        BUILD,
        lambda s: s["taskRunSpecs"].append(
            {"pipelineTaskName": "go-build", "serviceAccountName": f"{PREFIX}bank"}
        ),
    ),
    "env in the pod template": (
        KEYS,
        lambda s: s["taskRunTemplate"]["podTemplate"].update(
            env=[{"name": "PYTHONSTARTUP", "value": "/workspace/x.py"}]
        ),
    ),
    "a volume in a task's pod template": (
        KEYS,
        lambda s: _build_entry(s, "go-build")["podTemplate"].update(
            volumes=[{"name": "host", "hostPath": {"path": "/"}}]
        ),
    ),
    "host network": (KEYS, lambda s: s["taskRunTemplate"]["podTemplate"].update(hostNetwork=True)),
    "host aliases": (
        KEYS,
        lambda s: s["taskRunTemplate"]["podTemplate"].update(
            hostAliases=[{"ip": "10.0.0.9", "hostnames": ["prometheus.example.com"]}]
        ),
    ),
    "managedBy": (KEYS, lambda s: s.update(managedBy="example.com/other-controller")),
    "a taskRunSpecs sidecar": (
        KEYS,
        lambda s: _build_entry(s, "go-build").update(
            sidecarSpecs=[{"name": "x", "computeResources": {}}]
        ),
    ),
    "source on an existing claim": (
        WORKSPACES,
        lambda s: s["workspaces"].__setitem__(
            0, {"name": "source", "persistentVolumeClaim": {"claimName": "shared"}}
        ),
    ),
    "a claim bound to a chosen volume": (
        WORKSPACES,
        lambda s: s["workspaces"][0]["volumeClaimTemplate"]["spec"].update(volumeName="seeded"),
    ),
    "registry-auth from another Secret": (
        WORKSPACES,
        lambda s: s["workspaces"][1]["secret"].update(secretName="other-team-registry"),
    ),
    "an extra workspace": (
        WORKSPACES,
        lambda s: s["workspaces"].append({"name": "x", "emptyDir": {}}),
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=HOSTILE.keys())
def test_a_hostile_pipeline_run_naming_a_team_account_is_refused_for_its_reason(
    policy, bank_run, case
):
    reason, edit = HOSTILE[case]
    hostile = edited(bank_run, edit)
    assert refused_for(policy, hostile, reason, user=TRIGGERS), denials(policy, hostile)
    assert refused_for(policy, hostile, reason, operation="UPDATE", old=bank_run)


def team_task_run(**spec: Any) -> Obj:
    task_run = {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": "steal", "namespace": NAMESPACE},
        "spec": {
            "serviceAccountName": f"{PREFIX}bank",
            "taskSpec": {
                "steps": [
                    {"name": "s", "image": "bitnami/kubectl", "script": "kubectl get secrets"}
                ]
            },
            **spec,
        },
    }
    assert tekton_violations(task_run) == [], tekton_violations(task_run)
    return task_run


def test_a_task_run_naming_a_team_account_is_the_controllers_alone(policy):
    task_run = team_task_run()
    assert refused_for(policy, task_run, CHILD)
    assert refused_for(policy, task_run, CHILD, user=TRIGGERS)
    assert refused_for(
        policy, task_run, CHILD, user=f"system:serviceaccount:{NAMESPACE}:{PREFIX}bank"
    )
    assert denials(policy, task_run, user=CONTROLLER) == []
    assert denials(policy, team_task_run(serviceAccountName="default")) == []
    assert denials(policy, team_task_run(serviceAccountName="canaryflow-build")) == []


def test_a_user_may_cancel_a_controllers_task_run_but_not_change_its_account(policy):
    old = team_task_run()
    cancelled = copy.deepcopy(old)
    cancelled["spec"]["status"] = "TaskRunCancelled"
    assert tekton_violations(cancelled) == []
    assert denials(policy, cancelled, operation="UPDATE", old=old) == []
    innocent = team_task_run(serviceAccountName="default")
    taken = team_task_run()
    assert refused_for(policy, taken, CHILD, operation="UPDATE", old=innocent)
    changed = copy.deepcopy(old)
    changed["spec"]["taskSpec"]["steps"][0]["script"] = "kubectl -n bank delete deploy --all"
    assert refused_for(policy, changed, CHILD, operation="UPDATE", old=old)


def test_a_custom_run_naming_a_team_account_is_the_controllers_alone(policy, bank_run):
    """An approval step's CustomRun, as ``createCustomRun`` builds it (the account from
    ``GetTaskRunSpec``): a custom task controller may run pods as it."""
    custom_run = {
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": f"{bank_run['metadata']['name']}-approve-3", "namespace": NAMESPACE},
        "spec": {
            "customRef": {"apiVersion": "openshift-pipelines.org/v1alpha1", "kind": "ApprovalTask"},
            "params": [{"name": "approvers", "value": ["group:canaryflow-approvers"]}],
            "serviceAccountName": f"{PREFIX}bank",
            "timeout": "1h0m0s",
        },
    }
    assert tekton_violations(custom_run) == [], tekton_violations(custom_run)
    assert denials(policy, custom_run, user=CONTROLLER) == []
    assert refused_for(policy, custom_run, CHILD)


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("no account at all", {"pipelineSpec": INLINE}),
        (
            "the default account",
            {"pipelineSpec": INLINE, "taskRunTemplate": {"serviceAccountName": "default"}},
        ),
        (
            "the build account",
            {"pipelineSpec": INLINE, "taskRunTemplate": {"serviceAccountName": "canaryflow-build"}},
        ),
        (
            "another team's pipeline",
            {
                "pipelineRef": {"name": "nightly"},
                "taskRunTemplate": {
                    "serviceAccountName": "ci",
                    "podTemplate": {"hostNetwork": True},
                },
            },
        ),
    ],
)
def test_pipeline_runs_naming_no_team_account_are_left_alone(policy, name, spec):
    run = {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": "other", "namespace": NAMESPACE},
        "spec": spec,
    }
    assert tekton_violations(run) == [], tekton_violations(run)
    assert denials(policy, run) == [], name


def test_a_hand_started_run_as_documented_is_admitted(policy, bank_run):
    """``tkn pipeline start``'s PipelineRun file: the Trigger's run, started by a person, with
    Tekton's defaults (timeouts) and a cancel added later."""
    run = copy.deepcopy(bank_run)
    run["spec"]["timeouts"] = {"pipeline": "1h0m0s", "tasks": "45m0s", "finally": "15m0s"}
    assert denials(policy, run) == []
    cancelled = copy.deepcopy(run)
    cancelled["spec"]["status"] = "CancelledRunFinally"
    assert denials(policy, cancelled, operation="UPDATE", old=run) == []


def test_the_policy_is_bound_to_the_release_namespace_and_valid():
    rendered_policy = render(TEKTON)[TEMPLATE]
    assert [o["kind"] for o in rendered_policy] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    for obj in rendered_policy:
        assert violations(obj) == [], violations(obj)
    policy, binding = rendered_policy
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
    }
    constraints = policy["spec"]["matchConstraints"]
    assert constraints["matchPolicy"] == "Equivalent"
    assert [
        (r["apiGroups"], r["apiVersions"], r["resources"]) for r in constraints["resourceRules"]
    ] == [
        (["tekton.dev"], ["v1"], ["pipelineruns", "taskruns"]),
        (["tekton.dev"], ["v1beta1"], ["customruns"]),
        (["triggers.tekton.dev"], ["v1beta1"], ["triggers", "eventlisteners"]),
    ]


def test_the_controller_is_a_value():
    other = "system:serviceaccount:openshift-pipelines:tekton-pipelines-controller"
    policy = policy_of(values_with(submitterPolicy={"tektonController": other}))
    task_run = team_task_run()
    assert denials(policy, task_run, user=other) == []
    assert refused_for(policy, task_run, CHILD, user=CONTROLLER)


def test_a_flag_rollout_runs_as_the_team_with_validate_plan_isolated(policy, bank_run):
    """feature-flag-rollout (started by hand, as on Argo): its one build task is validate-plan."""
    pipeline = pipeline_of(TEKTON, "feature-flag-rollout")
    given = {"repo": "https://github.com/acme/payments.git", "namespace": "bank"}
    run = copy.deepcopy(bank_run)
    run["metadata"]["name"] = "feature-flag-rollout-x7k2p"
    run["spec"].update(
        pipelineRef={"name": "feature-flag-rollout"},
        params=[
            {"name": p["name"], "value": given.get(p["name"], "x")}
            for p in pipeline["spec"]["params"]
            if "default" not in p
        ],
        workspaces=bank_run["spec"]["workspaces"][:1],
        taskRunSpecs=[_build_entry(bank_run["spec"], "validate-plan")],
    )
    assert tekton_violations(run) == [], tekton_violations(run)
    assert denials(policy, run) == []
    for task_run in task_runs(run, pipeline):
        assert denials(policy, task_run, user=CONTROLLER) == []
    run["spec"]["taskRunSpecs"] = []
    assert refused_for(policy, run, BUILD)


# Tekton Triggers (the policy's 9.): the identities an EventListener creates resources with.
TRIGGER = "a Trigger may not name a per-team release account"
INLINE_TRIGGER = "in spec.triggers[].serviceAccountName"
LISTENER = "an EventListener may not run as a per-team release account"
TRIGGERS_ACCOUNT = "cf-canaryflow-triggers"
# How the API server names each kind's resource (the CRDs' spec.names.plural).
PLURALS = {
    "PipelineRun": "pipelineruns",
    "TaskRun": "taskruns",
    "CustomRun": "customruns",
    "Trigger": "triggers",
    "EventListener": "eventlisteners",
}


def matched(policy: Obj, obj: Obj) -> bool:
    """The policy's resourceRules match ``obj`` (matchPolicy Equivalent: any served version
    of a matched group and resource; CREATE and UPDATE)."""
    group = obj["apiVersion"].split("/")[0]
    constraints = policy["spec"]["matchConstraints"]
    assert constraints["matchPolicy"] == "Equivalent"
    return any(
        group in rule["apiGroups"]
        and PLURALS[obj["kind"]] in rule["resources"]
        and {"CREATE", "UPDATE"} <= set(rule["operations"])
        for rule in constraints["resourceRules"]
    )


def chart_triggers(values: Obj) -> list[Obj]:
    found = [o for o in rendered(values) if o["kind"] in {"Trigger", "EventListener"}]
    assert {o["kind"] for o in found} == {"Trigger", "EventListener"}
    for obj in found:
        assert tekton_violations(obj) == [], tekton_violations(obj)
    return found


TRIGGER_CONFIGURATIONS = {
    **CONFIGURATIONS,
    # The triggers account then starts with the team prefix (cf-), without being a team's.
    "serviceAccount.name a prefix of the triggers account": values_with(
        serviceAccount={"name": "cf"}
    ),
    "gitlab": values_with(events={"gitlab": {"enabled": True}}),
}


@pytest.mark.parametrize(
    "values", TRIGGER_CONFIGURATIONS.values(), ids=TRIGGER_CONFIGURATIONS.keys()
)
def test_the_charts_triggers_and_event_listener_are_seen_and_admitted(values):
    policy = policy_of(values)
    for obj in chart_triggers(values):
        assert matched(policy, obj), obj["kind"]
        assert denials(policy, obj) == [], obj["metadata"]["name"]
        assert denials(policy, obj, operation="UPDATE", old=obj) == []


def test_the_triggers_account_may_start_with_the_team_prefix():
    values = TRIGGER_CONFIGURATIONS["serviceAccount.name a prefix of the triggers account"]
    policy = policy_of(values)
    (listener,) = [o for o in chart_triggers(values) if o["kind"] == "EventListener"]
    account = listener["spec"]["serviceAccountName"]
    assert account.startswith(variable(policy, "prefix")), (account, variable(policy, "prefix"))
    assert variable(policy, "triggersAccount") == account
    assert denials(policy, listener) == []


@pytest.fixture(scope="module")
def chart_trigger() -> Obj:
    (trigger, *_) = [o for o in chart_triggers(TEKTON) if o["kind"] == "Trigger"]
    return trigger


@pytest.fixture(scope="module")
def chart_listener() -> Obj:
    (listener,) = [o for o in chart_triggers(TEKTON) if o["kind"] == "EventListener"]
    assert listener["spec"]["serviceAccountName"] == TRIGGERS_ACCOUNT
    return listener


# What a Trigger of its own could create as a team's account: a Deployment in the team's
# namespace (pkg/resources/create.go: the template's metadata.namespace is used).
ROGUE_TEMPLATE = {
    "spec": {
        "resourcetemplates": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "miner", "namespace": "bank"},
                "spec": {
                    "selector": {"matchLabels": {"app": "miner"}},
                    "template": {
                        "metadata": {"labels": {"app": "miner"}},
                        "spec": {"containers": [{"name": "m", "image": "evil/miner"}]},
                    },
                },
            }
        ]
    }
}
KNATIVE = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Service",
    "spec": {"template": {"spec": {"containers": [{"resources": {}}]}}},
}


def _as(spec: Obj, *path_and_value: Any) -> None:
    *path, key, value = path_and_value
    for step in path:
        spec = spec.setdefault(step, {})
    spec[key] = value


def _knative(account: str, spec: str = "spec", template: str = "template", key: str = "") -> Obj:
    custom = copy.deepcopy(KNATIVE)
    pod = custom.pop("spec")["template"].pop("spec")
    pod[key or "serviceAccountName"] = account
    custom[spec] = {template: {"spec": pod}}
    return custom


def _inline(account: str) -> Obj:
    return {
        "name": "rogue",
        "serviceAccountName": account,
        "bindings": [{"name": "x", "value": "$(body.x)"}],
        "template": copy.deepcopy(ROGUE_TEMPLATE),
    }


TEAM = f"{PREFIX}bank"
HOSTILE_TRIGGERS = {
    "a Trigger as a team's account": (
        "Trigger",
        TRIGGER,
        lambda s: s.update(serviceAccountName=TEAM),
    ),
    "a Trigger as the release namespace's own team account": (
        "Trigger",
        TRIGGER,
        lambda s: s.update(serviceAccountName=f"{PREFIX}{NAMESPACE}"),
    ),
    "a Trigger creating a Deployment in the team's namespace as its account": (
        "Trigger",
        TRIGGER,
        lambda s: s.update(serviceAccountName=TEAM, template=copy.deepcopy(ROGUE_TEMPLATE)),
    ),
    "a listener running as a team's account": (
        "EventListener",
        LISTENER,
        lambda s: s.update(serviceAccountName=TEAM),
    ),
    "a listener pod template with a team's account": (
        "EventListener",
        LISTENER,
        lambda s: _as(
            s,
            "resources",
            "kubernetesResource",
            "spec",
            "template",
            "spec",
            "serviceAccountName",
            TEAM,
        ),
    ),
    "a Knative listener with a team's account": (
        "EventListener",
        LISTENER,
        lambda s: s.update(resources={"customResource": _knative(TEAM)}),
    ),
    "a Knative listener with a team's account in other letter cases": (
        "EventListener",
        LISTENER,
        lambda s: s.update(
            resources={"customResource": _knative(TEAM, "Spec", "TEMPLATE", "ServiceAccountname")}
        ),
    ),
    "a Knative listener with a team's account under a long s (U+017F)": (
        "EventListener",
        LISTENER,
        lambda s: s.update(
            resources={"customResource": _knative(TEAM, key="\u017fERVICEACCOUNTNAME")}
        ),
    ),
    "an inline trigger as a team's account": (
        "EventListener",
        INLINE_TRIGGER,
        lambda s: s.update(triggers=[_inline(TEAM)]),
    ),
    "an inline trigger reference with a team's account": (
        "EventListener",
        INLINE_TRIGGER,
        lambda s: s.update(triggers=[{"triggerRef": "rogue", "serviceAccountName": TEAM}]),
    ),
}


@pytest.mark.parametrize("case", HOSTILE_TRIGGERS, ids=HOSTILE_TRIGGERS.keys())
def test_a_triggers_object_acting_as_a_team_account_is_refused_for_its_reason(
    policy, chart_trigger, chart_listener, case
):
    kind, reason, edit = HOSTILE_TRIGGERS[case]
    original = chart_trigger if kind == "Trigger" else chart_listener
    hostile = copy.deepcopy(original)
    edit(hostile["spec"])
    assert tekton_violations(hostile) == [], tekton_violations(hostile)
    assert matched(policy, hostile)
    assert refused_for(policy, hostile, reason), denials(policy, hostile)
    assert refused_for(policy, hostile, reason, user=TRIGGERS)
    assert refused_for(policy, hostile, reason, operation="UPDATE", old=original)
    # A v1alpha1 request: Equivalent hands it over as v1beta1 (the CRD has no conversion
    # webhook: the API server rewrites apiVersion only), so the same fields are checked.
    crd = tekton_crd(kind)
    assert "conversion" not in crd["spec"]
    assert {v["name"] for v in crd["spec"]["versions"] if v["served"]} == {"v1beta1", "v1alpha1"}
    alpha = {**hostile, "apiVersion": "triggers.tekton.dev/v1alpha1"}
    assert tekton_violations(alpha) == [] and matched(policy, alpha)
    assert refused_for(policy, {**alpha, "apiVersion": "triggers.tekton.dev/v1beta1"}, reason)


@pytest.mark.parametrize(
    ("kind", "edit"),
    [
        ("Trigger", lambda s: s.update(serviceAccountName=TRIGGERS_ACCOUNT)),
        ("Trigger", lambda s: s.update(serviceAccountName="default")),
        ("Trigger", lambda s: s.update(serviceAccountName="ci-bot")),
        ("EventListener", lambda s: s.update(triggers=[_inline(TRIGGERS_ACCOUNT)])),
        ("EventListener", lambda s: s.update(triggers=[{"triggerRef": "canaryflow-github-push"}])),
        (
            "EventListener",
            lambda s: s.update(resources={"customResource": _knative(TRIGGERS_ACCOUNT)}),
        ),
        ("EventListener", lambda s: s.update(resources={"customResource": copy.deepcopy(KNATIVE)})),
        (
            "EventListener",
            lambda s: _as(
                s,
                "resources",
                "kubernetesResource",
                "spec",
                "template",
                "spec",
                "serviceAccountName",
                "ci-bot",
            ),
        ),
    ],
    ids=[
        "a Trigger as the triggers account",
        "a Trigger as default",
        "a Trigger as another account",
        "an inline trigger as the triggers account",
        "an inline trigger reference",
        "a Knative listener as the triggers account",
        "a Knative listener with no account",
        "a listener pod template with another account",
    ],
)
def test_triggers_objects_naming_no_team_account_are_admitted(
    policy, chart_trigger, chart_listener, kind, edit
):
    obj = copy.deepcopy(chart_trigger if kind == "Trigger" else chart_listener)
    edit(obj["spec"])
    assert tekton_violations(obj) == [], tekton_violations(obj)
    assert matched(policy, obj)
    assert denials(policy, obj) == []
