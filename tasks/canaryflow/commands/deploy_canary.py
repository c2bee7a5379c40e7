"""``canaryflow deploy-canary``: the canary Deployment beside stable, taking no traffic yet, and
a fresh baseline beside it when the plan judges against one (``analysis.baseline: fresh`` on a
router that splits three ways)."""

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
    from canaryflow.kubernetes.baseline import baseline_name, runs_in_cluster

    platform.deploy_canary(artifact)
    print(f"canary {plan.service.name}-canary deployed: {artifact.image}")
    if runs_in_cluster(plan):
        platform.deploy_baseline()
        print(f"baseline {baseline_name(plan.service.name)} deployed: stable's image")
    return 0
