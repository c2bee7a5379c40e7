"""A PipelineRun of a compiled Pipeline, run by Tekton's scheduling rules, without a cluster.

It follows tektoncd/pipeline v1.15.0, pkg/reconciler/pipelinerun/resources/:

* pipelinerunstate.go ``DAGExecutionQueue``: nothing new is scheduled once the run is
  cancelled (``Cancelled``, ``CancelledRunFinally``), once a task failed (``IsStopping``) or
  when it is gracefully stopped (``StoppedRunFinally``); candidates are the tasks whose
  parents (``runAfter`` and result references) all finished or were skipped.
* pipelinerunresolution.go ``skip``: a task is skipped when the run is stopping, cancelled
  or stopped, when its ``when`` expressions are false (input ``in``/``notin`` values), or when
  a parent was skipped for any reason other than its own ``when``; a final task is skipped
  when it reads a result its task did not produce, or when its ``when`` is false.
* pipelinerunstate.go ``GetPipelineTaskStatus``: ``$(tasks.<name>.status)`` is Succeeded,
  Failed or None (skipped or never run); ``$(tasks.status)`` is None until every task is done,
  then Failed if any failed, else Completed if any was skipped, else Succeeded.
* ``finally`` starts once every task is done (``GetFinalTasks``), except after a plain
  ``Cancelled`` (docs/pipelineruns.md, "Cancelling a PipelineRun"); ``CancelledRunFinally``
  cancels the running TaskRuns (they count as Failed, with no retries), ``StoppedRunFinally``
  lets them finish, retries included.
* ``retries``: a failed TaskRun is run again up to ``retries`` times (not when cancelled).

A run here is sequential: one task at a time, in DAG order, which is all a chain needs.

Given the PipelineRun (``pipeline_run=``), each TaskRun is also built and checked as the
controllers do before a pod exists (``TaskRunBuilder``):

* workspaces, pkg/reconciler/pipelinerun/pipelinerun.go ``getTaskrunWorkspaces`` and
  ``taskWorkspaceByWorkspaceVolumeSource`` (v0.50.0 and v1.15.0 alike): a PipelineTask binding
  names a Pipeline workspace (its own name by default) and a ``subPath``; a run binding with a
  ``volumeClaimTemplate`` reaches the TaskRun as a ``persistentVolumeClaim`` of the claim the
  run created (``volumeclaim.GeneratePVCNameFromWorkspaceBinding``: ``<template name or
  pvc>-<sha256(workspace name + run UID)[:10]>``), any other binding unchanged, the subPaths
  joined;
* ``validate_only_one_pvc_is_used``: pkg/workspace/validate.go ``ValidateOnlyOnePVCIsUsed``
  (unchanged v0.50.0 to v1.15.0), run by pkg/reconciler/taskrun/taskrun.go ``prepare`` when the
  affinity assistant works per workspace (``coschedule: workspaces``, the default; v0.50
  decides it by the ``pipeline.tekton.dev/affinity-assistant`` annotation, set then too); a
  failure is ``TaskRunValidationFailed`` and no pod;
* identity, pkg/apis/pipeline/v1/pipelinerun_types.go ``GetTaskRunSpec``: the run's
  ``taskRunTemplate`` service account and pod template, a matching ``taskRunSpecs`` entry's
  account instead when it names one, its pod template merged over the run's field by field
  (pkg/apis/pipeline/pod/template.go ``MergePodTemplateWithDefault``).

Results leave a step through its termination message (pkg/termination/write.go
``WriteMessage``, v0.50.0 to v1.15.0, with ``results-from: termination-message``, the default):
``termination_message`` is that JSON and ``MAX_TERMINATION_MESSAGE`` its limit.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SUCCEEDED, FAILED, SKIPPED = "Succeeded", "Failed", "Skipped"
CANCELLED = "Cancelled"
CANCELLED_RUN_FINALLY = "CancelledRunFinally"
STOPPED_RUN_FINALLY = "StoppedRunFinally"
WHEN_SKIP = "When Expressions evaluated to false"
MISSING_RESULTS = "Results were missing"
PARENT_SKIPPED = "Parent Tasks were skipped"
STOPPING = "PipelineRun was stopping"
GRACEFULLY_CANCELLED = "PipelineRun was gracefully cancelled"
GRACEFULLY_STOPPED = "PipelineRun was gracefully stopped"
_RESULT_REF = re.compile(r"\$\(tasks\.([a-z0-9-]+)\.results\.([A-Za-z0-9_-]+)\)")
_STATUS_REF = re.compile(r"\$\(tasks\.([a-z0-9-]+)\.status\)")


TASK_RUN_VALIDATION_FAILED = "TaskRunValidationFailed"
ONE_PVC_ERROR = "more than one PersistentVolumeClaim is bound"
COSCHEDULE_MODES = ("workspaces", "pipelineruns", "isolate-pipelinerun", "disabled")
# pkg/termination/write.go MaxContainerTerminationMessageLength (v0.50.0 to v1.15.0).
MAX_TERMINATION_MESSAGE = 4096
# pkg/result/result.go: TaskRunResultType, InternalTektonResultType.
TASK_RUN_RESULT, INTERNAL_RESULT = 1, 3


def validate_only_one_pvc_is_used(bindings: list[dict[str, Any]]) -> str | None:
    """pkg/workspace/validate.go ``ValidateOnlyOnePVCIsUsed``: a claim counts by its name, a
    claim template by the binding's name; more than one is the error."""
    volumes = set()
    for binding in bindings:
        if "persistentVolumeClaim" in binding:
            volumes.add(("claim", binding["persistentVolumeClaim"]["claimName"]))
        if "volumeClaimTemplate" in binding:
            volumes.add(("claim", binding["name"]))
    return ONE_PVC_ERROR if len(volumes) > 1 else None


