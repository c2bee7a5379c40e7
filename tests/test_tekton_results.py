"""What a Tekton release carries between tasks and how long it waits for people: results that
fit the termination message whatever the plan, approvals that time out when the plan says on
every Tekton and manual-approval-gate version, and a repository plan whose steps changed since
the Pipeline was compiled stopped before anything is deployed."""

from __future__ import annotations

import itertools
import re

import pytest
from tekton_sim import (
    FAILED,
    Attempt,
    Outcome,
    PipelineRunSimulator,
    approval_wait,
    termination_message,
    termination_message_error,
)
from test_tekton_taskruns import PARAMS, green, triggered

from canaryflow.cli import main
from canaryflow.plan.load import load_plan
from canaryflow.plan.shape import compiled_shape
from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.tasks import tekton_tasks

PIPELINES_VERSIONS = [(0, 50), (1, 10), (1, 11), (1, 15)]
GATE_VERSIONS = [(0, 7), (0, 8)]
LONG_MESSAGE = "Check the dashboards & the <error budget> before going on. " * 8


def plan_text(approvals: int, message: str = LONG_MESSAGE) -> str:
    steps = ["  - {weight: 10, duration: 1m}"]
    for index in range(approvals):
        steps.append(f"  - {{approve: {{message: {message.strip()!r}, timeout: {index + 1}m}}}}")
        steps.append(f"  - {{weight: {min(99, 20 + index)}, duration: 1m}}")
    steps.append("  - {weight: 100, duration: 1m}")
    return "service: {name: checkout, namespace: shop}\nsteps:\n" + "\n".join(steps) + "\n"


def validate_task():
    (task,) = [
        t
        for t in tekton_tasks(WorkflowSettings())
        if t["metadata"]["name"].endswith("validate-plan")
    ]
    return task


def written_outputs(tmp_path, text: str) -> dict[str, str]:
    (tmp_path / "canaryflow.yaml").write_text(text)
    outputs = tmp_path / "results"
    argv = ["validate", str(tmp_path / "canaryflow.yaml"), "--offline", "--workflow-outputs"]
    assert main([*argv, str(outputs)]) == 0
    return {p.name: p.read_text() for p in outputs.iterdir()}


def test_validate_plans_results_fit_one_termination_message_for_a_long_plan(tmp_path):
    written = written_outputs(tmp_path, plan_text(approvals=20))
    assert len(written["steps"]) > 4096  # what the verb writes is far over the limit
    declared = [r["name"] for r in validate_task()["spec"].get("results", [])]
    assert termination_message_error(declared, written) is None
    assert "steps" not in declared


def test_the_stand_in_refuses_a_termination_message_over_4096_bytes(tmp_path):
    written = written_outputs(tmp_path, plan_text(approvals=20))
    error = termination_message_error(["steps", "last-step", "promotion"], written)
    assert error is not None and "4096" in error
    small = written_outputs(tmp_path, plan_text(approvals=0, message="ok"))
    assert termination_message_error(["steps", "last-step", "promotion"], small) is None


def test_the_termination_message_is_gos_json_with_html_characters_escaped():
    text = termination_message({"verdict": "a<b&c>"}, "2026-01-01T00:00:00Z")
    assert text == (
        '[{"key":"verdict","value":"a\\u003cb\\u0026c\\u003e","type":1},'
        '{"key":"StartedAt","value":"2026-01-01T00:00:00Z","type":3}]'
    )


def test_nothing_in_a_pipeline_reads_a_result_no_task_declares():
    documents = triggered()[0]
    declared = {
        (t["metadata"]["name"], r["name"])
        for t in tekton_tasks(WorkflowSettings())
        for r in t["spec"].get("results", [])
    }
    by_task = {t["name"]: t["taskRef"].get("name") for t in documents["spec"]["tasks"]}
    for task, result in re.findall(
        r"\$\(tasks\.([a-z0-9-]+)\.results\.([a-z0-9-]+)\)", repr(documents)
    ):
        assert (by_task[task], result) in declared


@pytest.mark.parametrize(
    ("pipelines", "gate"), list(itertools.product(PIPELINES_VERSIONS, GATE_VERSIONS))
)
def test_every_approval_waits_the_plans_timeout_on_every_tekton_and_gate_version(pipelines, gate):
    plan = load_plan(plan_text(approvals=3, message="Go on?"))
    pipeline, run = triggered(plan)
    approvals = {
        t["name"]: t
        for t in pipeline["spec"]["tasks"]
        if t["taskRef"].get("kind") == "ApprovalTask"
    }
    assert set(approvals) == {"approve-1", "approve-3", "approve-5"}
    for index, name in enumerate(sorted(approvals)):
        assert approval_wait(approvals[name], run, pipelines, gate) == 60 * (index + 1)


def test_the_approval_stand_in_follows_each_gate_versions_own_rule():
    run = {"spec": {"timeouts": {"pipeline": "86400s", "finally": "15m"}}}
    by_param = {"params": [{"name": "timeout", "value": "5m"}]}
    assert approval_wait(by_param, run, (0, 50), (0, 7)) == 3600  # param ignored: 60 min
    assert approval_wait(by_param, run, (0, 50), (0, 8)) == 300
    assert approval_wait(by_param, run, (1, 15), (0, 8)) == 86400 - 900  # run's tasks timeout


def test_a_plan_whose_steps_changed_since_compiling_stops_at_validate_plan(tmp_path, capsys):
    compiled = load_plan(plan_text(approvals=1, message="Go on?"))
    pipeline, _ = triggered(compiled)
    (validate,) = [t for t in pipeline["spec"]["tasks"] if t["name"] == "validate-plan"]
    shape = {p["name"]: p["value"] for p in validate["params"]}["compiled-steps"]
    assert shape == compiled_shape(compiled)

    (tmp_path / "canaryflow.yaml").write_text(plan_text(approvals=2, message="Go on?"))
    argv = ["validate", str(tmp_path / "canaryflow.yaml"), "--offline"]
    assert main([*argv, "--compiled-steps", shape]) == 2
    error = capsys.readouterr().err
    assert "steps:" in error and "recompile" in error and "nothing was deployed" in error
    (tmp_path / "canaryflow.yaml").write_text(plan_text(approvals=1, message="Other words"))
    assert main([*argv, "--compiled-steps", shape]) == 0  # messages are read at run time


def test_the_compiled_shape_reaches_the_verb_as_one_argument_before_the_operands():
    (step,) = validate_task()["spec"]["steps"]
    args = step["args"]
    index = args.index("--compiled-steps")
    assert args[index + 1] == "$(params.compiled-steps)"
    assert index < args.index("--")


def test_a_refused_plan_deploys_nothing_and_rolls_nothing_back():
    pipeline, run = triggered()

    def refuses(attempt: Attempt) -> Outcome:
        return Outcome(FAILED) if attempt.task == "validate-plan" else green(attempt)

    result = PipelineRunSimulator(pipeline, PARAMS, pipeline_run=run).run(refuses)
    assert result.ran == ["checkout", "validate-plan"]
