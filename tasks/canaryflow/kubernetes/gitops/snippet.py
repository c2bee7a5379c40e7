"""What Argo CD or Flux must be told so they leave canaryflow's router edits alone (pure).

Three routers edit an object the user keeps in Git: Istio the VirtualService's ``http`` list,
Gateway API the HTTPRoute's ``rules`` (weights, and the header route inserted into the list),
SMI the user's TrafficSplit ``backends``; all three keep the original in the
``canaryflow.dev/original-route`` annotation. With self-heal those edits are reverted at the
next sync, mid-release. nginx-ingress only reads the user's Ingress and writes its own canary
Ingress (no tracking label), so it needs nothing.

- Argo CD (docs/user-guide/diffing.md at argo-cd commit 37ee0097): ``spec.ignoreDifferences``
  so the edits are not a difference (no self-heal sync), plus the sync option
  ``RespectIgnoreDifferences=true`` (user-guide/sync-options.md) so a sync started by any
  other commit keeps the live values there instead of Git's. When the plan names the rule
  (``router.rule``), a JSON pointer cannot address it (list items have no key in a pointer),
  so ``jqPathExpressions`` select it by name: only its backends (``backendRefs``, Istio's
  ``route``) and canaryflow's header route (by its name) are ignored, and a Git edit to any
  other rule still shows as OutOfSync. Otherwise the whole list is ignored by JSON pointer
  (the managed rule is found in the cluster, not named in the plan). Either way a sync takes
  that list whole from the live object: Argo CD copies ignored fields into the applied
  manifest with a merge patch, in which a list is one value (controller/sync.go,
  ``normalizeTargetResources``; argoproj/argo-cd#17694), so Git edits to the route's list
  reach the cluster only by hand. ``managedFieldsManagers: [canaryflow]`` would not do
  better: canaryflow's updates own the whole atomic list, also after a release.
- Flux kustomize-controller v1.9.0+ (docs/spec/v1/kustomizations.md at commit 186fb3b2,
  "Ignore Rules"): ``spec.ignore`` of the Kustomization, JSON pointers with a ``target``
  selector (regular expressions); ignored fields are left out of drift detection and, as
  canaryflow writes with Update (not Apply), their in-cluster values are adopted into the
  apply ("Adopt"). JSON pointers only, so the whole list.
- Flux helm-controller (docs/spec/v2/helmreleases.md at commit 0f61a860, "Ignore rules"):
  ``spec.driftDetection.ignore`` of the HelmRelease, the same paths and target shape; only
  consulted when ``driftDetection.mode`` is ``enabled`` or ``warn`` (the snippet leaves the
  user's mode alone: turning drift correction on is not canaryflow's call).
- Older kustomize-controllers: the per-object apply policy ``kustomize.toolkit.fluxcd.io/ssa:
  IfNotPresent`` (same document, "Controlling the apply behavior of resources") as a
  ``spec.patches`` entry: Flux creates the route once and never overwrites it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from canaryflow.kubernetes.routers.backends import ORIGINAL_ANNOTATION
from canaryflow.plan.model import ReleasePlan
from canaryflow.platform.routes import HEADER_ROUTE_NAME

Tool = Literal["argocd", "flux"]
FluxObject = Literal["kustomization", "helmrelease", "ssa-annotation"]
FLUX_OBJECTS: tuple[FluxObject, ...] = ("kustomization", "helmrelease", "ssa-annotation")
FLUX_SSA = "kustomize.toolkit.fluxcd.io/ssa"
RESPECT_IGNORE = "RespectIgnoreDifferences=true"

# router kind -> (apiVersion, kind, the list it edits, a rule's backends in that list)
EDITED: dict[str, tuple[str, str, str, str | None]] = {
    "istio": ("networking.istio.io/v1", "VirtualService", "http", "route"),
    "gateway-api": ("gateway.networking.k8s.io/v1", "HTTPRoute", "rules", "backendRefs"),
    "smi": ("split.smi-spec.io/v1alpha4", "TrafficSplit", "backends", None),
}


@dataclass(frozen=True)
class Edited:
    """The user's object a router edits, and how to address what it edits."""

    api_version: str
    kind: str
    name: str
    namespace: str
    list_pointer: str
    """The whole edited list, ``/spec/rules``."""
    annotation_pointer: str
    jq: tuple[str, ...]
    """Argo CD jq paths to exactly what is edited, when the plan names the rule; else ()."""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


def json_pointer_token(key: str) -> str:
    """RFC 6901: '~' is '~0' and '/' is '~1' inside one reference token."""
    return key.replace("~", "~0").replace("/", "~1")


