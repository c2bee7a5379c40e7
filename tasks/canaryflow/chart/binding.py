"""Which compiled values the chart's values replace, and the Helm expression for each.

The workflow code compiles concrete objects; the chart must leave some of their values to
``values.yaml``. Each such value is swapped for a token in the compiled data (``bind``), the
data is dumped and Argo's braces escaped, and only then each token becomes its Helm expression
(``to_helm``): tokens carry no braces, so escaping never touches the expressions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from canaryflow.kubernetes.grace import TERMINATION_GRACE_ENV
from canaryflow.plan.gitops import API_URL_ENV, BRANCH_ENV, REPOSITORY_ENV

Obj = dict[str, Any]

LABELS_KEY = "__canaryflow_chart_labels__"
# Whole mappings of the release templates' spec that values.yaml replaces: spec key -> values.
SPEC_MAPPINGS = {"ttlStrategy": ".Values.workflows.ttlStrategy", "podGC": ".Values.workflows.podGC"}


@dataclass(frozen=True)
class Binding:
    token: str
    expression: str
    """Helm expression producing the value; ``toJson`` when it replaces a whole scalar."""


IMAGE = Binding("__canaryflow_image__", 'include "canaryflow.image" .')
PULL_POLICY = Binding("__canaryflow_pull_policy__", ".Values.image.pullPolicy")
SERVICE_ACCOUNT = Binding(
    "__canaryflow_service_account__", 'include "canaryflow.serviceAccountName" .'
)
NAMESPACE = Binding("__canaryflow_namespace__", ".Release.Namespace")
NOTIFICATIONS_SECRET = Binding(
    "__canaryflow_notifications_secret__", ".Values.notifications.secretName"
)
GIT_TOKEN_SECRET = Binding(
    "__canaryflow_git_token_secret__", ".Values.notifications.gitTokenSecret"
)
GITOPS_SECRET = Binding("__canaryflow_gitops_secret__", ".Values.gitops.credentialsSecret")
GITOPS_REPOSITORY = Binding("__canaryflow_gitops_repository__", ".Values.gitops.repository")
GITOPS_API_URL = Binding("__canaryflow_gitops_api_url__", ".Values.gitops.apiUrl")
GITOPS_BRANCH = Binding("__canaryflow_gitops_branch__", ".Values.gitops.branch")
BUILD_SERVICE_ACCOUNT = Binding(
    "__canaryflow_build_service_account__", 'include "canaryflow.buildServiceAccountName" .'
)
# Every Argo task pod's terminationGracePeriodSeconds (the template's podSpecPatch) and the
# same number told to the verb: one value, workflows.terminationGracePeriodSeconds. Tekton's
# Tasks keep Kubernetes' 30 s (no pod-template field for it), so they are not bound.
GRACE_VALUE = ".Values.workflows.terminationGracePeriodSeconds"
TERMINATION_GRACE_PATCH = Binding(
    "__canaryflow_termination_grace_patch__",
    f'dict "terminationGracePeriodSeconds" (int {GRACE_VALUE}) | toJson',
)
TERMINATION_GRACE = Binding("__canaryflow_termination_grace__", f"{GRACE_VALUE} | int | toString")
CLUSTER_SCOPE = "__canaryflow_cluster_scope__"
GO_CACHE = "__canaryflow_go_cache__"
GO_ENV = "__canaryflow_go_env__"
GO_SECRET_ENV = "__canaryflow_go_secret_env__"
GO_SECRET_VOLUMES = "__canaryflow_go_secret_volumes__"
GO_SECRET_MOUNTS = "__canaryflow_go_secret_mounts__"
GO_SECRETS = {
    # volume name: (values key, file name in the pod, variable the verbs read)
    "go-netrc": ("netrcSecret", "netrc", "CANARYFLOW_GO_NETRC"),
    "git-credentials": ("gitCredentialsSecret", "git-credentials", "CANARYFLOW_GIT_CREDENTIALS"),
}
SECRETS_ROOT = "/var/run/canaryflow"
# Every task container's env gets the Pushgateway URL when monitoring.pushgateway.url is set.
PUSHGATEWAY_ENV = "__canaryflow_pushgateway_env__"
PUSHGATEWAY_VARIABLE = "CANARYFLOW_PUSHGATEWAY_URL"  # commands.release_metrics.ENV
# The chart's Prometheus (values ``analysis.prometheus``): its URL to every task that reads a
# plan's choice of it, its credentials only to the tasks that query it (never validate-plan,
# which reads a pushed plan with no token). See canaryflow.analysis.prometheus_auth.
PROMETHEUS_URL_ENV = "__canaryflow_prometheus_url_env__"
PROMETHEUS_ACCESS_ENV = "__canaryflow_prometheus_access_env__"
PROMETHEUS_TASKS = {"analyze": PROMETHEUS_ACCESS_ENV, "flag-rollout": PROMETHEUS_ACCESS_ENV}
PROMETHEUS_URL_TASKS = {"validate-plan": PROMETHEUS_URL_ENV}

PARAMETER_DEFAULTS: dict[str, Binding] = {
    "router-kind": Binding("__canaryflow_router_kind__", ".Values.release.routerKind"),
    "image-repository": Binding(
        "__canaryflow_image_repository__", ".Values.release.imageRepository"
    ),
    "plan-inline": Binding("__canaryflow_plan_inline__", 'include "canaryflow.planInline" .'),
}
# What validate-plan holds a release's plan to: the router kinds each service registered in
# events.services may use (canaryflow.registeredRouters, JSON), a literal argument of the release
# graph's validate-plan task (Argo DAG task, Tekton Pipeline task), so no submitter sets it.
# The compiled argument is empty (no check); the flag rollout passes none (no router).
REGISTERED_ROUTERS_PARAMETER = "registered-routers"
REGISTERED_ROUTERS = Binding(
    "__canaryflow_registered_routers__", 'include "canaryflow.registeredRouters" .'
)
ALL = (
    IMAGE,
    PULL_POLICY,
    SERVICE_ACCOUNT,
    BUILD_SERVICE_ACCOUNT,
    NAMESPACE,
    NOTIFICATIONS_SECRET,
    GIT_TOKEN_SECRET,
    GITOPS_SECRET,
    GITOPS_REPOSITORY,
    GITOPS_API_URL,
    GITOPS_BRANCH,
    TERMINATION_GRACE_PATCH,
    TERMINATION_GRACE,
    *PARAMETER_DEFAULTS.values(),
    REGISTERED_ROUTERS,
)
CHART_LABELS = frozenset(
    {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
        "helm.sh/chart",
    }
)


# Scheduling and pull settings of every release pod (values.yaml's conventional keys): on Argo
# the release WorkflowTemplates' spec (it applies to every pod of the Workflow, templateRef'd
# tasks included), on Tekton the PipelineRun's podTemplate. Argo calls the priority class
# ``podPriorityClassName``; Tekton's PodTemplate ``priorityClassName``.
POD_SETTINGS = "__canaryflow_pod_settings__"
POD_LABELS = "__canaryflow_pod_labels__"
POD_ANNOTATIONS = "__canaryflow_pod_annotations__"  # adds an ``annotations`` mapping
POD_ANNOTATION_ENTRIES = "__canaryflow_pod_annotation_entries__"  # entries of an existing one
POD_SETTING_KEYS = ("nodeSelector", "tolerations", "affinity", "imagePullSecrets")
# Names of the chart's Argo templates and the templateRefs between them: from the release
# (``canaryflow.templateName``), so two installs side by side do not collide.
TEMPLATE_NAME = "__canaryflow_template_name__"
# The release Workflow's account: derived from its `namespace` parameter, never chosen by one.
RELEASE_SERVICE_ACCOUNT = "__canaryflow_release_service_account__"
SERVICE_ACCOUNT_PARAMETER = "{{workflow.parameters.service-account}}"
TEKTON_RELEASE_SERVICE_ACCOUNT = "__canaryflow_tekton_release_service_account__"
RESOURCES = {"go": "__canaryflow_resources_go__", "tasks": "__canaryflow_resources_tasks__"}
# A task's own resources: its class (``go``/``tasks``) with ``resources.perTask.<task>`` merged
# over it (the chart's ``canaryflow.taskResources``); the token names the class and the task.
TASK_RESOURCES = "__canaryflow_task_resources__"
# The release templates' Argo custom metrics (canaryflow_workflows.argo_metrics): compiled in,
# rendered only with monitoring.argoMetrics.enabled.
ARGO_METRICS = "__canaryflow_argo_metrics__"
ARGO_METRICS_VALUE = ".Values.monitoring.argoMetrics.enabled"


@dataclass(frozen=True)
class Compiled:
    """The concrete values the workflow code compiled in, to find and replace."""

    image: str
    service_account: str
    tasks_name: str
    notifications_secret: str
    git_token_secret: str
    build_service_account: str = "canaryflow-build"
    gitops_secret: str = "canaryflow-gitops"
    go_cache_pvc: str | None = "canaryflow-go-cache"
    resources: dict[str, Any] | None = None
    """``{"go": ..., "tasks": ...}``: the compiled requests/limits each values key replaces."""
    termination_grace_seconds: int = 30
    """The task pods' compiled ``terminationGracePeriodSeconds`` (podSpecPatch and env)."""


