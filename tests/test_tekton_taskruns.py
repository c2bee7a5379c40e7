"""The TaskRuns a triggered release creates, as Tekton's controllers build and check them
before any pod exists: one PersistentVolumeClaim per TaskRun under every ``coschedule`` mode
(``ValidateOnlyOnePVCIsUsed``), and go-test/go-build with their own account and no token.

The stand-in (tests/tekton_sim.py) names the upstream file and function of each rule; its
expectations for the one-claim rule are upstream's own (pkg/workspace/validate_test.go,
``TestValidateOnlyOnePVCIsUsed_Valid`` and ``_Invalid``, v0.50.0 to v1.15.0).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tekton_sim import (
    COSCHEDULE_MODES,
    FAILED,
    ONE_PVC_ERROR,
    SUCCEEDED,
    TASK_RUN_VALIDATION_FAILED,
    Attempt,
    Outcome,
    PipelineRunSimulator,
    validate_only_one_pvc_is_used,
)
from test_tekton_control_flow import PLANS

from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.documents import compile_tekton_documents, default_plan

PARAMS = {
    "repo": "https://git.example.com/shop/checkout.git",
    "revision": "3f2c1e9",
    "service": "checkout",
    "namespace": "shop",
    "image-repository": "registry.example.com/shop/checkout",
    "git-provider": "github",
    "commit-status-url": "https://api.github.com/repos/shop/checkout/statuses/3f2c1e9",
}
DIGEST = "registry.example.com/shop/checkout@sha256:" + "ab" * 32
BUILD_VERBS = {"go-test", "go-build"}
# The tasks that run or read what a push brought (its code, its plan) hold no token.
TOKENLESS_VERBS = BUILD_VERBS | {"validate-plan"}


def claim(name: str, sub_path: str | None = None) -> dict:
    binding = {"persistentVolumeClaim": {"claimName": name}}
    return binding if sub_path is None else {**binding, "subPath": sub_path}


UPSTREAM_VALID = {
    "an error is not returned when no bindings are given": [],
    "an error is not returned when volume claims are not used": [
        {"emptyDir": {}},
        {"secret": {}},
    ],
    "an error is not returned when one PV claim is used in two bindings": [
        claim("foo"),
        claim("foo"),
    ],
    "an error is not returned when one PV claim is used in two bindings with different subpaths": [
        claim("foo", "/pathA"),
        claim("foo", "/pathB"),
    ],
}
UPSTREAM_INVALID = {
    "an error is returned when two different PV claims are used": [claim("foo"), claim("bar")],
    "an error is returned when a PVC and volume claim template are mixed": [
        claim("foo"),
        {"name": "bar", "volumeClaimTemplate": {}},
    ],
}


@pytest.mark.parametrize("name", UPSTREAM_VALID)
def test_the_one_claim_rule_accepts_what_upstream_accepts(name):
    assert validate_only_one_pvc_is_used(UPSTREAM_VALID[name]) is None


@pytest.mark.parametrize("name", UPSTREAM_INVALID)
def test_the_one_claim_rule_refuses_what_upstream_refuses(name):
    assert validate_only_one_pvc_is_used(UPSTREAM_INVALID[name]) == ONE_PVC_ERROR


def triggered(plan=None):
    """The compiled release Pipeline and the PipelineRun its TriggerTemplate creates."""
    documents = compile_tekton_documents(plan or default_plan(), WorkflowSettings())
    pipeline = documents["go-canary-release.pipeline.yaml"]
    template = documents["go-canary-release.triggertemplate.yaml"]
    (run,) = template["spec"]["resourcetemplates"]
    return pipeline, run


def green(attempt: Attempt) -> Outcome:
    results = {"image-push": {"image": DIGEST}, "go-build": {"sha256": "cd" * 32}}
    if attempt.task.startswith("analyze"):
        return Outcome(SUCCEEDED, {"verdict": "pass"})
    return Outcome(SUCCEEDED, results.get(attempt.task, {}))


def simulate(coschedule: str, plan=None):
    pipeline, run = triggered(plan)
    simulator = PipelineRunSimulator(pipeline, PARAMS, pipeline_run=run, coschedule=coschedule)
    return simulator.run(green)


@pytest.mark.parametrize("coschedule", COSCHEDULE_MODES)
def test_a_triggered_release_passes_taskrun_validation_under_every_coschedule_mode(coschedule):
    run = simulate(coschedule)
    failed = {n: s.reason for n, s in run.tasks.items() if s.status == FAILED}
    assert failed == {}
    assert run.reason == "Succeeded"
    assert "promote" in run.ran


def test_every_taskrun_binds_at_most_one_claim_and_the_go_cache_is_a_directory_of_source():
    run = simulate("workspaces")
    for name in run.ran:
        attempt = run.tasks[name].attempts[-1]
        claims = {
            b["persistentVolumeClaim"]["claimName"]
            for b in attempt.workspaces
            if "persistentVolumeClaim" in b
        }
        assert len(claims) <= 1, (name, attempt.workspaces)
    for verb in BUILD_VERBS:
        bindings = {b["name"]: b for b in run.tasks[verb].attempts[-1].workspaces}
        source, cache = bindings["source"], bindings["go-cache"]
        assert cache["persistentVolumeClaim"] == source["persistentVolumeClaim"]
        assert cache["subPath"] == "go-cache" and "subPath" not in source


def test_the_stand_in_fails_a_taskrun_bound_to_two_claims_only_when_coscheduled_by_workspace():
    """The old binding (the Go cache on its own claim beside the run's source claim) fails
    go-test before any pod; a mode without per-workspace affinity lets it through."""
    pipeline, run = triggered()
    for task in pipeline["spec"]["tasks"]:
        for binding in task.get("workspaces", []):
            binding.pop("subPath", None)
            binding["workspace"] = binding["name"]
    pipeline["spec"]["workspaces"].append({"name": "go-cache"})
    run["spec"]["workspaces"].append(claim("canaryflow-go-cache") | {"name": "go-cache"})
    refused = PipelineRunSimulator(pipeline, PARAMS, pipeline_run=run).run(green)
    assert refused.tasks["go-test"].status == FAILED
    assert refused.tasks["go-test"].reason == TASK_RUN_VALIDATION_FAILED
    assert "image-push" not in refused.ran
    allowed = PipelineRunSimulator(pipeline, PARAMS, pipeline_run=run, coschedule="pipelineruns")
    assert allowed.run(green).reason == "Succeeded"


def test_the_tasks_reading_the_push_run_as_the_build_account_without_a_token():
    run = simulate("workspaces")
    settings = WorkflowSettings()
    for name in run.ran:
        attempt = run.tasks[name].attempts[-1]
        if attempt.ref.get("kind") != "Task":
            continue
        if name in TOKENLESS_VERBS:
            assert attempt.service_account == settings.build_service_account
            assert attempt.pod_template["automountServiceAccountToken"] is False
        else:
            assert attempt.service_account == settings.service_account, name
            assert "automountServiceAccountToken" not in attempt.pod_template, name
        # The merged pod template keeps the run's security context for every task.
        assert attempt.pod_template["securityContext"]["runAsNonRoot"] is True


def test_the_build_account_differs_from_the_release_account():
    settings = WorkflowSettings()
    assert settings.build_service_account != settings.service_account


@settings(max_examples=15, deadline=None)
@given(plan=PLANS, coschedule=st.sampled_from(COSCHEDULE_MODES))
def test_for_any_plan_every_taskrun_is_valid_and_only_the_push_readers_lose_the_token(
    plan, coschedule
):
    run = simulate(coschedule, plan)
    assert all(s.reason != TASK_RUN_VALIDATION_FAILED for s in run.tasks.values())
    tokenless = {
        n
        for n, s in run.tasks.items()
        if s.attempts and s.attempts[-1].pod_template.get("automountServiceAccountToken") is False
    }
    assert tokenless == TOKENLESS_VERBS


@pytest.mark.parametrize("cache_claim", [True, False], ids=["cache-claim-on", "cache-claim-off"])
def test_the_charts_triggered_run_passes_validation_whatever_the_go_cache_values(cache_claim):
    """Rendered by Helm's engine: a push through the chart's Triggers, then its PipelineRun
    against the chart's Pipeline, under the default coschedule mode."""
    from chart_validation import objects
    from tekton_triggers_sim import payload
    from test_tekton_chart import TEKTON_KINDS, listener, sensor_values

    values = sensor_values()
    values["go"] = {"cache": {"persistentVolumeClaim": {"enabled": cache_claim}}}
    rendered = objects(values)
    (pipeline,) = [
        o
        for o in rendered
        if o["kind"] == "Pipeline" and o["metadata"]["name"] == "go-canary-release"
    ]
    (run,) = listener(values).runs(payload("github-push-main.json"))
    assert {o["kind"] for o in rendered} >= TEKTON_KINDS
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    result = PipelineRunSimulator(pipeline, params, pipeline_run=run).run(green)
    assert result.reason == "Succeeded"
    for verb in BUILD_VERBS:
        attempt = result.tasks[verb].attempts[-1]
        assert attempt.service_account == "canaryflow-build"
        assert attempt.pod_template["automountServiceAccountToken"] is False
