"""What a platform team sets once for every release pod: pull secrets, scheduling, priority,
sizes, labels. Each value must reach the pods, on Argo (the release WorkflowTemplates' spec,
which Argo applies to every pod of the Workflow, templateRef'd tasks included) and on Tekton
(the PipelineRun's podTemplate and metadata, which Tekton propagates to its pods), and every
object rendered with them must stay schema-valid."""

from __future__ import annotations

import copy
import json

import pytest
from chart_validation import CHART, WEBHOOK_VALUES, objects, of_kind, violations
from tekton_schemas import violations as tekton_violations

from canaryflow.chart.package import lint_findings

NODE_SELECTOR = {"kubernetes.io/arch": "arm64", "pool": "ci"}
TOLERATIONS = [{"key": "dedicated", "operator": "Equal", "value": "ci", "effect": "NoSchedule"}]
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
            ]
        }
    }
}
PLATFORM = {
    "imagePullSecrets": [{"name": "corp-registry"}],
    "nodeSelector": NODE_SELECTOR,
    "tolerations": TOLERATIONS,
    "affinity": AFFINITY,
    "priorityClassName": "ci-low",
    "podLabels": {"team": "platform", "cost-center": "42"},
    "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    "commonLabels": {"owner": "platform-team"},
    "resources": {
        "go": {"requests": {"cpu": "3", "memory": "6Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}},
        "tasks": {
            "requests": {"cpu": "20m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
    },
}
GO_TASKS = {"go-test", "go-build"}


def _tekton(values: dict) -> dict:
    return {**copy.deepcopy(WEBHOOK_VALUES), **copy.deepcopy(values), "engine": "tekton"}


def test_lint_is_clean_with_every_platform_value_on_both_engines():
    assert lint_findings(__import__("chart_validation").CHART, PLATFORM) == []
    assert lint_findings(__import__("chart_validation").CHART, _tekton(PLATFORM)) == []


@pytest.mark.parametrize("name", ["go-canary-release", "feature-flag-rollout"])
def test_every_argo_release_pod_gets_the_scheduling_and_pull_settings(name):
    rendered = objects(PLATFORM)
    (template,) = [
        t for t in of_kind(rendered, "WorkflowTemplate") if t["metadata"]["name"] == name
    ]
    spec = template["spec"]
    assert spec["imagePullSecrets"] == [{"name": "corp-registry"}]
    assert spec["nodeSelector"] == NODE_SELECTOR
    assert spec["tolerations"] == TOLERATIONS
    assert spec["affinity"] == AFFINITY
    assert spec["podPriorityClassName"] == "ci-low"
    assert spec["podMetadata"]["labels"]["team"] == "platform"
    assert spec["podMetadata"]["labels"]["app.kubernetes.io/name"] == "canaryflow", "kept"
    assert spec["podMetadata"]["annotations"] == PLATFORM["podAnnotations"]
    assert violations(template) == []


def test_defaults_add_no_scheduling_settings():
    for template in of_kind(objects(), "WorkflowTemplate"):
        spec = template["spec"]
        for key in ("imagePullSecrets", "nodeSelector", "tolerations", "affinity"):
            assert key not in spec
        assert "podPriorityClassName" not in spec
        assert "annotations" not in spec.get("podMetadata", {})


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
def test_go_tasks_and_light_tasks_take_their_own_resources(scope):
    values = {**PLATFORM, "templates": {"scope": scope}}
    kind = "WorkflowTemplate" if scope == "namespace" else "ClusterWorkflowTemplate"
    (library,) = [
        t for t in of_kind(objects(values), kind) if t["metadata"]["name"] == "canaryflow-tasks"
    ]
    sized = {
        t["name"]: t["container"]["resources"]
        for t in library["spec"]["templates"]
        if "container" in t
    }
    assert set(sized) >= GO_TASKS
    for name, resources in sized.items():
        expected = PLATFORM["resources"]["go" if name in GO_TASKS else "tasks"]
        assert resources == expected, name
    assert violations(library) == []


def test_the_default_resources_are_todays():
    (library,) = [
        t
        for t in of_kind(objects(), "WorkflowTemplate")
        if t["metadata"]["name"] == "canaryflow-tasks"
    ]
    sized = {
        t["name"]: t["container"]["resources"]
        for t in library["spec"]["templates"]
        if "container" in t
    }
    assert sized["go-build"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "3Gi"},
    }
    assert sized["set-weight"] == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def test_a_null_drops_a_default_limit_as_helm_merges_values():
    values = {"resources": {"tasks": {"limits": {"cpu": None}}}}
    (library,) = [
        t
        for t in of_kind(objects(values), "WorkflowTemplate")
        if t["metadata"]["name"] == "canaryflow-tasks"
    ]
    (rollback,) = [t for t in library["spec"]["templates"] if t["name"] == "rollback"]
    assert rollback["container"]["resources"]["limits"] == {"memory": "256Mi"}


PER_TASK = {
    "analyze": {"limits": {"memory": "512Mi"}},  # one key over the tasks class
    "go-build": {"requests": {"cpu": "6"}, "limits": {"cpu": None}},  # null: no CPU limit
    "image-push": {"requests": {"memory": "256Mi", "ephemeral-storage": "2Gi"}},
}
PER_TASK_EXPECTED = {
    "analyze": {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    },
    "go-build": {"requests": {"cpu": "6", "memory": "1Gi"}, "limits": {"memory": "3Gi"}},
    "image-push": {
        "requests": {"cpu": "50m", "memory": "256Mi", "ephemeral-storage": "2Gi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    },
}
DEFAULT_CLASSES = {
    "go": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}},
    "tasks": {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    },
}


def _library_resources(rendered: list, kind: str = "WorkflowTemplate") -> dict[str, dict]:
    (library,) = [t for t in of_kind(rendered, kind) if t["metadata"]["name"] == "canaryflow-tasks"]
    assert violations(library) == []
    return {
        t["name"]: t["container"]["resources"]
        for t in library["spec"]["templates"]
        if "container" in t
    }


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
def test_per_task_resources_are_merged_over_the_tasks_class(scope):
    values = {"templates": {"scope": scope}, "resources": {"perTask": PER_TASK}}
    kind = "WorkflowTemplate" if scope == "namespace" else "ClusterWorkflowTemplate"
    sized = _library_resources(objects(values), kind)

    for name, resources in sized.items():
        default = DEFAULT_CLASSES["go" if name in GO_TASKS else "tasks"]
        assert resources == PER_TASK_EXPECTED.get(name, default), name


def test_tekton_steps_take_the_per_task_resources_too():
    rendered = objects(_tekton({"resources": {"perTask": PER_TASK}}))
    for task in of_kind(rendered, "Task"):
        name = task["metadata"]["name"].removeprefix("canaryflow-")
        default = DEFAULT_CLASSES["go" if name in GO_TASKS else "tasks"]
        for step in task["spec"]["steps"]:
            assert step["computeResources"] == PER_TASK_EXPECTED.get(name, default), name
        assert tekton_violations(task) == []


def test_per_task_values_follow_a_changed_class():
    """perTask names only what differs: the rest still follows the class it is merged over."""
    values = {
        "resources": {
            "tasks": {"requests": {"cpu": "10m"}},
            "perTask": {"notify": {"requests": {"memory": "32Mi"}}},
        }
    }
    sized = _library_resources(objects(values))
    assert sized["notify"]["requests"] == {"cpu": "10m", "memory": "32Mi"}
    assert sized["rollback"]["requests"] == {"cpu": "10m", "memory": "96Mi"}


def test_the_schemas_task_names_are_the_task_librarys():
    """Only known task names are accepted, and every task of the library can be sized."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    known = set(schema["properties"]["resources"]["properties"]["perTask"]["properties"])
    assert known == set(_library_resources(objects()))


@pytest.mark.parametrize(
    "per_task",
    [
        {"go-biuld": {"requests": {"cpu": "2"}}},  # a typo names no task
        {"approve": {"requests": {"cpu": "2"}}},  # a suspend step: no container to size
        {"analyze": {"requests": {"cpu": "lots"}}},
        {"analyze": {"requests": {"gpu": "1"}}},
        {"analyze": {"request": {"cpu": "1"}}},
    ],
)
def test_the_schema_refuses_unknown_tasks_and_malformed_per_task_resources(per_task):
    with pytest.raises(Exception) as raised:
        objects({"resources": {"perTask": per_task}})
    assert "perTask" in str(raised.value)


def test_tekton_pipeline_runs_and_tasks_get_the_same_settings():
    rendered = objects(_tekton(PLATFORM))
    (trigger_template,) = of_kind(rendered, "TriggerTemplate")
    (run,) = trigger_template["spec"]["resourcetemplates"]
    pod = run["spec"]["taskRunTemplate"]["podTemplate"]
    assert pod["imagePullSecrets"] == [{"name": "corp-registry"}]
    assert pod["nodeSelector"] == NODE_SELECTOR
    assert pod["tolerations"] == TOLERATIONS
    assert pod["affinity"] == AFFINITY
    assert pod["priorityClassName"] == "ci-low"
    assert pod["securityContext"]["runAsNonRoot"] is True, "kept"
    assert run["metadata"]["labels"]["team"] == "platform"
    assert (
        run["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    )
    assert "canaryflow.dev/pushed-by" in run["metadata"]["annotations"], "kept"
    assert tekton_violations(run) == []
    for task in of_kind(rendered, "Task"):
        expected = PLATFORM["resources"][
            "go" if task["metadata"]["name"].removeprefix("canaryflow-") in GO_TASKS else "tasks"
        ]
        for step in task["spec"]["steps"]:
            assert step["computeResources"] == expected, task["metadata"]["name"]
        assert tekton_violations(task) == []


@pytest.mark.parametrize("values", [PLATFORM, None], ids=["platform", "defaults"])
def test_common_labels_are_on_every_object(values):
    rendered = objects({**copy.deepcopy(WEBHOOK_VALUES), **(values or {})})
    assert rendered
    for obj in rendered:
        labels = obj["metadata"].get("labels", {})
        if values:
            assert labels.get("owner") == "platform-team", (
                f"{obj['kind']} {obj['metadata']['name']}"
            )
        else:
            assert "owner" not in labels


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"imagePullSecrets": ["corp-registry"]}, "imagePullSecrets"),
        ({"resources": {"go": {"requests": {"cpu": "lots"}}}}, "cpu"),
        ({"commonLabels": {"app.kubernetes.io/name": "x"}}, "app.kubernetes.io/name"),
        ({"priorityClassName": "Not Valid"}, "priorityClassName"),
    ],
)
def test_malformed_platform_values_are_refused_by_the_schema(values, field):
    with pytest.raises(Exception) as raised:
        objects(values)
    assert field in str(raised.value)
