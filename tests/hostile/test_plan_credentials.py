"""A pushed plan cannot take the release's token: credentials never follow a plan's host.

Issue 23, item 8: a plan named both ``analysis.prometheus.url`` and where its credential came
from; ``validate`` and ``analyze`` sent the pod's service-account token (or ``$GITHUB_TOKEN``)
to the plan's host. Here the plan's host is a real listener on 127.0.0.1 recording every
request, and the token files and variables hold real-looking secrets.
"""

from __future__ import annotations

import pytest

from canaryflow.analysis import prometheus_auth as auth
from canaryflow.cli import main
from hostile.servers import ok, serve

SECRET = "eyJhbGciOiJSUzI1NiJ9.service-account-token"
GITHUB = "ghp_pushed-plan-wants-this"


def _hostile_plans(url: str, token_file: str) -> dict[str, str]:
    return {
        "file": f"service: {{name: checkout}}\nanalysis:\n  prometheus:\n    url: {url}\n"
        f"    bearerToken: {{file: {token_file}}}\n",
        "env": f"service: {{name: checkout}}\nanalysis:\n  prometheus:\n    url: {url}\n"
        "    bearerToken: {env: GITHUB_TOKEN}\n",
        "basic": f"service: {{name: checkout}}\nanalysis:\n  prometheus:\n    url: {url}\n"
        "    basicAuth: {username: x, passwordEnv: GITHUB_TOKEN}\n",
        "ca": f"service: {{name: checkout}}\nanalysis:\n  prometheus:\n    url: {url}\n"
        f"    caFile: {token_file}\n",
    }


@pytest.mark.parametrize("kind", ["file", "env", "basic", "ca"])
@pytest.mark.parametrize("verb", ["validate", "analyze"])
def test_a_plan_naming_a_credential_is_refused_and_nothing_is_sent(
    kind, verb, tmp_path, monkeypatch, capsys
):
    token = tmp_path / "token"
    token.write_text(SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB)
    with serve(ok) as (url, seen):
        plan = tmp_path / "canaryflow.yaml"
        plan.write_text(_hostile_plans(url, str(token))[kind])
        args = [str(plan)] if verb == "validate" else ["--plan", str(plan), "--duration", "1s"]
        code = main([verb, *args])
    err = capsys.readouterr().err
    assert seen.requests == []
    assert code == 2
    field = {"file": "bearerToken", "env": "bearerToken", "basic": "basicAuth", "ca": "caFile"}
    assert f"analysis.prometheus.{field[kind]}: " in err
    assert SECRET not in err and GITHUB not in err


@pytest.mark.parametrize("verb", ["validate", "analyze"])
def test_the_operators_credentials_never_go_to_the_plans_url(verb, tmp_path, monkeypatch, capsys):
    """The chart's token goes to the chart's Prometheus alone: a plan naming another host is
    refused before any request, to either host."""
    token = tmp_path / "token"
    token.write_text(SECRET)
    with serve(ok) as (chart_url, chart_seen), serve(ok) as (plan_url, plan_seen):
        monkeypatch.setenv(auth.ENV_URL, chart_url)
        monkeypatch.setenv(auth.ENV_BEARER_TOKEN_FILE, str(token))
        plan = tmp_path / "canaryflow.yaml"
        plan.write_text(
            f"service: {{name: checkout}}\nanalysis:\n  prometheus: {{url: '{plan_url}/x'}}\n"
        )
        args = [str(plan)] if verb == "validate" else ["--plan", str(plan), "--duration", "1s"]
        code = main([verb, *args])
    err = capsys.readouterr().err
    assert plan_seen.requests == [] and chart_seen.requests == []
    assert code == 2
    assert "error: analysis.prometheus.url: " in err and "not the Prometheus" in err
    assert SECRET not in err


def test_without_an_operator_prometheus_the_plans_url_gets_no_credential(
    tmp_path, monkeypatch, capsys
):
    """Credentials the operator set for no URL go nowhere; the plan's URL is asked bare."""
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB)
    with serve(ok) as (url, seen):
        plan = tmp_path / "canaryflow.yaml"
        plan.write_text(f"service: {{name: checkout}}\nanalysis:\n  prometheus: {{url: '{url}'}}\n")
        main(["validate", str(plan)])
    assert seen.requests, "the plan's own Prometheus is asked (queries checked)"
    assert seen.headers_named("Authorization") == []


