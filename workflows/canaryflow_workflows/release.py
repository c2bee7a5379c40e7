"""The ``go-canary-release`` and ``feature-flag-rollout`` WorkflowTemplates on the task library.

One ``go-canary-release`` releases every service: no plan is compiled in. ``validate-plan``
reads the pushed repository's ``canaryflow.yaml`` (or the chart's inline default) at run time
and outputs its steps as JSON; the steps then run as separate nodes, in order, through a
recursive steps template (``plan-step`` calls itself for the next step), the recursion idiom
of Argo's examples/coinflip-recursive.yaml. Why this construct: a steps template runs its
groups strictly in order and stops at the first failed group (workflow/controller/steps.go),
which is exactly a release's "next step only after this one passed"; each step is its own
visible node, and a plan change never needs a new template. ``withParam`` loops were the
alternative: they run items in parallel unless ``parallelism`` is set, and one template
cannot switch between a traffic step and an approval per item as plainly as ``when`` does.

Argo constructs used (the whole list; the cluster test bed interprets exactly these):
DAG ``depends`` (``.Succeeded``/``.Failed``/``.Errored``/``.Skipped``, ``&&``, ``||``,
parentheses) and ``target``; ``steps`` templates with sequential and parallel groups;
``when`` (govaluate: ``==``, ``!=``, ``<``, bare words compared as strings); ``templateRef``
(namespaced or ``clusterScope: true``) and local ``template``; ``suspend`` with a ``duration``
and a ``supplied`` output; ``retryStrategy`` (``limit``, ``retryPolicy``, ``expression`` on
``lastRetry.exitCode``, ``backoff``); ``onExit``; ``synchronization.mutexes``;
``activeDeadlineSeconds``; ``ttlStrategy``; ``podGC``; ``volumeClaimTemplates``;
``volumeClaimGC``; output parameters ``valueFrom.path`` (with ``default``); raw input
artifacts; pod env from an optional ``secretKeyRef`` and optional Secret volumes (notify);
``{{...}}`` substitution of ``workflow.parameters.*``, ``workflow.name``, ``workflow.status``,
``workflow.failures``, ``inputs.parameters.*``, ``tasks.<t>.outputs.parameters.*``,
``tasks.<t>.status`` (exit handler) and ``steps.<s>.outputs.parameters.*``; and ``{{=...}}``
expr-lang expressions using only ``inputs.parameters['x']``, string literals, integer
literals, ``+``, ``asInt`` and ``jsonpath`` (paths of the form ``$[N].key``). With
``argo_metrics``, Workflow-level ``metrics`` too (``argo_metrics.py``: the controller evaluates
them when the Workflow ends; nothing here depends on them).

How the workflow ends, from Argo's ``assessDAGPhase`` (workflow/controller/dag.go): a DAG is
judged on its target tasks, and a target that was Omitted inherits the phase of the branch it
hangs from, Failed winning over Succeeded. The targets here are ``promote`` and ``rollback``.
After any failure ``promote`` is Omitted below a Failed (or Errored) task, so the workflow
ends Failed even when ``rollback`` then succeeds; when every step passes ``rollback`` is
Omitted below succeeded tasks, and the workflow Succeeds. A failed ``promote`` is itself a
Failed target, and triggers ``rollback`` too.

A failing window is made safe in place: ``analyze --fail-safe`` sets the canary weight to 0
and verifies it before its pod exits 1, so traffic never waits for the rollback pod; the
rollback branch then removes the canary. ``argo stop`` and the active deadline run the exit
handler but no further DAG task, so the exit handler repeats the safety net (``rollback``, or
``flag-off`` for a flag rollout) whenever the workflow did not succeed (the release's
``rollback`` only once image-push exported a deployable image: before that nothing was
deployed); both verbs are idempotent. After a stop or the deadline Argo does not retry them
(``processNodeRetries``), so they try again inside their pod. Then it notifies: promoted,
rolled-back or failed.

Both templates share one mutex per service: a flag rollout and a canary release of the same
service would otherwise judge each other's traffic. ``synchronization.mutexes`` is Argo
Workflows v3.6+ (v4 dropped the older singular ``mutex``): the minimum version required.
"""

from __future__ import annotations

from hera.workflows import DAG, Parameter, Step, Steps, Task, WorkflowTemplate
from hera.workflows import models as m

from canaryflow.plan.routers import ROUTER_KINDS
from canaryflow.runbook.manual import RELEASE_LABEL
from canaryflow_workflows import pods
from canaryflow_workflows.argo_metrics import release_metrics
from canaryflow_workflows.graph import (
    PLAN_STEP,
    TRAFFIC_STEP,
    TRAFFIC_TASKS,
    ReleaseTask,
    exit_notification,
    flag_rollout_tasks,
    flag_safety_net,
    plan_step_tasks,
    release_safety_net,
    release_tasks,
    traffic_step_tasks,
    workflow_parameter,
)
from canaryflow_workflows.settings import WorkflowSettings

