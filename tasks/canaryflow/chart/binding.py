"""Which compiled values the chart's values replace, and the Helm expression for each.

The workflow code compiles concrete objects; the chart must leave some of their values to
``values.yaml``. Each such value is swapped for a token in the compiled data (``bind``), the
data is dumped and Argo's braces escaped, and only then each token becomes its Helm expression
(``to_helm``): tokens carry no braces, so escaping never touches the expressions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from canaryflow.plan.gitops import REPOSITORY_ENV

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
BUILD_SERVICE_ACCOUNT = Binding(
    "__canaryflow_build_service_account__", 'include "canaryflow.buildServiceAccountName" .'
)
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

PARAMETER_DEFAULTS: dict[str, Binding] = {
    "router-kind": Binding("__canaryflow_router_kind__", ".Values.release.routerKind"),
    "image-repository": Binding(
        "__canaryflow_image_repository__", ".Values.release.imageRepository"
    ),
    "service-account": SERVICE_ACCOUNT,
    "plan-inline": Binding("__canaryflow_plan_inline__", 'include "canaryflow.planInline" .'),
}
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
    *PARAMETER_DEFAULTS.values(),
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
            return [
                {**item, "value": GITOPS_REPOSITORY.token}
                if item.get("name") == REPOSITORY_ENV
                else item
                for item in value
            ]
        if (
            key == "templateRef"
            and isinstance(value, dict)
            and value.get("name") == compiled.tasks_name
        ):
            kept = {k: v for k, v in value.items() if k != "clusterScope"}
            return {**kept, "clusterScope": CLUSTER_SCOPE}
        if isinstance(value, str):
            return value.replace(compiled.image, IMAGE.token)
        return value

    bound = _walk(document, visit)
    for parameter in bound.get("spec", {}).get("arguments", {}).get("parameters", []):
        binding = PARAMETER_DEFAULTS.get(parameter.get("name"))
        if binding is not None:
            parameter["value"] = binding.token
    spec = bound.get("spec", {})
    for key in SPEC_MAPPINGS:
        if key in spec:
            spec[key] = {_mapping_token(key): ""}
    metadata = bound.setdefault("metadata", {})
    own = {k: v for k, v in metadata.get("labels", {}).items() if k not in CHART_LABELS}
    metadata["labels"] = {**own, LABELS_KEY: ""}
    if namespaced:
        metadata["namespace"] = NAMESPACE.token
    return bound


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
        text = re.sub(
            rf"^(?P<indent> *){_mapping_token(key)}: ''$",
            lambda m, values=values: (
                f"{m['indent']}{{{{- toYaml {values} | nindent {len(m['indent'])} }}}}"
            ),
            text,
            flags=re.MULTILINE,
        )
    text = _go_pod_blocks(text)
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
