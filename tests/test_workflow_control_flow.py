"""The compiled release DAG, run through Argo's rules for every way a release can fail.

``depends`` is evaluated as Argo does by the test bed's evaluator (``cluster.argo.depends``:
enhanced depends logic); a task whose depends is false is Omitted. The
workflow's phase follows ``assessDAGPhase`` (workflow/controller/dag.go): each target task's
own phase when it ran, otherwise the phase of the branch it hangs from, Failed/Error winning.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cluster.argo.depends import Depends

from canaryflow.plan.load import load_plan
from canaryflow_workflows import WorkflowSettings, compile_documents

REPO = Path(__file__).resolve().parents[1]
RAN = {"Succeeded", "Failed", "Errored"}


def test_the_depends_evaluator_follows_argo_grammar():
    phases = {"a": "Succeeded", "b": "Failed", "c-d": "Omitted"}
    assert Depends("a && !b.Succeeded").evaluate(phases)
    assert Depends("(a.Failed || b.Failed) && c-d.Omitted").evaluate(phases)
    assert not Depends("b || c-d").evaluate(phases)
    assert Depends("!(a.Failed || b.Succeeded)").evaluate(phases)


class Simulation:
    """One run of the compiled DAG where ``outcomes`` says how the tasks that run end."""

    def __init__(self, dag: dict, outcomes: dict[str, str]):
        self.tasks = {t["name"]: t.get("depends") for t in dag["tasks"]}
        self.targets = dag["target"].split() if "target" in dag else self._leaves()
        self.phases: dict[str, str] = {}
        pending = list(self.tasks)
        while pending:
            name = next(n for n in pending if self._ready(n))
            pending.remove(name)
            depends = self.tasks[name]
            runs = depends is None or Depends(depends).evaluate(self.phases)
            self.phases[name] = outcomes.get(name, "Succeeded") if runs else "Omitted"

    def _ready(self, name: str) -> bool:
        depends = self.tasks[name]
        return depends is None or Depends.referenced(depends) <= set(self.phases)

    def _leaves(self) -> list[str]:
        parents = set().union(*(Depends.referenced(d) for d in self.tasks.values() if d))
        return [name for name in self.tasks if name not in parents]

    def ran(self, name: str) -> bool:
        return self.phases[name] in RAN

    def _branch(self, name: str) -> str:
        if self.ran(name):
            return self.phases[name]
        parents = Depends.referenced(self.tasks[name] or "")
        branches = {self._branch(parent) for parent in parents}
        return next((p for p in ("Failed", "Errored") if p in branches), "Succeeded")

    @property
    def workflow_phase(self) -> str:
        branches = {self._branch(target) for target in self.targets}
        if "Failed" in branches:
            return "Failed"
        return "Error" if "Errored" in branches else "Succeeded"


def release_dag(plan_file: str = "examples/plans/checkout.yaml") -> dict:
    documents = compile_documents(load_plan(REPO / plan_file), WorkflowSettings())
    spec = documents["go-canary-release.workflowtemplate.yaml"]["spec"]
    return next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])["dag"]


DAG = release_dag()
CHAIN = [t["name"] for t in DAG["tasks"] if t["name"] != "rollback"]
CANARY_EXISTS_FROM = CHAIN.index("deploy-canary")


def test_the_dag_follows_the_plan_step_by_step():
    assert CHAIN == [
        "checkout", "validate-plan", "go-test", "go-build", "image-push",
        "deploy-canary", "health-gate",
        "set-weight-0", "analyze-0", "set-weight-1", "analyze-1", "set-weight-2", "analyze-2",
        "approve-3", "set-weight-4", "analyze-4",
        "promote",
    ]  # fmt: skip


def test_a_release_where_everything_passes_promotes_and_never_rolls_back():
    run = Simulation(DAG, {})
    assert all(run.ran(name) for name in CHAIN)
    assert run.phases["rollback"] == "Omitted"
    assert run.workflow_phase == "Succeeded"


@pytest.mark.parametrize("failing", CHAIN)
def test_a_failure_rolls_back_exactly_when_a_canary_was_deployed(failing):
    run = Simulation(DAG, {failing: "Failed"})
    position = CHAIN.index(failing)
    assert [n for n in CHAIN if run.ran(n)] == CHAIN[: position + 1]
    assert run.ran("rollback") is (position >= CANARY_EXISTS_FROM)
    if failing != "promote":
        assert run.phases["promote"] == "Omitted"
    assert run.workflow_phase == "Failed"


@pytest.mark.parametrize("failing", CHAIN[CANARY_EXISTS_FROM:])
def test_an_errored_pod_after_deploy_is_rolled_back_too(failing):
    run = Simulation(DAG, {failing: "Errored"})
    assert run.ran("rollback")
    assert not run.ran("promote") or failing == "promote"
    assert run.workflow_phase == "Error"


def test_a_rejected_approval_rolls_back_and_fails():
    run = Simulation(DAG, {"approve-3": "Failed"})
    assert run.ran("rollback") and not run.ran("set-weight-4") and not run.ran("promote")
    assert run.workflow_phase == "Failed"


def test_an_approval_that_timed_out_rolls_back():
    # No default for the supplied `approver` output: Argo marks a timed-out suspend Errored.
    run = Simulation(DAG, {"approve-3": "Errored"})
    assert run.ran("rollback") and not run.ran("promote")
    assert run.workflow_phase == "Error"


def test_a_failed_rollback_fails_the_workflow():
    run = Simulation(DAG, {"analyze-1": "Failed", "rollback": "Failed"})
    assert run.workflow_phase == "Failed"


@pytest.mark.parametrize("failing", CHAIN[CANARY_EXISTS_FROM:-1])
def test_promote_and_rollback_never_both_run(failing):
    run = Simulation(DAG, {failing: "Failed"})
    assert run.ran("rollback") != run.ran("promote")


def test_manual_promotion_adds_an_approval_before_promote(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "service: {name: cart}\n"
        "router: {header: null}\n"
        "steps: [{weight: 10, duration: 30s}, {weight: 100, duration: 1m}]\n"
        "promotion: {auto: false}\n"
    )
    dag = release_dag(str(plan))
    tasks = {t["name"]: t for t in dag["tasks"]}
    assert tasks["promote"]["depends"] == "approve-promotion.Succeeded"
    assert tasks["set-weight-0"]["templateRef"]["template"] == "set-weight"
    run = Simulation(dag, {"approve-promotion": "Failed"})
    assert run.ran("rollback") and run.workflow_phase == "Failed"


def test_the_header_route_opens_with_the_first_weight():
    tasks = {t["name"]: t for t in DAG["tasks"]}
    assert tasks["set-weight-0"]["templateRef"]["template"] == "set-weight-with-header-route"
    assert tasks["set-weight-1"]["templateRef"]["template"] == "set-weight"


def test_analysis_windows_last_as_long_as_the_plan_steps():
    tasks = {t["name"]: t for t in DAG["tasks"]}
    arguments = {p["name"]: p["value"] for p in tasks["analyze-1"]["arguments"]["parameters"]}
    assert arguments == {"duration": "5m", "step": "1"}
    approval = {p["name"]: p["value"] for p in tasks["approve-3"]["arguments"]["parameters"]}
    assert approval["timeout"] == "3600"


def exit_handler(template: str) -> dict:
    documents = compile_documents(
        load_plan(REPO / "examples/plans/checkout.yaml"), WorkflowSettings()
    )
    spec = documents[template]["spec"]
    return next(t for t in spec["templates"] if t["name"] == spec["onExit"])["dag"]


def flag_dag() -> dict:
    documents = compile_documents(
        load_plan(REPO / "examples/plans/checkout.yaml"), WorkflowSettings()
    )
    spec = documents["feature-flag-rollout.workflowtemplate.yaml"]["spec"]
    return next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])["dag"]


FLAG_DAG = flag_dag()


@pytest.mark.parametrize(
    ("template", "net"),
    [
        ("go-canary-release.workflowtemplate.yaml", "rollback"),
        ("feature-flag-rollout.workflowtemplate.yaml", "flag-off"),
    ],
)
def test_a_stopped_timed_out_or_failed_workflow_runs_the_safety_net_on_exit(template, net):
    """``argo stop`` and the deadline run only the exit handler: it must undo the exposure."""
    tasks = {t["name"]: t for t in exit_handler(template)["tasks"]}

    assert tasks[net]["templateRef"]["template"] == net
    assert tasks[net]["when"] == "{{workflow.status}} != Succeeded"
    assert "depends" not in tasks["notify"] and "when" not in tasks["notify"]


def test_a_flag_rollout_is_the_plan_then_one_task_that_runs_every_step():
    run = Simulation(FLAG_DAG, {})
    assert list(run.phases) == ["checkout", "validate-plan", "flag-rollout"]
    assert run.workflow_phase == "Succeeded"


@pytest.mark.parametrize("phase", ["Failed", "Errored"])
def test_a_failed_or_lost_flag_rollout_fails_the_workflow(phase):
    run = Simulation(FLAG_DAG, {"flag-rollout": phase})
    assert run.workflow_phase == ("Failed" if phase == "Failed" else "Error")


@pytest.mark.parametrize("failing", ["checkout", "validate-plan"])
def test_no_rollout_starts_when_the_plan_never_arrived(failing):
    run = Simulation(FLAG_DAG, {failing: "Failed"})
    assert run.phases["flag-rollout"] == "Omitted"
    assert run.workflow_phase == "Failed"


def hold_dag(tmp_path) -> dict:
    plan = yaml.safe_load((REPO / "examples/plans/checkout.yaml").read_text())
    plan.setdefault("rollback", {})["onInconclusive"] = "hold"
    path = tmp_path / "hold.yaml"
    path.write_text(yaml.safe_dump(plan))
    documents = compile_documents(load_plan(path), WorkflowSettings())
    spec = documents["go-canary-release.workflowtemplate.yaml"]["spec"]
    return next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])["dag"]


def test_on_inconclusive_hold_asks_a_person_only_after_an_inconclusive_window(tmp_path):
    dag = hold_dag(tmp_path)
    tasks = {t["name"]: t for t in dag["tasks"]}

    assert tasks["hold-1"]["depends"] == "analyze-1.Succeeded"
    verdict = "{{tasks.analyze-1.outputs.parameters.verdict}}"
    assert tasks["hold-1"]["when"] == f"{verdict} == inconclusive"
    assert tasks["set-weight-2"]["depends"] == "(hold-1.Succeeded || hold-1.Skipped)"
    passed = Simulation(dag, {f"hold-{i}": "Skipped" for i in (0, 1, 2, 4)})
    assert passed.ran("promote") and passed.workflow_phase == "Succeeded"


def test_a_held_step_goes_on_with_a_yes_and_rolls_back_with_a_no(tmp_path):
    dag = hold_dag(tmp_path)
    skipped = {f"hold-{i}": "Skipped" for i in (0, 2, 4)}

    approved = Simulation(dag, skipped)  # hold-1 ran and a person resumed it
    assert approved.ran("hold-1") and approved.ran("promote")
    assert approved.phases["rollback"] == "Omitted"
    rejected = Simulation(dag, {**skipped, "hold-1": "Failed"})
    assert rejected.ran("rollback") and not rejected.ran("set-weight-2")
    assert rejected.workflow_phase == "Failed"