def _walk(node: Any, visit: Callable[[Any, Any], Any]) -> Any:
    if isinstance(node, dict):
        return {key: visit(key, _walk(value, visit)) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(item, visit) for item in node]
    return node


def _named(items: Any, name: str) -> bool:
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("name") == name for item in items
    )


def _go_pod_markers(key: Any, value: Any, argo: bool) -> Any:
    """The Go tasks' env, volumes and mounts get markers ``to_helm`` expands from values.yaml:
    the chart's ``go.env`` and, on Argo, the private-module Secrets."""
    if key == "env" and _named(value, "GOCACHE"):
        return [*value, {"name": GO_ENV, "value": ""}] + (
            [{"name": GO_SECRET_ENV, "value": ""}] if argo else []
        )
    if argo and key == "volumes" and _named(value, "go-cache"):
        return [*value, {"name": GO_SECRET_VOLUMES}]
    if argo and key == "volumeMounts" and _named(value, "go-cache"):
        return [*value, {"name": GO_SECRET_MOUNTS}]
    return value


def bind(document: Obj, compiled: Compiled, namespaced: bool) -> Obj:
    """``document`` with every chart-controlled value replaced by its token."""
    argo = document.get("apiVersion", "").startswith("argoproj.io/")

    def visit(key: Any, value: Any) -> Any:
        value = _go_pod_markers(key, value, argo)
        if key == "env" and _named(value, "HOME"):
            value = [*value, {"name": PUSHGATEWAY_ENV, "value": ""}]
        if argo and key == "podSpecPatch" and _is_grace_patch(value, compiled):
            return TERMINATION_GRACE_PATCH.token
        if argo and key == "env" and _named(value, TERMINATION_GRACE_ENV):
            value = [
                {**item, "value": TERMINATION_GRACE.token}
                if item.get("name") == TERMINATION_GRACE_ENV
                and item.get("value") == str(compiled.termination_grace_seconds)
                else item
                for item in value
            ]
        if key in ("resources", "computeResources") and compiled.resources:
            for values_key, compiled_value in compiled.resources.items():
                if value == compiled_value:
                    return {RESOURCES[values_key]: ""}
        if key == "podMetadata" and isinstance(value, dict) and argo:
            labels = {**value.get("labels", {}), POD_LABELS: ""}
            return {**value, "labels": labels, POD_ANNOTATIONS: ""}
        if (
            key == "taskRunTemplate"
            and isinstance(value, dict)
            and value.get("serviceAccountName") == SERVICE_ACCOUNT.token
        ):
            # Tekton: the service namespace's own account, from the trigger's namespace.
            return {**value, "serviceAccountName": TEKTON_RELEASE_SERVICE_ACCOUNT}
        if not argo and _tekton(document):
            value = _tekton_names(key, value)
        if key == "podTemplate" and isinstance(value, dict) and not argo:
            return {**value, POD_SETTINGS: "tekton"}
        if key == "resourcetemplates" and isinstance(value, list):
            return [_pipeline_run_metadata(item) for item in value]
        if key in ("parameters", "params") and isinstance(value, list):
            value = [
                {**item, "value": REGISTERED_ROUTERS.token}
                if isinstance(item, dict)
                and item.get("name") == REGISTERED_ROUTERS_PARAMETER
                and item.get("value") == ""
                else item
                for item in value
            ]
        if key == "persistentVolumeClaim" and value == {"claimName": compiled.go_cache_pvc}:
            return GO_CACHE
        if key == "serviceAccountName" and value == compiled.build_service_account:
            return BUILD_SERVICE_ACCOUNT.token
        if key == "imagePullPolicy":
            return PULL_POLICY.token
        if key == "serviceAccountName" and value == compiled.service_account:
            return SERVICE_ACCOUNT.token
        if key in ("secretName", "name") and value == compiled.notifications_secret:
            return NOTIFICATIONS_SECRET.token
        if key == "name" and value == compiled.git_token_secret:
            return GIT_TOKEN_SECRET.token
        if key == "secretName" and value == compiled.gitops_secret:
            return GITOPS_SECRET.token
        if key == "env" and _named(value, REPOSITORY_ENV):
            chart = {
                REPOSITORY_ENV: GITOPS_REPOSITORY.token,
                BRANCH_ENV: GITOPS_BRANCH.token,
                API_URL_ENV: GITOPS_API_URL.token,
            }
            return [
                {**item, "value": chart[item["name"]]} if item.get("name") in chart else item
                for item in value
            ]
        if (
            key == "templateRef"
            and isinstance(value, dict)
            and value.get("name") == compiled.tasks_name
        ):
            kept = {k: v for k, v in value.items() if k not in ("clusterScope", "name")}
            name = f"{TEMPLATE_NAME}{value['name']}{TEMPLATE_NAME}"
            return {"name": name, **kept, "clusterScope": CLUSTER_SCOPE}
        if isinstance(value, str):
            return value.replace(compiled.image, IMAGE.token)
        return value

    bound = _walk(document, visit)
    _prometheus_markers(bound)
    _per_task_resources(bound)
    for parameter in bound.get("spec", {}).get("arguments", {}).get("parameters", []):
        binding = PARAMETER_DEFAULTS.get(parameter.get("name"))
        if binding is not None:
            parameter["value"] = binding.token
    spec = bound.get("spec", {})
    if argo and spec.get("serviceAccountName") == SERVICE_ACCOUNT_PARAMETER:
        spec["serviceAccountName"] = RELEASE_SERVICE_ACCOUNT
        arguments = spec.get("arguments", {})
        arguments["parameters"] = [
            p for p in arguments.get("parameters", []) if p.get("name") != "service-account"
        ]
    if argo and "podMetadata" in spec:
        spec[POD_SETTINGS] = "argo"
    if argo and "metrics" in spec:
        spec[ARGO_METRICS] = spec.pop("metrics")
    for key in SPEC_MAPPINGS:
        if key in spec:
            spec[key] = {_mapping_token(key): ""}
    metadata = bound.setdefault("metadata", {})
    if _tekton(document) or bound.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        metadata["name"] = _release_named(metadata["name"])
    own = {k: v for k, v in metadata.get("labels", {}).items() if k not in CHART_LABELS}
    metadata["labels"] = {**own, LABELS_KEY: ""}
    if namespaced:
        metadata["namespace"] = NAMESPACE.token
    return bound


