"""``canaryflow promote``: stable runs the canary's digest; then the canary goes.

Only the running canary's digest (and version) is promoted: anything else is exit 2 with nothing
changed. A promotion is a transaction: a failure puts stable back as it was and exits 1 with
"promotion failed, stable restored" (``KubernetesPlatform.promote``).
"""

from __future__ import annotations

import argparse

from canaryflow.commands.cluster import add_artifact_options, add_cluster_options, with_artifact


def configure(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser)
    add_artifact_options(parser)


def run(args: argparse.Namespace) -> int:
    from canaryflow.progress import reporting

    plan, platform, artifact = with_artifact(args)
    with reporting():  # stable's rollout and the drain: progress on stderr
        platform.promote(artifact)
    from canaryflow.commands.release_metrics import report
    from canaryflow.telemetry import exposition as metrics

    report(plan, metrics.phase("promoted"), metrics.weight(0))
    from canaryflow.commands.arguments import emit

    document = {"service": plan.service.name, "image": artifact.image, "version": args.version}
    emit(args, document, f"promoted: {plan.service.name} now runs {artifact.image}")
    return 0
