"""Rendering the chart with Helm's engine and validating every object it renders, offline.

Core kinds go through ``kube.schemas`` (kubernetes-validate, strict). Argo Workflows and
Argo Events objects are checked against their upstream JSON Schemas in shared/schemas
with every object that lists ``properties`` closed, as the API server's pruning would drop
unknown fields silently. The Argo Events schema declares a ``$schema`` python-jsonschema does not
know (``http://json-schema.org/schema#``); its keywords are draft-07's, so Draft7Validator.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import yaml
from kube import schemas
from upstream import SCHEMAS

CHART = Path(__file__).resolve().parents[1] / "charts" / "canaryflow"

RELEASE, NAMESPACE = "cf", "argo"
ARGO_WORKFLOWS = {"WorkflowTemplate", "ClusterWorkflowTemplate", "Workflow", "CronWorkflow"}
ARGO_EVENTS = {"EventSource", "Sensor"}
WEBHOOK_VALUES = {
    "events": {
        "enabled": True,
        "webhookSecret": {"name": "git-webhooks"},
        "services": {"acme/checkout": {"namespace": "shop"}},
    }
}

Obj = dict[str, Any]

# libyaml's loader where PyYAML has it: the rendered chart (about 90 kB of YAML, rendered some
# 150 times by the suite) parses to the same objects about eight times faster than in Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def render(
    values: dict[str, Any] | None = None,
    chart_dir: Path = CHART,
    namespace: str = NAMESPACE,
    hooks: bool = False,
    release: str = RELEASE,
) -> dict[str, list[Obj]]:
    """Template path → the objects it renders (empty documents dropped). Hook objects
    (``helm.sh/hook``, e.g. the ``helm test`` Pod) only with ``hooks``: ``helm install`` keeps
    them apart from the release's manifests (pkg/releaseutil/manifest_sorter.go) and creates
    them only at their hook."""
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    return {
        path: [
            doc
            for doc in yaml.load_all(text, Loader=_LOADER)
            if doc and (hooks or not _is_hook(doc))
        ]
        for path, text in manifests.items()
        if path.endswith((".yaml", ".yml"))
    }


def _is_hook(doc: Obj) -> bool:
    return "helm.sh/hook" in ((doc.get("metadata") or {}).get("annotations") or {})


def objects(values: dict[str, Any] | None = None) -> list[Obj]:
    return [obj for docs in render(values).values() for obj in docs]


def of_kind(rendered: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in rendered if obj["kind"] == kind]


@functools.cache
def _validator(schema_file: str, definition: str, draft: type) -> jsonschema.Validator:
    document = json.loads((SCHEMAS / schema_file).read_text())
    closed = schemas.close_objects({"definitions": document["definitions"]})
    return draft({"$ref": f"#/definitions/{definition}", **closed})


def violations(obj: Obj) -> list[str]:
    kind = obj.get("kind", "")
    if kind in ARGO_WORKFLOWS:
        validator = _validator(
            "argo-workflows/schema.json",
            f"io.argoproj.workflow.v1alpha1.{kind}",
            jsonschema.Draft202012Validator,
        )
    elif kind in ARGO_EVENTS:
        validator = _validator(
            "argo-events/schema.json",
            f"io.argoproj.events.v1alpha1.{kind}",
            jsonschema.Draft7Validator,
        )
    else:
        return schemas.violations(obj)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(obj)
    ]
