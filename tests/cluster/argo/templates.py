"""Where templates come from: the submitted Workflow, its WorkflowTemplate, ``templateRef``s.

Upstream: ``workflow/templateresolution/context.go`` and ``workflow/util/merge.go``
(``JoinWorkflowSpec``):

- A Workflow with ``spec.workflowTemplateRef`` runs the WorkflowTemplate's spec with the
  Workflow's own spec merged over it; ``arguments.parameters`` merge by name, the Workflow's
  values winning. ``clusterScope: true`` takes a ClusterWorkflowTemplate.
- ``templateRef: {name, template}`` finds a WorkflowTemplate in the workflow's namespace;
  with ``clusterScope: true`` a ClusterWorkflowTemplate. A missing one is an error of the node.
- A ``template:`` reference is resolved in the scope the referring template came from: inside
  a template fetched by ``templateRef`` it names a template of that same WorkflowTemplate.
"""

from __future__ import annotations

import copy
import random
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Scope:
    """The object templates are looked up in: the workflow, or one (Cluster)WorkflowTemplate."""

    kind: str
    name: str
    templates: tuple[Obj, ...]

    def template(self, name: str) -> Obj:
        for template in self.templates:
            if template["name"] == name:
                return template
        raise TemplateError(f"template {name} not found in {self.kind} {self.name}")


@dataclass
class TemplateStore:
    """The WorkflowTemplates and ClusterWorkflowTemplates applied to the bed's cluster."""

    namespaced: dict[tuple[str, str], Obj] = field(default_factory=dict)
    cluster: dict[str, Obj] = field(default_factory=dict)

    def apply(self, objects: Iterable[Obj], namespace: str) -> None:
        for obj in objects:
            if obj["kind"] == "WorkflowTemplate":
                ns = obj["metadata"].get("namespace") or namespace
                self.namespaced[(ns, obj["metadata"]["name"])] = copy.deepcopy(obj)
            elif obj["kind"] == "ClusterWorkflowTemplate":
                self.cluster[obj["metadata"]["name"]] = copy.deepcopy(obj)

    def get(self, namespace: str, name: str, cluster_scope: bool) -> Obj:
        found = self.cluster.get(name) if cluster_scope else self.namespaced.get((namespace, name))
        if found is None:
            where = "cluster scope" if cluster_scope else f"namespace {namespace}"
            kind = "ClusterWorkflowTemplate" if cluster_scope else "WorkflowTemplate"
            raise TemplateError(f'{kind}.argoproj.io "{name}" not found ({where})')
        return found

    def scope_of(self, namespace: str, ref: Obj) -> Scope:
        obj = self.get(namespace, ref["name"], bool(ref.get("clusterScope")))
        return Scope(obj["kind"], ref["name"], tuple(obj["spec"].get("templates", [])))


def join_workflow_spec(workflow: Obj, template: Obj) -> Obj:
    """The spec a ``workflowTemplateRef`` Workflow runs: the template's, the Workflow's over it."""
    joined = _merge(copy.deepcopy(template["spec"]), copy.deepcopy(workflow["spec"]))
    joined.pop("workflowTemplateRef", None)
    own = {p["name"]: p for p in workflow["spec"].get("arguments", {}).get("parameters", [])}
    merged = []
    for parameter in template["spec"].get("arguments", {}).get("parameters", []):
        merged.append({**parameter, **own.pop(parameter["name"], {})})
    merged.extend(own.values())
    joined.setdefault("arguments", {})["parameters"] = merged
    return joined


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        for key, value in over.items():
            base[key] = _merge(base.get(key), value)
        return base
    return over


def generated_name(metadata: Obj) -> str:
    """``metadata.name``, or ``generateName`` plus five random characters (the API server's)."""
    if metadata.get("name"):
        return metadata["name"]
    alphabet = string.ascii_lowercase + string.digits
    return metadata["generateName"] + "".join(random.choices(alphabet, k=5))
