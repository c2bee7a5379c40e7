"""Tekton Triggers for Git pushes: the Argo Events Sensor's mapping, as CEL.

One ``EventListener`` picks up one ``Trigger`` per provider by label. Each Trigger checks the
webhook (the ``github``/``gitlab`` ClusterInterceptors: signature or token, and the event
type), then a ``cel`` ClusterInterceptor drops everything that is not a push of a release
branch (tags, branch deletions, other repositories) and computes the parameters as
``extensions``; the TriggerBinding reads them and the TriggerTemplate creates the PipelineRun.

The mapping is the Sensor's (``charts/canaryflow/templates/sensor.yaml``, ``events.services``):
only a listed repository (by its path, GitHub ``owner/name``, GitLab ``group/name``) pushing
one of its branches releases; ``repo`` is the clone URL, ``revision`` the pushed commit,
``service``, ``namespace`` and ``image-repository`` the listed service's, ``git-provider`` the
provider and ``commit-status-url`` its commit status API for the revision. A push from any
other repository, to another branch, a tag or a branch deletion starts nothing.

Without ``services`` (``canaryflow compile --engine tekton`` on its own) every repository whose
webhook carries the secret releases from ``branches``, its service named after it and its
image in ``image_repository``/<service>: the chart always lists services.

CEL functions used: ``in``, ``split`` and ``replace`` (cel-go's strings extension) and
``last`` (Tekton's ``triggersLib``), all in the CEL environment of
pkg/interceptors/cel/cel.go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from canaryflow.plan.model import ReleasePlan
from canaryflow_workflows.settings import WorkflowSettings
from canaryflow_workflows.tekton import pods_template
from canaryflow_workflows.tekton.meta import object_meta
from canaryflow_workflows.tekton.pipeline import release_pipeline_tasks

Obj = dict[str, Any]

API_VERSION = "triggers.tekton.dev/v1beta1"
GROUP_LABEL = "canaryflow.dev/trigger-group"
GROUP = "git-push"
DELETED = "0" * 40


@dataclass(frozen=True)
class Provider:
    """Where a provider's push payload says what the Sensor reads (the same paths)."""

    name: str
    interceptor: str
    event: str
    repo: str
    revision: str
    service: str
    pusher: str
    path: str

    def status_url(self, settings: TriggerSettings) -> str:
        """CEL for the commit status API URL of the pushed revision, as the Sensor builds it:
        GitHub ``<api>/repos/<owner/name>/statuses/<sha>``, GitLab
        ``<base>/api/v4/projects/<group%2Fname>/statuses/<sha>`` (a project path has no other
        character that needs escaping)."""
        if self.name == "github":
            base = settings.github_api_url.rstrip("/") + "/repos/"
            repository = self.path
        else:
            base = settings.gitlab_base_url.rstrip("/") + "/api/v4/projects/"
            repository = f"{self.path}.replace('/', '%2F')"
        return f"{cel_string(base)} + {repository} + '/statuses/' + {self.revision}"


GITHUB = Provider(
    "github",
    "github",
    "push",
    "body.repository.clone_url",
    "body.after",
    "body.repository.name",
    "body.pusher.name",
    "body.repository.full_name",
)
# GitLab's project name is a display name; the path's last segment is the repository's.
GITLAB = Provider(
    "gitlab",
    "gitlab",
    "Push Hook",
    "body.project.git_http_url",
    "body.checkout_sha",
    "body.project.path_with_namespace.split('/').last()",
    "body.user_username",
    "body.project.path_with_namespace",
)
PROVIDERS = (GITHUB, GITLAB)


@dataclass(frozen=True)
class ServiceRoute:
    """A repository allowed to release (by its path as the payload names it: GitHub
    ``owner/name``, GitLab ``group/name``), where its service lives, and its branches."""

    repository: str
    service: str
    namespace: str
    image_repository: str
    branches: tuple[str, ...] = ("main",)


