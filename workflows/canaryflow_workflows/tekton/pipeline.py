"""The ``go-canary-release`` Pipeline (and ``feature-flag-rollout``) on the Tekton Tasks.

How the plan's steps run. Tekton has no recursion and no loop whose length a result decides,
so the Pipeline is unrolled from a plan when it is compiled: ``set-weight-<i>`` and
``analyze-<i>`` per traffic step, an approval per ``approve`` step, in the plan's order and
named by the plan's step indices as the local engine records them. Why this and not the other
two shapes Tekton allows:

* one Task walking every step in one pod would hide the steps from Tekton (one TaskRun, no
  per-step status, timeout or retry) and could not stop for a person at an ``approve`` step;
* a fixed maximum of step slots guarded by ``when`` needs one result per slot (``when`` only
  compares strings with ``in``/``notin``), which the ``validate`` verb does not write.

The cost: a plan whose steps change needs ``canaryflow compile --engine tekton --plan ...``
again (the chart compiles its ``files/plan.yaml``); gates, router and thresholds are still read
from the repository's plan at run time by every verb.

Control flow, in Tekton's terms (docs/pipelines.md, "Adding finally to the Pipeline"):

* the happy path is a chain by ``runAfter``; ``deploy-canary`` and ``promote`` also read
  ``image-push``'s ``image`` result (the digest), which orders them too;
* any failed task stops the run: Tekton schedules no further task (``IsStopping``), so
  ``promote`` never runs after a failure;
* ``finally`` runs once every task has finished or been skipped, also after a timeout of
  ``timeouts.tasks`` and after a graceful cancel or stop (``CancelledRunFinally``,
  ``StoppedRunFinally``; a plain ``Cancelled`` runs no ``finally``). ``rollback`` runs there
  unless ``$(tasks.promote.status)`` is ``Succeeded`` (``did_not_finish`` says why not
  ``$(tasks.status)``), once the plan was resolved; it is idempotent, like the Argo exit
  handler's;
* ``notify`` runs in ``finally`` too, with ``$(tasks.promote.status)``: ``Succeeded`` exactly
  when the release was promoted;
* with ``onInconclusive: hold``, ``hold-<i>`` asks a person only when ``analyze-<i>``'s
  ``verdict`` result is ``inconclusive``; a ``when`` that is false skips only that task, so
  the chain goes on.

Approvals are ``ApprovalTask`` custom tasks of the manual-approval-gate controller
(openshift-pipelines/manual-approval-gate): Tekton itself has no approval. A rejection or a
timeout fails the CustomRun, so the run stops and ``finally`` rolls back.

One claim per TaskRun. Under Tekton's default ``coschedule: workspaces`` the TaskRun reconciler
fails any TaskRun bound to two PersistentVolumeClaims (``workspace.ValidateOnlyOnePVCIsUsed``,
pkg/workspace/validate.go, called from pkg/reconciler/taskrun/taskrun.go, v0.50.0 to v1.15.0;
a ``volumeClaimTemplate`` counts as a claim). go-test and go-build mount the run's ``source``
claim, so their ``go-cache`` workspace is a ``subPath`` of that same claim (``GO_CACHE_SUBPATH``,
mounted where the Go variables point): one claim under every coschedule mode (``workspaces``,
``pipelineruns``, ``isolate-pipelinerun``, ``disabled``), no second volume to attach on the
node the affinity assistant picked. The cost: the cache lives for one run (go-build reuses what
go-test compiled and downloaded) and is not kept between releases, which also means the
repository's ``go test`` cannot leave anything in a cache another release reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from canaryflow.duration import format_duration
from canaryflow.plan.model import ReleasePlan, StepSpec
from canaryflow.plan.shape import compiled_shape
from canaryflow_workflows.settings import WorkflowSettings
from canaryflow_workflows.tekton.meta import object_meta
from canaryflow_workflows.tekton.tasks import (
    API_VERSION,
    SOURCE_WORKSPACE,
    container_templates,
    render_task,
    task_name,
    task_retries,
)

Obj = dict[str, Any]

APPROVAL_API_VERSION = "openshift-pipelines.org/v1alpha1"
APPROVAL_KIND = "ApprovalTask"
DEFAULT_APPROVERS = ("group:canaryflow-approvers",)
# The ApprovalTask's own default is one hour; a plan step without a timeout waits this long.
UNBOUNDED_APPROVAL = "24h"
IMAGE = "$(tasks.image-push.results.image)"
# Task workspaces bound to a directory of another Pipeline workspace: (workspace, subPath).
GO_CACHE_WORKSPACE = "go-cache"
GO_CACHE_SUBPATH = "go-cache"
ON_SOURCE = {GO_CACHE_WORKSPACE: (SOURCE_WORKSPACE, GO_CACHE_SUBPATH)}


def param(name: str) -> str:
    return f"$(params.{name})"


@dataclass(frozen=True)
class PipelineTask:
    """One entry of a Pipeline's ``tasks`` or ``finally``: a verb or an approval."""

    name: str
    verb: str | None
    params: dict[str, Any] = field(default_factory=dict)
    when: list[Obj] = field(default_factory=list)
    approval: bool = False
    # What the plan knows about the step, passed when the verb's Task declares it: the library
    # decides what a verb reads from the plan itself (e.g. analyze its window) and what it
    # is given.
    offered: dict[str, Any] = field(default_factory=dict)
    # runAfter: None is the task before it in the chain.
    after: tuple[str, ...] | None = None


