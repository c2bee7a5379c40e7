"""The release as data: which task runs which template, with what, after what, on what condition.

No Hera here, so the control flow reads in one screen. One ``go-canary-release`` serves every
service: nothing below depends on a plan. The plan is read at run time by ``validate-plan``,
whose outputs (``canaryflow.release.walk``) drive the step walk.

The top DAG, in Argo's enhanced ``depends`` terms:

* the happy path is a chain: each task runs only when the one before it Succeeded, including
  ``check-contract`` right after ``validate-plan`` (``validate --cluster`` with the release's
  account: the service's objects are checked before anything is built; validate-plan holds no
  token) and ``notify-started`` after it. It runs *before* ``go-test``, not beside
  it: both mount the ``workspace`` volume (ReadWriteOnce: the plan for notify, the source for
  go-test), and two pods on different nodes holding one RWO claim wait on a Multi-Attach
  error. In sequence no two pods ever hold the claim at once; the cost is one short pod
  (``notify`` exits 0 whatever the webhook does, 2 tries of 3 s at most);
* ``canary-steps`` walks the plan's steps (see ``plan_step_tasks``);
* ``approve-promotion`` runs only when the plan says ``promotion.auto: false`` (``when``),
  else it is Skipped, which lets ``promote`` go on;
* ``rollback`` runs when any task from ``deploy-canary`` on Failed or Errored: from then on a
  canary exists, so removing it is always right. Before ``deploy-canary`` nothing was
  changed, and rollback is Omitted;
* ``promote`` needs every earlier task to have Succeeded, so it never runs after a failure.

The step walk is Argo's recursion idiom (examples/coinflip-recursive.yaml): the steps
template ``plan-step`` runs step ``step`` of the plan, notifies, and calls itself for
``step + 1`` while ``step < last-step``. Argo runs a steps template's groups in order and
stops at the first failed group (steps.go ``executeSteps``), so a failed window ends the walk
and fails ``canary-steps``. Which template runs a step is a ``when`` on the step's ``kind``,
read from ``validate-plan``'s JSON with ``jsonpath``. Argo limits how deep templates nest
(about 100 levels), so a plan of more than ~90 steps would not run; real plans have a handful.

Every traffic step calls ``set-weight-with-header-route``: it re-asserts the plan's header
route (an idempotent edit of the same object; nothing when the plan has none) and then sets
the weight, so the header route goes live with the first weight and heals if someone removed
it. Notifications never fail a release by their delivery (``notify`` exits 0 whatever the
webhook does); a notify pod that cannot run at all, after its retries, fails its step like any
other pod, which stops the release on the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise

from canaryflow.release.walk import APPROVE, LAST_STEP, PROMOTION, STEPS, TRAFFIC

IMAGE = "{{tasks.image-push.outputs.parameters.image}}"
FIRST_GUARDED = "deploy-canary"
STEP_WALK = "canary-steps"
PLAN_STEP = "plan-step"
TRAFFIC_STEP = "traffic-step"
# The DAG tasks that run once the canary may have traffic: a failure there is a rollback.
TRAFFIC_TASKS = (STEP_WALK, "approve-promotion", "promote")
FAILED_WORKFLOW = "{{workflow.status}} != Succeeded"
# image-push's ``image`` output, exported as ``workflow.outputs.parameters.<this>`` (Argo's
# ``globalName``): it exists once there is an image deploy-canary may have deployed, never before.
DEPLOYABLE_IMAGE = "deployable-image"
# The exit handler's rollback: the workflow did not succeed *and* something may have been
# deployed. Before image-push succeeded (no plan, a failed clone, validate-plan, go-test or
# go-build failed) deploy-canary never started: nothing to roll back, and a rollback without a
# plan would only fail and raise a false "roll back by hand". Argo leaves an unset global
# unresolved in a ``when`` (dag.go executeDAGTask, allowUnresolved): inside quotes it is a string
# without ``@sha256:``, so the guard reads false, as it should. (Tekton: a ``when`` on
# ``$(tasks.validate-plan.status)`` in ``finally``.)
FAILED_AFTER_DEPLOYABLE = (
    f"{FAILED_WORKFLOW} && '{{{{workflow.outputs.parameters.{DEPLOYABLE_IMAGE}}}}}' =~ '@sha256:'"
)


def workflow_parameter(name: str) -> str:
    return "{{workflow.parameters." + name + "}}"


def validate_output(name: str) -> str:
    return "{{tasks.validate-plan.outputs.parameters." + name + "}}"


def step_field(key: str) -> str:
    """Field ``key`` of the plan step this ``plan-step`` runs (an Argo expression)."""
    path = "'$[' + inputs.parameters['step'] + ']." + key + "'"
    return "{{=jsonpath(inputs.parameters['steps'], " + path + ")}}"


@dataclass(frozen=True)
class ReleaseTask:
    """A DAG task or a step: ``template`` from the task library, or ``local`` to this
    WorkflowTemplate (the step walk's own templates)."""

    name: str
    template: str
    arguments: dict[str, str] = field(default_factory=dict)
    depends: str | None = None
    when: str | None = None
    local: bool = False


def succeeded(task: ReleaseTask) -> str:
    """Done and fine: a conditional task (``when``) that was Skipped counts as fine too."""
    if task.when is not None:
        return f"({task.name}.Succeeded || {task.name}.Skipped)"
    return f"{task.name}.Succeeded"


def release_tasks() -> list[ReleaseTask]:
    """Every task of the release DAG in run order, rollback last."""
    wp = workflow_parameter
    contract = ReleaseTask("check-contract", "check-contract", depends="validate-plan.Succeeded")
    started = ReleaseTask(
        "notify-started",
        "notify",
        {**notify_arguments(), "event": "started"},
        depends="check-contract.Succeeded",
    )
    go_test = ReleaseTask("go-test", "go-test", depends="notify-started.Succeeded")
    build = ReleaseTask(
        "go-build", "go-build", {"version": wp("revision")}, depends="go-test.Succeeded"
    )
    chain = _linked(
        [
            build,
            ReleaseTask(
                "image-push",
                "image-push",
                {"repository": wp("image-repository"), "tag": wp("revision")},
            ),
            ReleaseTask(
                "deploy-canary", "deploy-canary", {"image": IMAGE, "version": wp("revision")}
            ),
            ReleaseTask("health-gate", "health-gate"),
            ReleaseTask(
                STEP_WALK,
                PLAN_STEP,
                {
                    "steps": validate_output(STEPS),
                    "step": "0",
                    "last-step": validate_output(LAST_STEP),
                },
                local=True,
            ),
            ReleaseTask(
                "approve-promotion",
                "approve",
                {"message": "Every step passed. Promote?", "timeout": ""},
                when=f"{validate_output(PROMOTION)} == {APPROVE}",
            ),
            ReleaseTask("promote", "promote", {"image": IMAGE, "version": wp("revision")}),
        ]
    )
    tasks = [*_source(), contract, started, go_test, *chain]
    names = [task.name for task in tasks]
    return [*tasks, rollback_task(names[names.index(FIRST_GUARDED) :])]


def plan_step_tasks() -> list[list[ReleaseTask]]:
    """``plan-step``'s step groups: run step ``step``, tell people, recurse while steps remain.

    The first group holds one task per step kind; ``when`` on the step's ``kind`` runs exactly
    one of them and Skips the other.
    """
    kind = step_field("kind")
    traffic = ReleaseTask(
        "traffic",
        TRAFFIC_STEP,
        {"weight": step_field("weight"), "step": "{{inputs.parameters.step}}"},
        when=f"{kind} == {TRAFFIC}",
        local=True,
    )
    approval = ReleaseTask(
        "approve",
        "approve",
        {"message": step_field("message"), "timeout": step_field("timeout")},
        when=f"{kind} == {APPROVE}",
    )
    notify = ReleaseTask(
        "notify",
        "notify",
        {**notify_arguments(), "event": "step", "step": "{{inputs.parameters.step}}"},
    )
    recurse = ReleaseTask(
        "next-step",
        PLAN_STEP,
        {
            "steps": "{{inputs.parameters.steps}}",
            "step": "{{=asInt(inputs.parameters['step']) + 1}}",
            "last-step": "{{inputs.parameters.last-step}}",
        },
        when="{{inputs.parameters.step}} < {{inputs.parameters.last-step}}",
        local=True,
    )
    return [[traffic, approval], [notify], [recurse]]


def traffic_step_tasks() -> list[list[ReleaseTask]]:
    """A traffic step: the weight (with the plan's header route), its window, and with
    ``onInconclusive: hold`` a person's decision after an inconclusive window.

    ``analyze`` reads the window's length from the plan (``--step``); it exits 0 on an
    inconclusive window only under ``hold``, so ``hold`` asks only then (``when``) and is
    Skipped after a pass.
    """
    step = "{{inputs.parameters.step}}"
    verdict = "{{steps.analyze.outputs.parameters.verdict}}"
    message = "This step was inconclusive (not enough data to judge). Continue?"
    return [
        [
            ReleaseTask(
                "set-weight",
                "set-weight-with-header-route",
                {"weight": "{{inputs.parameters.weight}}"},
            )
        ],
        [ReleaseTask("analyze", "analyze", {"step": step})],
        [
            ReleaseTask(
                "hold",
                "approve",
                {"message": message, "timeout": ""},
                when=f"{verdict} == inconclusive",
            )
        ],
    ]


def notify_arguments() -> dict[str, str]:
    """What every notification of a release carries besides its event."""
    wp = workflow_parameter
    return {
        "workflow": "{{workflow.name}}",
        "version": wp("revision"),
        "commit-status-url": wp("commit-status-url"),
        "git-provider": wp("git-provider"),
        "service": wp("service"),
        "namespace": wp("namespace"),
    }


def rollback_task(guarded: list[str]) -> ReleaseTask:
    # A constant: the failed node's name and message reach people through notify's failures.
    reason = "a step failed after the canary was deployed; traffic goes back to stable"
    depends = " || ".join(f"{name}.Failed || {name}.Errored" for name in guarded)
    return ReleaseTask("rollback", "rollback", {"reason": reason}, depends)


FLAG_STORE = {name: workflow_parameter(name) for name in ("configmap", "configmap-key")}


def flag_rollout_tasks() -> list[ReleaseTask]:
    """The flag rollout's DAG: the plan, then the rollout, which runs every step itself.

    It switches the flag off at a failing gate (or on SIGTERM) within its own process; the
    exit handler's ``flag-off`` is the net for a pod that was killed or a workflow stopped.
    """
    rollout = ReleaseTask("flag-rollout", "flag-rollout", FLAG_STORE)
    return _linked([*_source(router=False), rollout])


def release_safety_net() -> ReleaseTask:
    """Run on exit unless the workflow Succeeded (``argo stop``, the deadline, a lost pod), and
    only once something may have been deployed (``FAILED_AFTER_DEPLOYABLE``).

    Stopping a workflow runs its exit handler but no more DAG tasks, so the DAG's own
    rollback branch cannot be relied on then. ``rollback`` is idempotent: after the DAG's
    rollback, or before any canary existed, it changes nothing.
    """
    reason = "the release did not succeed (failed, stopped or out of time); traffic to stable"
    return ReleaseTask("rollback", "rollback", {"reason": reason}, when=FAILED_AFTER_DEPLOYABLE)


def flag_safety_net() -> ReleaseTask:
    """The flag rollout's exit net, as ``release_safety_net``: ``flag-off`` is idempotent."""
    reason = "the flag rollout did not succeed; the flag goes back to off"
    arguments = {**FLAG_STORE, "reason": reason}
    return ReleaseTask("flag-off", "flag-off", arguments, when=FAILED_WORKFLOW)


def exit_notification(safety_net: ReleaseTask, traffic_tasks: tuple[str, ...]) -> ReleaseTask:
    """The last word, once the safety net is done whatever its outcome (traffic first, then
    the message; a hung webhook cannot delay the rollback). Without ``--event``, notify reads
    promoted, rolled-back or failed from the workflow's status and failures; a safety net that
    itself Failed makes it ``failed`` with the instruction to roll back by hand."""
    net = safety_net.name
    finished = " || ".join(
        f"{net}.{phase}" for phase in ("Succeeded", "Skipped", "Failed", "Errored")
    )
    arguments = {
        **notify_arguments(),
        "status": "{{workflow.status}}",
        "failures": "{{workflow.failures}}",
        "traffic-tasks": ",".join(traffic_tasks),
        "safety-net": "{{tasks." + net + ".status}}",
    }
    return ReleaseTask("notify", "notify", arguments, depends=finished)


def _linked(chain: list[ReleaseTask]) -> list[ReleaseTask]:
    """Each task after the first runs only when the one before it Succeeded."""
    return [chain[0]] + [
        replace(task, depends=succeeded(previous)) for previous, task in pairwise(chain)
    ]


def _source(router: bool = True) -> list[ReleaseTask]:
    """``checkout`` then ``validate-plan``: the repository at the revision, and its plan."""
    wp = workflow_parameter
    names = ["plan", "plan-inline", "service", "namespace", *(["router-kind"] if router else [])]
    checks = {name: wp(name) for name in names}
    if router:  # a release goes through the router: the chart binds the registry here
        checks["registered-routers"] = ""
    return _linked(
        [
            ReleaseTask("checkout", "checkout", {"repo": wp("repo"), "revision": wp("revision")}),
            ReleaseTask("validate-plan", "validate-plan", checks),
        ]
    )