def _is_grace_patch(value: Any, compiled: Compiled) -> bool:
    """The compiled podSpecPatch that sets only the task pod's termination grace."""
    try:
        patch = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return patch == {"terminationGracePeriodSeconds": compiled.termination_grace_seconds}


def _tekton(document: Obj) -> bool:
    return document.get("apiVersion", "").startswith(("tekton.dev/", "triggers.tekton.dev/"))


def _release_named(base: str) -> str:
    """A name the chart derives from the release (``canaryflow.templateName``)."""
    return f"{TEMPLATE_NAME}{base}{TEMPLATE_NAME}"


# Tekton keys naming another of the chart's objects: the references follow the names.
_TEKTON_REFERENCES = ("taskRef", "pipelineRef")
TRIGGER_GROUP = "canaryflow.dev/trigger-group"


def _tekton_names(key: Any, value: Any) -> Any:
    """Names and references between the Tekton objects, each as ``_named``: Tasks from
    Pipelines, the Pipeline from the PipelineRun, bindings and template from a Trigger, and
    the label an EventListener selects its Triggers by."""
    if key in _TEKTON_REFERENCES and isinstance(value, dict) and "name" in value:
        return {**value, "name": _release_named(value["name"])}
    if key == "template" and isinstance(value, dict) and isinstance(value.get("ref"), str):
        return {**value, "ref": _release_named(value["ref"])}
    if key == "bindings" and isinstance(value, list):
        return [
            {**b, "ref": _release_named(b["ref"])}
            if isinstance(b, dict) and b.get("kind") == "TriggerBinding" and "ref" in b
            else b
            for b in value
        ]
    if key in (TRIGGER_GROUP, "tekton.dev/pipeline") and isinstance(value, str):
        return _release_named(value)
    if key == "generateName" and isinstance(value, str) and value.endswith("-"):
        return _release_named(value[:-1]) + "-"
    return value