def release_pipeline_tasks(plan: ReleasePlan) -> list[PipelineTask]:
    """The release's tasks in run order, each after the one before it."""
    return list(_chain(plan))


def plan_resolved() -> Obj:
    """The plan file exists: ``rollback`` and ``notify`` read it."""
    return {"input": "$(tasks.validate-plan.status)", "operator": "in", "values": ["Succeeded"]}


def did_not_finish(last: str) -> Obj:
    """The run did not end with ``last`` succeeding: a task failed, an approval was rejected,
    the run was cancelled or stopped, or it ran out of time.

    ``$(tasks.status)`` cannot say this: after a graceful stop (``StoppedRunFinally``) every
    task that never started counts as skipped, so it reads ``Completed``, as it does after a
    successful run whose ``hold-<i>`` approvals were skipped (pipelinerunstate.go,
    ``GetPipelineTaskStatus``). ``$(tasks.<last>.status)`` is ``Succeeded`` only when the last
    task ran and succeeded, and every task before it therefore did too.
    """
    return {"input": f"$(tasks.{last}.status)", "operator": "notin", "values": ["Succeeded"]}


def release_finally() -> list[PipelineTask]:
    reason = "the release did not succeed (failed, cancelled or out of time); traffic to stable"
    return [
        PipelineTask(
            "rollback", "rollback", {"reason": reason}, [plan_resolved(), did_not_finish("promote")]
        ),
        PipelineTask(
            "notify",
            "notify",
            {**notify_arguments(), "status": "$(tasks.promote.status)"},
            [plan_resolved()],
        ),
    ]


def notify_arguments() -> dict[str, str]:
    """What every notification of a release carries besides its event (as on Argo)."""
    return {
        "workflow": "$(context.pipelineRun.name)",
        "version": param("revision"),
        "commit-status-url": param("commit-status-url"),
        "git-provider": param("git-provider"),
    }


def _source(router: bool = True, shape: str | None = None) -> list[PipelineTask]:
    """checkout and validate-plan; ``shape``: the plan shape the steps were unrolled from,
    which validate-plan holds the repository's plan to (canaryflow.plan.shape)."""
    names = ["plan", "service", "namespace", *(["router-kind"] if router else [])]
    checks = {n: param(n) for n in names}
    if router:  # a release goes through the router: the chart binds the registry here
        checks["registered-routers"] = ""
    if shape is not None:
        checks["compiled-steps"] = shape
    return [
        PipelineTask(
            "checkout", "checkout", {"repo": param("repo"), "revision": param("revision")}
        ),
        PipelineTask("validate-plan", "validate-plan", checks),
    ]


def _chain(plan: ReleasePlan) -> Iterator[PipelineTask]:
    yield from _source(shape=compiled_shape(plan))
    # Before go-test, as on Argo: both mount the ReadWriteOnce workspace, so never at once.
    started = {**notify_arguments(), "event": "started"}
    # The contract in the cluster, with the release's account, before anything is built.
    yield PipelineTask("check-contract", "check-contract", after=("validate-plan",))
    yield PipelineTask("notify-started", "notify", started, after=("check-contract",))
    yield PipelineTask("go-test", "go-test", after=("notify-started",))
    yield PipelineTask("go-build", "go-build", {"version": param("revision")}, after=("go-test",))
    yield PipelineTask(
        "image-push",
        "image-push",
        {"repository": param("image-repository"), "tag": param("revision")},
    )
    yield PipelineTask(
        "deploy-canary", "deploy-canary", {"image": IMAGE, "version": param("revision")}
    )
    yield PipelineTask("health-gate", "health-gate")
    opened = plan.router.header is None
    for index, step in enumerate(plan.steps):
        if step.approve is not None:
            yield _approval(f"approve-{index}", step.approve.message, step.approve.timeout)
            continue
        verb = "set-weight" if opened else "set-weight-with-header-route"
        opened = True
        yield PipelineTask(f"set-weight-{index}", verb, {"weight": str(step.weight)})
        yield _analyze(index, step)
        if plan.rollback.on_inconclusive == "hold":
            yield _hold(index)
    if not plan.promotion.auto:
        yield _approval("approve-promotion", "Every step passed. Promote?", None)
    yield PipelineTask("promote", "promote", {"image": IMAGE, "version": param("revision")})


