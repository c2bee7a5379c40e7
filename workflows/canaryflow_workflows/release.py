"""The ``go-canary-release`` and ``feature-flag-rollout`` WorkflowTemplates on the task library.

How the workflow ends, from Argo's ``assessDAGPhase`` (workflow/controller/dag.go): a DAG is
judged on its target tasks, and a target that was Omitted inherits the phase of the branch it
hangs from, Failed winning over Succeeded. The targets here are ``promote`` and ``rollback``.
After any failure ``promote`` is Omitted below a Failed (or Errored) task, so the workflow
ends Failed even when ``rollback`` then succeeds; when every step passes ``rollback`` is
Omitted below succeeded tasks, and the workflow Succeeds. A failed ``promote`` is itself a
Failed target, and triggers ``rollback`` too.

``argo stop`` and the active deadline run the exit handler but no further DAG task, so the exit
handler repeats the safety net (``rollback``, or ``flag-off`` for a flag rollout) whenever the
workflow did not succeed; both verbs are idempotent.

Both templates share one mutex per service: a flag rollout and a canary release of the same
service would otherwise judge each other's traffic.
"""

from __future__ import annotations

from hera.workflows import DAG, Parameter, Task, WorkflowTemplate
from hera.workflows import models as m

from canaryflow.plan.model import ROUTER_KINDS, ReleasePlan
from canaryflow_workflows import pods
from canaryflow_workflows.graph import (
    ReleaseTask,
    flag_rollout_tasks,
    flag_safety_net,
    release_safety_net,
    release_tasks,
    workflow_parameter,
)
from canaryflow_workflows.settings import WorkflowSettings

ENTRYPOINT = "release"
FLAG_ENTRYPOINT = "rollout"
EXIT_HANDLER = "exit-handler"
MUTEX = "canaryflow-{{workflow.parameters.namespace}}-{{workflow.parameters.service}}"


def release_parameters(plan: ReleasePlan, settings: WorkflowSettings) -> list[Parameter]:
    """The workflow's parameters; defaults come from the plan the template was compiled with."""
    return [
        Parameter(name="repo", description="Git URL of the service's repository."),
        Parameter(name="revision", description="Commit to release (tag, version, image tag)."),
        *_service_parameters(plan.service.name, plan.service.namespace),
        Parameter(name="image-repository", description="Where the image goes, HOST/REPO."),
        *_plan_parameters(),
        Parameter(
            name="router-kind",
            description="Overrides the plan's router kind; empty keeps the plan's.",
            value="",
            enum=["", *ROUTER_KINDS],
        ),
        _service_account(settings),
    ]


def flag_parameters(settings: WorkflowSettings) -> list[Parameter]:
    """The flag rollout's parameters: no defaults for the service, it is per submission."""
    return [
        Parameter(name="repo", description="Git URL of the repository holding the plan."),
        Parameter(name="revision", description="Commit, tag or branch to read the plan at."),
        *_service_parameters(None, None),
        *_plan_parameters(),
        Parameter(name="configmap", description="ConfigMap of the flagd document the pods mount."),
        Parameter(name="configmap-key", description="Its data key.", value="flags.json"),
        _service_account(settings),
    ]


def _service_parameters(name: str | None, namespace: str | None) -> list[Parameter]:
    """``service`` and ``namespace``; None leaves them without a default (required)."""
    given = {"service": name, "namespace": namespace}
    descriptions = {"service": "Service to release.", "namespace": "Namespace of the service."}
    return [
        Parameter(name=key, description=descriptions[key])
        if given[key] is None
        else Parameter(name=key, description=descriptions[key], value=given[key])
        for key in ("service", "namespace")
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
            description="Release plan as YAML text; wins over the file when set.",
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


def _task(task: ReleaseTask, settings: WorkflowSettings) -> Task:
    return Task(
        name=task.name,
        template_ref=_template_ref(task.template, settings),
        arguments=[Parameter(name=k, value=v) for k, v in task.arguments.items()] or None,
        depends=task.depends,
        when=task.when,
    )


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


def build_release_template(plan: ReleasePlan, settings: WorkflowSettings) -> WorkflowTemplate:
    """``go-canary-release`` for ``plan``: the same steps, in the same order, as a local run."""
    return _workflow_template(
        settings.release_template_name,
        "release",
        f"Canary release of a Go service, compiled from the plan of {plan.service.name!r}: "
        f"{_summary(plan)}.",
        DAG(
            name=ENTRYPOINT,
            target="promote rollback",
            tasks=[_task(task, settings) for task in release_tasks(plan)],
        ),
        release_parameters(plan, settings),
        release_safety_net(),
        settings,
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
        settings,
    )


def _workflow_template(
    name: str,
    component: str,
    description: str,
    dag: DAG,
    parameters: list[Parameter],
    safety_net: ReleaseTask,
    settings: WorkflowSettings,
) -> WorkflowTemplate:
    """What every canaryflow workflow shares: on exit notify, and the safety net unless it
    Succeeded; one at a time per service, bounded in time, non-root pods, a workspace volume
    cleaned up at the end."""
    notify = ReleaseTask(
        "notify",
        "notify",
        {
            "status": "{{workflow.status}}",
            "workflow": "{{workflow.name}}",
            "failures": "{{workflow.failures}}",
        },
    )
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
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
        security_context=pods.pod_security_context(),
        volume_claim_templates=[_workspace_claim(settings)],
        volume_claim_gc=m.VolumeClaimGC(strategy="OnWorkflowCompletion"),
        pod_metadata=m.Metadata(labels={"app.kubernetes.io/name": "canaryflow"}),
        templates=[dag, exit_handler],
    )


def _summary(plan: ReleasePlan) -> str:
    steps = [f"{step.weight}%" if step.approve is None else "approve" for step in plan.steps]
    return " -> ".join([*steps, "promote"])