def _pipeline_run_metadata(item: Any) -> Any:
    """A PipelineRun's labels and annotations reach its TaskRuns and pods (Tekton propagates
    them): the values' podLabels and podAnnotations go there."""
    if not isinstance(item, dict) or item.get("kind") != "PipelineRun":
        return item
    metadata = item.get("metadata", {})
    labels = {**metadata.get("labels", {}), POD_LABELS: ""}
    annotations = {
        **metadata.get("annotations", {}),
        POD_ANNOTATION_ENTRIES: "",
    }
    return {**item, "metadata": {**metadata, "labels": labels, "annotations": annotations}}


def _pod_blocks(text: str) -> str:
    """The pod markers as Helm blocks over the values' conventional keys."""
    for marker, values_key in (
        (POD_LABELS, "podLabels"),
        (POD_ANNOTATION_ENTRIES, "podAnnotations"),
    ):
        text = re.sub(
            rf"^(?P<i> *){marker}: ''$",
            lambda m, values_key=values_key: (
                f"{{{{- with .Values.{values_key} }}}}"
                f"{{{{ toYaml . | nindent {len(m['i'])} }}}}{{{{- end }}}}"
            ),
            text,
            flags=re.MULTILINE,
        )
    text = re.sub(
        rf"^(?P<i> *){POD_ANNOTATIONS}: ''$",
        lambda m: (
            "{{- with .Values.podAnnotations }}\n"
            f"{m['i']}annotations:{{{{- toYaml . | nindent {len(m['i']) + 2} }}}}\n"
            "{{- end }}"
        ),
        text,
        flags=re.MULTILINE,
    )

    def settings(match: re.Match) -> str:
        indent, engine = match["i"], match["engine"]
        priority = "podPriorityClassName" if engine == "argo" else "priorityClassName"
        blocks = [
            f"{{{{- with .Values.{key} }}}}\n{indent}{key}:"
            f"{{{{- toYaml . | nindent {len(indent) + 2} }}}}\n{{{{- end }}}}"
            for key in POD_SETTING_KEYS
        ]
        blocks.append(
            f"{{{{- with .Values.priorityClassName }}}}\n{indent}{priority}: {{{{ . | toJson }}}}\n"
            "{{- end }}"
        )
        return "\n".join(blocks)

    text = re.sub(
        rf"^(?P<i> *){POD_SETTINGS}: (?P<engine>argo|tekton)$", settings, text, flags=re.MULTILINE
    )
    text = _task_resources_blocks(text)
    for values_key, token in RESOURCES.items():
        text = _to_yaml_block(text, token, f".Values.resources.{values_key}")
    return text


