"""``canaryflow compile``: write the Argo bundle (task library + release template) as YAML.

No plan goes in: ``go-canary-release`` reads each repository's own ``canaryflow.yaml`` at run
time and walks its steps. ``--engine tekton`` writes the same bundle as Tekton Tasks,
Pipelines and Triggers; Tekton cannot loop over steps read at run time, so its Pipeline
unrolls the steps of ``--plan`` (default: the model's defaults). Hera is imported only here,
at run time.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import yaml

from canaryflow.commands.arguments import add_json_option, emit
from canaryflow.errors import EXIT_OK, FieldError, InputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="directory to write into")
    add_json_option(parser)  # {"engine": ..., "files": [...], "seconds": ...}
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
    parser.add_argument(
        "--engine",
        choices=("argo", "tekton"),
        default="argo",
        help="Argo WorkflowTemplates, or Tekton Tasks, Pipelines and Triggers",
    )
    parser.add_argument(
        "--argo-metrics",
        action="store_true",
        help="Argo's custom metrics on the release templates (a duration gauge and an outcome "
        "counter per service, exported by the workflow controller), as the chart's "
        "monitoring.argoMetrics.enabled",
    )
    parser.add_argument(
        "--plan",
        type=Path,
        help="with --engine tekton: the plan whose steps the Pipeline runs "
        "(default: the model's defaults)",
    )


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.engine == "argo" and args.plan is not None:
        raise InputError(
            FieldError("--plan", "Argo reads each repository's plan at run time: drop --plan")
        )
    if args.engine == "tekton" and args.argo_metrics:
        raise InputError(
            FieldError("--argo-metrics", "Argo's own metrics need --engine argo: drop it")
        )
    plan = None
    if args.engine == "tekton" and args.plan is not None:
        from canaryflow.plan.load import load_plan

        plan = load_plan(args.plan)  # a bad plan is refused before anything else is said
    # Importing Hera and compiling take seconds: say so first, on stderr (stdout lists files).
    print(f"compiling the {args.engine} bundle ...", file=sys.stderr, flush=True)
    from canaryflow_workflows import WorkflowSettings, compile_documents

    settings = WorkflowSettings(
        cluster_scoped_tasks=args.task_scope == "cluster", argo_metrics=args.argo_metrics
    )
    if args.namespace:
        settings = dataclasses.replace(settings, namespace=args.namespace)
    if args.image:
        settings = dataclasses.replace(settings, runtime_image=args.image)
    if args.engine == "tekton":
        documents = _tekton_documents(plan, settings)
    else:
        documents = compile_documents(settings)
    _write(args.out, documents)
    files = [str(args.out / name) for name in documents]
    elapsed = time.monotonic() - started
    emit(args, {"engine": args.engine, "files": files, "seconds": round(elapsed, 3)}, *files)
    print(f"compiled {len(documents)} documents in {elapsed:.1f}s", file=sys.stderr)
    return EXIT_OK


def _tekton_documents(plan, settings) -> dict[str, dict]:
    from canaryflow_workflows.tekton.documents import compile_tekton_documents, default_plan

    return compile_tekton_documents(plan or default_plan(), settings)


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
