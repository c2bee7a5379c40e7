"""Metadata every Tekton object canaryflow writes carries: name, namespace, labels."""

from __future__ import annotations

from typing import Any

from canaryflow import __version__
from canaryflow_workflows.settings import WorkflowSettings


def object_meta(name: str, component: str, settings: WorkflowSettings) -> dict[str, Any]:
    """Namespaced when the settings name a namespace; else left to ``kubectl -n`` or Helm."""
    metadata: dict[str, Any] = {"name": name}
    if settings.namespace is not None:
        metadata["namespace"] = settings.namespace
    metadata["labels"] = {
        "app.kubernetes.io/name": "canaryflow",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/version": __version__,
    }
    return metadata
