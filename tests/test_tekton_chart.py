"""The chart's ``engine: tekton`` variant: lint-clean, valid, the compiled objects, and the
push Triggers as Helm renders them behaving like the Sensor on the same payloads."""

from __future__ import annotations

import copy

import pytest
import yaml
from chart_validation import CHART, NAMESPACE, WEBHOOK_VALUES, objects, violations
from tekton_schemas import violations as tekton_violations
from tekton_triggers_sim import PAYLOADS as PAYLOAD_DIR
from tekton_triggers_sim import Listener, arguments, payload

from canaryflow.chart.generate import PLAN_FILE
from canaryflow.chart.package import lint_findings
from canaryflow.plan.load import load_plan
from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.documents import compile_tekton_documents

TEKTON = {"engine": "tekton"}
TEKTON_EVENTS = {**copy.deepcopy(WEBHOOK_VALUES), **TEKTON}
TEKTON_KINDS = {
    "Task",
    "Pipeline",
    "EventListener",
    "Trigger",
    "TriggerBinding",
    "TriggerTemplate",
}
ARGO_KINDS = {"WorkflowTemplate", "ClusterWorkflowTemplate", "EventSource", "Sensor"}
PAYLOADS = sorted(p.name for p in PAYLOAD_DIR.glob("*.json"))
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def with_events(**events) -> dict:
    values = copy.deepcopy(TEKTON_EVENTS)
    values["events"].update(events)
    return values


def test_lint_is_clean_in_strict_mode_for_the_tekton_variant():
    assert lint_findings(CHART, TEKTON) == []
    assert lint_findings(CHART, with_events(services=SERVICES)) == []


@pytest.mark.parametrize("values", [TEKTON, TEKTON_EVENTS], ids=["tekton", "tekton-events"])
def test_every_rendered_object_is_valid_against_its_schema(values):
    rendered = objects(values)
    kinds = {o["kind"] for o in rendered}
    assert {"Task", "Pipeline"} <= kinds
    for obj in rendered:
        check = tekton_violations if obj["kind"] in TEKTON_KINDS else violations
        assert check(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "canaryflow"
    for run in (
        t
        for o in rendered
        if o["kind"] == "TriggerTemplate"
        for t in o["spec"]["resourcetemplates"]
    ):
        assert tekton_violations(run) == []


def test_each_engine_installs_only_its_own_objects():
    tekton = {o["kind"] for o in objects(TEKTON_EVENTS)}
    argo = {o["kind"] for o in objects(WEBHOOK_VALUES)}
    assert tekton >= TEKTON_KINDS and not tekton & ARGO_KINDS
    assert {"WorkflowTemplate", "Sensor"} <= argo and not argo & TEKTON_KINDS


def test_rendered_tasks_and_pipelines_are_the_compiled_ones():
    settings = WorkflowSettings(namespace=NAMESPACE)
    compiled = compile_tekton_documents(load_plan(CHART / PLAN_FILE), settings)
    expected = {
        (d["kind"], d["metadata"]["name"]): d
        for d in compiled.values()
        if d["kind"] in {"Task", "Pipeline"}
    }
    for document in expected.values():
        for parameter in document["spec"].get("params", []):
            if document["kind"] == "Pipeline" and parameter["name"] == "router-kind":
                parameter["default"] = DEFAULTS["release"]["routerKind"]
            if document["kind"] == "Pipeline" and parameter["name"] == "image-repository":
                parameter["default"] = DEFAULTS["release"]["imageRepository"]
    rendered = {
        (o["kind"], o["metadata"]["name"]): o
        for o in objects(TEKTON)
        if o["kind"] in {"Task", "Pipeline"}
    }
    assert set(rendered) == set(expected)
    for key, document in expected.items():
        got = copy.deepcopy(rendered[key])
        labels = got["metadata"].pop("labels")
        assert document["metadata"].pop("labels").items() <= labels.items()
        assert got == document, key


def test_values_reach_the_tekton_objects():
    values = {
        **TEKTON,
        "image": {
            "repository": "registry.internal/canaryflow",
            "tag": "9.9",
            "pullPolicy": "Always",
        },
        "serviceAccount": {"name": "releaser"},
    }
    rendered = objects(values)
    (analyze,) = [o for o in rendered if o["metadata"]["name"] == "canaryflow-analyze"]
    step = analyze["spec"]["steps"][0]
    assert (step["image"], step["imagePullPolicy"]) == (
        "registry.internal/canaryflow:9.9",
        "Always",
    )
    runs = [o for o in objects({**values, **WEBHOOK_VALUES}) if o["kind"] == "TriggerTemplate"]
    (run,) = runs[0]["spec"]["resourcetemplates"]
    # the service namespace's own account (tests/test_chart_isolation.py)
    account = run["spec"]["taskRunTemplate"]["serviceAccountName"]
    assert account == "releaser-$(tt.params.namespace)"


def listener(values) -> Listener:
    return Listener([o for o in objects(values) if o["kind"] in TEKTON_KINDS])


# The Sensor's services (tests/test_sensor.py), so both engines are held to one mapping.
SERVICES = {
    "acme/checkout": {"namespace": "shop", "branches": ["main", "release/1.x"]},
    "shop/checkout": {"service": "basket", "imageRepository": "reg.example.com/shop/basket"},
}


def sensor_values() -> dict:
    values = with_events(services=SERVICES)
    values["events"]["gitlab"] = {
        "enabled": True,  # off by default; the Argo EventSource needs an access token
        "baseURL": "https://gitlab.example.com",
        "accessToken": {"name": "gitlab-access"},
    }
    return values


def test_the_rendered_triggers_start_what_the_sensor_submits_for_the_same_pushes():
    """Every payload through both: the Sensor's Workflow arguments (tests/test_sensor.py's
    emulation of Argo Events) equal the Tekton PipelineRun's params, and the pushes one
    drops the other drops too."""
    from test_sensor import submitted_by

    argo = sensor_values() | {"engine": "argo"}
    sensors = [o for o in objects(argo) if o["kind"] == "Sensor"]
    tekton = listener(sensor_values())
    events = [payload(name) for name in PAYLOADS]
    for ref in ("refs/heads/release/1.x", "refs/heads/release/1x", "refs/heads/feature"):
        for name in ("github-push-main.json", "gitlab-push-main.json"):
            event = payload(name)
            event["body"]["ref"] = ref
            events.append(event)
    started = 0
    for event in events:
        workflow = submitted_by(sensors, event)
        runs = tekton.runs(event)
        if workflow is None:
            assert runs == [], event["body"].get("ref")
            continue
        (run,) = runs
        assert arguments(run) == {
            p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]
        }
        started += 1
    assert started == 3  # github main, github release/1.x, gitlab main


