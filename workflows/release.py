"""The ``go-canary-release`` WorkflowTemplate: the plan's DAG on the task library.

How the workflow ends, from Argo's ``assessDAGPhase`` (workflow/controller/dag.go): a DAG is
judged on its target tasks, and a target that was Omitted inherits the phase of the branch it
hangs from, Failed winning over Succeeded. The targets here are ``promote`` and ``rollback``.
After any failure ``promote`` is Omitted below a Failed (or Errored) task, so the workflow
ends Failed even when ``rollback`` then succeeds; when every step passes ``rollback`` is
Omitted below succeeded tasks, and the workflow Succeeds. A failed ``promote`` is itself a
Failed target, and triggers ``rollback`` too.
"""

from __future__ import annotations

from hera.workflows import DAG, Parameter, Task, WorkflowTemplate
from hera.workflows import models as m

from canaryflow.plan.model import ROUTER_KINDS, ReleasePlan
from canaryflow.workflows import pods
from canaryflow.workflows.graph import ReleaseTask, release_tasks, workflow_parameter
from canaryflow.workflows.settings import WorkflowSettings

ENTRYPOINT = "release"
EXIT_HANDLER = "exit-handler"
MUTEX = "canaryflow-{{workflow.parameters.namespace}}-{{workflow.parameters.service}}"


def release_parameters(plan: ReleasePlan, settings: WorkflowSettings) -> list[Parameter]:
    """The workflow's parameters; defaults come from the plan the template was compiled with."""
    return [
        Parameter(name="repo", description="Git URL of the service's repository."),
        Parameter(name="revision", description="Commit to release (tag, version, image tag)."),
        Parameter(name="service", description="Service to release.", value=plan.service.name),
        Parameter(
            name="namespace",
            description="Namespace of the service.",
            value=plan.service.namespace,
        ),
        Parameter(name="image-repository", description="Where the image goes, HOST/REPO."),
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
        Parameter(
            name="router-kind",
            description="Overrides the plan's router kind; empty keeps the plan's.",
            value="",
            enum=["", *ROUTER_KINDS],
        ),
        Parameter(
            name="service-account",
            description="Service account of the task pods (RBAC for the release verbs).",
            value=settings.service_account,
        ),
    ]


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
    release = DAG(
        name=ENTRYPOINT,
        target="promote rollback",
        tasks=[_task(task, settings) for task in release_tasks(plan)],
    )
    notify = ReleaseTask(
        "notify",
        "notify",
        {
            "status": "{{workflow.status}}",
            "workflow": "{{workflow.name}}",
            "failures": "{{workflow.failures}}",
        },
    )
    exit_handler = DAG(name=EXIT_HANDLER, tasks=[_task(notify, settings)])
    return WorkflowTemplate(
        name=settings.release_template_name,
        namespace=settings.namespace,
        labels={"app.kubernetes.io/name": "canaryflow", "app.kubernetes.io/component": "release"},
        annotations={
            "workflows.argoproj.io/description": (
                f"Canary release of a Go service, compiled from the plan of "
                f"{plan.service.name!r}: {_summary(plan)}."
            )
        },
        entrypoint=ENTRYPOINT,
        on_exit=EXIT_HANDLER,
        arguments=release_parameters(plan, settings),
        service_account_name=workflow_parameter("service-account"),
        synchronization=m.Synchronization(mutexes=[m.Mutex(name=MUTEX)]),
        active_deadline_seconds=settings.active_deadline_seconds,
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
        security_context=pods.pod_security_context(),
        volume_claim_templates=[_workspace_claim(settings)],
        volume_claim_gc=m.VolumeClaimGC(strategy="OnWorkflowCompletion"),
        pod_metadata=m.Metadata(labels={"app.kubernetes.io/name": "canaryflow"}),
        templates=[release, exit_handler],
    )


def _summary(plan: ReleasePlan) -> str:
    steps = [f"{step.weight}%" if step.approve is None else "approve" for step in plan.steps]
    return " -> ".join([*steps, "promote"])