def test_the_workflows_validate_plan_runs_offline_without_a_token():
    """In the chart's generated templates: validate-plan has --offline and no token mounted
    (``automountServiceAccountToken: false``, executor on the build account)."""
    from canaryflow_workflows.library import namespaced_task_library
    from canaryflow_workflows.settings import WorkflowSettings

    templates = namespaced_task_library(WorkflowSettings()).to_dict()["spec"]["templates"]
    validate = next(t for t in templates if t["name"] == "validate-plan")
    assert "--offline" in validate["container"]["args"]
    assert validate["automountServiceAccountToken"] is False
    assert validate["executor"]["serviceAccountName"]


CHART_PROMETHEUS = {
    "analysis": {
        "prometheus": {
            "url": "https://mimir.monitoring.svc:8080/prometheus",
            "bearerTokenSecret": {"name": "prometheus-token", "key": "token"},
            "caConfigMap": {"name": "prometheus-ca", "key": "ca.crt"},
            "headers": {"X-Scope-OrgID": "shop"},
        }
    }
}


def _task_env(engine: str, values: dict) -> dict[str, dict[str, dict]]:
    """Each task's container env by name, as the chart renders it for ``engine``."""
    from chart_validation import objects, violations

    rendered = objects({**values, "engine": engine, "templates": {"scope": "namespace"}})
    envs: dict[str, dict[str, dict]] = {}
    for obj in rendered:
        if obj["kind"] == "WorkflowTemplate":  # Argo's schema (Tekton's: test_tekton_chart)
            assert violations(obj) == [], obj["metadata"]["name"]
        if obj["kind"] == "WorkflowTemplate":
            for template in obj["spec"]["templates"]:
                if "container" in template:
                    envs[template["name"]] = {e["name"]: e for e in template["container"]["env"]}
        if obj["kind"] == "Task":
            name = obj["metadata"]["name"].removeprefix("canaryflow-")
            envs[name] = {e["name"]: e for s in obj["spec"]["steps"] for e in s.get("env", [])}
    return envs


@pytest.mark.parametrize("engine", ["argo", "tekton"])
def test_the_chart_hands_its_prometheus_to_the_tasks_and_its_token_only_to_those_that_ask(
    engine,
):
    envs = _task_env(engine, CHART_PROMETHEUS)
    url = CHART_PROMETHEUS["analysis"]["prometheus"]["url"]
    for name in ("analyze", "flag-rollout"):
        env = envs[name]
        assert env[auth.ENV_URL]["value"] == url
        assert env[auth.ENV_BEARER_TOKEN]["valueFrom"]["secretKeyRef"] == {
            "name": "prometheus-token",
            "key": "token",
        }
        assert env[auth.ENV_CA]["valueFrom"]["configMapKeyRef"]["name"] == "prometheus-ca"
        assert env[auth.ENV_HEADERS]["value"] == '{"X-Scope-OrgID":"shop"}'
    # validate-plan checks the plan's choice of URL offline: the URL, no credential.
    assert envs["validate-plan"][auth.ENV_URL]["value"] == url
    credentials = set(auth.CREDENTIAL_VARIABLES)
    for name, env in envs.items():
        if name not in ("analyze", "flag-rollout"):
            assert not credentials & set(env), name
    # Without the values, no task carries any of it.
    assert all(
        not (set(env) & {auth.ENV_URL, *credentials}) for env in _task_env(engine, {}).values()
    )


def test_on_tekton_validate_plan_runs_offline_without_a_token():
    from chart_validation import WEBHOOK_VALUES, objects

    rendered = objects({**WEBHOOK_VALUES, "engine": "tekton", "templates": {"scope": "namespace"}})
    (task,) = [o for o in rendered if o["metadata"]["name"] == "canaryflow-validate-plan"]
    assert "--offline" in task["spec"]["steps"][0]["args"]
    (trigger,) = [o for o in rendered if o["kind"] == "TriggerTemplate"]
    (run,) = trigger["spec"]["resourcetemplates"]
    specs = {s["pipelineTaskName"]: s for s in run["spec"]["taskRunSpecs"]}
    assert specs["validate-plan"]["podTemplate"]["automountServiceAccountToken"] is False
