"""Argo's own metrics hook (``monitoring.argoMetrics.enabled``): the release WorkflowTemplates
carry the compiled ``spec.metrics`` only when asked, and what they carry is what Argo accepts.

Checked against upstream, not against ourselves: Argo's JSON schema (``violations``) and the
WorkflowTemplate CRD of v4.0.5 (its ``spec.metrics`` OpenAPI schema, patterns and lengths, and
its CEL rules evaluated with cel-python). No workflow controller runs here, so what the
controller exports is taken from Argo's docs/metrics.md (``argo_workflows_`` prefix, metrics
processed when the Workflow completes) and not observed.
"""

from __future__ import annotations

import functools

import celpy
import jsonschema
import pytest
import yaml
from chart_validation import CHART, objects, of_kind, violations
from upstream import SCHEMAS

from canaryflow.chart.package import lint_findings
from canaryflow.cli import main
from canaryflow_workflows import WorkflowSettings, compile_documents
from canaryflow_workflows.argo_metrics import DURATION, OUTCOMES

ENABLED = {"monitoring": {"argoMetrics": {"enabled": True}}}
RELEASES = ("go-canary-release", "feature-flag-rollout")


def release_templates(values: dict | None) -> dict[str, dict]:
    rendered = of_kind(objects(values), "WorkflowTemplate")
    return {t["metadata"]["name"]: t for t in rendered if t["metadata"]["name"] in RELEASES}


@functools.cache
def crd_metrics_schema() -> dict:
    text = (SCHEMAS / "argo-workflows/argoproj.io_workflowtemplates.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 8x
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["metrics"]


def cel_rule_failures(schema: dict, instance, path: str = "metrics") -> list[str]:
    """Every ``x-kubernetes-validations`` rule of ``schema`` evaluated on ``instance``, as the
    API server does (``self`` is the object at that node)."""
    failures = []
    for rule in schema.get("x-kubernetes-validations", []):
        environment = celpy.Environment()
        program = environment.program(environment.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(instance)}):
            failures.append(f"{path}: {rule['message']}")
    if isinstance(instance, dict):
        for key, value in instance.items():
            child = schema.get("properties", {}).get(key)
            if child:
                failures += cel_rule_failures(child, value, f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            failures += cel_rule_failures(schema["items"], item, f"{path}[{index}]")
    return failures


def test_by_default_the_release_templates_carry_no_argo_metrics():
    templates = release_templates(None)
    assert set(templates) == set(RELEASES)
    assert all("metrics" not in t["spec"] for t in templates.values())


def test_enabled_the_release_templates_carry_the_compiled_metrics_and_upstream_accepts_them():
    compiled = compile_documents(WorkflowSettings(argo_metrics=True))
    for name, template in release_templates(ENABLED).items():
        metrics = template["spec"]["metrics"]
        assert metrics == compiled[f"{name}.workflowtemplate.yaml"]["spec"]["metrics"]
        assert violations(template) == []
        jsonschema.validate(metrics, crd_metrics_schema())
        assert cel_rule_failures(crd_metrics_schema(), metrics) == []


def test_a_duration_gauge_and_an_outcome_counter_labelled_by_service():
    for name, template in release_templates(ENABLED).items():
        by_name = {metric["name"]: metric for metric in template["spec"]["metrics"]["prometheus"]}
        assert set(by_name) == {DURATION, OUTCOMES}
        gauge, counter = by_name[DURATION], by_name[OUTCOMES]
        assert gauge["gauge"] == {"realtime": False, "value": "{{workflow.duration}}"}
        assert counter["counter"] == {"value": "1"}
        for metric, extra in ((gauge, {}), (counter, {"status": "{{workflow.status}}"})):
            labels = {label["key"]: label["value"] for label in metric["labels"]}
            assert labels == {
                "workflow": name,
                "service": "{{workflow.parameters.service}}",
                "namespace": "{{workflow.parameters.namespace}}",
                **extra,
            }


def test_one_metric_name_keeps_one_help_and_one_type_across_the_templates():
    """Prometheus' rule, which Argo enforces: the same name with another help string or type is
    an error at the controller."""
    seen: dict[str, tuple[str, frozenset]] = {}
    for template in release_templates(ENABLED).values():
        for metric in template["spec"]["metrics"]["prometheus"]:
            kind = frozenset(k for k in ("gauge", "counter", "histogram") if k in metric)
            assert seen.setdefault(metric["name"], (metric["help"], kind)) == (metric["help"], kind)
    assert set(seen) == {DURATION, OUTCOMES}


def test_the_upstream_checks_can_fail():
    """A name with a dash, a gauge without ``realtime``, a realtime resourcesDuration gauge: the
    CRD's schema and its CEL rule refuse each, so the checks above are live."""
    gauge = {"realtime": False, "value": "1"}
    for bad in (
        {"name": "canaryflow-release", "help": "x", "gauge": gauge},
        {"name": "x", "help": "x", "gauge": {"value": "1"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"prometheus": [bad]}, crd_metrics_schema())
    realtime = {"realtime": True, "value": "{{workflow.resourcesDuration.cpu}}"}
    metrics = {"prometheus": [{"name": "x", "help": "x", "gauge": realtime}]}
    assert [f for f in cel_rule_failures(crd_metrics_schema(), metrics) if "real-time" in f]


def test_the_chart_lints_clean_with_the_argo_metrics_on():
    assert lint_findings(CHART, ENABLED) == []


@pytest.mark.parametrize("flag", [True, False])
def test_compile_writes_the_metrics_only_with_argo_metrics(tmp_path, flag, capsys):
    out = tmp_path / "argo"
    assert main(["compile", "--out", str(out), *(["--argo-metrics"] if flag else [])]) == 0
    for name in RELEASES:
        spec = yaml.safe_load((out / f"{name}.workflowtemplate.yaml").read_text())["spec"]
        assert ("metrics" in spec) is flag


def test_compile_refuses_argo_metrics_for_tekton(tmp_path, capsys):
    args = ["compile", "--out", str(tmp_path / "t"), "--engine", "tekton", "--argo-metrics"]
    assert main(args) == 2
    assert "--argo-metrics: " in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
