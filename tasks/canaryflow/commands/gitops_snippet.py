"""``canaryflow gitops-snippet --plan PLAN --tool argocd|flux``: what Argo CD or Flux must be
told so that self-heal leaves the router edits of a release alone (printed as YAML to merge
into the Application, the Flux Kustomization or the HelmRelease: ``--flux-object``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from canaryflow.errors import EXIT_OK


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, required=True, help="the release plan (YAML)")
    parser.add_argument(
        "--tool",
        choices=("argocd", "flux"),
        help="the GitOps tool (default: the plan's promotion.gitops.tool, else argocd)",
    )
    parser.add_argument(
        "--flux-object",
        choices=("kustomization", "helmrelease", "ssa-annotation"),
        help="flux: a Kustomization's spec.ignore (kustomize-controller v1.9.0+), a "
        "HelmRelease's spec.driftDetection.ignore, or the ssa: IfNotPresent patch for older "
        "kustomize-controllers (default: helmrelease for format helm-values, else kustomization)",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.kubernetes.gitops.snippet import snippet
    from canaryflow.plan.load import load_plan

    plan = load_plan(args.plan)
    gitops = plan.promotion.gitops
    tool = args.tool or (gitops.tool if gitops is not None else "argocd")
    print(snippet(plan, tool, args.flux_object), end="")
    return EXIT_OK