def _analyze(index: int, step: StepSpec) -> PipelineTask:
    assert step.duration is not None
    offered = {"duration": format_duration(step.duration)}
    return PipelineTask(f"analyze-{index}", "analyze", {"step": str(index)}, offered=offered)


def _hold(index: int) -> PipelineTask:
    message = f"Step {index} was inconclusive (not enough data to judge). Continue?"
    inconclusive = {
        "input": f"$(tasks.analyze-{index}.results.verdict)",
        "operator": "in",
        "values": ["inconclusive"],
    }
    hold = _approval(f"hold-{index}", message, None)
    return PipelineTask(hold.name, None, hold.params, [inconclusive], approval=True)


def _approval(name: str, message: str, timeout: float | None) -> PipelineTask:
    seconds = UNBOUNDED_APPROVAL if timeout is None else f"{max(1, round(timeout))}s"
    params = {
        "approvers": ["$(params.approvers[*])"],
        "numberOfApprovalsRequired": "1",
        "description": message,
        "timeout": seconds,
    }
    return PipelineTask(name, None, params, approval=True)


class PipelineRenderer:
    """Pipeline tasks as Tekton data: task references, params, workspaces, retries."""

    def __init__(self, settings: WorkflowSettings):
        self.templates = container_templates(settings)
        self.tasks = {verb: render_task(t, settings) for verb, t in self.templates.items()}

    def render(self, task: PipelineTask, after: str | None) -> Obj:
        rendered: Obj = {"name": task.name}
        if task.approval:
            rendered["taskRef"] = {"apiVersion": APPROVAL_API_VERSION, "kind": APPROVAL_KIND}
            # manual-approval-gate reads its ``timeout`` param only from v0.8.0; up to v0.7.0
            # it waits the CustomRun's spec.timeout, else 60 minutes (approvaltask.go
            # ReconcileKind). The PipelineTask's own timeout becomes that spec.timeout
            # (pipelinerun.go createCustomRun, v0.50.0 to v1.15.0), so every version waits
            # the plan's timeout.
            rendered["timeout"] = task.params["timeout"]
        else:
            rendered["taskRef"] = {"name": task_name(task.verb), "kind": "Task"}
        run_after = list(task.after) if task.after is not None else [after] if after else []
        if run_after:
            rendered["runAfter"] = run_after
        if task.when:
            rendered["when"] = task.when
        params = dict(task.params)
        if task.verb is not None:
            declared = {p["name"] for p in self.tasks[task.verb]["spec"].get("params", [])}
            params |= {k: v for k, v in task.offered.items() if k in declared}
        if params:
            rendered["params"] = [{"name": k, "value": v} for k, v in params.items()]
        if not task.approval:
            self._check_params(task.name, task.verb, params)
            rendered["workspaces"] = [
                _workspace_binding(w["name"])
                for w in self.tasks[task.verb]["spec"].get("workspaces", [])
            ]
            retries = task_retries(self.templates[task.verb])
            if retries:
                rendered["retries"] = retries
        return rendered

    def workspaces(self, verbs: set[str]) -> list[Obj]:
        """The Pipeline's workspaces: every one a used Task declares, once."""
        found: dict[str, Obj] = {}
        for verb in sorted(verbs):
            for workspace in self.tasks[verb]["spec"].get("workspaces", []):
                declared = {"name": workspace["name"], "description": workspace["description"]}
                if workspace.get("optional"):
                    declared["optional"] = True
                if workspace["name"] not in ON_SOURCE:
                    found.setdefault(workspace["name"], declared)
        source = found.pop(SOURCE_WORKSPACE)
        return [source, *found.values()]

    def _check_params(self, name: str, verb: str, params: dict[str, Any]) -> None:
        """A param the Task does not declare is a Tekton validation error: fail at compile."""
        spec = self.tasks[verb]["spec"]
        declared = {p["name"] for p in spec.get("params", [])}
        unknown = set(params) - declared
        required = {p["name"] for p in spec.get("params", []) if "default" not in p}
        missing = required - set(params)
        if unknown or missing:
            raise ValueError(
                f"{name}: Task {task_name(verb)} takes {sorted(declared)}; "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )


