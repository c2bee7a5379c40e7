"""What the Kubernetes release verbs share: the plan, the cluster, and how they report.

Each verb is one workflow task. It loads the resolved plan, connects with the pod's service
account (or a kubeconfig outside a pod), does one idempotent thing, and exits 0, 1 (the
release step failed), 2 (bad input, nothing changed) or 3 (the API server never answered).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, required=True, help="the (resolved) release plan")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context")
    from canaryflow.commands.arguments import add_json_option

    add_json_option(parser)


def platform_from_args(args: argparse.Namespace):
    """The plan and the Kubernetes platform it describes."""
    from canaryflow.kubernetes.from_plan import platform_for
    from canaryflow.kubernetes.platform import api_client_from_environment
    from canaryflow.plan.load import load_plan

    plan = load_plan(args.plan)
    client = api_client_from_environment(args.kubeconfig, args.context)
    return plan, platform_for(plan, client)


def add_artifact_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="the image, pinned by digest")
    parser.add_argument("--version", required=True, help="the version label (the commit)")


def with_artifact(args: argparse.Namespace):
    """The plan, its platform, and the canary artifact named by ``--image``/``--version``."""
    from canaryflow.platform.protocol import Artifact

    plan, platform = platform_from_args(args)
    return plan, platform, Artifact(version=args.version, image=args.image)