def _argo_metrics_block(text: str) -> str:
    """The ``metrics`` mapping (every line indented under the marker) inside an ``if`` on the
    value: Argo evaluates these only when the chart asks for them."""
    return re.sub(
        rf"^(?P<i> *){ARGO_METRICS}:\n(?P<body>(?:(?P=i) .*\n)+)",
        lambda m: (
            f"{{{{- if {ARGO_METRICS_VALUE} }}}}\n{m['i']}metrics:\n{m['body']}{{{{- end }}}}\n"
        ),
        text,
        flags=re.MULTILINE,
    )


def _to_yaml_block(text: str, token: str, values: str) -> str:
    """Each ``<token>: ''`` line becomes ``values`` rendered as YAML at that line's indent."""
    return re.sub(
        rf"^(?P<i> *){token}: ''$",
        lambda m: f"{m['i']}{{{{- toYaml {values} | nindent {len(m['i'])} }}}}",
        text,
        flags=re.MULTILINE,
    )


def _task_containers(document: Obj) -> list[tuple[str, Obj]]:
    """(task name, container) of an Argo task library's templates or a Tekton Task's steps."""
    spec = document.get("spec", {})
    containers: list[tuple[str, Obj]] = []
    if document.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        for template in spec.get("templates", []):
            if "container" in template:
                containers.append((template["name"], template["container"]))
    if document.get("kind") == "Task":
        name = document.get("metadata", {}).get("name", "").removeprefix("canaryflow-")
        containers.extend((name, step) for step in spec.get("steps", []))
    return containers