@dataclass(frozen=True)
class TriggerSettings:
    """What the chart's ``events`` values say, for ``canaryflow compile`` and the chart."""

    branches: tuple[str, ...] = ("main",)
    webhook_secret: str = "git-webhooks"
    secret_keys: dict[str, str] = field(
        default_factory=lambda: {"github": "github", "gitlab": "gitlab"}
    )
    image_repository: str = "registry.example.com/services"
    github_api_url: str = "https://api.github.com"
    gitlab_base_url: str = "https://gitlab.com"
    services: tuple[ServiceRoute, ...] = ()
    service_account: str = "canaryflow-triggers"
    listener: str = "canaryflow-git"
    # The PipelineRun's share of its timeout kept for finally (the rollback): the tasks get
    # the rest, so a release that runs out of time still rolls back.
    finally_timeout: str = "15m"


def cel_string(text: str) -> str:
    """A CEL string literal (single quotes; backslash and quote escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cel_list(items: list[str]) -> str:
    return "[" + ", ".join(cel_string(item) for item in items) + "]"


def cel_map(pairs: dict[str, str]) -> str:
    return "{" + ", ".join(f"{cel_string(k)}: {cel_string(v)}" for k, v in pairs.items()) + "}"


def _refs(branches: tuple[str, ...]) -> str:
    return cel_list([f"refs/heads/{branch}" for branch in branches])


def push_filter(provider: Provider, settings: TriggerSettings) -> str:
    """True for a push of a release branch (not a deletion); with ``services``, only from a
    listed repository, to one of its own branches."""
    not_deleted = f"body.after != {cel_string(DELETED)}"
    if not settings.services:
        return f"body.ref in {_refs(settings.branches)} && {not_deleted}"
    routes = {s.repository: s for s in settings.services}
    branches = "{" + ", ".join(f"{cel_string(r)}: {_refs(s.branches)}" for r, s in routes.items())
    return (
        f"{provider.path} in {cel_list(list(routes))} && "
        f"body.ref in {branches}}}[{provider.path}] && {not_deleted}"
    )


def overlays(provider: Provider, settings: TriggerSettings) -> list[Obj]:
    """``extensions.<key>``: the values the Sensor maps, computed once per event."""
    if settings.services:
        routes = {s.repository: s for s in settings.services}

        def lookup(attribute: str) -> str:
            table = {path: getattr(route, attribute) for path, route in routes.items()}
            return f"{cel_map(table)}[{provider.path}]"

        values = {
            "service": lookup("service"),
            "namespace": lookup("namespace"),
            "image_repository": lookup("image_repository"),
        }
    else:
        image = f"{cel_string(settings.image_repository.rstrip('/') + '/')} + {provider.service}"
        # Empty namespace: the plan's (the validate verb checks only a given namespace).
        values = {"service": provider.service, "namespace": "''", "image_repository": image}
    values["commit_status_url"] = provider.status_url(settings)
    return [{"key": key, "expression": expression} for key, expression in values.items()]


def trigger(provider: Provider, settings: TriggerSettings, workflow: WorkflowSettings) -> Obj:
    secret = {
        "secretName": settings.webhook_secret,
        "secretKey": settings.secret_keys[provider.name],
    }
    metadata = object_meta(f"canaryflow-{provider.name}-push", "trigger", workflow)
    metadata["labels"][GROUP_LABEL] = GROUP
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": metadata,
        "spec": {
            "name": f"{provider.name}-push",
            "interceptors": [
                {
                    "name": "verify-webhook",
                    "ref": {"name": provider.interceptor, "kind": "ClusterInterceptor"},
                    "params": [
                        {"name": "secretRef", "value": secret},
                        {"name": "eventTypes", "value": [provider.event]},
                    ],
                },
                {
                    "name": "release-branch-push",
                    "ref": {"name": "cel", "kind": "ClusterInterceptor"},
                    "params": [
                        {"name": "filter", "value": push_filter(provider, settings)},
                        {"name": "overlays", "value": overlays(provider, settings)},
                    ],
                },
            ],
            "bindings": [{"kind": "TriggerBinding", "ref": binding_name(provider)}],
            "template": {"ref": workflow.release_template_name},
        },
    }


def binding_name(provider: Provider) -> str:
    return f"canaryflow-{provider.name}-push"


def trigger_binding(provider: Provider, workflow: WorkflowSettings) -> Obj:
    """Payload and overlay values as the TriggerTemplate's parameters."""
    values = {
        "repo": f"$({provider.repo})",
        "revision": f"$({provider.revision})",
        "service": "$(extensions.service)",
        "namespace": "$(extensions.namespace)",
        "image-repository": "$(extensions.image_repository)",
        "git-provider": provider.name,
        "commit-status-url": "$(extensions.commit_status_url)",
        "pushed-by": f"$({provider.pusher})",
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "TriggerBinding",
        "metadata": object_meta(binding_name(provider), "trigger", workflow),
        "spec": {"params": [{"name": k, "value": v} for k, v in values.items()]},
    }


