"""``canaryflow promote``: stable runs the canary's digest; then the canary goes."""

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
    platform.promote(Artifact(version=args.version, image=args.image))
    print(f"promoted: {plan.service.name} now runs {args.image}")
    return 0