ENTRYPOINT = "release"
FLAG_ENTRYPOINT = "rollout"
EXIT_HANDLER = "exit-handler"
MUTEX = "canaryflow-{{workflow.parameters.namespace}}-{{workflow.parameters.service}}"
# Every release Workflow carries ``<RUN_LABEL[component]>: <service>``, however it was created:
# Argo adds ``workflows.argoproj.io/workflow-template`` only to ``argo submit --from``
# (workflow/common/convert.go ``NewWorkflowFromWorkflowTemplate``), never to a Workflow the
# Sensor creates with a ``workflowTemplateRef``. ``workflowMetadata.labelsFrom`` is applied by
# the controller to every Workflow it runs (operator.go ``updateWorkflowMetadata``), so
# ``argo list -l canaryflow.dev/release`` finds them all and ``…=checkout`` one service's.
RUN_LABEL = {"release": RELEASE_LABEL, "flag-rollout": "canaryflow.dev/flag-rollout"}


def release_parameters(settings: WorkflowSettings) -> list[Parameter]:
    """The workflow's parameters: what the Sensor (or a person) says about one push."""
    return [
        Parameter(name="repo", description="Git URL of the service's repository."),
        Parameter(name="revision", description="Commit to release (tag, version, image tag)."),
        *_service_parameters(),
        Parameter(name="image-repository", description="Where the image goes, HOST/REPO."),
        *_plan_parameters(),
        Parameter(
            name="router-kind",
            description="Overrides the plan's router kind; empty keeps the plan's.",
            value="",
            enum=["", *ROUTER_KINDS],
        ),
        *_commit_status_parameters(),
        _service_account(settings),
    ]


def flag_parameters(settings: WorkflowSettings) -> list[Parameter]:
    """The flag rollout's parameters: no defaults for the service, it is per submission."""
    return [
        Parameter(name="repo", description="Git URL of the repository holding the plan."),
        Parameter(name="revision", description="Commit, tag or branch to read the plan at."),
        *_service_parameters(),
        *_plan_parameters(),
        Parameter(name="configmap", description="ConfigMap of the flagd document the pods mount."),
        Parameter(name="configmap-key", description="Its data key.", value="flags.json"),
        *_commit_status_parameters(),
        _service_account(settings),
    ]


def _service_parameters() -> list[Parameter]:
    """``service`` and ``namespace``: required, ``validate-plan`` checks them against the plan."""
    return [
        Parameter(name="service", description="Service to release; must match the plan."),
        Parameter(name="namespace", description="Namespace of the service; must match the plan."),
    ]


def _commit_status_parameters() -> list[Parameter]:
    return [
        Parameter(
            name="commit-status-url",
            description="Commit status API URL of the revision (set by the Sensor); empty: none.",
            value="",
        ),
        Parameter(
            name="git-provider",
            description="github or gitlab: the commit status API behind commit-status-url.",
            value="github",
            enum=["github", "gitlab"],
        ),
    ]


def _plan_parameters() -> list[Parameter]:
    return [
        Parameter(
            name="plan",
            description="Release plan file in the repository.",
            value="canaryflow.yaml",
        ),
        Parameter(
            name="plan-inline",
            description="Default plan as YAML text, for a repository without the plan file.",
            value="",
        ),
    ]


def _service_account(settings: WorkflowSettings) -> Parameter:
    return Parameter(
        name="service-account",
        description="Service account of the task pods (RBAC for the release verbs).",
        value=settings.service_account,
    )


def _template_ref(template: str, settings: WorkflowSettings) -> m.TemplateRef:
    return m.TemplateRef(
        name=settings.cluster_tasks_name,
        template=template,
        cluster_scope=True if settings.cluster_scoped_tasks else None,
    )


def _arguments(task: ReleaseTask) -> list[Parameter] | None:
    return [Parameter(name=k, value=v) for k, v in task.arguments.items()] or None


def _reference(task: ReleaseTask, settings: WorkflowSettings) -> dict:
    if task.local:
        return {"template": task.template}
    return {"template_ref": _template_ref(task.template, settings)}


def _task(task: ReleaseTask, settings: WorkflowSettings) -> Task:
    return Task(
        name=task.name,
        **_reference(task, settings),
        arguments=_arguments(task),
        depends=task.depends,
        when=task.when,
    )


def _step(task: ReleaseTask, settings: WorkflowSettings) -> Step:
    return Step(
        name=task.name,
        **_reference(task, settings),
        arguments=_arguments(task),
        when=task.when,
    )


def _steps(
    name: str,
    description: str,
    inputs: dict[str, str],
    groups: list[list[ReleaseTask]],
    settings: WorkflowSettings,
) -> Steps:
    """A steps template: groups run in order, the tasks of one group side by side."""
    return Steps(
        name=name,
        annotations={"workflows.argoproj.io/description": description},
        inputs=[Parameter(name=k, description=v) for k, v in inputs.items()],
        sub_steps=[[_step(task, settings) for task in group] for group in groups],
    )