def test_a_push_from_a_repository_not_listed_starts_nothing():
    rendered = listener(sensor_values())
    event = payload("github-push-main.json")
    event["body"]["repository"]["full_name"] = "acme/checkout-old"
    assert rendered.runs(event) == []


def test_a_value_with_quotes_stays_a_literal_through_helm_yaml_and_cel():
    tricky = "we'ird\"branch"  # git allows both quotes; the values schema no backslash
    services = {"acme/checkout": {"branches": [tricky]}}
    rendered = listener(with_events(services=services))
    event = payload("github-push-main.json")
    event["body"]["ref"] = f"refs/heads/{tricky}"
    assert len(rendered.runs(event)) == 1
    event["body"]["ref"] = "refs/heads/main"
    assert rendered.runs(event) == []


def test_only_the_enabled_provider_is_wired():
    values = sensor_values()
    values["events"]["gitlab"] = {"enabled": False}
    rendered = listener(values)
    assert rendered.runs(payload("gitlab-push-main.json")) == []
    assert len(rendered.runs(payload("github-push-main.json"))) == 1


def _run_workspaces(values) -> dict:
    (template,) = [o for o in objects(values) if o["kind"] == "TriggerTemplate"]
    (run,) = template["spec"]["resourcetemplates"]
    assert tekton_violations(run) == []
    return {w["name"]: w for w in run["spec"]["workspaces"]}


def test_the_default_plan_reaches_validate_plan_where_the_library_reads_it():
    values = with_events(services=SERVICES) | {"plan": {"inline": "service: {name: cart}\n"}}
    workspace = _run_workspaces(values)["plan-inline"]
    (config_map,) = [
        o
        for o in objects(values)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == workspace["configMap"]["name"]
    ]
    (item,) = workspace["configMap"]["items"]
    assert config_map["data"][item["key"]].startswith("service:")
    (task,) = [o for o in objects(values) if o["metadata"]["name"] == "canaryflow-validate-plan"]
    mount = {w["name"]: w["mountPath"] for w in task["spec"]["workspaces"]}["plan-inline"]
    assert f"{mount}/{item['path']}" in task["spec"]["steps"][0]["args"]
    assert "plan-inline" not in _run_workspaces(with_events(services=SERVICES))
