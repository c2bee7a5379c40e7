"""Issue 22: every name the chart renders, and every name and label value a controller derives
from one, within its Kubernetes limit, and the names distinct.

Rendered with the longest ``fullnameOverride`` the schema admits (or, without one, the longest
release name Helm admits), service ids cut to 40 characters (two of them the same) and
63-character namespaces. The derived names follow upstream:

- Argo Events v1.9.11: an EventSource's Service is ``<name>-eventsource-svc``
  (pkg/reconciler/eventsource/resource.go buildService) and its Deployment and pods are
  labelled ``eventsource-name`` and ``owner-name: <name>`` (eventsource/controller.go); a
  Sensor's are labelled ``sensor-name`` and ``owner-name`` (sensor/controller.go). Their
  Deployments are ``generateName: <name>-eventsource-`` / ``<name>-sensor-``: the API server
  cuts a generateName's base to 58 characters (apiserver pkg/storage/names), no limit to hold.
- Argo Workflows v3.6.19: a Workflow submitted from a (Cluster)WorkflowTemplate is labelled
  ``workflows.argoproj.io/(cluster-)workflow-template: <name>`` (workflow/common/convert.go).
- Tekton Pipelines v1.15.0: runs are labelled ``tekton.dev/pipeline`` and ``tekton.dev/task``
  with the Pipeline's and Task's names (pkg/apis/pipeline/register.go PipelineLabelKey,
  TaskLabelKey). Tekton Triggers v0.37.0: an EventListener's Deployment and Service are
  ``el-<name>`` (pkg/reconciler/eventlistener/eventlistener.go GeneratedResourcePrefix), labelled
  ``eventlistener: <name>`` (resources/meta.go); what a Trigger creates is labelled
  ``triggers.tekton.dev/trigger: <name>`` (pkg/apis/triggers/register.go TriggerLabelKey).
- Kubernetes (apimachinery pkg/util/validation): object names are DNS-1123 subdomains (253
  characters), a Service's a DNS-1035 label (63), a label value at most 63 characters.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import helm_python as helm
import pytest
from chart_validation import CHART, render

Obj = dict[str, Any]
Rule = Callable[[str], bool]

# Helm v3 refuses a longer release name (pkg/chartutil ValidateReleaseName, 53 characters).
HELM_RELEASE_NAME_MAX = 53


def _matches(pattern: str, limit: int) -> Rule:
    compiled = re.compile(pattern)
    return lambda value: len(value) <= limit and compiled.fullmatch(value) is not None


_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN = _matches(rf"{_LABEL}(\.{_LABEL})*", 253)
DNS1035 = _matches(r"[a-z]([-a-z0-9]*[a-z0-9])?", 63)
LABEL_VALUE = _matches(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", 63)

NAMESPACE = "payments-" + "x" * 54  # 63 characters, the most a namespace has
SERVICES = {
    # Both ids are cut to the same 40 characters.
    "acme-platform-engineering/checkout-service-eu-west": {"namespace": NAMESPACE},
    "acme-platform-engineering/checkout-service-eu-east": {"namespace": "shop-" + "y" * 58},
    "acme/cart": {},
}


def longest_override() -> str:
    """A fullnameOverride as long as values.schema.json admits."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    length = schema["properties"]["fullnameOverride"]["maxLength"]
    return "team-" + "p" * (length - 5)


def values(engine: str, scope: str, override: str | None) -> dict[str, Any]:
    given: dict[str, Any] = {
        "engine": engine,
        "templates": {"scope": scope},
        "events": {
            "enabled": True,
            "webhookSecret": {"name": "git-webhooks"},
            "services": SERVICES,
        },
        "runbook": {"enabled": True},
        "monitoring": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    }
    if override:
        given["fullnameOverride"] = override
    return given


def rendered(engine: str, scope: str, override: str | None, release: str = "cf") -> list[Obj]:
    docs = render(values(engine, scope, override), namespace=NAMESPACE, hooks=True, release=release)
    return [obj for objs in docs.values() for obj in objs]


