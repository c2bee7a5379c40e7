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
    from canaryflow.commands.arguments import emit
    from canaryflow.kubernetes.baseline import baseline_name, runs_in_cluster

    platform.deploy_canary(artifact)
    canary = f"{plan.service.name}-canary"
    lines = [f"canary {canary} deployed: {artifact.image}"]
    baseline = None
    if runs_in_cluster(plan):
        platform.deploy_baseline()
        baseline = baseline_name(plan.service.name)
        lines.append(f"baseline {baseline} deployed: stable's image")
    document = {"canary": canary, "image": artifact.image, "version": artifact.version}
    emit(args, {**document, "baseline": baseline}, *lines)
    return 0
