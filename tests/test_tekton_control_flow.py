"""The compiled Tekton release Pipeline, run through Tekton's scheduling rules (tekton_sim).

Every way a release ends: all green (promote, no rollback), a failing analysis window (nothing
after it runs; ``finally`` rolls back), a rejected approval, a gracefully cancelled or stopped
run (``finally`` still rolls back), a hard cancel (no ``finally``: the documented limit), and
``onInconclusive: hold``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tekton_sim import (
    CANCELLED,
    CANCELLED_RUN_FINALLY,
    FAILED,
    GRACEFULLY_STOPPED,
    STOPPED_RUN_FINALLY,
    STOPPING,
    SUCCEEDED,
    WHEN_SKIP,
    Attempt,
    Outcome,
    PipelineRunSimulator,
)

from canaryflow.plan.load import load_plan, plan_from_dict
from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.documents import default_plan
from canaryflow_workflows.tekton.pipeline import build_flag_pipeline, build_release_pipeline

REPO = Path(__file__).resolve().parents[1]
DIGEST = "registry.example.com/shop/checkout@sha256:" + "ab" * 32
PARAMS = {
    "repo": "https://git.example.com/shop/checkout.git",
    "revision": "3f2c1e9",
    "image-repository": "registry.example.com/shop/checkout",
}


def checkout_plan():
    return load_plan(REPO / "examples/plans/checkout.yaml")


def hold_plan():
    plan = checkout_plan()
    return plan.model_copy(
        update={"rollback": plan.rollback.model_copy(update={"on_inconclusive": "hold"})}
    )


class Cluster:
    """Runs every task as the verbs would: results written, chosen tasks failing."""

    def __init__(self, fail: set[str] = frozenset(), verdicts: dict[str, str] | None = None):
        self.fail = set(fail)
        self.verdicts = verdicts or {}

    def __call__(self, attempt: Attempt) -> Outcome:
        if attempt.task in self.fail:
            verdict = {"verdict": "fail"} if attempt.task.startswith("analyze") else {}
            return Outcome(FAILED, verdict)
        results = {
            "image-push": {"image": DIGEST},
            "go-build": {"sha256": "cd" * 32},
        }.get(attempt.task, {})
        if attempt.task.startswith("analyze"):
            results = {"verdict": self.verdicts.get(attempt.task, "pass")}
        return Outcome(SUCCEEDED, results)


def simulate(plan, cluster: Cluster, interrupt=None):
    pipeline = build_release_pipeline(plan, WorkflowSettings())
    return PipelineRunSimulator(pipeline, PARAMS).run(cluster, interrupt)


def test_a_green_release_runs_every_step_in_plan_order_promotes_and_never_rolls_back():
    run = simulate(checkout_plan(), Cluster())
    assert run.ran == [
        "checkout", "validate-plan", "check-contract", "notify-started", "go-test", "go-build",
        "image-push", "deploy-canary",
        "health-gate", "set-weight-0", "analyze-0", "set-weight-1", "analyze-1",
        "set-weight-2", "analyze-2", "approve-3", "set-weight-4", "analyze-4", "promote",
        "notify",
    ]  # fmt: skip
    assert run.tasks["rollback"].reason == WHEN_SKIP
    assert run.params_of("notify")["status"] == "Succeeded"
    assert run.reason == "Succeeded"


def test_a_broken_contract_stops_the_run_before_anything_is_built():
    run = simulate(checkout_plan(), Cluster(fail={"check-contract"}))
    assert run.ran[:3] == ["checkout", "validate-plan", "check-contract"]
    assert not {"go-test", "go-build", "image-push", "deploy-canary"} & set(run.ran)
    assert run.reason == "Failed"


def test_the_image_is_deployed_and_promoted_by_the_digest_image_push_wrote():
    run = simulate(checkout_plan(), Cluster())
    assert run.params_of("deploy-canary")["image"] == DIGEST
    assert run.params_of("promote")["image"] == DIGEST


def test_the_header_route_opens_with_the_first_weight_only():
    pipeline = build_release_pipeline(checkout_plan(), WorkflowSettings())
    refs = {t["name"]: t["taskRef"].get("name") for t in pipeline["spec"]["tasks"]}
    assert refs["set-weight-0"] == "canaryflow-set-weight-with-header-route"
    assert {refs["set-weight-1"], refs["set-weight-4"]} == {"canaryflow-set-weight"}


def test_a_failing_window_stops_the_release_and_finally_rolls_back():
    run = simulate(checkout_plan(), Cluster(fail={"analyze-1"}))
    assert run.ran[-4:] == ["set-weight-1", "analyze-1", "rollback", "notify"]
    for name in ("set-weight-2", "analyze-2", "approve-3", "promote"):
        assert run.tasks[name].reason == STOPPING, name
    assert "did not succeed" in run.params_of("rollback")["reason"]
    assert run.params_of("notify")["status"] == "None"
    assert run.reason == "Failed"


def test_a_window_that_fails_is_never_retried_but_an_idempotent_verb_is():
    run = simulate(checkout_plan(), Cluster(fail={"analyze-0"}))
    assert len(run.tasks["analyze-0"].attempts) == 1
    run = simulate(checkout_plan(), Cluster(fail={"set-weight-0"}))
    assert len(run.tasks["set-weight-0"].attempts) == 4  # 1 + retries: 3
    assert "rollback" in run.ran


@pytest.mark.parametrize("failing", ["deploy-canary", "health-gate", "promote", "approve-3"])
def test_any_failure_after_the_canary_exists_rolls_back(failing):
    run = simulate(checkout_plan(), Cluster(fail={failing}))
    assert run.tasks["rollback"].status == SUCCEEDED
    assert run.reason == "Failed"


def test_a_failure_before_the_plan_is_resolved_runs_neither_rollback_nor_notify():
    run = simulate(checkout_plan(), Cluster(fail={"validate-plan"}))
    assert run.ran == ["checkout", "validate-plan"]
    assert run.tasks["rollback"].reason == WHEN_SKIP
    assert run.tasks["notify"].reason == WHEN_SKIP


def test_a_failing_build_rolls_back_idempotently_before_any_canary_exists():
    run = simulate(checkout_plan(), Cluster(fail={"go-test"}))
    assert "deploy-canary" not in run.ran
    assert run.tasks["rollback"].status == SUCCEEDED


def test_a_graceful_cancel_mid_window_cancels_it_and_finally_still_rolls_back():
    def cancel(task):
        return CANCELLED_RUN_FINALLY if task == "analyze-1" else None

    run = simulate(checkout_plan(), Cluster(), cancel)
    assert run.tasks["analyze-1"].status == FAILED
    assert run.tasks["analyze-1"].reason == "TaskRunCancelled"
    # The cancelled TaskRun counts as failed, and skip() tests IsStopping first.
    assert run.tasks["set-weight-2"].reason == STOPPING
    assert run.ran[-2:] == ["rollback", "notify"]
    assert run.reason == CANCELLED_RUN_FINALLY


def test_a_graceful_stop_rolls_back_although_tasks_status_reads_completed():
    """Tekton counts the tasks a stop never started as skipped, so ``$(tasks.status)`` is
    ``Completed`` here, as after a green run: the rollback must not be guarded by it."""

    def stop(task):
        return STOPPED_RUN_FINALLY if task == "analyze-1" else None

    pipeline = build_release_pipeline(checkout_plan(), WorkflowSettings())
    simulator = PipelineRunSimulator(pipeline, PARAMS)
    run = simulator.run(Cluster(), stop)
    assert run.tasks["analyze-1"].status == SUCCEEDED  # a stop lets the running task finish
    assert run.tasks["set-weight-2"].reason == GRACEFULLY_STOPPED
    assert simulator.statuses(run.tasks)["$aggregate"] == "Completed"
    assert run.tasks["rollback"].status == SUCCEEDED


def test_a_hard_cancel_runs_no_finally_which_is_why_the_readme_says_cancel_gracefully():
    def cancel(task):
        return CANCELLED if task == "analyze-1" else None

    run = simulate(checkout_plan(), Cluster(), cancel)
    assert run.tasks["rollback"].status is None
    assert run.ran[-1] == "analyze-1"


def test_an_inconclusive_window_asks_a_person_and_a_passing_one_does_not():
    run = simulate(hold_plan(), Cluster(verdicts={"analyze-1": "inconclusive"}))
    assert "hold-1" in run.ran
    assert run.tasks["hold-0"].reason == WHEN_SKIP
    assert run.params_of("hold-1")["approvers"] == ["group:canaryflow-approvers"]
    # A when-skipped approval does not skip what follows it.
    assert run.ran[-3:] == ["analyze-4", "promote", "notify"]
    assert run.tasks["rollback"].reason == WHEN_SKIP
    assert run.reason == "Completed"


def test_a_rejected_hold_rolls_back():
    cluster = Cluster(fail={"hold-1"}, verdicts={"analyze-1": "inconclusive"})
    run = simulate(hold_plan(), cluster)
    assert run.tasks["promote"].reason == STOPPING
    assert run.tasks["rollback"].status == SUCCEEDED


def test_the_default_plan_releases_without_any_approval():
    run = simulate(default_plan(), Cluster())
    assert not [name for name in run.ran if name.startswith(("approve", "hold"))]
    assert run.reason == "Succeeded"


def test_a_failed_flag_rollout_or_a_stopped_one_switches_the_flag_off():
    pipeline = build_flag_pipeline(WorkflowSettings())
    params = {"repo": "r", "revision": "v", "service": "s", "namespace": "n", "configmap": "f"}
    green = PipelineRunSimulator(pipeline, params).run(Cluster())
    assert green.tasks["flag-off"].reason == WHEN_SKIP
    failed = PipelineRunSimulator(pipeline, params).run(Cluster(fail={"flag-rollout"}))
    assert failed.tasks["flag-off"].status == SUCCEEDED

    def stop(task):
        return STOPPED_RUN_FINALLY if task == "validate-plan" else None

    stopped = PipelineRunSimulator(pipeline, params).run(Cluster(), stop)
    assert stopped.tasks["flag-rollout"].reason == GRACEFULLY_STOPPED
    assert stopped.tasks["flag-off"].status == SUCCEEDED


def _task(name: str, **fields) -> dict:
    return {"name": name, "taskRef": {"name": name}, **fields}


def test_the_simulator_follows_tektons_skip_rules_on_a_small_pipeline():
    """docs/pipelines.md, "Guarding a Task and its dependent Tasks": a task skipped by its own
    ``when`` does not skip the tasks after it; after a failure nothing new is scheduled
    (IsStopping); a final task that reads a failed task's result is skipped
    ("Consuming Task execution results in finally")."""
    pipeline = {
        "spec": {
            "params": [{"name": "deploy", "default": "no"}],
            "tasks": [
                _task("build"),
                _task(
                    "guarded",
                    runAfter=["build"],
                    when=[{"input": "$(params.deploy)", "operator": "in", "values": ["yes"]}],
                ),
                _task("after-guarded", runAfter=["guarded"]),
                _task("breaks", runAfter=["after-guarded"]),
                _task("never", runAfter=["breaks"]),
            ],
            "finally": [
                _task("reads-result", params=[{"name": "x", "value": "$(tasks.breaks.results.x)"}]),
                _task(
                    "on-failure",
                    when=[{"input": "$(tasks.status)", "operator": "in", "values": ["Failed"]}],
                ),
            ],
        }
    }

    def runner(attempt):
        return Outcome(FAILED) if attempt.task == "breaks" else Outcome(SUCCEEDED)

    run = PipelineRunSimulator(pipeline, {}).run(runner)
    assert run.tasks["guarded"].reason == WHEN_SKIP
    assert run.tasks["after-guarded"].status == SUCCEEDED
    assert run.tasks["never"].reason == STOPPING
    assert run.tasks["reads-result"].reason == "Results were missing"
    assert run.ran == ["build", "after-guarded", "breaks", "on-failure"]


def _steps(weights: list[int], approvals: list[bool]) -> list[dict]:
    """Rising weights, each maybe followed by an approval (a plan's valid shapes)."""
    steps: list[dict] = []
    for weight, approve in zip(weights, approvals, strict=False):
        steps.append({"weight": weight, "duration": "30s"})
        if approve:
            steps.append({"approve": {"message": "Go on?"}})
    return steps


STEPS = st.builds(
    _steps,
    st.lists(st.integers(1, 100), min_size=1, max_size=5, unique=True).map(sorted),
    st.lists(st.booleans(), min_size=5, max_size=5),
)
PLANS = st.builds(
    lambda steps, hold, auto: plan_from_dict(
        {
            "service": {"name": "svc"},
            "steps": steps,
            "rollback": {"onInconclusive": "hold" if hold else "rollback"},
            "promotion": {"auto": auto},
        }
    ),
    STEPS,
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=30, deadline=None)
@given(plan=PLANS, data=st.data())
def test_for_any_plan_a_failure_after_deploy_rolls_back_and_never_promotes(plan, data):
    names = [t["name"] for t in build_release_pipeline(plan, WorkflowSettings())["spec"]["tasks"]]
    failing = data.draw(st.sampled_from(names[names.index("deploy-canary") :]))
    # A hold runs only after an inconclusive window: make its window inconclusive.
    verdicts = {failing.replace("hold-", "analyze-"): "inconclusive"} if "hold-" in failing else {}
    run = simulate(plan, Cluster(fail={failing}, verdicts=verdicts))
    assert failing in run.ran
    assert run.tasks["rollback"].status == SUCCEEDED
    assert run.tasks["promote"].status != SUCCEEDED
    assert run.reason == "Failed"


@settings(max_examples=30, deadline=None)
@given(plan=PLANS)
def test_for_any_plan_a_green_run_promotes_last_and_never_rolls_back(plan):
    run = simulate(plan, Cluster())
    assert run.ran[-2:] == ["promote", "notify"]
    assert run.tasks["rollback"].reason == WHEN_SKIP
    traffic = [i for i, step in enumerate(plan.steps) if step.approve is None]
    assert [n for n in run.ran if n.startswith("analyze-")] == [f"analyze-{i}" for i in traffic]
