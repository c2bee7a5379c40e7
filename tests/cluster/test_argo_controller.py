"""The Argo stand-in's controller on small workflows, pods scripted (fast, no processes).

Each test is one behaviour of workflow/controller (retries, deadlines, exit handler, recursion,
loops, suspend, mutex); ``ScriptedPods`` plays the pods: a template's exit codes in turn, or a
pod that runs until it is terminated.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from .argo.controller import WorkflowController
from .argo.pods import Pod, PodResult
from .argo.templates import TemplateStore


class ScriptedPods:
    """Exit codes per template name, one per attempt; ``"forever"`` runs until terminated."""

    def __init__(self, script: dict[str, list]):
        self.script = {name: list(codes) for name, codes in script.items()}
        self.ran: list[tuple[str, list[str]]] = []

    def run(self, pod: Pod, stop: threading.Event) -> PodResult:
        name = pod.template["name"]
        argv = [
            *pod.template["container"].get("command", []),
            *pod.template["container"].get("args", []),
        ]
        self.ran.append((name, argv))
        started = time.time()
        codes = self.script.get(name, [0])
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        if code == "forever":
            stop.wait(30)
            return PodResult("Failed", stop.reason, 143, {}, "", argv, {}, started, time.time())
        phase = "Succeeded" if code == 0 else "Failed"
        outputs = {"out": f"{name}-{code}"}
        return PodResult(
            phase,
            "" if code == 0 else f"exit {code}",
            code,
            outputs,
            argv[-1] if argv else "",
            argv,
            {},
            started,
            time.time(),
        )


def container(name: str, *args: str, **extra) -> dict:
    return {
        "name": name,
        "container": {"image": "x", "command": ["run"], "args": list(args)},
        **extra,
    }


def run(spec: dict, script: dict, tmp_path, timeout: float = 20.0):
    pods = ScriptedPods(script)
    controller = WorkflowController(TemplateStore(), pods, tmp_path)  # type: ignore[arg-type]
    workflow = controller.submit({"metadata": {"name": "wf", "namespace": "argo"}, "spec": spec})
    controller.wait(workflow.name, timeout)
    return workflow, pods


def test_a_retried_pod_succeeds_on_a_later_attempt(tmp_path):
    retry = {"limit": "2", "retryPolicy": "Always", "backoff": {"duration": "0.05", "factor": "2"}}
    spec = {"entrypoint": "flaky", "templates": [container("flaky", retryStrategy=retry)]}

    workflow, _ = run(spec, {"flaky": [1, 1, 0]}, tmp_path)

    assert workflow.phase == "Succeeded"
    assert [n.display_name for n in workflow.pods()] == ["wf(0)", "wf(1)", "wf(2)"]


def test_the_retry_expression_stops_retrying_bad_input(tmp_path):
    retry = {"limit": "3", "retryPolicy": "Always", "expression": "lastRetry.exitCode != '2'"}
    spec = {"entrypoint": "bad", "templates": [container("bad", retryStrategy=retry)]}

    workflow, _ = run(spec, {"bad": [2]}, tmp_path)

    assert workflow.phase == "Failed" and len(workflow.pods()) == 1


def test_the_deadline_stops_running_pods_and_the_exit_handler_sees_failed(tmp_path):
    spec = {
        "entrypoint": "slow",
        "activeDeadlineSeconds": 1,
        "onExit": "bye",
        "templates": [container("slow"), container("bye", "{{workflow.status}}")],
    }

    workflow, pods = run(spec, {"slow": ["forever"]}, tmp_path)

    assert workflow.phase == "Failed" and "deadline" in workflow.message
    assert pods.ran[-1] == ("bye", ["run", "Failed"])


def test_a_steps_template_recurses_until_its_when_is_false(tmp_path):
    countdown = {
        "name": "countdown",
        "inputs": {"parameters": [{"name": "n"}]},
        "steps": [
            [
                {
                    "name": "tick",
                    "template": "tick",
                    "arguments": {
                        "parameters": [{"name": "n", "value": "{{inputs.parameters.n}}"}]
                    },
                }
            ],
            [
                {
                    "name": "again",
                    "template": "countdown",
                    "when": "{{inputs.parameters.n}} > 0",
                    "arguments": {
                        "parameters": [
                            {"name": "n", "value": "{{=asInt(inputs.parameters.n) - 1}}"}
                        ]
                    },
                }
            ],
        ],
    }
    tick = container("tick", "{{inputs.parameters.n}}", inputs={"parameters": [{"name": "n"}]})
    spec = {
        "entrypoint": "start",
        "templates": [
            {
                "name": "start",
                "steps": [
                    [
                        {
                            "name": "c",
                            "template": "countdown",
                            "arguments": {"parameters": [{"name": "n", "value": "2"}]},
                        }
                    ]
                ],
            },
            countdown,
            tick,
        ],
    }

    workflow, pods = run(spec, {}, tmp_path)

    assert workflow.phase == "Succeeded"
    assert [argv[-1] for _, argv in pods.ran] == ["2", "1", "0"]


def test_a_loop_runs_one_child_per_item_and_outputs_flow_to_the_next_task(tmp_path):
    dag = {
        "tasks": [
            {
                "name": "each",
                "template": "echo",
                "withItems": ["a", "b"],
                "arguments": {"parameters": [{"name": "v", "value": "{{item}}"}]},
            },
            {
                "name": "one",
                "template": "echo",
                "arguments": {"parameters": [{"name": "v", "value": "x"}]},
            },
            {
                "name": "after",
                "depends": "one && each",
                "template": "echo",
                "arguments": {
                    "parameters": [{"name": "v", "value": "{{tasks.one.outputs.parameters.out}}"}]
                },
            },
        ]
    }
    echo = container("echo", "{{inputs.parameters.v}}", inputs={"parameters": [{"name": "v"}]})
    spec = {"entrypoint": "main", "templates": [{"name": "main", "dag": dag}, echo]}

    workflow, pods = run(spec, {}, tmp_path)

    assert workflow.phase == "Succeeded"
    assert sorted(argv[-1] for _, argv in pods.ran) == ["a", "b", "echo-0", "x"]


def test_a_suspend_node_resumes_with_supplied_outputs_or_errors_when_it_times_out(tmp_path):
    approve = {
        "name": "approve",
        "suspend": {"duration": "{{workflow.parameters.timeout}}"},
        "outputs": {"parameters": [{"name": "approver", "valueFrom": {"supplied": {}}}]},
    }
    spec = {
        "entrypoint": "approve",
        "arguments": {"parameters": [{"name": "timeout", "value": "1"}]},
        "templates": [approve],
    }

    timed_out, _ = run(spec, {}, tmp_path / "a")
    assert timed_out.phase == "Error"

    spec["arguments"]["parameters"][0]["value"] = ""
    controller = WorkflowController(TemplateStore(), ScriptedPods({}), tmp_path / "b")  # type: ignore[arg-type]
    workflow = controller.submit({"metadata": {"name": "wf"}, "spec": spec})
    controller.wait_for("wf", lambda wf: any(n.type == "Suspend" for n in wf.nodes.values()), 5)
    controller.node_set("wf", "displayName=wf", {"approver": "bob"})
    controller.resume("wf")
    controller.wait("wf", 5)
    assert workflow.phase == "Succeeded" and workflow.node("wf").outputs == {"approver": "bob"}


def test_a_second_workflow_holding_the_same_mutex_waits(tmp_path):
    spec = {
        "entrypoint": "slow",
        "synchronization": {"mutexes": [{"name": "m-{{workflow.parameters.s}}"}]},
        "arguments": {"parameters": [{"name": "s", "value": "one"}]},
        "templates": [container("slow")],
    }
    controller = WorkflowController(TemplateStore(), ScriptedPods({"slow": ["forever"]}), tmp_path)  # type: ignore[arg-type]
    first = controller.submit({"metadata": {"name": "a"}, "spec": spec})
    controller.wait_for("a", lambda wf: wf.phase == "Running", 5)
    second = controller.submit({"metadata": {"name": "b"}, "spec": spec})
    controller.wait_for("b", lambda wf: "Waiting for" in wf.message, 5)

    assert second.phase == "Pending" and "argo/Mutex/m-one" in second.message
    controller.stop("a")
    controller.wait("a", 5)
    controller.wait_for("b", lambda wf: wf.phase == "Running", 5)
    assert second.started_at >= first.finished_at
    controller.stop("b")
    controller.wait("b", 5)


@pytest.mark.parametrize("value", ["nope", ""])
def test_a_workflow_argument_outside_its_enum_or_missing_is_an_error(tmp_path, value):
    parameter = {"name": "kind", "enum": ["a", "b"]} | ({"value": value} if value else {})
    spec = {
        "entrypoint": "t",
        "arguments": {"parameters": [parameter]},
        "templates": [container("t")],
    }

    workflow, pods = run(spec, {}, tmp_path)

    assert workflow.phase == "Error" and pods.ran == []


def test_the_exit_handler_gets_every_failed_node_go_quoted_as_argo_writes_them(tmp_path):
    """operator.go v3.6.19:422: every Failed/Error node (the pod, its StepGroup, the Steps
    node that is the workflow's root) json.Marshal'ed, then strconv.Quote'd; hooks_test.go
    asserts the escaped ``[{\\"displayName\\":...`` form."""
    spec = {
        "entrypoint": "main",
        "onExit": "bye",
        "templates": [
            {"name": "main", "steps": [[{"name": "gate", "template": "gate"}]]},
            container("gate"),
            container("bye", "{{workflow.failures}}"),
        ],
    }

    workflow, pods = run(spec, {"gate": [1]}, tmp_path)

    assert workflow.phase == "Failed"

    (value,) = [argv[-1] for name, argv in pods.ran if name == "bye"]
    assert value.startswith('"[{\\"displayName\\":\\"') and value.endswith('"}]"')
    failures = json.loads(json.loads(value))  # Go's quoting of this JSON is JSON-compatible
    by_name = {f["displayName"]: f for f in failures}
    assert set(by_name) == {"wf", "[0]", "gate"}
    assert by_name["wf"]["podName"] == "wf"  # GeneratePodName: the root keeps the wf's name
    assert by_name["gate"]["templateName"] == "gate"
    assert by_name["gate"]["podName"].startswith("wf-gate-")
    assert list(by_name["gate"]) == [
        "displayName",
        "message",
        "templateName",
        "phase",
        "podName",
        "finishedAt",
    ]


def test_a_workflow_without_failures_passes_a_quoted_null(tmp_path):
    spec = {
        "entrypoint": "ok",
        "onExit": "bye",
        "templates": [container("ok"), container("bye", "{{workflow.failures}}")],
    }

    _, pods = run(spec, {}, tmp_path)

    assert pods.ran[-1] == ("bye", ["run", '"null"'])


RETRIED_EXIT = {
    "name": "bye",
    "retryStrategy": {"limit": "3", "retryPolicy": "Always", "backoff": {"duration": "0.05"}},
    "container": {"image": "x", "command": ["run"]},
}


def test_a_failing_exit_handler_is_retried_when_the_workflow_simply_failed(tmp_path):
    spec = {"entrypoint": "main", "onExit": "bye", "templates": [container("main"), RETRIED_EXIT]}

    _, pods = run(spec, {"main": [1], "bye": [1, 0]}, tmp_path)

    assert [name for name, _ in pods.ran].count("bye") == 2


def test_after_argo_stop_the_exit_handler_gets_one_attempt(tmp_path):
    """processNodeRetries (operator.go v3.6.19:995-1003): shut down, a failed child is final."""
    spec = {"entrypoint": "slow", "onExit": "bye", "templates": [container("slow"), RETRIED_EXIT]}
    pods = ScriptedPods({"slow": ["forever"], "bye": [1, 0]})
    controller = WorkflowController(TemplateStore(), pods, tmp_path)  # type: ignore[arg-type]
    workflow = controller.submit({"metadata": {"name": "wf"}, "spec": spec})
    controller.wait_for("wf", lambda wf: bool(wf.pods()), 5)
    controller.stop("wf")
    controller.wait("wf", 10)

    assert [name for name, _ in pods.ran].count("bye") == 1
    (handler,) = [n for n in workflow.nodes.values() if n.on_exit and n.type == "Retry"]
    assert handler.phase == "Failed" and handler.message == "Stopped with strategy 'Stop'"


def test_past_the_deadline_the_exit_handler_gets_one_attempt(tmp_path):
    spec = {
        "entrypoint": "slow",
        "onExit": "bye",
        "activeDeadlineSeconds": 1,
        "templates": [container("slow"), RETRIED_EXIT],
    }

    workflow, pods = run(spec, {"slow": ["forever"], "bye": [1, 0]}, tmp_path)

    assert [name for name, _ in pods.ran].count("bye") == 1
    (handler,) = [n for n in workflow.nodes.values() if n.on_exit and n.type == "Retry"]
    assert handler.message.startswith("retry exceeded workflow deadline ")


def test_a_templates_pod_spec_patch_sets_the_pods_termination_grace(tmp_path):
    """SIGTERM to SIGKILL is the template's ``terminationGracePeriodSeconds`` (its
    ``podSpecPatch``, as the compiled task library sets it), else Kubernetes' 30 s; any other
    patch key is refused by name rather than silently ignored."""
    from .argo.pods import PodError, PodRunner

    runner = PodRunner(tmp_path, {}, {})

    assert runner._grace_s({"podSpecPatch": '{"terminationGracePeriodSeconds":90}'}) == 90.0
    assert runner._grace_s({"podSpecPatch": "terminationGracePeriodSeconds: 45\n"}) == 45.0
    assert runner._grace_s({}) == 30.0
    with pytest.raises(PodError, match=r"podSpecPatch: \['hostNetwork'\] not implemented"):
        runner._grace_s({"podSpecPatch": '{"hostNetwork":true}'})