TEMPLATE_PARAMS = {
    "repo": "Git URL of the pushed repository.",
    "revision": "The pushed commit.",
    "service": "Service to release.",
    "namespace": "Namespace of the service; empty: the plan's.",
    "image-repository": "Where the image goes, HOST/REPO.",
    "git-provider": "github or gitlab.",
    "commit-status-url": "Commit status API URL of the revision.",
    "pushed-by": "Who pushed, for the record.",
}


def trigger_template(
    settings: TriggerSettings, workflow: WorkflowSettings, plan: ReleasePlan
) -> Obj:
    """One PipelineRun of ``go-canary-release`` (compiled from ``plan``) per accepted push."""
    pipeline_params = [name for name in TEMPLATE_PARAMS if name != "pushed-by"]
    total = workflow.active_deadline_seconds
    run = {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {
            "generateName": f"{workflow.release_template_name}-",
            "labels": {
                "app.kubernetes.io/name": "canaryflow",
                "app.kubernetes.io/component": "release",
                "tekton.dev/pipeline": workflow.release_template_name,
            },
            "annotations": {"canaryflow.dev/pushed-by": "$(tt.params.pushed-by)"},
        },
        "spec": {
            "pipelineRef": {"name": workflow.release_template_name},
            "params": [{"name": n, "value": f"$(tt.params.{n})"} for n in pipeline_params],
            "workspaces": pods_template.run_workspaces(workflow),
            "taskRunTemplate": {
                "serviceAccountName": workflow.service_account,
                "podTemplate": pods_template.pod_template(),
            },
            "taskRunSpecs": pods_template.task_run_specs(release_pipeline_tasks(plan), workflow),
            "timeouts": {
                "pipeline": f"{total}s",
                "finally": settings.finally_timeout,
            },
        },
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "TriggerTemplate",
        "metadata": object_meta(workflow.release_template_name, "trigger", workflow),
        "spec": {
            "params": [{"name": n, "description": d} for n, d in TEMPLATE_PARAMS.items()],
            "resourcetemplates": [run],
        },
    }


def event_listener(settings: TriggerSettings, workflow: WorkflowSettings) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "EventListener",
        "metadata": object_meta(settings.listener, "trigger", workflow),
        "spec": {
            "serviceAccountName": settings.service_account,
            "labelSelector": {"matchLabels": {GROUP_LABEL: GROUP}},
            "resources": {"kubernetesResource": {"replicas": 1}},
        },
    }


def trigger_documents(
    settings: TriggerSettings, workflow: WorkflowSettings, plan: ReleasePlan
) -> list[Obj]:
    return [
        event_listener(settings, workflow),
        trigger_template(settings, workflow, plan),
        *(trigger_binding(p, workflow) for p in PROVIDERS),
        *(trigger(p, settings, workflow) for p in PROVIDERS),
    ]