def generated_claim_name(binding: dict[str, Any], run_uid: str) -> str:
    """pkg/reconciler/volumeclaim/pvchandler.go ``GeneratePVCNameFromWorkspaceBinding``."""
    template = binding["volumeClaimTemplate"].get("metadata", {}).get("name") or "pvc"
    identity = hashlib.sha256((binding["name"] + run_uid).encode()).hexdigest()[:10]
    return f"{template}-{identity}"


def termination_message(results: dict[str, str], started_at: str) -> str:
    """The JSON a step's entrypoint writes: each declared result the step wrote (files the Task
    does not declare are never read: pkg/entrypoint/entrypointer.go ``readResultsFromDisk``)
    and its ``StartedAt``, as Go's json.Marshal writes them (no spaces, ``<>&`` escaped)."""
    entries = [{"key": k, "value": v, "type": TASK_RUN_RESULT} for k, v in results.items()]
    entries.append({"key": "StartedAt", "value": started_at, "type": INTERNAL_RESULT})
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def termination_message_error(
    declared: list[str], written: dict[str, str], started_at: str = "2026-01-01T00:00:00.000Z"
) -> str | None:
    """``WriteMessage``'s error for what a step wrote, or None when it fits."""
    chosen = {name: written[name] for name in declared if name in written}
    if len(termination_message(chosen, started_at).encode()) > MAX_TERMINATION_MESSAGE:
        return "Termination message is above max allowed size 4096, caused by large task result."
    return None


