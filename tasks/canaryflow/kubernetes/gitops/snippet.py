"""What Argo CD or Flux must be told so they leave canaryflow's router edits alone (pure).

Three routers edit an object the user keeps in Git: Istio the VirtualService's ``http`` list,
Gateway API the HTTPRoute's ``rules`` (weights, and the header route inserted into the list),
SMI the user's TrafficSplit ``backends``; all three keep the original in the
``canaryflow.dev/original-route`` annotation. With self-heal those edits are reverted at the
next sync, mid-release. nginx-ingress only reads the user's Ingress and writes its own canary
Ingress (no tracking label), so it needs nothing.

- Argo CD (user-guide/diffing.md): ``spec.ignoreDifferences`` with ``jsonPointers`` so the
  edits are not a difference (no self-heal sync), plus the sync option
  ``RespectIgnoreDifferences=true`` (user-guide/sync-options.md) so a sync started by any
  other commit keeps the live values there instead of Git's. The whole list is ignored, not
  the weights inside it: the router inserts a route into that list, and Argo CD cannot keep
  individual list items on sync (argoproj/argo-cd#17694). Git edits to that list are then
  not synced automatically: sync the route by hand between releases.
- Flux has no ``ignoreDifferences``; its kustomize-controller documents per-object apply
  policies (docs/spec/v1/kustomizations.md at commit 00852088, "Controlling the apply behavior
  of resources"):
  ``kustomize.toolkit.fluxcd.io/ssa: IfNotPresent`` creates the object once and never
  overwrites it, which is what is generated here, as a ``spec.patches`` entry of the Flux
  Kustomization (no manifest in Git needs to change). ``kustomize.toolkit.fluxcd.io/reconcile:
  disabled`` would stop Flux pruning it too.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml

from canaryflow.kubernetes.routers.backends import ORIGINAL_ANNOTATION
from canaryflow.plan.model import ReleasePlan

Tool = Literal["argocd", "flux"]
FLUX_SSA = "kustomize.toolkit.fluxcd.io/ssa"
RESPECT_IGNORE = "RespectIgnoreDifferences=true"

# router kind -> (apiVersion, kind, the list it edits)
EDITED: dict[str, tuple[str, str, str]] = {
    "istio": ("networking.istio.io/v1", "VirtualService", "/spec/http"),
    "gateway-api": ("gateway.networking.k8s.io/v1", "HTTPRoute", "/spec/rules"),
    "smi": ("split.smi-spec.io/v1alpha4", "TrafficSplit", "/spec/backends"),
}


def json_pointer_token(key: str) -> str:
    """RFC 6901: '~' is '~0' and '/' is '~1' inside one reference token."""
    return key.replace("~", "~0").replace("/", "~1")


def edited_fields(plan: ReleasePlan) -> tuple[str, str, str, list[str]] | None:
    """(apiVersion, kind, name, JSON pointers) of the user's object the router edits."""
    if plan.router.kind not in EDITED:
        return None
    api_version, kind, field = EDITED[plan.router.kind]
    name = plan.router.route or plan.service.name
    annotation = f"/metadata/annotations/{json_pointer_token(ORIGINAL_ANNOTATION)}"
    return api_version, kind, name, [field, annotation]


def snippet(plan: ReleasePlan, tool: Tool) -> str:
    """The YAML to merge into the Argo CD Application or the Flux Kustomization."""
    edited = edited_fields(plan)
    if edited is None:
        return (
            f"# router {plan.router.kind}: canaryflow edits no object of yours (its canary "
            "Ingress is its own and carries no tracking label); nothing to add.\n"
        )
    api_version, kind, name, pointers = edited
    group = api_version.rpartition("/")[0]
    namespace = plan.service.namespace
    document: dict[str, Any]
    if tool == "argocd":
        header = (
            f"# Merge into the Argo CD Application that syncs {kind} {namespace}/{name}:\n"
            f"# canaryflow's {plan.router.kind} router edits {pointers[0]} during a release.\n"
        )
        document = {
            "spec": {
                "ignoreDifferences": [
                    {
                        "group": group,
                        "kind": kind,
                        "name": name,
                        "namespace": namespace,
                        "jsonPointers": pointers,
                    }
                ],
                "syncPolicy": {"syncOptions": [RESPECT_IGNORE]},
            }
        }
    else:
        header = (
            f"# Merge into the Flux Kustomization that applies {kind} {namespace}/{name}:\n"
            f"# Flux creates it if missing and never overwrites canaryflow's edits of "
            f"{pointers[0]};\n# to change it from Git, delete it once (Flux recreates it). Or "
            "put the annotation\n# in the route's manifest in Git instead of this patch.\n"
        )
        patch = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "annotations": {FLUX_SSA: "IfNotPresent"}},
        }
        document = {
            "spec": {
                "patches": [
                    {
                        "target": {"group": group, "kind": kind, "name": name},
                        "patch": yaml.safe_dump(patch, sort_keys=False),
                    }
                ]
            }
        }
    return header + yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=4096)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the Flux patch) as ``|`` blocks, as people write them."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _string)