def derived(obj: Obj) -> list[tuple[str, str, Rule]]:
    """(what, value, rule) of each name and label value a controller derives from obj's name."""
    name = obj["metadata"]["name"]
    labels: dict[str, list[str]] = {
        "EventSource": ["eventsource-name", "owner-name"],
        "Sensor": ["sensor-name", "owner-name"],
        "WorkflowTemplate": ["workflows.argoproj.io/workflow-template"],
        "ClusterWorkflowTemplate": ["workflows.argoproj.io/cluster-workflow-template"],
        "Pipeline": ["tekton.dev/pipeline"],
        "Task": ["tekton.dev/task"],
        "EventListener": ["eventlistener", "triggers.tekton.dev/eventlistener"],
        "Trigger": ["triggers.tekton.dev/trigger"],
    }
    found = [(f"label {key}", name, LABEL_VALUE) for key in labels.get(obj["kind"], [])]
    if obj["kind"] == "EventSource":
        found.append(("its Service", f"{name}-eventsource-svc", DNS1035))
    if obj["kind"] == "EventListener":
        found.append(("its Service", f"el-{name}", DNS1035))
    return found


def _label_maps(node: Any) -> Iterator[dict[str, Any]]:
    """Every labels / matchLabels map in node (pod templates, selectors, podMetadata...)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                yield value
            yield from _label_maps(value)
    elif isinstance(node, list):
        for item in node:
            yield from _label_maps(item)


def violations(objs: list[Obj]) -> list[str]:
    """What is over its limit: object names, label values, derived names and label values."""
    found = []
    for obj in objs:
        name, kind = obj["metadata"]["name"], obj["kind"]
        rule = DNS1035 if kind == "Service" else SUBDOMAIN
        checks = [(f"{kind} name", name, rule), *derived(obj)]
        for labels in _label_maps(obj):
            checks += [(f"label {key}", str(value), LABEL_VALUE) for key, value in labels.items()]
        found += [
            f"{kind}/{name}: {what} {value!r} ({len(value)} characters)"
            for what, value, ok in checks
            if "{{" not in value and "$(" not in value and not ok(value)
        ]
    return found


def identities(objs: list[Obj]) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of each object and of each Service a controller derives."""
    found = []
    for obj in objs:
        namespace = obj["metadata"].get("namespace", "")
        found.append((obj["kind"], namespace, obj["metadata"]["name"]))
        found += [
            ("Service", namespace, value)
            for what, value, _ in derived(obj)
            if what == "its Service"
        ]
    return found


CASES = [("argo", "namespace"), ("argo", "cluster"), ("tekton", "namespace")]


@pytest.mark.parametrize(("engine", "scope"), CASES)
def test_the_longest_admitted_override_keeps_every_name_and_label_within_its_limit(engine, scope):
    assert violations(rendered(engine, scope, longest_override())) == []


@pytest.mark.parametrize(("engine", "scope"), CASES)
def test_the_longest_release_name_keeps_every_name_and_label_within_its_limit(engine, scope):
    """No fullnameOverride: the fullname is `<release>-canaryflow`, which the schema cannot
    bound; the chart cuts what would be over a limit."""
    release = "r" * HELM_RELEASE_NAME_MAX
    assert violations(rendered(engine, scope, None, release=release)) == []


@pytest.mark.parametrize(("engine", "scope"), CASES)
def test_names_stay_distinct_within_an_install(engine, scope):
    for objs in (
        rendered(engine, scope, longest_override()),
        rendered(engine, scope, None, release="r" * HELM_RELEASE_NAME_MAX),
    ):
        twice = [key for key, count in Counter(identities(objs)).items() if count > 1]
        assert twice == []
        if engine == "argo":  # one Sensor per service, the two of one id too
            sensors = {o["metadata"]["name"] for o in objs if o["kind"] == "Sensor"}
            assert len(sensors) == len(SERVICES)


@pytest.mark.parametrize(("engine", "scope"), [("argo", "namespace"), ("tekton", "namespace")])
def test_two_installs_whose_overrides_differ_in_their_last_character_share_no_name(engine, scope):
    """The README tells two installs in one namespace to take a fullnameOverride each."""
    longest = longest_override()
    first = set(identities(rendered(engine, scope, longest[:-1] + "a")))
    second = set(identities(rendered(engine, scope, longest[:-1] + "b")))
    assert first & second == set()


def test_a_longer_override_is_refused_naming_the_field():
    too_long = longest_override() + "x"
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as raised:
        chart.render({"fullnameOverride": too_long}, name="cf", namespace="argo", is_install=True)
    assert "fullnameOverride" in str(raised.value)
    assert "maxLength" in str(raised.value)