@dataclass
class TaskRunBuilder:
    """The TaskRun a PipelineRun creates for one pipeline task: workspaces and identity."""

    pipeline_run: dict[str, Any]
    coschedule: str = "workspaces"
    uid: str = "6b1a1d3e-0000-4000-8000-000000000001"

    def __post_init__(self) -> None:
        assert self.coschedule in COSCHEDULE_MODES, self.coschedule

    def workspaces(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        by_name = {b["name"]: b for b in self.pipeline_run["spec"].get("workspaces", [])}
        found = []
        for binding in task.get("workspaces", []):
            pipeline_workspace = binding.get("workspace") or binding["name"]
            run_binding = by_name.get(pipeline_workspace)
            if run_binding is None:
                continue  # optional, or the run fails earlier (not modelled here)
            sub_path = "/".join(
                p for p in (run_binding.get("subPath"), binding.get("subPath")) if p
            )
            if "volumeClaimTemplate" in run_binding:
                claim = generated_claim_name(run_binding, self.uid)
                rendered = {"name": binding["name"], "persistentVolumeClaim": {"claimName": claim}}
            else:
                rendered = {**run_binding, "name": binding["name"]}
                rendered.pop("subPath", None)
            if sub_path:
                rendered["subPath"] = sub_path
            found.append(rendered)
        return found

    def validation_error(self, task: dict[str, Any]) -> str | None:
        if self.coschedule != "workspaces":
            return None
        return validate_only_one_pvc_is_used(self.workspaces(task))

    def identity(self, name: str) -> tuple[str | None, dict[str, Any]]:
        """``GetTaskRunSpec``: the service account and the merged pod template."""
        spec = self.pipeline_run["spec"]
        template = spec.get("taskRunTemplate", {})
        account = template.get("serviceAccountName")
        pod = dict(template.get("podTemplate") or {})
        for entry in spec.get("taskRunSpecs", []):
            if entry["pipelineTaskName"] == name:
                pod = {**pod, **(entry.get("podTemplate") or {})}
                account = entry.get("serviceAccountName") or account
        return account, pod


@dataclass
class Outcome:
    """What one attempt of a task did: its status and the results it wrote."""

    status: str = SUCCEEDED
    results: dict[str, str] = field(default_factory=dict)


@dataclass
class Attempt:
    """What the simulated cluster is told to run: a task, its resolved params, the attempt."""

    task: str
    ref: dict[str, Any]
    params: dict[str, Any]
    number: int
    # With a PipelineRun given: the TaskRun's workspaces, service account and pod template.
    workspaces: list[dict[str, Any]] = field(default_factory=list)
    service_account: str | None = None
    pod_template: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskState:
    status: str | None = None
    reason: str | None = None
    results: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class Run:
    """The finished PipelineRun: every task's state, the order they ran, the run's reason."""

    tasks: dict[str, TaskState]
    ran: list[str]
    reason: str

    def params_of(self, name: str) -> dict[str, Any]:
        return self.tasks[name].attempts[-1].params


Runner = Callable[[Attempt], Outcome]
# Called with each task's name while it runs; may return the spec.status someone sets then.
Interrupt = Callable[[str], str | None]


class PipelineRunSimulator:
    def __init__(
        self,
        pipeline: dict[str, Any],
        params: dict[str, Any],
        run_name: str = "run-1",
        pipeline_run: dict[str, Any] | None = None,
        coschedule: str = "workspaces",
    ):
        self.builder = None if pipeline_run is None else TaskRunBuilder(pipeline_run, coschedule)
        spec = pipeline["spec"]
        self.tasks = {t["name"]: t for t in spec["tasks"]}
        self.final = {t["name"]: t for t in spec.get("finally", [])}
        self.params = {
            p["name"]: p["default"] for p in spec.get("params", []) if "default" in p
        } | params
        missing = [p["name"] for p in spec.get("params", []) if p["name"] not in self.params]
        assert not missing, f"the PipelineRun must give {missing}"
        self.context = {"$(context.pipelineRun.name)": run_name}
        self.parents = {name: self._parents(task) for name, task in self.tasks.items()}

    def _parents(self, task: dict[str, Any]) -> set[str]:
        text = repr(task.get("params", [])) + repr(task.get("when", []))
        parents = set(task.get("runAfter", [])) | {m[0] for m in _RESULT_REF.findall(text)}
        unknown = parents - set(self.tasks)
        assert not unknown, f"{task['name']} refers to unknown tasks {unknown}"
        return parents

    def run(self, runner: Runner, interrupt: Interrupt | None = None) -> Run:
        states = {name: TaskState() for name in [*self.tasks, *self.final]}
        ran: list[str] = []
        spec_status: str | None = None
        while True:
            ready = [n for n in self.tasks if states[n].status is None and self._ready(n, states)]
            if not ready:
                break
            name = ready[0]
            skip = self._skip(name, states, spec_status)
            if skip:
                states[name].status, states[name].reason = SKIPPED, skip
                continue
            if spec_status is None and interrupt is not None:
                # Someone sets spec.status while this task runs.
                spec_status = interrupt(name)
            cancelled = spec_status in {CANCELLED, CANCELLED_RUN_FINALLY}
            self._execute(name, self.tasks[name], states, runner, cancelled=cancelled)
            if cancelled:
                states[name].reason = "TaskRunCancelled"
            ran.append(name)
        if spec_status != CANCELLED:
            for name, task in self.final.items():
                skip = self._final_skip(task, states)
                if skip:
                    states[name].status, states[name].reason = SKIPPED, skip
                    continue
                self._execute(name, task, states, runner, cancelled=False)
                ran.append(name)
        return Run(states, ran, self._reason(states, spec_status))

    def _ready(self, name: str, states: dict[str, TaskState]) -> bool:
        return all(states[p].status is not None for p in self.parents[name])

    def _skip(self, name: str, states: dict[str, TaskState], spec_status: str | None) -> str:
        if any(states[n].status == FAILED for n in self.tasks):
            return STOPPING
        if spec_status in {CANCELLED, CANCELLED_RUN_FINALLY}:
            return GRACEFULLY_CANCELLED
        if spec_status == STOPPED_RUN_FINALLY:
            return GRACEFULLY_STOPPED
        task = self.tasks[name]
        if not self._when(task, states):
            return WHEN_SKIP
        for parent in self.parents[name]:
            if states[parent].status == SKIPPED and states[parent].reason != WHEN_SKIP:
                return PARENT_SKIPPED
        return ""

    def _final_skip(self, task: dict[str, Any], states: dict[str, TaskState]) -> str:
        text = repr(task.get("params", [])) + repr(task.get("when", []))
        for producer, result in _RESULT_REF.findall(text):
            if result not in states[producer].results or states[producer].status != SUCCEEDED:
                return MISSING_RESULTS
        return "" if self._when(task, states) else WHEN_SKIP

    def _when(self, task: dict[str, Any], states: dict[str, TaskState]) -> bool:
        for expression in task.get("when", []):
            value = self._resolve(expression["input"], states)
            values = [self._resolve(v, states) for v in expression["values"]]
            inside = value in values
            if inside != (expression["operator"] == "in"):
                return False
        return True

    def _execute(self, name, task, states, runner: Runner, cancelled: bool) -> None:
        params = {p["name"]: self._resolve(p["value"], states) for p in task.get("params", [])}
        invalid = None
        for number in range(task.get("retries", 0) + 1):
            attempt = Attempt(name, task["taskRef"], params, number)
            if self.builder is not None and task["taskRef"].get("kind") == "Task":
                attempt.workspaces = self.builder.workspaces(task)
                attempt.service_account, attempt.pod_template = self.builder.identity(name)
                invalid = self.builder.validation_error(task)
            states[name].attempts.append(attempt)
            if invalid is not None:
                # No pod: the TaskRun fails validation (a permanent error), every attempt.
                states[name].status, states[name].reason = FAILED, TASK_RUN_VALIDATION_FAILED
                states[name].results = {}
                continue
            outcome = Outcome(FAILED) if cancelled else runner(attempt)
            states[name].status, states[name].results = outcome.status, dict(outcome.results)
            if outcome.status == SUCCEEDED or cancelled:
                return

    def statuses(self, states: dict[str, TaskState]) -> dict[str, str]:
        """``$(tasks.<name>.status)`` and ``$(tasks.status)`` as GetPipelineTaskStatus."""
        found = {}
        for name in self.tasks:
            status = states[name].status
            found[name] = status if status in {SUCCEEDED, FAILED} else "None"
        aggregate = "None"
        if all(states[n].status is not None for n in self.tasks):
            aggregate = SUCCEEDED
            if any(states[n].status == FAILED for n in self.tasks):
                aggregate = FAILED
            elif any(states[n].status == SKIPPED for n in self.tasks):
                aggregate = "Completed"
        found["$aggregate"] = aggregate
        return found

    def _resolve(self, value: Any, states: dict[str, TaskState]) -> Any:
        if isinstance(value, list):
            resolved = []
            for item in value:
                match = re.fullmatch(r"\$\(params\.([a-z0-9-]+)\[\*\]\)", item)
                resolved += list(self.params[match[1]]) if match else [self._resolve(item, states)]
            return resolved
        statuses = self.statuses(states)
        text = value.replace("$(tasks.status)", statuses["$aggregate"])
        text = _STATUS_REF.sub(lambda m: statuses[m[1]], text)
        text = _RESULT_REF.sub(lambda m: self._result(states, m[1], m[2]), text)
        text = re.sub(r"\$\(params\.([a-z0-9-]+)\)", lambda m: str(self.params[m[1]]), text)
        for variable, replacement in self.context.items():
            text = text.replace(variable, replacement)
        assert "$(" not in text, f"unresolved variable in {value!r}"
        return text

    @staticmethod
    def _result(states: dict[str, TaskState], task: str, result: str) -> str:
        """A missing result fails the run (InvalidTaskResultReference)."""
        assert result in states[task].results, f"InvalidTaskResultReference: {task}.{result}"
        return states[task].results[result]

    def _reason(self, states: dict[str, TaskState], spec_status: str | None) -> str:
        if spec_status is not None:
            return spec_status
        if any(s.status == FAILED for s in states.values()):
            return "Failed"
        if any(states[n].status == SKIPPED for n in self.tasks):
            return "Completed"
        return "Succeeded"


# How long an ApprovalTask waits, from the PipelineTask to the manual-approval-gate controller.
APPROVAL_DEFAULT_S = 60 * 60  # approvaltask.go ReconcileKind: 60 minutes without a timeout
DEFAULT_TIMEOUT_MINUTES = 60  # config/config-defaults.yaml default-timeout-minutes


def _seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        else:
            total, number = total + float(number) * units[char], ""
    return total


def custom_run_timeout(task: dict[str, Any], run: dict[str, Any], pipelines: tuple[int, int]):
    """spec.timeout of the CustomRun a PipelineRun creates (pipelinerun.go ``createCustomRun``):
    the PipelineTask's ``timeout``; without one, nothing up to v1.10, and from v1.11.0
    (d1379f8f0) ``pipelineRunTimeout``: the run's tasks timeout (``timeouts.tasks``, else
    pipeline less finally) when it exceeds the default 60 minutes, else nothing."""
    if "timeout" in task:
        return _seconds(task["timeout"])
    if pipelines < (1, 11):
        return None
    timeouts = run["spec"].get("timeouts", {})
    if "tasks" in timeouts:
        tasks = _seconds(timeouts["tasks"])
    elif "pipeline" in timeouts and "finally" in timeouts:
        tasks = _seconds(timeouts["pipeline"]) - _seconds(timeouts["finally"])
    else:
        return None
    return tasks if tasks > DEFAULT_TIMEOUT_MINUTES * 60 else None


def approval_wait(
    task: dict[str, Any], run: dict[str, Any], pipelines: tuple[int, int], gate: tuple[int, int]
) -> float:
    """How long manual-approval-gate waits before it fails the CustomRun (approvaltask.go
    ``ReconcileKind``): the CustomRun's spec.timeout; up to v0.7.0 else 60 minutes; from
    v0.8.0 else the ``timeout`` param, else 60 minutes."""
    timeout = custom_run_timeout(task, run, pipelines)
    if timeout is not None:
        return timeout
    params = {p["name"]: p["value"] for p in task.get("params", [])}
    if gate >= (0, 8) and "timeout" in params:
        return _seconds(params["timeout"])
    return APPROVAL_DEFAULT_S
