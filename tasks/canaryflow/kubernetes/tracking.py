"""The labels and annotations by which Argo CD and Flux claim an object (pure).

An object carrying them belongs to a GitOps application: Argo CD shows it as part of the
application and prunes it when Git does not hold it (auto-sync with ``prune``); Flux's
kustomize-controller garbage-collects objects labelled with its Kustomization that are not in
its inventory. A canary object that copied them from stable would be pruned mid-release, so
canaryflow's own objects (the canary Deployment, Service and routes) never carry them.

- Argo CD, "Resource Tracking" (argo-cd docs, user-guide/resource_tracking.md, v2.2+):
  ``label`` tracking with ``app.kubernetes.io/instance`` (the default up to v2.x, the key is
  configurable as ``application.instanceLabelKey``), ``annotation`` tracking with
  ``argocd.argoproj.io/tracking-id`` (the default from v3.0), or ``annotation+label``.
- Flux kustomize-controller: ``kustomize.toolkit.fluxcd.io/name`` and ``/namespace`` labels
  on every applied object (docs/spec/v1/kustomizations.md, "Garbage collection"); Flux
  helm-controller: ``helm.toolkit.fluxcd.io/name`` and ``/namespace``.

Pods are different: Argo CD treats only objects without ownerReferences as application roots
(``isRootAppNode``: an app name and no owner; argo-cd ``controller/cache/node.go`` at commit
9a59e9ac), and a canary pod is owned by its ReplicaSet, so a pod-template
``app.kubernetes.io/instance`` (which Helm charts also put in Service selectors) is kept; the
tracking annotation and Flux's labels are dropped from the template.
"""

from __future__ import annotations

ARGOCD_INSTANCE_LABEL = "app.kubernetes.io/instance"
ARGOCD_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
FLUX_LABEL_PREFIXES = ("kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")
ARGOCD_ANNOTATION_PREFIXES = (ARGOCD_TRACKING_ANNOTATION, "argocd.argoproj.io/")


def is_tracking_label(key: str, owned_pod: bool = False) -> bool:
    """A label by which Argo CD or Flux would claim the object; ``owned_pod``: a pod template's
    label, where Argo CD's instance label claims nothing (see the module docstring)."""
    if key.startswith(FLUX_LABEL_PREFIXES):
        return True
    return key == ARGOCD_INSTANCE_LABEL and not owned_pod


def is_tracking_annotation(key: str) -> bool:
    """Argo CD's tracking id and its per-object settings (sync options, compare options,
    hooks), and Flux's per-object settings: all describe stable's place in Git, not ours."""
    return key.startswith(ARGOCD_ANNOTATION_PREFIXES) or key.startswith(FLUX_LABEL_PREFIXES)


def without_tracking_labels(labels: dict[str, str], owned_pod: bool = False) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not is_tracking_label(k, owned_pod)}


def without_tracking_annotations(annotations: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if not is_tracking_annotation(k)}
