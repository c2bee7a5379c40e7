"""The Argo Workflows stand-in: runs a Workflow object with the controller's semantics.

Upstream (argoproj/argo-workflows, v3.6): ``workflow/controller/operator.go`` (node lifecycle,
``executeTemplate``, retries, suspend/resume, shutdown, deadlines, exit handler, workflow
status), ``dag.go`` (``executeDAG``, ``depends``, ``target``, ``assessDAGPhase``), ``steps.go``
(step groups, ``when``), ``workflow/sync/mutex.go`` (workflow-level ``synchronization.mutexes``),
``util/template`` (parameter substitution) and docs/retries.md, docs/walk-through/{dag,
steps, recursion, exit-handlers, suspending, timeouts, conditionals, loops}.md.

Implemented:

- ``workflowTemplateRef`` (spec joined, arguments merged by name; enum and required checks),
  ``templateRef`` (namespaced and ``clusterScope``), ``template`` within the right scope;
- container templates as pods (``argo.pods.PodRunner``), ``steps`` (groups run in order, steps of
  a group in parallel, recursion), ``dag`` (``depends``, legacy ``dependencies``, ``target``,
  Omitted and Skipped nodes, the DAG's phase from its target branches as ``assessDAGPhase``),
  ``suspend`` (``duration``, ``argo resume``, ``argo stop --node-field-selector``, ``argo node
  set`` with supplied outputs, ``--phase Succeeded|Failed`` and ``--message``);
- ``when`` (govaluate, variables read as strings), ``withItems`` / ``withParam`` (a TaskGroup of
  ``name(i:item)`` children), ``continueOn``;
- inputs (values, defaults, ``enum``, raw artifacts), outputs (``valueFrom.path`` read by the
  executor, ``default``, ``supplied``, ``valueFrom.parameter``/``expression`` on DAG and steps
  templates, ``outputs.result``), ``{{...}}`` / ``{{=...}}`` substitution;
- ``retryStrategy`` (``limit``, ``retryPolicy`` Always/OnFailure/OnError/OnTransientError,
  ``expression`` over ``lastRetry.{exitCode,status,duration,message}``, ``backoff`` duration,
  factor and maxDuration); ``activeDeadlineSeconds`` on the workflow and on templates;
- no retry once the workflow is stopped or past its deadline, in the exit handler too
  (``processNodeRetries``); ``onExit`` with ``workflow.status``, ``workflow.failures``,
  global outputs (``globalName``: ``workflow.outputs.parameters.*``, seen by the exit handler only);
  ``argo stop`` (running pods terminated, nothing new scheduled, exit handler runs; the
  workflow ends Failed);
- service accounts (``argo.serviceaccounts``): the executor's token Secret volume from
  ``executor.serviceAccountName`` (workflowpod.go ``setupServiceAccount``); a pod whose Secret
  is missing never starts (FailedMount) until the deadline or ``argo stop``;
- ``workflowMetadata`` ``labels`` / ``labelsFrom`` on the Workflow object, and ``argo list -l``;
- ``synchronization.mutexes`` (and ``mutex``) at workflow level: a second workflow holding the
  same (substituted) name stays Pending until the first completes, first come first served.

Not implemented (an error names it when a template uses it): script/resource/http/plugin/
container-set/data templates, artifacts other than raw, ``semaphores``, template-level
synchronization, lifecycle ``hooks``, ``podSpecPatch`` other than the pod's
``terminationGracePeriodSeconds`` (``argo.pods``), memoization, ``parallelism``,
``failFast: false``, ``.AnySucceeded``/``.AllFailed``, global artifacts, ``argo retry``/
``resubmit``, ``argo terminate``. Pods are not scheduled on nodes, so resources,
securityContext, podGC, ttlStrategy and volumeClaimGC are recorded only.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import govaluate
from .depends import Depends
from .expr import evaluate, expand, to_text
from .failures import workflow_failures
from .pods import Pod, PodResult, PodRunner
from .serviceaccounts import (
    PodCreationError,
    ServiceAccounts,
    every_account_exists,
    executor_volumes,
)
from .templates import Scope, TemplateError, TemplateStore, generated_name, join_workflow_spec
from .variables import UnresolvedError, parameters_json, substitute, substitute_all

Obj = dict[str, Any]
DONE = {"Succeeded", "Failed", "Error", "Skipped", "Omitted"}
FAILED = {"Failed", "Error"}
STOPPED = "Stopped with strategy 'Stop'"
DEADLINE = "Step exceeded its deadline"
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
POD_TYPES = ("container", "script", "resource", "containerSet", "data", "http", "plugin")


@dataclass
class Node:
    id: str
    name: str
    display_name: str
    type: str
    template_name: str = ""
    phase: str = "Pending"
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    result: str | None = None
    exit_code: int | None = None
    children: list[str] = field(default_factory=list)
    pod: PodResult | None = None
    on_exit: bool = False

    @property
    def done(self) -> bool:
        return self.phase in DONE


class Shutdown(threading.Event):
    """Set when the node must stop; ``reason`` is the message its node gets."""

    reason = ""

    def trigger(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
            self.set()


@dataclass
class Workflow:
    """One submitted Workflow and its status, as ``argo get`` shows it."""

    name: str
    namespace: str
    obj: Obj
    spec: Obj
    phase: str = "Pending"
    message: str = ""
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    global_outputs: dict[str, str] = field(default_factory=dict)  # globalName -> value
    deadline_at: float | None = None  # started + activeDeadlineSeconds
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    shutdown: str = ""
    main_stop: Shutdown = field(default_factory=Shutdown)
    changed: threading.Condition = field(default_factory=threading.Condition)
    resumes: dict[str, str] = field(default_factory=dict)  # node id -> "resume" | "stop"

    @property
    def done(self) -> bool:
        return self.phase in {"Succeeded", "Failed", "Error"}

    def node(self, display_name: str) -> Node:
        found = [n for n in self.nodes.values() if n.display_name == display_name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} nodes named {display_name!r} in {self.name}")
        return found[0]

    def pods(self) -> list[Node]:
        """Pod nodes in the order they started."""
        pods = [n for n in self.nodes.values() if n.type == "Pod" and n.started_at]
        return sorted(pods, key=lambda n: n.started_at or 0)


class WorkflowController:
    """Runs submitted Workflows, each in its own thread, against one ``TemplateStore``."""

    def __init__(
        self,
        store: TemplateStore,
        pods: PodRunner,
        workdir: Path,
        service_accounts: ServiceAccounts = every_account_exists,
    ):
        self.store = store
        self.pods = pods
        self.service_accounts = service_accounts
        self.workdir = Path(workdir)
        self.workflows: dict[str, Workflow] = {}
        self._threads: list[threading.Thread] = []
        self._mutexes: dict[str, list[str]] = {}  # lock name -> holder first, then waiters
        self._lock = threading.Condition()

    # -- the API ``argo`` talks to ----------------------------------------------------------

    def submit(self, obj: Obj) -> Workflow:
        """Create the Workflow (as the API server would) and start reconciling it."""
        obj = copy.deepcopy(obj)
        namespace = obj["metadata"].get("namespace", "argo")
        name = generated_name(obj["metadata"])
        obj["metadata"]["name"] = name
        workflow = Workflow(name, namespace, obj, spec={})
        with self._lock:
            self.workflows[name] = workflow
        thread = threading.Thread(target=self._operate, args=(workflow,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return workflow

    def get(self, name: str) -> Workflow:
        return self.workflows[name]

    def wait(self, name: str, timeout_s: float) -> Workflow:
        return self.wait_for(name, lambda wf: wf.done, timeout_s, "completed")

    def wait_for(
        self, name: str, condition: Callable[[Workflow], bool], timeout_s: float, what: str = ""
    ) -> Workflow:
        workflow = self.workflows[name]
        deadline = time.monotonic() + timeout_s
        with workflow.changed:
            while not condition(workflow):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{name}: not {what or 'there'} after {timeout_s}s: {_summary(workflow)}"
                    )
                workflow.changed.wait(min(left, 0.2))
        return workflow

    def stop(self, name: str, node_field_selector: str | None = None, message: str = "") -> None:
        """``argo stop``: the whole workflow, or the suspend node(s) a selector names."""
        workflow = self.workflows[name]
        if node_field_selector:
            self._signal_nodes(workflow, node_field_selector, "stop", message)
            return
        workflow.shutdown = "Stop"
        workflow.main_stop.trigger(message or STOPPED)
        self._notify(workflow)

    def resume(self, name: str, node_field_selector: str | None = None) -> None:
        """``argo resume``: every suspended node, or those the selector names."""
        workflow = self.workflows[name]
        self._signal_nodes(workflow, node_field_selector, "resume", "")

    def node_set(
        self,
        name: str,
        node_field_selector: str,
        output_parameters: dict[str, str] | None = None,
        phase: str | None = None,
        message: str = "",
    ) -> None:
        """``argo node set``: supply a suspend node's outputs, or end it Succeeded/Failed."""
        workflow = self.workflows[name]
        nodes = self._select(workflow, node_field_selector)
        if not nodes:
            raise KeyError(f"{name}: no suspended node matches {node_field_selector!r}")
        for node in nodes:
            node.outputs.update(output_parameters or {})
            if phase == "Succeeded":
                workflow.resumes[node.id] = "resume"
            elif phase == "Failed":
                workflow.resumes[node.id] = f"stop:{message or 'set by argo node set'}"
            elif phase is not None:
                raise ValueError(f"argo node set --phase {phase}: Succeeded or Failed only")
        self._notify(workflow)

    def shutdown(self) -> None:
        """Stop every running workflow and wait for the threads (test teardown)."""
        for workflow in list(self.workflows.values()):
            if not workflow.done:
                workflow.shutdown = "Terminate"
                workflow.main_stop.trigger("terminated by the test bed")
                with workflow.changed:
                    workflow.changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)

    def _select(self, workflow: Workflow, selector: str | None) -> list[Node]:
        wanted = dict(term.split("=", 1) for term in selector.split(",")) if selector else {}
        keys = {"displayName": "display_name", "name": "name", "templateName": "template_name"}
        return [
            node
            for node in list(workflow.nodes.values())
            if node.type == "Suspend"
            and node.phase == "Running"
            and all(getattr(node, keys[k]) == v for k, v in wanted.items())
        ]

    def _signal_nodes(self, workflow: Workflow, selector: str | None, action: str, message: str):
        nodes = self._select(workflow, selector)
        if not nodes:
            raise KeyError(f"{workflow.name}: no suspended node matches {selector!r}")
        for node in nodes:
            workflow.resumes[node.id] = action if not message else f"{action}:{message}"
        self._notify(workflow)

    # -- reconciliation ---------------------------------------------------------------------

    def _operate(self, workflow: Workflow) -> None:
        try:
            self._prepare(workflow)
        except (TemplateError, UnresolvedError, ValueError, KeyError) as error:
            self._finish(workflow, "Error", str(error))
            return
        locks = self._mutex_names(workflow)
        if not self._acquire(workflow, locks):
            self._finish(workflow, "Failed", workflow.main_stop.reason)
            return
        try:
            self._run(workflow)
        finally:
            self._release(workflow, locks)

    def _prepare(self, workflow: Workflow) -> None:
        obj = workflow.obj
        ref = obj["spec"].get("workflowTemplateRef")
        if ref:
            template = self.store.get(
                workflow.namespace, ref["name"], bool(ref.get("clusterScope"))
            )
            workflow.spec = join_workflow_spec(obj, template)
        else:
            workflow.spec = copy.deepcopy(obj["spec"])
        for parameter in workflow.spec.get("arguments", {}).get("parameters", []):
            if "value" not in parameter:
                raise ValueError(f"spec.arguments.{parameter['name']}.value is required")
            value = str(parameter["value"])
            if "enum" in parameter and value not in parameter["enum"]:
                raise ValueError(
                    f"spec.arguments.{parameter['name']}.value: {value!r} "
                    f"not in {parameter['enum']}"
                )
            workflow.parameters[parameter["name"]] = value
        if "entrypoint" not in workflow.spec:
            raise ValueError("spec.entrypoint is required")
        self._workflow_metadata(workflow)

    def _workflow_metadata(self, workflow: Workflow) -> None:
        """operator.go ``updateWorkflowMetadata`` (v3.6.19:548): ``workflowMetadata.labels``
        (each value checked by ``IsValidLabelValue``) and ``labelsFrom`` (an expr expression
        over the global variables) become labels of the Workflow object itself."""
        metadata = workflow.spec.get("workflowMetadata") or {}
        labels = workflow.obj["metadata"].setdefault("labels", {})
        computed = dict(metadata.get("labels") or {})
        env = expand(self._globals(workflow))
        for name, source in (metadata.get("labelsFrom") or {}).items():
            computed[name] = to_text(evaluate(source["expression"], env))
        for name, value in computed.items():
            if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
                raise ValueError(f'invalid label value "{value}" for label "{name}"')
            labels[name] = value

    def list(self, selector: str = "") -> list[Workflow]:
        """``argo list -l``: equality (``k=v``) and existence (``k``) terms, comma-AND-ed."""
        terms = [t.strip() for t in selector.split(",") if t.strip()]

        def matches(workflow: Workflow) -> bool:
            labels = workflow.obj["metadata"].get("labels") or {}
            for term in terms:
                key, _, value = term.partition("=")
                if key not in labels or ("=" in term and labels[key] != value):
                    return False
            return True

        return [w for w in self.workflows.values() if matches(w)]

    def _globals(self, workflow: Workflow) -> dict[str, str]:
        scope = {f"workflow.parameters.{k}": v for k, v in workflow.parameters.items()}
        scope |= {f"workflow.outputs.parameters.{k}": v for k, v in workflow.global_outputs.items()}
        scope["workflow.parameters"] = json.dumps(
            [{"name": k, "value": v} for k, v in workflow.parameters.items()]
        )
        created = datetime.fromtimestamp(workflow.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        scope |= {
            "workflow.name": workflow.name,
            "workflow.namespace": workflow.namespace,
            "workflow.uid": workflow.uid,
            "workflow.creationTimestamp": created,
            "workflow.serviceAccountName": str(workflow.spec.get("serviceAccountName", "")),
            "workflow.duration": f"{time.time() - (workflow.started_at or time.time()):.6f}",
        }
        for key, value in workflow.obj["metadata"].get("labels", {}).items():
            scope[f"workflow.labels.{key}"] = value
        for key, value in workflow.obj["metadata"].get("annotations", {}).items():
            scope[f"workflow.annotations.{key}"] = value
        return scope

    # mutex ---------------------------------------------------------------------------------

    def _mutex_names(self, workflow: Workflow) -> list[str]:
        sync = workflow.spec.get("synchronization") or {}
        mutexes = list(sync.get("mutexes", [])) + ([sync["mutex"]] if "mutex" in sync else [])
        scope = self._globals(workflow)
        names = []
        for mutex in mutexes:
            namespace = mutex.get("namespace", workflow.namespace)
            names.append(f"{namespace}/Mutex/{substitute(mutex['name'], scope)}")
        return names

    def _acquire(self, workflow: Workflow, locks: list[str]) -> bool:
        with self._lock:
            for lock in locks:
                self._mutexes.setdefault(lock, []).append(workflow.name)
        while True:
            with self._lock:
                waiting = [lock for lock in locks if self._mutexes[lock][0] != workflow.name]
            if not waiting:
                return True
            if workflow.main_stop.is_set():
                self._release(workflow, locks)
                return False
            message = f"Waiting for {waiting[0]} lock. Lock status: 0/1"
            if workflow.message != message:
                workflow.message = message
                self._notify(workflow)
            with self._lock:
                self._lock.wait(0.2)

    def _release(self, workflow: Workflow, locks: list[str]) -> None:
        with self._lock:
            for lock in locks:
                if workflow.name in self._mutexes.get(lock, []):
                    self._mutexes[lock].remove(workflow.name)
            self._lock.notify_all()

    # the run -------------------------------------------------------------------------------

    def _run(self, workflow: Workflow) -> None:
        workflow.phase, workflow.message, workflow.started_at = "Running", "", time.time()
        self._notify(workflow)
        deadline = workflow.spec.get("activeDeadlineSeconds")
        timer = None
        if deadline is not None:
            workflow.deadline_at = workflow.started_at + float(deadline)
            timer = threading.Timer(float(deadline), workflow.main_stop.trigger, (DEADLINE,))
            timer.daemon = True
            timer.start()
        root_scope = Scope("Workflow", workflow.name, tuple(workflow.spec.get("templates", [])))
        try:
            entry = self._execute(
                workflow,
                workflow.name,
                workflow.name,
                {"template": workflow.spec["entrypoint"], "arguments": {}},
                root_scope,
                self._globals(workflow),
                workflow.main_stop,
                on_exit=False,
            )
        finally:
            if timer is not None:
                timer.cancel()
        phase, message = entry.phase, entry.message
        if workflow.main_stop.is_set() and workflow.shutdown != "Terminate":
            phase, message = "Failed", workflow.main_stop.reason
        exit_template = workflow.spec.get("onExit")
        if exit_template and workflow.shutdown != "Terminate":
            scope = self._globals(workflow) | {
                "workflow.status": phase,
                "workflow.failures": workflow_failures(workflow.name, workflow.nodes.values()),
            }
            handler = self._execute(
                workflow,
                f"{workflow.name}.onExit",
                f"{workflow.name}.onExit",
                {"template": exit_template, "arguments": {}},
                root_scope,
                scope,
                Shutdown(),
                on_exit=True,
            )
            if phase == "Succeeded" and handler.phase in FAILED:
                phase, message = handler.phase, f"exit handler {handler.phase}: {handler.message}"
        self._finish(workflow, phase, message)

    def _finish(self, workflow: Workflow, phase: str, message: str) -> None:
        workflow.phase, workflow.message, workflow.finished_at = phase, message, time.time()
        self._notify(workflow)

    def _notify(self, workflow: Workflow) -> None:
        with workflow.changed:
            workflow.changed.notify_all()

    def _new_node(self, workflow: Workflow, name: str, display: str, kind: str, **extra) -> Node:
        node = Node(
            id=f"{workflow.name}-{uuid.uuid4().hex[:10]}",
            name=name,
            display_name=display,
            type=kind,
            **extra,
        )
        workflow.nodes[node.id] = node
        self._notify(workflow)
        return node

    def _complete(self, workflow: Workflow, node: Node, phase: str, message: str = "") -> Node:
        node.phase, node.message = phase, message or node.message
        node.finished_at = node.finished_at or time.time()
        self._notify(workflow)
        return node

    # templates -----------------------------------------------------------------------------

    def _resolve(self, workflow: Workflow, call: Obj, scope: Scope) -> tuple[Obj, Scope]:
        if "templateRef" in call:
            ref = call["templateRef"]
            found = self.store.scope_of(workflow.namespace, ref)
            return found.template(ref["template"]), found
        if "template" in call:
            return scope.template(call["template"]), scope
        if "inline" in call:
            return call["inline"], scope
        raise TemplateError(f"{call.get('name', '?')}: neither template nor templateRef")

    def _inputs(self, template: Obj, call: Obj, scope: dict[str, str]) -> dict[str, str]:
        given = {
            p["name"]: str(p["value"])
            for p in call.get("arguments", {}).get("parameters", [])
            if "value" in p
        }
        inputs = {}
        for parameter in template.get("inputs", {}).get("parameters", []):
            name = parameter["name"]
            if name in given:
                value = given[name]
            elif "value" in parameter:
                value = substitute(str(parameter["value"]), scope, allow_unresolved=True)
            elif "default" in parameter:
                value = substitute(str(parameter["default"]), scope, allow_unresolved=True)
            else:
                raise ValueError(f"inputs.parameters.{name} was not supplied")
            if "enum" in parameter and value not in [str(v) for v in parameter["enum"]]:
                raise ValueError(f"inputs.parameters.{name}: {value!r} not in {parameter['enum']}")
            inputs[name] = value
        return inputs

    def _execute(
        self,
        workflow: Workflow,
        name: str,
        display: str,
        call: Obj,
        scope: Scope,
        variables: dict[str, str],
        stop: Shutdown,
        on_exit: bool,
    ) -> Node:
        """Run the template ``call`` names (a task, step or the entrypoint); returns its node."""
        try:
            template, template_scope = self._resolve(workflow, call, scope)
            inputs = self._inputs(template, call, variables)
        except (TemplateError, ValueError, UnresolvedError) as error:
            node = self._new_node(workflow, name, display, "Pod", on_exit=on_exit)
            node.started_at = time.time()
            return self._complete(workflow, node, "Error", str(error))
        # A template sees the workflow's variables and its own inputs, nothing of its caller's.
        base = {k: v for k, v in variables.items() if k.startswith("workflow.")}
        local = base | {f"inputs.parameters.{k}": v for k, v in inputs.items()}
        local["inputs.parameters"] = parameters_json(inputs)
        if "retryStrategy" in template:
            return self._retry(
                workflow, name, display, template, template_scope, local, inputs, stop, on_exit
            )
        return self._attempt(
            workflow, name, display, template, template_scope, local, inputs, stop, on_exit
        )

    def _attempt(
        self, workflow, name, display, template, template_scope, local, inputs, stop, on_exit
    ) -> Node:
        kind = next((k for k in ("dag", "steps", "suspend", *POD_TYPES) if k in template), None)
        node_type = {"dag": "DAG", "steps": "Steps", "suspend": "Suspend"}.get(kind or "", "Pod")
        node = self._new_node(
            workflow, name, display, node_type, template_name=template["name"], on_exit=on_exit
        )
        node.inputs, node.started_at, node.phase = dict(inputs), time.time(), "Running"
        if stop.is_set() and not on_exit:
            return self._complete(workflow, node, "Failed", stop.reason)
        try:
            if kind == "container":
                self._run_pod(workflow, node, template, local, stop)
            elif kind == "dag":
                self._run_dag(workflow, node, template, template_scope, local, stop, on_exit)
            elif kind == "steps":
                self._run_steps(workflow, node, template, template_scope, local, stop, on_exit)
            elif kind == "suspend":
                self._run_suspend(workflow, node, template, local, stop)
            else:
                raise TemplateError(
                    f"template {template['name']}: {kind} templates are not "
                    "implemented by the test bed"
                )
        except (TemplateError, UnresolvedError, ValueError, KeyError) as error:
            self._complete(workflow, node, "Error", str(error))
        return node

    # pods ----------------------------------------------------------------------------------

    def _run_pod(
        self, workflow: Workflow, node: Node, template: Obj, local: dict[str, str], stop: Shutdown
    ):
        resolved = substitute_all(template, local)
        try:
            token = executor_volumes(
                resolved, workflow.spec, workflow.namespace, self.service_accounts
            )
        except PodCreationError as error:
            node.started_at = time.time()
            self._complete(workflow, node, "Error", str(error))
            return
        pod_stop = Shutdown()
        deadline = resolved.get("activeDeadlineSeconds")
        watcher = threading.Thread(target=_forward, args=(stop, pod_stop, deadline), daemon=True)
        watcher.start()
        pod = Pod(
            name=node.id,
            namespace=workflow.namespace,
            template=resolved,
            workflow_dir=self.workdir / "workflows" / workflow.name,
            workflow_volumes=workflow.spec.get("volumes", []),
            claim_templates=workflow.spec.get("volumeClaimTemplates", []),
            executor_volumes=token,
        )
        result = self.pods.run(pod, pod_stop)
        pod_stop.trigger("")  # ends the watcher
        node.pod, node.exit_code, node.result = result, result.exit_code, result.result
        node.outputs.update(result.outputs)
        self._export_globals(workflow, resolved, result.outputs)
        node.started_at, node.finished_at = result.started_at, result.finished_at
        self._complete(workflow, node, result.phase, result.message)

    def _export_globals(self, workflow: Workflow, template: Obj, outputs: dict[str, str]):
        """operator.go ``addOutputsToGlobalScope`` (podReconciliation, v3.6.19:1174): an
        output parameter with ``globalName`` becomes ``workflow.outputs.parameters.<name>``
        once its pod reports it, whatever the pod's phase."""
        for parameter in template.get("outputs", {}).get("parameters", []):
            if parameter.get("globalName") and parameter["name"] in outputs:
                workflow.global_outputs[parameter["globalName"]] = outputs[parameter["name"]]

    # suspend -------------------------------------------------------------------------------

    def _run_suspend(
        self, workflow: Workflow, node: Node, template: Obj, local: dict[str, str], stop: Shutdown
    ):
        resolved = substitute_all(template, local)
        duration = str(resolved["suspend"].get("duration", "") or "")
        until = time.time() + _seconds(duration) if duration else None
        self._notify(workflow)
        while True:
            action = workflow.resumes.pop(node.id, None)
            if action == "resume":
                break
            if action and action.startswith("stop"):
                message = action.partition(":")[2] or STOPPED
                return self._complete(workflow, node, "Failed", message)
            if stop.is_set():
                return self._complete(workflow, node, "Failed", stop.reason)
            if until is not None and time.time() >= until:
                break
            with workflow.changed:
                workflow.changed.wait(0.1)
        for parameter in resolved.get("outputs", {}).get("parameters", []):
            source = parameter.get("valueFrom", {})
            if parameter["name"] in node.outputs:
                continue
            if "default" in source:
                node.outputs[parameter["name"]] = source["default"]
            elif "supplied" in source:
                return self._complete(
                    workflow,
                    node,
                    "Error",
                    f"output parameter {parameter['name']} was not supplied",
                )
        self._complete(workflow, node, "Succeeded")

    # retries -------------------------------------------------------------------------------

    def _retry(
        self, workflow, name, display, template, template_scope, local, inputs, stop, on_exit
    ) -> Node:
        strategy = substitute_all(template["retryStrategy"], local)
        limit = int(strategy.get("limit", 0)) if strategy.get("limit") is not None else None
        policy = strategy.get("retryPolicy") or (
            "Always" if strategy.get("expression") else "OnFailure"
        )
        backoff = strategy.get("backoff") or {}
        retry = self._new_node(
            workflow, name, display, "Retry", template_name=template["name"], on_exit=on_exit
        )
        retry.started_at, retry.phase, retry.inputs = time.time(), "Running", dict(inputs)
        attempt_number, message = 0, ""
        while True:
            child = self._attempt(
                workflow,
                f"{name}({attempt_number})",
                f"{display}({attempt_number})",
                template,
                template_scope,
                local | {"retries": str(attempt_number)},
                inputs,
                stop,
                on_exit,
            )
            retry.children.append(child.id)
            if child.phase == "Succeeded" or stop.is_set():
                break
            # processNodeRetries (operator.go v3.6.19:995-1003): once the workflow is shut
            # down or past its deadline, a failed child is final, in the exit handler too.
            if workflow.shutdown:
                message = f"Stopped with strategy '{workflow.shutdown}'"
                break
            if workflow.deadline_at is not None and time.time() > workflow.deadline_at:
                message = f"retry exceeded workflow deadline {_timestamp(workflow.deadline_at)}"
                break
            if limit is not None and attempt_number >= limit:
                child.message = child.message or "No more retries left"
                break
            if not _should_retry(policy, strategy.get("expression"), child):
                break
            wait = _backoff(backoff, attempt_number)
            if "maxDuration" in backoff and time.time() + wait - retry.started_at > _seconds(
                backoff["maxDuration"]
            ):
                child.message = "Max duration limit exceeded"
                break
            if stop.wait(wait):
                break
            attempt_number += 1
        retry.outputs, retry.result, retry.exit_code = child.outputs, child.result, child.exit_code
        retry.pod = child.pod
        return self._complete(workflow, retry, child.phase, message or child.message)

    # dag -----------------------------------------------------------------------------------

    def _run_dag(self, workflow, node, template, template_scope, local, stop, on_exit):
        dag = substitute_all(template["dag"], local, allow_unresolved=True)
        tasks = {task["name"]: task for task in dag["tasks"]}
        depends = {name: Depends.of_task(task) for name, task in tasks.items()}
        for name, logic in depends.items():
            unknown = (logic.tasks if logic else set()) - set(tasks)
            if unknown:
                raise TemplateError(f"task {name} depends on unknown task(s) {sorted(unknown)}")
        targets = dag.get("target", "").replace(",", " ").split() or _leaves(depends)
        wanted = _ancestors(targets, depends)
        phases: dict[str, str] = {}
        task_nodes: dict[str, Node] = {}
        running: dict[str, threading.Thread] = {}
        done = threading.Condition()

        def run_task(task_name: str, finished: dict[str, Node]) -> None:
            child = self._run_task(
                workflow,
                node,
                tasks[task_name],
                template_scope,
                local,
                finished,
                stop,
                on_exit,
                "tasks",
            )
            with done:
                task_nodes[task_name] = child
                phases[task_name] = child.phase
                done.notify_all()

        while True:
            with done:
                for task_name in [
                    t for t in tasks if t in wanted and t not in phases and t not in running
                ]:
                    logic = depends[task_name]
                    if logic and not logic.tasks <= set(phases):
                        continue
                    if logic and not logic.evaluate(phases):
                        omitted = self._new_node(
                            workflow,
                            f"{node.name}.{task_name}",
                            task_name,
                            "Skipped",
                            on_exit=on_exit,
                        )
                        omitted.started_at = time.time()
                        self._complete(
                            workflow, omitted, "Omitted", "omitted: depends condition not met"
                        )
                        node.children.append(omitted.id)
                        phases[task_name] = "Omitted"
                        task_nodes[task_name] = omitted
                        continue
                    if stop.is_set() and not on_exit:
                        continue
                    thread = threading.Thread(
                        target=run_task, args=(task_name, dict(task_nodes)), daemon=True
                    )
                    running[task_name] = thread
                    thread.start()
                pending = [t for t in wanted if t not in phases]
                if not pending:
                    break
                if (
                    stop.is_set()
                    and not on_exit
                    and all(t not in running or not running[t].is_alive() for t in pending)
                ):
                    break
                done.wait(0.2)
        phase = _assess_dag(targets, depends, phases, tasks)
        if stop.is_set() and not on_exit:
            phase, node.message = "Failed", stop.reason
        task_scope = local | _task_variables("tasks", task_nodes)
        self._template_outputs(node, template, task_scope)
        self._complete(workflow, node, phase, node.message if phase in FAILED else "")

    def _run_task(
        self, workflow, parent, task, template_scope, local, siblings, stop, on_exit, prefix
    ) -> Node:
        """One DAG task or step: ``when``, loops, then the template."""
        name = f"{parent.name}.{task['name']}"
        scope = local | _task_variables(prefix, siblings)
        resolved = {k: v for k, v in task.items() if k not in ("withItems", "withParam")}
        try:
            # dag.go executeDAGTask / steps.go: template.Replace(..., allowUnresolved=true),
            # then govaluate; an unresolved tag outside quotes fails to parse (node Error).
            when = substitute(task.get("when", ""), scope, allow_unresolved=True)
            if not govaluate.should_execute(when):
                skipped = self._new_node(workflow, name, task["name"], "Skipped", on_exit=on_exit)
                skipped.started_at = time.time()
                parent.children.append(skipped.id)
                return self._complete(
                    workflow, skipped, "Skipped", f"when '{when}' evaluated false"
                )
            items = _loop_items(task, scope)
        except (UnresolvedError, govaluate.WhenError, ValueError) as error:
            failed = self._new_node(workflow, name, task["name"], "Skipped", on_exit=on_exit)
            failed.started_at = time.time()
            parent.children.append(failed.id)
            return self._complete(workflow, failed, "Error", str(error))
        if items is None:
            call = substitute_all(resolved, scope)
            child = self._execute(
                workflow, name, task["name"], call, template_scope, local, stop, on_exit
            )
            parent.children.append(child.id)
            return child
        group = self._new_node(workflow, name, task["name"], "TaskGroup", on_exit=on_exit)
        group.started_at, group.phase = time.time(), "Running"
        parent.children.append(group.id)
        results: list[Node] = [None] * len(items)  # type: ignore[list-item]

        def run_item(index: int, item: Any) -> None:
            item_scope = scope | _item_variables(item)
            call = substitute_all(resolved, item_scope)
            label = f"{task['name']}({index}:{_item_text(item)})"
            results[index] = self._execute(
                workflow,
                f"{name}({index}:{_item_text(item)})",
                label,
                call,
                template_scope,
                local,
                stop,
                on_exit,
            )

        threads = [
            threading.Thread(target=run_item, args=(i, item), daemon=True)
            for i, item in enumerate(items)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        group.children = [r.id for r in results]
        failed = [r for r in results if r.phase in FAILED]
        return self._complete(
            workflow,
            group,
            failed[0].phase if failed else "Succeeded",
            failed[0].message if failed else "",
        )

    # steps ---------------------------------------------------------------------------------

    def _run_steps(self, workflow, node, template, template_scope, local, stop, on_exit):
        step_nodes: dict[str, Node] = {}
        phase = "Succeeded"
        for index, group in enumerate(template["steps"]):
            if stop.is_set() and not on_exit:
                phase, node.message = "Failed", stop.reason
                break
            group_node = self._new_node(
                workflow, f"{node.name}[{index}]", f"[{index}]", "StepGroup", on_exit=on_exit
            )
            group_node.started_at, group_node.phase = time.time(), "Running"
            node.children.append(group_node.id)
            results: dict[str, Node] = {}
            snapshot = dict(step_nodes)

            def run_step(
                step: Obj, group_node=group_node, snapshot=snapshot, results=results
            ) -> None:
                results[step["name"]] = self._run_task(
                    workflow,
                    group_node,
                    step,
                    template_scope,
                    local,
                    snapshot,
                    stop,
                    on_exit,
                    "steps",
                )

            threads = [threading.Thread(target=run_step, args=(s,), daemon=True) for s in group]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            step_nodes.update(results)
            failed = [
                (step, results[step["name"]])
                for step in group
                if results[step["name"]].phase in FAILED
                and not _continues(step, results[step["name"]].phase)
            ]
            self._complete(workflow, group_node, failed[0][1].phase if failed else "Succeeded")
            if failed:
                phase = failed[0][1].phase
                node.message = f"child '{failed[0][1].name}' {failed[0][1].phase.lower()}"
                break
        self._template_outputs(node, template, local | _task_variables("steps", step_nodes))
        self._complete(workflow, node, phase, node.message if phase in FAILED else "")

    def _template_outputs(self, node: Node, template: Obj, scope: dict[str, str]) -> None:
        for parameter in template.get("outputs", {}).get("parameters", []):
            source = parameter.get("valueFrom", {})
            try:
                if "parameter" in source:
                    node.outputs[parameter["name"]] = substitute(source["parameter"], scope)
                elif "expression" in source:
                    node.outputs[parameter["name"]] = to_text(
                        evaluate(source["expression"], expand(scope))
                    )
            except (UnresolvedError, ValueError):
                if "default" in source:
                    node.outputs[parameter["name"]] = source["default"]


# -- pure helpers ------------------------------------------------------------------------------


def _forward(stop: Shutdown, pod_stop: Shutdown, deadline: Any) -> None:
    """Pass a workflow stop on to one pod; end it at its template's activeDeadlineSeconds."""
    limit = time.monotonic() + float(deadline) if deadline not in (None, "") else None
    while not pod_stop.is_set():
        if stop.wait(0.05):
            pod_stop.trigger(stop.reason)
            return
        if limit is not None and time.monotonic() > limit:
            pod_stop.trigger("Pod was active on the node longer than the specified deadline")
            return


def _should_retry(policy: str, expression: str | None, node: Node) -> bool:
    allowed = {
        "Always": node.phase in FAILED,
        "OnFailure": node.phase == "Failed",
        "OnError": node.phase == "Error",
        "OnTransientError": node.phase == "Error" and "transient" in node.message.lower(),
    }.get(policy, False)
    if not allowed or not expression:
        return allowed
    duration = (node.finished_at or time.time()) - (node.started_at or time.time())
    last = {
        "exitCode": str(node.exit_code if node.exit_code is not None else -1),
        "status": node.phase,
        "duration": str(int(duration)),
        "message": node.message,
    }
    return evaluate(expression, {"lastRetry": last}) is True


def _backoff(backoff: dict, attempt: int) -> float:
    if "duration" not in backoff:
        return 0.0
    factor = float(backoff.get("factor", 1) or 1)
    return _seconds(str(backoff["duration"])) * factor**attempt


def _seconds(text: str) -> float:
    """Go durations (``5s``, ``1m30s``, ``2h``) or plain seconds."""
    text = str(text).strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        pass
    total, number = 0.0, ""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text[index : index + 2] == "ms" else char
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
    return total


def _leaves(depends: dict[str, Depends | None]) -> list[str]:
    parents = set().union(*(d.tasks for d in depends.values() if d))
    return [name for name in depends if name not in parents]


def _ancestors(targets: list[str], depends: dict[str, Depends | None]) -> set[str]:
    wanted, queue = set(), list(targets)
    while queue:
        name = queue.pop()
        if name in wanted:
            continue
        wanted.add(name)
        if depends.get(name):
            queue.extend(depends[name].tasks)
    return wanted


def _continues(task: Obj, phase: str) -> bool:
    rule = task.get("continueOn") or {}
    return (phase == "Failed" and rule.get("failed")) or (phase == "Error" and rule.get("error"))


def _assess_dag(targets, depends, phases, tasks) -> str:
    """``assessDAGPhase``: each target's phase, an omitted one taking its branch's phase."""

    def branch(name: str, seen: frozenset[str] = frozenset()) -> str:
        phase = phases.get(name, "")
        if phase in ("Succeeded", "Failed", "Error", "Skipped"):
            return "Succeeded" if _continues(tasks[name], phase) else phase
        logic = depends.get(name)
        parents = (logic.tasks if logic else set()) - seen
        branches = {branch(parent, seen | {name}) for parent in parents}
        return next((p for p in ("Failed", "Error") if p in branches), "Succeeded")

    results = {branch(target) for target in targets}
    return next((p for p in ("Failed", "Error") if p in results), "Succeeded")


def _task_variables(prefix: str, nodes: dict[str, Node]) -> dict[str, str]:
    scope = {}
    for name, node in nodes.items():
        base = f"{prefix}.{name}"
        scope[f"{base}.id"] = node.id
        scope[f"{base}.status"] = node.phase
        if node.started_at:
            scope[f"{base}.startedAt"] = _timestamp(node.started_at)
        if node.finished_at:
            scope[f"{base}.finishedAt"] = _timestamp(node.finished_at)
        if node.exit_code is not None:
            scope[f"{base}.exitCode"] = str(node.exit_code)
        if node.result is not None:
            scope[f"{base}.outputs.result"] = node.result
        for key, value in node.outputs.items():
            scope[f"{base}.outputs.parameters.{key}"] = value
    return scope


def _loop_items(task: Obj, scope: dict[str, str]) -> list[Any] | None:
    if "withItems" in task:
        return substitute_all(task["withItems"], scope)
    if "withParam" in task:
        text = substitute(task["withParam"], scope)
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError(f"withParam value could not be parsed as a JSON list: {text}")
        return items
    return None


def _item_variables(item: Any) -> dict[str, str]:
    scope = {"item": to_text(item)}
    if isinstance(item, dict):
        scope |= {f"item.{k}": to_text(v) for k, v in item.items()}
    return scope


def _item_text(item: Any) -> str:
    return to_text(item)


def _timestamp(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(workflow: Workflow) -> str:
    nodes = ", ".join(
        f"{n.display_name}={n.phase}"
        for n in workflow.nodes.values()
        if n.type in ("Pod", "Suspend")
    )
    return f"{workflow.phase} {workflow.message!r} [{nodes}]"
