"""``canaryflow deploy-canary``: the canary Deployment beside stable, taking no traffic yet."""

from __future__ import annotations

import argparse

from canaryflow.commands.cluster import (
    add_artifact_options,
    add_cluster_options,
    platform_from_args,
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser)
    add_artifact_options(parser)


def run(args: argparse.Namespace) -> int:
    from canaryflow.platform.protocol import Artifact

    plan, platform = platform_from_args(args)
    platform.deploy_canary(Artifact(version=args.version, image=args.image))
    print(f"canary {plan.service.name}-canary deployed: {args.image}")
    return 0