def _workspace_binding(name: str) -> Obj:
    """A Task workspace bound to the Pipeline workspace of its name, or to a directory of
    ``source`` (``ON_SOURCE``: one claim per TaskRun, see the module docstring)."""
    if name in ON_SOURCE:
        workspace, sub_path = ON_SOURCE[name]
        return {"name": name, "workspace": workspace, "subPath": sub_path}
    return {"name": name, "workspace": name}


def release_parameters(plan: ReleasePlan) -> list[Obj]:
    def string(name: str, description: str, default: str | None = None) -> Obj:
        spec = {"name": name, "type": "string", "description": description}
        return spec if default is None else {**spec, "default": default}

    return [
        string("repo", "Git URL of the service's repository."),
        string("revision", "Commit to release (tag, version, image tag)."),
        string("service", "Service to release.", plan.service.name),
        string("namespace", "Namespace of the service.", plan.service.namespace),
        string("image-repository", "Where the image goes, HOST/REPO."),
        string("commit-status-url", "Commit status API URL of the revision; empty: none.", ""),
        string("git-provider", "github or gitlab: the API behind commit-status-url.", "github"),
        string("plan", "Release plan file in the repository.", "canaryflow.yaml"),
        string("router-kind", "Overrides the plan's router kind; empty keeps the plan's.", ""),
        {
            "name": "approvers",
            "type": "array",
            "description": "Who may approve the plan's approve steps (ApprovalTask approvers: "
            "user names, or group:NAME).",
            "default": list(DEFAULT_APPROVERS),
        },
    ]


def build_release_pipeline(plan: ReleasePlan, settings: WorkflowSettings) -> Obj:
    pipeline = _pipeline(
        settings.release_template_name,
        "release",
        f"Canary release of a Go service, compiled from the plan of {plan.service.name!r}: "
        f"{_summary(plan)}.",
        release_parameters(plan),
        release_pipeline_tasks(plan),
        release_finally(),
        settings,
    )
    pipeline["spec"]["results"] = [
        {
            "name": "image",
            "type": "string",
            "description": "The released image, HOST/REPO@sha256:..., as pushed and deployed.",
            "value": IMAGE,
        }
    ]
    return pipeline


def build_flag_pipeline(settings: WorkflowSettings) -> Obj:
    """``feature-flag-rollout``: checkout, plan, the rollout; ``flag-off`` in ``finally``
    unless every task succeeded (the rollout switches the flag off itself at a failing gate;
    this is the net for a killed pod or a cancelled run)."""
    store = {"configmap": param("configmap"), "configmap-key": param("configmap-key")}
    reason = "the flag rollout did not succeed; the flag goes back to off"
    parameters = [
        {"name": "repo", "type": "string", "description": "Git URL of the plan's repository."},
        {"name": "revision", "type": "string", "description": "Commit to read the plan at."},
        {"name": "service", "type": "string", "description": "Service of the flag."},
        {"name": "namespace", "type": "string", "description": "Namespace of the service."},
        {
            "name": "plan",
            "type": "string",
            "description": "Plan file.",
            "default": "canaryflow.yaml",
        },
        {"name": "configmap", "type": "string", "description": "ConfigMap of the flagd document."},
        {
            "name": "configmap-key",
            "type": "string",
            "description": "Its data key.",
            "default": "flags.json",
        },
    ]
    return _pipeline(
        settings.flag_template_name,
        "flag-rollout",
        "Feature flag rollout: the plan's flag exposed to growing user segments, flag-on judged "
        "against flag-off; off again on a failing gate.",
        parameters,
        [*_source(router=False), PipelineTask("flag-rollout", "flag-rollout", store)],
        [
            PipelineTask(
                "flag-off",
                "flag-off",
                {**store, "reason": reason},
                [plan_resolved(), did_not_finish("flag-rollout")],
            )
        ],
        settings,
    )


def _pipeline(
    name: str,
    component: str,
    description: str,
    parameters: list[Obj],
    tasks: list[PipelineTask],
    final: list[PipelineTask],
    settings: WorkflowSettings,
) -> Obj:
    renderer = PipelineRenderer(settings)
    verbs = {t.verb for t in [*tasks, *final] if t.verb is not None}
    names = [None, *(t.name for t in tasks)]
    spec = {
        "description": description,
        "params": parameters,
        "workspaces": renderer.workspaces(verbs),
        "tasks": [renderer.render(t, after) for t, after in zip(tasks, names, strict=False)],
        "finally": [renderer.render(t, None) for t in final],
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Pipeline",
        "metadata": object_meta(name, component, settings),
        "spec": spec,
    }


def _summary(plan: ReleasePlan) -> str:
    steps = [f"{step.weight}%" if step.approve is None else "approve" for step in plan.steps]
    return " -> ".join([*steps, "promote"])
