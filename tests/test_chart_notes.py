"""NOTES.txt names what the install created: with a fullnameOverride every template, pipeline,
listener and service it prints is the rendered object's name (Helm's engine renders both), so
the commands it suggests work for the second install in a namespace too."""

from __future__ import annotations

import copy
import re

import helm_python as helm
import pytest
import yaml
from chart_validation import CHART, NAMESPACE, WEBHOOK_VALUES

DEFAULT_NAMES = ("go-canary-release", "feature-flag-rollout", "canaryflow-tasks", "canaryflow-git")


def install(values: dict) -> tuple[str, list[dict]]:
    """(NOTES.txt, the rendered objects) of one ``helm install``."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="cf", namespace=NAMESPACE, is_install=True)
    texts = [text for path, text in manifests.items() if path.endswith(".yaml")]
    objects = [doc for text in texts for doc in yaml.safe_load_all(text) if doc]
    return manifests["canaryflow/templates/NOTES.txt"], objects


def named(objects: list[dict], *kinds: str) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o["kind"] in kinds]


def values(engine: str, scope: str, override: str | None) -> dict:
    chosen = copy.deepcopy(WEBHOOK_VALUES)
    chosen.update({"engine": engine, "templates": {"scope": scope}})
    if override:
        chosen["fullnameOverride"] = override
    return chosen


def words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z0-9][A-Za-z0-9._<>-]*", text))


@pytest.mark.parametrize(
    ("engine", "scope"), [("argo", "namespace"), ("argo", "cluster"), ("tekton", "namespace")]
)
def test_with_a_fullname_override_the_notes_print_the_overridden_names(engine, scope):
    notes, objects = install(values(engine, scope, "team-a"))
    printed = words(notes)
    if engine == "argo":
        release, tasks = "team-a-go-canary-release", "team-a-tasks"
        assert {release, tasks} <= set(
            named(objects, "WorkflowTemplate", "ClusterWorkflowTemplate")
        )
        assert {release, tasks} <= printed
        assert f"workflowtemplate/{release}" in notes
        (source,) = named(objects, "EventSource")
        assert f"{source}-eventsource-svc" in printed
    else:
        pipelines = set(named(objects, "Pipeline"))
        assert pipelines == {"team-a-go-canary-release", "team-a-feature-flag-rollout"}
        assert pipelines <= printed
        assert "on the Tasks team-a-<verb>." in notes
        assert {f"team-a-{t}" for t in ("checkout", "analyze")} <= set(named(objects, "Task"))
        (listener,) = named(objects, "EventListener")
        assert f"el-{listener}" in printed
    assert printed.isdisjoint(DEFAULT_NAMES)


@pytest.mark.parametrize("engine", ["argo", "tekton"])
def test_the_default_install_keeps_printing_todays_names(engine):
    notes, objects = install(values(engine, "namespace", None))
    assert "go-canary-release" in words(notes)
    assert "go-canary-release" in named(objects, "WorkflowTemplate", "Pipeline")