def _per_task_resources(document: Obj) -> None:
    """A task container sized by a class (``go``/``tasks``) gets the token of that class and
    its task name instead: ``to_helm`` renders the class with ``resources.perTask.<task>``
    merged over it."""
    for name, container in _task_containers(document):
        for key in ("resources", "computeResources"):
            for values_key, token in RESOURCES.items():
                if container.get(key) == {token: ""}:
                    container[key] = {f"{TASK_RESOURCES}{values_key}__{name}__": ""}


def _task_resources_blocks(text: str) -> str:
    """Each per-task resources token becomes the chart's merged resources of that task."""
    return re.sub(
        rf"^(?P<i> *){TASK_RESOURCES}(?P<cls>[a-z]+)__(?P<task>[a-z0-9-]+)__: ''$",
        lambda m: (
            m["i"] + '{{- include "canaryflow.taskResources" (dict "root" $ '
            f'"class" "{m["cls"]}" "task" "{m["task"]}") | nindent {len(m["i"])} }}}}'
        ),
        text,
        flags=re.MULTILINE,
    )


def _prometheus_markers(document: Obj) -> None:
    """The env of the tasks that read or query Prometheus gets the marker ``to_helm`` expands
    from ``.Values.analysis.prometheus`` (an Argo template's container, a Tekton Task's steps)."""
    markers = {**PROMETHEUS_TASKS, **PROMETHEUS_URL_TASKS}
    for name, container in _task_containers(document):
        if name in markers:
            container["env"] = [*container.get("env", []), {"name": markers[name], "value": ""}]


def _mapping_token(key: str) -> str:
    return f"__canaryflow_spec_{key}__"


_LABELS_LINE = re.compile(rf"^(?P<indent> *){LABELS_KEY}: ''$", re.MULTILINE)
_CLUSTER_SCOPE_LINE = re.compile(rf"^(?P<indent> *)clusterScope: {CLUSTER_SCOPE}$", re.MULTILINE)


