"""``canaryflow deploy-canary``: the canary Deployment beside stable, taking no traffic yet."""

from __future__ import annotations

import argparse

from canaryflow.commands.cluster import add_artifact_options, add_cluster_options, with_artifact


def configure(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser)
    add_artifact_options(parser)


def run(args: argparse.Namespace) -> int:
    plan, platform, artifact = with_artifact(args)
    from canaryflow.commands.release_metrics import report
    from canaryflow.telemetry import exposition as metrics

    report(plan, metrics.phase("deploying"), metrics.weight(0))
    platform.deploy_canary(artifact)
    print(f"canary {plan.service.name}-canary deployed: {artifact.image}")
    return 0
