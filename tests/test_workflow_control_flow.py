"""The generic release, run through Argo's rules for every way a release can fail.

``depends``, ``when`` and ``{{...}}`` substitution are evaluated as Argo does by the test bed's
evaluators (``cluster.argo.depends``, enhanced depends logic; ``cluster.argo.govaluate``;
``cluster.argo.variables``); a task whose depends is false is Omitted. The
workflow's phase follows ``assessDAGPhase`` (workflow/controller/dag.go): each target task's
own phase when it ran, otherwise the phase of the branch it hangs from, Failed/Error winning.
The step walk follows workflow/controller/steps.go: a steps template runs its groups in order,
a step whose ``when`` is false is Skipped, the first Failed or Errored group ends the template
with that phase; ``plan-step`` recursing into itself is just another step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cluster.argo.controller import WorkflowController
from cluster.argo.depends import Depends
from cluster.argo.govaluate import should_execute
from cluster.argo.templates import TemplateStore
from cluster.argo.variables import substitute as render
from cluster.test_argo_controller import ScriptedPods
from hypothesis import given, settings
from hypothesis import strategies as st

from canaryflow.plan.load import load_plan, plan_from_dict
from canaryflow.release.walk import workflow_outputs
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
    """One run of a compiled DAG where ``outcomes`` says how the tasks that run end.

    ``conditions`` decides a task's ``when`` (True: it runs); a task whose ``when`` is false
    is Skipped, as Argo does.
    """

    def __init__(
        self,
        dag: dict,
        outcomes: dict[str, str],
        conditions: dict[str, bool] | None = None,
    ):
        self.tasks = {t["name"]: t.get("depends") for t in dag["tasks"]}
        conditional = {t["name"] for t in dag["tasks"] if "when" in t}
        self.targets = dag["target"].split() if "target" in dag else self._leaves()
        self.phases: dict[str, str] = {}
        pending = list(self.tasks)
        while pending:
            name = next(n for n in pending if self._ready(n))
            pending.remove(name)
            depends = self.tasks[name]
            runs = depends is None or Depends(depends).evaluate(self.phases)
            if not runs:
                self.phases[name] = "Omitted"
            elif name in conditional and not (conditions or {}).get(name, False):
                self.phases[name] = "Skipped"
            else:
                self.phases[name] = outcomes.get(name, "Succeeded")

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


SPEC = compile_documents(WorkflowSettings())["go-canary-release.workflowtemplate.yaml"]["spec"]
TEMPLATES = {t["name"]: t for t in SPEC["templates"]}
DAG = TEMPLATES[SPEC["entrypoint"]]["dag"]
CHAIN = [t["name"] for t in DAG["tasks"] if t["name"] not in ("rollback", "notify-started")]
CANARY_EXISTS_FROM = CHAIN.index("deploy-canary")


GLOBALS = {
    "workflow.name": "go-canary-release-x7k2p",
    **{
        f"workflow.parameters.{p['name']}": p.get("value", "x")
        for p in SPEC["arguments"]["parameters"]
    },
}


def steps_of(plan_file: str) -> dict[str, str]:
    return workflow_outputs(load_plan(REPO / plan_file))


class Walk:
    """One run of the step walk (``plan-step`` from step 0) over validate-plan's outputs.

    ``outcomes`` maps ``"<step>/<node>"`` (e.g. ``"1/analyze"``) to how that node ends;
    ``verdicts`` maps a step to its analyze verdict (default pass). ``ran`` lists every node
    that ran, in order, as ``"<step>/<node>"``.
    """

    def __init__(self, outputs: dict[str, str], outcomes=None, verdicts=None):
        self.outcomes = outcomes or {}
        self.verdicts = verdicts or {}
        self.ran: list[str] = []
        inputs = {"steps": outputs["steps"], "step": "0", "last-step": outputs["last-step"]}
        self.phase = self._steps("plan-step", inputs)

    def _steps(self, name: str, inputs: dict[str, str]) -> str:
        values = {**GLOBALS, **{f"inputs.parameters.{k}": v for k, v in inputs.items()}}
        for group in TEMPLATES[name]["steps"]:
            phases = [self._step(step, values, inputs["step"]) for step in group]
            failed = [p for p in phases if p in ("Failed", "Errored")]
            if failed:
                return failed[0]
        return "Succeeded"

    def _step(self, step: dict, values: dict[str, str], index: str) -> str:
        if "when" in step and not should_execute(render(step["when"], values)):
            return "Skipped"
        arguments = {a["name"]: render(a["value"], values) for a in step["arguments"]["parameters"]}
        if "template" in step:  # the walk's own templates: traffic-step, plan-step
            return self._steps(step["template"], arguments)
        node = f"{index}/{step['name']}"
        self.ran.append(node)
        if step["name"] == "analyze":
            values["steps.analyze.outputs.parameters.verdict"] = self.verdicts.get(index, "pass")
        return self.outcomes.get(node, "Succeeded")


CHECKOUT = steps_of("examples/plans/checkout.yaml")


def test_the_dag_builds_once_then_walks_the_plan_then_promotes():
    assert CHAIN == [
        "checkout", "validate-plan", "check-contract", "go-test", "go-build", "image-push",
        "deploy-canary", "health-gate", "canary-steps", "approve-promotion", "promote",
    ]  # fmt: skip


def test_the_walk_runs_the_plans_own_steps_in_order_as_separate_nodes():
    walk = Walk(CHECKOUT)

    assert walk.phase == "Succeeded"
    assert walk.ran == [
        "0/set-weight", "0/analyze", "0/notify",
        "1/set-weight", "1/analyze", "1/notify",
        "2/set-weight", "2/analyze", "2/notify",
        "3/approve", "3/notify",
        "4/set-weight", "4/analyze", "4/notify",
    ]  # fmt: skip


def test_another_plan_gives_another_walk_with_the_same_template(tmp_path):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text(
        "service: {name: cart}\n"
        "steps: [{weight: 10, duration: 30s}, {approve: {message: 'Go on?'}}, "
        "{weight: 60, duration: 2m}]\n"
        "promotion: {auto: false}\n"
    )
    outputs = workflow_outputs(load_plan(plan))
    walk = Walk(outputs)

    assert [node for node in walk.ran if not node.endswith("notify")] == [
        "0/set-weight", "0/analyze", "1/approve", "2/set-weight", "2/analyze",
    ]  # fmt: skip
    assert outputs["promotion"] == "approve"
    run = Simulation(DAG, {}, {"approve-promotion": True})
    assert run.ran("approve-promotion") and run.ran("promote")


def test_the_walk_passes_the_plans_weights_and_approval_texts():
    values = {
        "inputs.parameters.steps": CHECKOUT["steps"],
        "inputs.parameters.last-step": CHECKOUT["last-step"],
    }
    traffic, approval = TEMPLATES["plan-step"]["steps"][0]
    weight = traffic["arguments"]["parameters"][0]["value"]
    message = approval["arguments"]["parameters"][0]["value"]
    timeout = approval["arguments"]["parameters"][1]["value"]

    weights = [render(weight, {**values, "inputs.parameters.step": str(i)}) for i in (0, 1, 2, 4)]
    assert weights == ["5", "25", "50", "100"]
    at = {**values, "inputs.parameters.step": "3"}
    assert (render(message, at), render(timeout, at)) == (
        "Half the traffic looks good. Go to 100 %?",
        "3600",
    )


def test_analyze_gets_only_the_step_index_its_window_comes_from_the_plan():
    analyze = TEMPLATES["traffic-step"]["steps"][1][0]
    assert analyze["templateRef"]["template"] == "analyze"
    assert [p["name"] for p in analyze["arguments"]["parameters"]] == ["step"]


@pytest.mark.parametrize("failing", ["0/set-weight", "1/analyze", "3/approve", "4/analyze"])
def test_a_failed_step_ends_the_walk_there_and_rolls_back(failing):
    walk = Walk(CHECKOUT, {failing: "Failed"})

    assert walk.phase == "Failed"
    assert walk.ran[-1] == failing
    run = Simulation(DAG, {"canary-steps": walk.phase})
    assert run.ran("rollback") and not run.ran("promote")
    assert run.workflow_phase == "Failed"


def test_an_approval_that_timed_out_errors_and_rolls_back():
    # No default for the supplied `approver` output: Argo marks a timed-out suspend Errored.
    walk = Walk(CHECKOUT, {"3/approve": "Errored"})
    assert walk.phase == "Errored" and "4/set-weight" not in walk.ran
    run = Simulation(DAG, {"canary-steps": walk.phase})
    assert run.ran("rollback") and run.workflow_phase == "Error"


def test_a_release_where_everything_passes_promotes_and_never_rolls_back():
    run = Simulation(DAG, {})
    assert all(run.ran(name) for name in CHAIN if name != "approve-promotion")
    assert run.phases["approve-promotion"] == "Skipped"
    assert run.phases["rollback"] == "Omitted"
    assert run.workflow_phase == "Succeeded"


@pytest.mark.parametrize("failing", CHAIN)
def test_a_failure_rolls_back_exactly_when_a_canary_was_deployed(failing):
    run = Simulation(DAG, {failing: "Failed"}, {"approve-promotion": True})
    position = CHAIN.index(failing)
    assert [n for n in CHAIN if run.ran(n)] == CHAIN[: position + 1]
    assert run.ran("rollback") is (position >= CANARY_EXISTS_FROM)
    if failing != "promote":
        assert run.phases["promote"] == "Omitted"
    assert run.workflow_phase == "Failed"


@pytest.mark.parametrize("failing", CHAIN[CANARY_EXISTS_FROM:])
def test_an_errored_pod_after_deploy_is_rolled_back_too(failing):
    run = Simulation(DAG, {failing: "Errored"}, {"approve-promotion": True})
    assert run.ran("rollback")
    assert not run.ran("promote") or failing == "promote"
    assert run.workflow_phase == "Error"


def test_a_failed_rollback_fails_the_workflow():
    run = Simulation(DAG, {"canary-steps": "Failed", "rollback": "Failed"})
    assert run.workflow_phase == "Failed"


@pytest.mark.parametrize("failing", CHAIN[CANARY_EXISTS_FROM:-1])
def test_promote_and_rollback_never_both_run(failing):
    run = Simulation(DAG, {failing: "Failed"}, {"approve-promotion": True})
    assert run.ran("rollback") != run.ran("promote")


def test_a_refused_promotion_rolls_back():
    run = Simulation(DAG, {"approve-promotion": "Failed"}, {"approve-promotion": True})
    assert run.ran("rollback") and not run.ran("promote")
    assert run.workflow_phase == "Failed"


def test_the_contract_is_checked_in_the_cluster_with_the_releases_account_before_any_build():
    tasks = {t["name"]: t for t in DAG["tasks"]}
    assert tasks["check-contract"]["depends"] == "validate-plan.Succeeded"
    run = Simulation(DAG, {"check-contract": "Failed"})
    assert not run.ran("go-test") and not run.ran("go-build") and not run.ran("rollback")
    assert run.workflow_phase == "Failed"


def test_the_started_notification_runs_before_the_tests_and_before_any_change():
    tasks = {t["name"]: t for t in DAG["tasks"]}
    assert tasks["notify-started"]["depends"] == "check-contract.Succeeded"
    assert tasks["go-test"]["depends"] == "notify-started.Succeeded"
    run = Simulation(DAG, {"notify-started": "Failed"})
    assert not run.ran("go-test") and not run.ran("deploy-canary") and not run.ran("rollback")


def test_no_two_tasks_of_the_dag_can_hold_the_read_write_once_workspace_at_once():
    """Every pair of workspace users is ordered by ``depends`` (a Multi-Attach wait otherwise,
    when Argo schedules two of them on different nodes)."""
    tasks = {t["name"]: t for t in DAG["tasks"]}

    def before(task: str) -> set[str]:
        found: set[str] = set()
        for name in Depends.referenced(tasks[task].get("depends") or ""):
            found |= {name, *before(name)}
        return found

    for a in tasks:
        for b in tasks:
            if a < b:
                assert a in before(b) or b in before(a), f"{a} and {b} may run at once"


def test_every_step_is_announced_after_it_passed():
    walk = Walk(CHECKOUT, {"2/analyze": "Failed"})
    assert "2/notify" not in walk.ran and "1/notify" in walk.ran


def _hold_outputs(tmp_path) -> dict[str, str]:
    plan = yaml.safe_load((REPO / "examples/plans/checkout.yaml").read_text())
    plan.setdefault("rollback", {})["onInconclusive"] = "hold"
    path = tmp_path / "hold.yaml"
    path.write_text(yaml.safe_dump(plan))
    return workflow_outputs(load_plan(path))


def test_on_inconclusive_hold_asks_a_person_only_after_an_inconclusive_window(tmp_path):
    outputs = _hold_outputs(tmp_path)

    passed = Walk(outputs)
    assert not any(node.endswith("/hold") for node in passed.ran)
    held = Walk(outputs, verdicts={"1": "inconclusive"})
    assert [node for node in held.ran if node.endswith("/hold")] == ["1/hold"]
    assert held.ran.index("1/hold") < held.ran.index("2/set-weight")
    assert held.phase == "Succeeded"


def test_a_held_step_refused_ends_the_walk(tmp_path):
    walk = Walk(_hold_outputs(tmp_path), {"1/hold": "Failed"}, {"1": "inconclusive"})
    assert walk.phase == "Failed" and "2/set-weight" not in walk.ran


def exit_handler(template: str) -> dict:
    spec = compile_documents(WorkflowSettings())[template]["spec"]
    return next(t for t in spec["templates"] if t["name"] == spec["onExit"])["dag"]


def flag_dag() -> dict:
    spec = compile_documents(WorkflowSettings())["feature-flag-rollout.workflowtemplate.yaml"][
        "spec"
    ]
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
    handler = exit_handler(template)
    tasks = {t["name"]: t for t in handler["tasks"]}

    assert tasks[net]["templateRef"]["template"] == net
    assert tasks[net]["when"].startswith("{{workflow.status}} != Succeeded")
    for phase in ("Succeeded", "Failed", "Errored"):
        run = Simulation(handler, {net: phase}, {net: True})
        assert run.ran("notify"), f"notify must follow a {phase} {net}"
    skipped = Simulation(handler, {}, {net: False})
    assert skipped.phases[net] == "Skipped" and skipped.ran("notify")


def test_the_final_notification_knows_a_rollback_from_an_early_failure():
    tasks = {t["name"]: t for t in exit_handler("go-canary-release.workflowtemplate.yaml")["tasks"]}
    arguments = {p["name"]: p["value"] for p in tasks["notify"]["arguments"]["parameters"]}
    assert arguments["traffic-tasks"].split(",") == ["canary-steps", "approve-promotion", "promote"]
    assert arguments["failures"] == "{{workflow.failures}}"
    assert "event" not in arguments


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


@st.composite
def plans(draw) -> dict:
    """Any plan shape: increasing weights, approvals anywhere, optional manual promotion."""
    count = draw(st.integers(min_value=1, max_value=12))
    weights = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=count)))
    steps: list[dict] = [
        {"weight": w, "duration": f"{draw(st.integers(1, 600))}s"} for w in weights
    ]
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(steps)))
        steps.insert(position, {"approve": {"message": draw(st.text(max_size=30))}})
    return {
        "service": {"name": "svc"},
        "steps": steps,
        "promotion": {"auto": draw(st.booleans())},
    }


@settings(max_examples=60, deadline=None)
@given(plans(), st.data())
def test_any_plan_is_walked_step_by_step_and_a_failure_stops_it_there(document, data):
    plan = plan_from_dict(document)
    outputs = workflow_outputs(plan)
    expected = []
    for index, step in enumerate(plan.steps):
        names = ["set-weight", "analyze"] if step.is_traffic else ["approve"]
        expected += [f"{index}/{name}" for name in [*names, "notify"]]

    walk = Walk(outputs)
    assert walk.ran == expected and walk.phase == "Succeeded"

    failing = data.draw(st.sampled_from([n for n in expected if not n.endswith("/notify")]))
    stopped = Walk(outputs, {failing: "Failed"})
    assert stopped.phase == "Failed"
    assert stopped.ran == expected[: expected.index(failing) + 1]


# -- the exit handler's rollback through the Argo stand-in -------------------------------------

RELEASE_ARGUMENTS = {
    "repo": "https://git.example.com/acme/checkout.git",
    "revision": "abc123",
    "service": "checkout",
    "namespace": "shop",
    "image-repository": "reg.example.com/checkout",
}


class ScriptedReleasePods(ScriptedPods):
    """Exit codes per template; image-push reports the pinned image it pushed."""

    def run(self, pod, stop):
        result = super().run(pod, stop)
        if pod.template["name"] == "image-push" and result.phase == "Succeeded":
            result.outputs["image"] = "reg.example.com/checkout@sha256:" + "a" * 64
        return result


def run_release(tmp_path, script: dict):
    store = TemplateStore()
    store.apply(compile_documents(WorkflowSettings()).values(), "argo")
    pods = ScriptedReleasePods(script)
    controller = WorkflowController(store, pods, tmp_path)  # type: ignore[arg-type]
    parameters = [{"name": k, "value": v} for k, v in RELEASE_ARGUMENTS.items()]
    spec = {
        "workflowTemplateRef": {"name": "go-canary-release"},
        "arguments": {"parameters": parameters},
    }
    controller.submit({"metadata": {"name": "rel", "namespace": "argo"}, "spec": spec})
    workflow = controller.wait("rel", 60)
    exit_nodes = {n.display_name: n for n in workflow.nodes.values() if n.on_exit}
    notify = [argv for name, argv in pods.ran if name == "notify"][-1]
    return workflow, exit_nodes, notify


@pytest.mark.parametrize(
    "failing", ["checkout", "validate-plan", "check-contract", "go-test", "go-build"]
)
def test_nothing_deployed_means_no_rollback_on_exit_and_no_alarm(tmp_path, failing):
    """Before image-push succeeded deploy-canary never started: the exit handler's rollback is
    Skipped (it would fail without a plan), so notify hears no failed safety net."""
    workflow, exit_nodes, notify = run_release(tmp_path, {failing: [2]})

    assert workflow.phase == "Failed"
    assert exit_nodes["rollback"].phase == "Skipped"
    assert notify[notify.index("--safety-net") + 1] == "Skipped"


def test_once_an_image_could_be_deployed_the_exit_handler_rolls_back(tmp_path):
    workflow, exit_nodes, notify = run_release(tmp_path, {"health-gate": [1]})

    assert workflow.phase == "Failed"
    assert workflow.global_outputs["deployable-image"].endswith("a" * 64)
    rollback = [n for name, n in exit_nodes.items() if name.startswith("rollback")]
    assert rollback and all(n.phase != "Skipped" for n in rollback)
    assert notify[notify.index("--safety-net") + 1] == "Succeeded"


def test_every_release_workflow_is_labelled_with_its_service_pushed_or_submitted(tmp_path):
    """``argo submit --from`` gets ``workflows.argoproj.io/workflow-template`` (convert.go
    ``NewWorkflowFromWorkflowTemplate``); a Sensor's Workflow does not. The template's
    ``workflowMetadata.labelsFrom`` labels both, so ``argo list -l`` finds both."""
    store = TemplateStore()
    store.apply(compile_documents(WorkflowSettings()).values(), "argo")
    controller = WorkflowController(store, ScriptedReleasePods({"checkout": [2]}), tmp_path)  # type: ignore[arg-type]
    parameters = [{"name": k, "value": v} for k, v in RELEASE_ARGUMENTS.items()]
    spec = {
        "workflowTemplateRef": {"name": "go-canary-release"},
        "arguments": {"parameters": parameters},
    }
    submitted = {  # what the argo CLI sends for `argo submit --from workflowtemplate/...`
        "metadata": {
            "generateName": "go-canary-release-",
            "labels": {"workflows.argoproj.io/workflow-template": "go-canary-release"},
        },
        "spec": spec,
    }
    pushed = {"metadata": {"generateName": "checkout-", "labels": {}}, "spec": spec}
    names = [controller.submit(obj).name for obj in (submitted, pushed)]
    for name in names:
        controller.wait(name, 60)

    listed = {w.name for w in controller.list("canaryflow.dev/release=checkout")}
    assert listed == set(names)
    assert {w.name for w in controller.list("canaryflow.dev/release")} == set(names)
    assert controller.list("canaryflow.dev/release=cart") == []
    old = controller.list("workflows.argoproj.io/workflow-template=go-canary-release")
    assert [w.name for w in old] == names[:1]  # what NOTES.txt used to print
