"""The release DAG as data: which task runs which library template, with what, after what.

A pure function of the plan: no Hera here, so the control flow reads in one screen and the
names follow the plan's step indices (``set-weight-2``, ``analyze-2``, ``approve-3``) exactly
as the local engine records them.

Control flow, in Argo's enhanced ``depends`` terms:

* the happy path is a chain: each task runs only when the one before it Succeeded;
* ``rollback`` runs when any task from ``deploy-canary`` on Failed or Errored: from then on a
  canary exists (and from the first ``set-weight`` it has traffic; the header route goes live
  with that first weight), so removing it is always right. Before ``deploy-canary`` nothing was
  changed, and rollback is Omitted;
* ``promote`` needs every earlier task to have Succeeded, so it never runs after a failure;
* with ``onInconclusive: hold``, ``hold-<i>`` follows ``analyze-<i>`` and asks a person only
  when that window was inconclusive; Skipped otherwise, which lets the chain go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import pairwise

from canaryflow.plan.duration import format_duration
from canaryflow.plan.model import ReleasePlan, StepSpec

IMAGE = "{{tasks.image-push.outputs.parameters.image}}"
FIRST_GUARDED = "deploy-canary"


def workflow_parameter(name: str) -> str:
    return "{{workflow.parameters." + name + "}}"


@dataclass(frozen=True)
class ReleaseTask:
    name: str
    template: str
    arguments: dict[str, str] = field(default_factory=dict)
    depends: str | None = None
    when: str | None = None


def release_tasks(plan: ReleasePlan) -> list[ReleaseTask]:
    """Every task of the release DAG in run order, rollback last."""
    linked = _linked(list(_chain(plan)))
    names = [task.name for task in linked]
    return [*linked, rollback_task(names[names.index(FIRST_GUARDED) :])]


def succeeded(task: ReleaseTask) -> str:
    """Done and fine: a conditional task (``when``) that was Skipped counts as fine too."""
    if task.when is not None:
        return f"({task.name}.Succeeded || {task.name}.Skipped)"
    return f"{task.name}.Succeeded"


def rollback_task(guarded: list[str]) -> ReleaseTask:
    # A constant: the failed node's name and message reach people through notify's failures.
    reason = "a step failed after the canary was deployed; traffic goes back to stable"
    depends = " || ".join(f"{name}.Failed || {name}.Errored" for name in guarded)
    return ReleaseTask("rollback", "rollback", {"reason": reason}, depends)


FAILED_WORKFLOW = "{{workflow.status}} != Succeeded"
FLAG_STORE = {name: workflow_parameter(name) for name in ("configmap", "configmap-key")}


def flag_rollout_tasks() -> list[ReleaseTask]:
    """The flag rollout's DAG: the plan, then the rollout, which runs every step itself.

    It switches the flag off at a failing gate (or on SIGTERM) within its own process; the
    exit handler's ``flag-off`` is the net for a pod that was killed or a workflow stopped.
    """
    rollout = ReleaseTask("flag-rollout", "flag-rollout", FLAG_STORE)
    return _linked([*_source(router=False), rollout])


def release_safety_net() -> ReleaseTask:
    """Run on exit unless the workflow Succeeded: ``argo stop``, the deadline, a lost pod.

    Stopping a workflow runs its exit handler but no more DAG tasks, so the DAG's own
    rollback branch cannot be relied on then. ``rollback`` is idempotent: after the DAG's
    rollback, or before any canary existed, it changes nothing.
    """
    reason = "the release did not succeed (failed, stopped or out of time); traffic to stable"
    return ReleaseTask("rollback", "rollback", {"reason": reason}, when=FAILED_WORKFLOW)


def flag_safety_net() -> ReleaseTask:
    """The flag rollout's exit net, as ``release_safety_net``: ``flag-off`` is idempotent."""
    reason = "the flag rollout did not succeed; the flag goes back to off"
    arguments = {**FLAG_STORE, "reason": reason}
    return ReleaseTask("flag-off", "flag-off", arguments, when=FAILED_WORKFLOW)


def _linked(chain: list[ReleaseTask]) -> list[ReleaseTask]:
    """Each task after the first runs only when the one before it Succeeded."""
    return [chain[0]] + [
        replace(task, depends=succeeded(previous)) for previous, task in pairwise(chain)
    ]


def _source(router: bool = True) -> list[ReleaseTask]:
    """``checkout`` then ``validate-plan``: the repository at the revision, and its plan."""
    wp = workflow_parameter
    names = ["plan", "plan-inline", "service", "namespace", *(["router-kind"] if router else [])]
    return [
        ReleaseTask("checkout", "checkout", {"repo": wp("repo"), "revision": wp("revision")}),
        ReleaseTask("validate-plan", "validate-plan", {name: wp(name) for name in names}),
    ]


def _chain(plan: ReleasePlan) -> Iterator[ReleaseTask]:
    wp = workflow_parameter
    yield from _source()
    yield ReleaseTask("go-test", "go-test")
    yield ReleaseTask("go-build", "go-build", {"version": wp("revision")})
    yield ReleaseTask(
        "image-push",
        "image-push",
        {"repository": wp("image-repository"), "tag": wp("revision")},
    )
    yield ReleaseTask("deploy-canary", "deploy-canary", {"image": IMAGE, "version": wp("revision")})
    yield ReleaseTask("health-gate", "health-gate")
    opened = plan.router.header is None
    for index, step in enumerate(plan.steps):
        if step.approve is not None:
            yield _approval(f"approve-{index}", step.approve.message, step.approve.timeout)
            continue
        yield _set_weight(index, step, open_header_route=not opened)
        opened = True
        yield _analyze(index, step)
        if plan.rollback.on_inconclusive == "hold":
            yield _hold(index)
    if not plan.promotion.auto:
        yield _approval("approve-promotion", "Every step passed. Promote?", None)
    yield ReleaseTask("promote", "promote", {"image": IMAGE, "version": wp("revision")})


def _set_weight(index: int, step: StepSpec, open_header_route: bool) -> ReleaseTask:
    template = "set-weight-with-header-route" if open_header_route else "set-weight"
    return ReleaseTask(f"set-weight-{index}", template, {"weight": str(step.weight)})


def _analyze(index: int, step: StepSpec) -> ReleaseTask:
    assert step.duration is not None
    arguments = {"duration": format_duration(step.duration), "step": str(index)}
    return ReleaseTask(f"analyze-{index}", "analyze", arguments)


def _hold(index: int) -> ReleaseTask:
    """``onInconclusive: hold``: analyze exits 0 on an inconclusive window, and a person
    decides; the approval runs only then (``when``), else it is Skipped and the release goes on.
    """
    verdict = "{{tasks.analyze-" + str(index) + ".outputs.parameters.verdict}}"
    message = f"Step {index} was inconclusive (not enough data to judge). Continue?"
    return replace(_approval(f"hold-{index}", message, None), when=f"{verdict} == inconclusive")


def _approval(name: str, message: str, timeout: float | None) -> ReleaseTask:
    seconds = "" if timeout is None else str(max(1, round(timeout)))
    return ReleaseTask(name, "approve", {"message": message, "timeout": seconds})