def _step_walk(settings: WorkflowSettings) -> list[Steps]:
    plan_step = _steps(
        PLAN_STEP,
        "Run the plan's step `step` (a traffic step or an approval), notify, then the next.",
        {
            "steps": "The plan's steps as JSON, from validate-plan.",
            "step": "Index of the step to run.",
            "last-step": "Index of the plan's last step.",
        },
        plan_step_tasks(),
        settings,
    )
    traffic_step = _steps(
        TRAFFIC_STEP,
        "Shift traffic to the step's weight and judge the step's analysis window.",
        {"weight": "Percent of traffic on the canary.", "step": "Index of the step."},
        traffic_step_tasks(),
        settings,
    )
    return [plan_step, traffic_step]


def _workspace_claim(settings: WorkflowSettings) -> m.PersistentVolumeClaim:
    return m.PersistentVolumeClaim(
        metadata=m.ObjectMeta(name=pods.WORKSPACE_VOLUME),
        spec=m.PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            storage_class_name=settings.workspace_storage_class,
            resources=m.VolumeResourceRequirements(
                requests={"storage": m.Quantity(settings.workspace_size)}
            ),
        ),
    )


def build_release_template(settings: WorkflowSettings) -> WorkflowTemplate:
    """``go-canary-release``: any service, its own plan's steps, read at run time."""
    return _workflow_template(
        settings.release_template_name,
        "release",
        "Canary release of a Go service: build once, deploy by digest, then the steps of the "
        "repository's own canaryflow.yaml, each judged by its gates; promote or roll back.",
        DAG(
            name=ENTRYPOINT,
            target="promote rollback",
            tasks=[_task(task, settings) for task in release_tasks()],
        ),
        release_parameters(settings),
        release_safety_net(),
        TRAFFIC_TASKS,
        settings,
        extra=_step_walk(settings),
    )


def build_flag_template(settings: WorkflowSettings) -> WorkflowTemplate:
    """``feature-flag-rollout``: the plan's flag steps, each gated, with no new deployment."""
    return _workflow_template(
        settings.flag_template_name,
        "flag-rollout",
        "Feature flag rollout: the plan's flag exposed to growing user segments (flagd "
        "document in a ConfigMap), flag-on judged against flag-off; off again on a failing gate.",
        DAG(
            name=FLAG_ENTRYPOINT,
            tasks=[_task(task, settings) for task in flag_rollout_tasks()],
        ),
        flag_parameters(settings),
        flag_safety_net(),
        ("flag-rollout",),
        settings,
    )


def _workflow_template(
    name: str,
    component: str,
    description: str,
    dag: DAG,
    parameters: list[Parameter],
    safety_net: ReleaseTask,
    traffic_tasks: tuple[str, ...],
    settings: WorkflowSettings,
    extra: list[Steps] = (),
) -> WorkflowTemplate:
    """What every canaryflow workflow shares: on exit the safety net unless it Succeeded, then
    notify; one at a time per service, bounded in time, cleaned up after, non-root pods, a
    workspace volume removed at the end."""
    notify = exit_notification(safety_net, traffic_tasks)
    exit_handler = DAG(
        name=EXIT_HANDLER, tasks=[_task(safety_net, settings), _task(notify, settings)]
    )
    return WorkflowTemplate(
        name=name,
        namespace=settings.namespace,
        labels={"app.kubernetes.io/name": "canaryflow", "app.kubernetes.io/component": component},
        annotations={"workflows.argoproj.io/description": description},
        entrypoint=dag.name,
        on_exit=EXIT_HANDLER,
        arguments=parameters,
        service_account_name=workflow_parameter("service-account"),
        synchronization=m.Synchronization(mutexes=[m.Mutex(name=MUTEX)]),
        active_deadline_seconds=settings.active_deadline_seconds,
        ttl_strategy=m.TTLStrategy(
            seconds_after_success=settings.ttl_seconds_after_success,
            seconds_after_failure=settings.ttl_seconds_after_failure,
        ),
        pod_gc=m.PodGC(strategy=settings.pod_gc_strategy),
        security_context=pods.pod_security_context(),
        volume_claim_templates=[_workspace_claim(settings)],
        volume_claim_gc=m.VolumeClaimGC(strategy="OnWorkflowCompletion"),
        pod_metadata=m.Metadata(labels={"app.kubernetes.io/name": "canaryflow"}),
        workflow_metadata=m.WorkflowMetadata(
            labels_from={
                RUN_LABEL[component]: m.LabelValueFrom(expression="workflow.parameters.service")
            }
        ),
        templates=[dag, *extra, exit_handler],
        metrics=release_metrics(name) if settings.argo_metrics else None,
    )
