"""``canaryflow compile``: write the Argo bundle (task library + release template) as YAML,
or with ``--engine tekton`` the same bundle as Tekton Tasks, Pipelines and Triggers.

Without ``--plan`` the release DAG follows the model's default plan (5, 25, 50, 100 % with
analysis windows, header route on) for a service named ``service``; pass the service's
``canaryflow.yaml`` to compile its own steps. Hera is imported only here, at run time.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from canaryflow.errors import EXIT_OK, FieldError, InputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="directory to write into")
    parser.add_argument("--plan", type=Path, help="release plan (default: the model's defaults)")
    parser.add_argument("--namespace", help="namespace of the namespaced templates")
    parser.add_argument("--image", help="runtime image of the task pods")
    parser.add_argument(
        "--engine",
        choices=("argo", "tekton"),
        default="argo",
        help="Argo WorkflowTemplates, or Tekton Tasks, Pipelines and Triggers",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.plan.load import load_plan
    from canaryflow_workflows import WorkflowSettings, compile_documents, default_plan

    plan = load_plan(args.plan) if args.plan else default_plan()
    settings = WorkflowSettings()
    if args.namespace:
        settings = dataclasses.replace(settings, namespace=args.namespace)
    if args.image:
        settings = dataclasses.replace(settings, runtime_image=args.image)
    if args.engine == "tekton":
        from canaryflow_workflows.tekton.documents import compile_tekton_documents

        documents = compile_tekton_documents(plan, settings)
    else:
        documents = compile_documents(plan, settings)
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