def to_helm(text: str) -> str:
    """Dumped YAML with tokens turned into Helm expressions.

    ``clusterScope`` is written only for cluster-scoped tasks, as the workflow code does.
    """
    text = _LABELS_LINE.sub(
        lambda m: (
            f'{m["indent"]}{{{{- include "canaryflow.labels" . | nindent {len(m["indent"])} }}}}'
        ),
        text,
    )
    for key, values in SPEC_MAPPINGS.items():
        text = _to_yaml_block(text, _mapping_token(key), values)
    text = _go_pod_blocks(text)
    text = _pod_blocks(text)
    text = _argo_metrics_block(text)
    text = re.sub(
        rf"{TEMPLATE_NAME}(?P<base>[a-z0-9-]+){TEMPLATE_NAME}",
        lambda m: (
            f'{{{{ include "canaryflow.templateName" (dict "root" $ "base" "{m["base"]}") }}}}'
        ),
        text,
    )
    text = re.sub(
        rf"^(?P<i> *)serviceAccountName: {TEKTON_RELEASE_SERVICE_ACCOUNT}$",
        lambda m: (
            f"{m['i']}serviceAccountName: "
            """'{{ include "canaryflow.releaseServiceAccountPrefix" . }}-$(tt.params.namespace)'"""
        ),
        text,
        flags=re.MULTILINE,
    )
    text = re.sub(
        rf"^(?P<i> *)serviceAccountName: {RELEASE_SERVICE_ACCOUNT}$",
        lambda m: (
            f"{m['i']}serviceAccountName: "
            """'{{ include "canaryflow.releaseServiceAccountPrefix" . }}-"""
            """{{ "{{" }}workflow.parameters.namespace{{ "}}" }}'"""
        ),
        text,
        flags=re.MULTILINE,
    )
    text = re.sub(
        rf"^(?P<i> *)- name: {PUSHGATEWAY_ENV}\n(?P=i)  value: ''$",
        lambda m: (
            "{{- with .Values.monitoring.pushgateway.url }}\n"
            f"{m['i']}- name: {PUSHGATEWAY_VARIABLE}\n"
            f"{m['i']}  value: {{{{ . | toJson }}}}\n"
            "{{- end }}"
        ),
        text,
        flags=re.MULTILINE,
    )
    text = _prometheus_blocks(text)
    text = _CLUSTER_SCOPE_LINE.sub(
        lambda m: (
            '{{- if eq .Values.templates.scope "cluster" }}\n'
            f"{m['indent']}clusterScope: true\n{{{{- end }}}}"
        ),
        text,
    )
    for binding in ALL:
        # A whole scalar becomes a JSON string (valid YAML whatever it holds); inside a longer
        # string the value is spliced in as it is (the schema keeps such values quote-free).
        text = re.sub(
            rf"(?<=: ){binding.token}$|(?<=- ){binding.token}$",
            f"{{{{ {binding.expression} | toJson }}}}",
            text,
            flags=re.MULTILINE,
        )
        text = text.replace(binding.token, f"{{{{ {binding.expression} }}}}")
    return text


_PROMETHEUS_URL_LINES = (
    "{{{{- if .Values.analysis.prometheus.url }}}}\n"
    "{i}- name: CANARYFLOW_PROMETHEUS_URL\n"
    "{i}  value: {{{{ .Values.analysis.prometheus.url | toJson }}}}\n"
    "{{{{- end }}}}"
)
_PROMETHEUS_ACCESS_LINES = (
    "{{{{- with .Values.analysis.prometheus }}}}\n"
    "{{{{- if .bearerTokenSecret.name }}}}\n"
    "{i}- name: CANARYFLOW_PROMETHEUS_BEARER_TOKEN\n"
    "{i}  valueFrom:\n{i}    secretKeyRef:\n"
    "{i}      name: {{{{ .bearerTokenSecret.name | toJson }}}}\n"
    "{i}      key: {{{{ .bearerTokenSecret.key | toJson }}}}\n"
    "{{{{- end }}}}\n"
    "{{{{- if .basicAuth.username }}}}\n"
    "{i}- name: CANARYFLOW_PROMETHEUS_USERNAME\n"
    "{i}  value: {{{{ .basicAuth.username | toJson }}}}\n"
    "{i}- name: CANARYFLOW_PROMETHEUS_PASSWORD\n"
    "{i}  valueFrom:\n{i}    secretKeyRef:\n"
    "{i}      name: {{{{ .basicAuth.passwordSecret.name | toJson }}}}\n"
    "{i}      key: {{{{ .basicAuth.passwordSecret.key | toJson }}}}\n"
    "{{{{- end }}}}\n"
    "{{{{- if .caConfigMap.name }}}}\n"
    "{i}- name: CANARYFLOW_PROMETHEUS_CA\n"
    "{i}  valueFrom:\n{i}    configMapKeyRef:\n"
    "{i}      name: {{{{ .caConfigMap.name | toJson }}}}\n"
    "{i}      key: {{{{ .caConfigMap.key | toJson }}}}\n"
    "{{{{- end }}}}\n"
    "{{{{- if .headers }}}}\n"
    "{i}- name: CANARYFLOW_PROMETHEUS_HEADERS\n"
    "{i}  value: {{{{ .headers | toJson | toJson }}}}\n"
    "{{{{- end }}}}\n"
    "{{{{- end }}}}"
)


