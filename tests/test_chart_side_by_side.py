"""Two installs of the chart side by side in one namespace (and one cluster): with a
fullnameOverride each, no two objects share a kind, namespace and name, every templateRef and
the Sensor's workflowTemplateRef name the install's own templates, and everything stays
schema-valid. The default install keeps today's names (go-canary-release, canaryflow-tasks)."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
from chart_validation import WEBHOOK_VALUES, objects, of_kind, render, violations

TEAMS = ("team-a", "team-b")


def install(name: str, scope: str, engine: str = "argo") -> list[dict]:
    values = copy.deepcopy(WEBHOOK_VALUES)
    values.update(
        {
            "engine": engine,
            "fullnameOverride": name,
            "templates": {"scope": scope},
            "runbook": {"enabled": True},
            "plan": {"inline": "service: {name: cart}\n"},
            "monitoring": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
            "flags": {"configMaps": ["flags"]},
        }
    )
    return [obj for docs in render(values).values() for obj in docs]


def _refs(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("templateRef", "workflowTemplateRef") and isinstance(value, dict):
                found.append(value["name"])
            found += _refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _refs(item)
    return found


@pytest.mark.parametrize(
    ("scope", "engine"), [("namespace", "argo"), ("cluster", "argo"), ("namespace", "tekton")]
)
def test_two_installs_in_one_namespace_share_no_object_name(scope, engine):
    keys = Counter(
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        for team in TEAMS
        for o in install(team, scope, engine)
    )
    assert [key for key, count in keys.items() if count > 1] == []


def _tekton_refs(obj: dict) -> list[str]:
    """Every name a Tekton object refers to another of the chart's objects by."""
    spec = obj.get("spec", {})
    if obj["kind"] == "Pipeline":
        return [t["taskRef"]["name"] for t in spec["tasks"] + spec.get("finally", [])]
    if obj["kind"] == "TriggerTemplate":
        return [r["spec"]["pipelineRef"]["name"] for r in spec["resourcetemplates"]]
    if obj["kind"] == "Trigger":
        return [b["ref"] for b in spec["bindings"]] + [spec["template"]["ref"]]
    return []


def test_each_tekton_install_refers_only_to_its_own_objects_and_listens_only_to_its_triggers():
    for team in TEAMS:
        rendered = install(team, "namespace", "tekton")
        names = {o["metadata"]["name"] for o in rendered}
        refs = [ref for o in rendered for ref in _tekton_refs(o)]
        assert refs and set(refs) <= names
        assert all(ref.startswith(f"{team}-") for ref in refs)
        (listener,) = of_kind(rendered, "EventListener")
        selector = listener["spec"]["labelSelector"]["matchLabels"]
        for trigger in of_kind(rendered, "Trigger"):
            assert selector.items() <= trigger["metadata"]["labels"].items()
        other = install(next(t for t in TEAMS if t != team), "namespace", "tekton")
        for trigger in of_kind(other, "Trigger"):
            assert not selector.items() <= trigger["metadata"]["labels"].items()


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
def test_each_install_refers_only_to_its_own_templates(scope):
    for team in TEAMS:
        rendered = install(team, scope)
        templates = {
            o["metadata"]["name"]
            for o in rendered
            if o["kind"] in ("WorkflowTemplate", "ClusterWorkflowTemplate")
        }
        assert templates >= {f"{team}-tasks", f"{team}-go-canary-release"}
        assert all(name.startswith(f"{team}-") for name in templates)
        refs = [ref for o in rendered for ref in _refs(o)]
        assert refs and set(refs) <= templates
        for obj in rendered:
            if obj["kind"] in ("WorkflowTemplate", "ClusterWorkflowTemplate", "Sensor"):
                assert violations(obj) == [], obj["metadata"]["name"]


def test_each_install_has_its_own_accounts_and_go_cache():
    for team in TEAMS:
        rendered = install(team, "namespace")
        accounts = {a["metadata"]["name"] for a in of_kind(rendered, "ServiceAccount")}
        assert accounts >= {f"{team}-release", f"{team}-build", f"{team}-release-shop"}
        assert all(name.startswith(f"{team}-") for name in accounts)
        (claim,) = of_kind(rendered, "PersistentVolumeClaim")
        assert claim["metadata"]["name"] == f"{team}-go-cache"
        (release,) = [
            t
            for t in of_kind(rendered, "WorkflowTemplate")
            if t["metadata"]["name"] == f"{team}-go-canary-release"
        ]
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in release["spec"].get("volumes", [])
            if "persistentVolumeClaim" in v
        ]
        assert claims in ([], [f"{team}-go-cache"])


def test_the_default_install_keeps_todays_names():
    rendered = objects()
    templates = {o["metadata"]["name"] for o in of_kind(rendered, "WorkflowTemplate")}
    assert templates == {"canaryflow-tasks", "go-canary-release", "feature-flag-rollout"}
    accounts = {a["metadata"]["name"] for a in of_kind(rendered, "ServiceAccount")}
    assert {"canaryflow-release", "canaryflow-build"} <= accounts
