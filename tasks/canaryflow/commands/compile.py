"""``canaryflow compile``: write the Argo bundle (task library + release template) as YAML.

No plan goes in: ``go-canary-release`` reads each repository's own ``canaryflow.yaml`` at run
time and walks its steps. Hera is imported only here, at run time.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from canaryflow.errors import EXIT_OK, FieldError, InputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="directory to write into")
    parser.add_argument("--namespace", help="namespace of the namespaced templates")
    parser.add_argument(
        "--task-scope",
        choices=("cluster", "namespace"),
        default="cluster",
        help="which canaryflow-tasks the release's templateRefs name: the "
        "ClusterWorkflowTemplate (clusterScope: true; default) or the namespaced "
        "WorkflowTemplate, as the chart's templates.scope",
    )
    parser.add_argument("--image", help="runtime image of the task pods")


def run(args: argparse.Namespace) -> int:
    from canaryflow_workflows import WorkflowSettings, compile_documents

    settings = WorkflowSettings(cluster_scoped_tasks=args.task_scope == "cluster")
    if args.namespace:
        settings = dataclasses.replace(settings, namespace=args.namespace)
    if args.image:
        settings = dataclasses.replace(settings, runtime_image=args.image)
    documents = compile_documents(settings)
    _write(args.out, documents)
    for name in documents:
        print(args.out / name)
    return EXIT_OK


def _write(out: Path, documents: dict[str, dict]) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, document in documents.items():
            (out / name).write_text(render_yaml(document))
    except OSError as error:
        raise InputError(FieldError("--out", f"cannot write {out}: {error.strerror}")) from None


def render_yaml(document: dict) -> str:
    """Block-style YAML, keys in Hera's order, long strings unwrapped for clean diffs."""
    return yaml.safe_dump(document, sort_keys=False, width=1000, allow_unicode=True)