def _prometheus_blocks(text: str) -> str:
    """The Prometheus markers as Helm blocks over ``.Values.analysis.prometheus``."""
    for marker, lines in (
        (PROMETHEUS_URL_ENV, _PROMETHEUS_URL_LINES),
        (PROMETHEUS_ACCESS_ENV, _PROMETHEUS_URL_LINES + "\n" + _PROMETHEUS_ACCESS_LINES),
    ):
        text = re.sub(
            rf"^(?P<i> *)- name: {marker}\n(?P=i)  value: ''$",
            lambda m, lines=lines: lines.format(i=m["i"]),
            text,
            flags=re.MULTILINE,
        )
    return text


def _go_pod_blocks(text: str) -> str:
    """The Go tasks' markers as Helm blocks over ``.Values.go``."""
    text = re.sub(
        rf"^(?P<i> *)persistentVolumeClaim: {GO_CACHE}$",
        lambda m: (
            "{{- if .Values.go.cache.persistentVolumeClaim.enabled }}\n"
            f"{m['i']}persistentVolumeClaim:\n"
            f'{m["i"]}  claimName: {{{{ include "canaryflow.goCacheClaim" . | toJson }}}}\n'
            "{{- else }}\n"
            f"{m['i']}emptyDir:\n"
            f"{m['i']}  sizeLimit: {{{{ .Values.go.cache.emptyDirSizeLimit | toJson }}}}\n"
            "{{- end }}"
        ),
        text,
        flags=re.MULTILINE,
    )
    text = re.sub(
        rf"^(?P<i> *)- name: {GO_ENV}\n(?P=i)  value: ''$",
        lambda m: (
            "{{- range $name, $value := .Values.go.env }}\n"
            f"{m['i']}- name: {{{{ $name | toJson }}}}\n"
            f"{m['i']}  value: {{{{ $value | toJson }}}}\n"
            "{{- end }}"
        ),
        text,
        flags=re.MULTILINE,
    )

    def per_secret(indent: str, lines: str) -> str:
        blocks = []
        for volume, (key, file, variable) in GO_SECRETS.items():
            body = lines.format(i=indent, volume=volume, file=file, variable=variable)
            body = body.replace("KEY", f".Values.go.privateModules.{key}")
            condition = f"{{{{- if .Values.go.privateModules.{key}.name }}}}"
            blocks.append(f"{condition}\n{body}{{{{- end }}}}")
        return "\n".join(blocks)

    env = "{i}- name: {variable}\n{i}  value: " + SECRETS_ROOT + "/{volume}/{file}\n"
    volumes = (
        "{i}- name: {volume}\n{i}  secret:\n"
        "{i}    secretName: {{{{ KEY.name | toJson }}}}\n"
        "{i}    items:\n{i}    - key: {{{{ KEY.key | toJson }}}}\n{i}      path: {file}\n"
    )
    mounts = (
        "{i}- name: {volume}\n{i}  mountPath: " + SECRETS_ROOT + "/{volume}\n{i}  readOnly: true\n"
    )
    for marker, lines, suffix in (
        (GO_SECRET_ENV, env, "\n(?P=i)  value: ''"),
        (GO_SECRET_VOLUMES, volumes, ""),
        (GO_SECRET_MOUNTS, mounts, ""),
    ):
        text = re.sub(
            rf"^(?P<i> *)- name: {marker}{suffix}$",
            lambda m, lines=lines: per_secret(m["i"], lines),
            text,
            flags=re.MULTILINE,
        )
    return text