def edited_fields(plan: ReleasePlan) -> Edited | None:
    """The user's object the plan's router edits; None when it edits none."""
    if plan.router.kind not in EDITED:
        return None
    api_version, kind, field, backends = EDITED[plan.router.kind]
    jq: tuple[str, ...] = ()
    if plan.router.rule is not None and backends is not None:
        items = f".spec.{field}[]"
        jq = (f"{items} | select(.name == {json.dumps(plan.router.rule)}) | .{backends}",)
        if plan.router.header is not None:
            jq += (f"{items} | select(.name == {json.dumps(HEADER_ROUTE_NAME)})",)
    return Edited(
        api_version=api_version,
        kind=kind,
        name=plan.router.route or plan.service.name,
        namespace=plan.service.namespace,
        list_pointer=f"/spec/{field}",
        annotation_pointer=f"/metadata/annotations/{json_pointer_token(ORIGINAL_ANNOTATION)}",
        jq=jq,
    )


def default_flux_object(plan: ReleasePlan) -> FluxObject:
    """A HelmRelease when promotion writes a Helm values file, else a Kustomization."""
    gitops = plan.promotion.gitops
    return (
        "helmrelease" if gitops is not None and gitops.format == "helm-values" else "kustomization"
    )


def snippet(plan: ReleasePlan, tool: Tool, flux_object: FluxObject | None = None) -> str:
    """The YAML to merge into the Argo CD Application, the Flux Kustomization or HelmRelease."""
    edited = edited_fields(plan)
    if edited is None:
        return (
            f"# router {plan.router.kind}: canaryflow edits no object of yours (its canary "
            "Ingress is its own and carries no tracking label); nothing to add.\n"
        )
    if tool == "argocd":
        header, document = _argocd(plan, edited)
    else:
        header, document = _flux(plan, edited, flux_object or default_flux_object(plan))
    return header + yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=4096)


def _argocd(plan: ReleasePlan, edited: Edited) -> tuple[str, dict[str, Any]]:
    rule: dict[str, Any] = {
        "group": edited.group,
        "kind": edited.kind,
        "name": edited.name,
        "namespace": edited.namespace,
    }
    if edited.jq:
        rule["jsonPointers"] = [edited.annotation_pointer]
        rule["jqPathExpressions"] = list(edited.jq)
        what = f"rule {plan.router.rule!r} of {edited.list_pointer} (selected by name)"
    else:
        rule["jsonPointers"] = [edited.list_pointer, edited.annotation_pointer]
        what = f"{edited.list_pointer} (set router.rule to narrow this to one rule)"
    header = (
        f"# Merge into the Argo CD Application that syncs {edited.kind} "
        f"{edited.namespace}/{edited.name}:\n"
        f"# canaryflow's {plan.router.kind} router edits {what} during a release.\n"
        f"# A sync keeps {edited.list_pointer} as it is live (Argo CD copies ignored fields "
        "with a merge patch,\n# where a list is one value): apply Git edits to that list by "
        "hand between releases.\n"
    )
    document = {
        "spec": {"ignoreDifferences": [rule], "syncPolicy": {"syncOptions": [RESPECT_IGNORE]}}
    }
    return header, document


def _flux(plan: ReleasePlan, edited: Edited, kind: FluxObject) -> tuple[str, dict[str, Any]]:
    where = f"{edited.kind} {edited.namespace}/{edited.name}"
    target = {
        "group": _regex(edited.group),
        "kind": edited.kind,
        "name": _regex(edited.name),
        "namespace": _regex(edited.namespace),
    }
    ignore = {"paths": [edited.list_pointer, edited.annotation_pointer], "target": target}
    if kind == "kustomization":
        header = (
            f"# Merge into the Flux Kustomization that applies {where} (kustomize-controller "
            "v1.9.0+;\n# older: --flux-object ssa-annotation). Flux then neither reverts nor "
            f"reapplies {edited.list_pointer}.\n"
        )
        return header, {"spec": {"ignore": [ignore]}}
    if kind == "helmrelease":
        header = (
            f"# Merge into the Flux HelmRelease that renders {where}: its drift detection then "
            f"leaves\n# {edited.list_pointer} and canaryflow's annotation alone (with "
            "driftDetection.mode disabled,\n# the default, nothing reverts them; your mode is "
            "kept).\n"
        )
        return header, {"spec": {"driftDetection": {"ignore": [ignore]}}}
    header = (
        f"# Merge into the Flux Kustomization that applies {where}:\n"
        f"# Flux creates it if missing and never overwrites canaryflow's edits of "
        f"{edited.list_pointer};\n# to change it from Git, delete it once (Flux recreates it). "
        "Or put the annotation\n# in the route's manifest in Git instead of this patch.\n"
    )
    patch = {
        "apiVersion": edited.api_version,
        "kind": edited.kind,
        "metadata": {"name": edited.name, "annotations": {FLUX_SSA: "IfNotPresent"}},
    }
    entry = {
        "target": {"group": edited.group, "kind": edited.kind, "name": edited.name},
        "patch": yaml.safe_dump(patch, sort_keys=False),
    }
    return header, {"spec": {"patches": [entry]}}


def _regex(name: str) -> str:
    """Flux's target fields are regular expressions: the exact name, anchored."""
    return "^" + name.replace(".", r"\.") + "$"


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the Flux patch) as ``|`` blocks, as people write them."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _string)
