"""``canaryflow rollback``: all traffic to stable (verified), then the canary goes.

Stable is never modified, except to undo a promotion that did not complete: then stable is put
back exactly as the promotion recorded it, and the output says "promotion failed, stable
restored". Safe to run twice, and safe when no canary exists. A platform failure is tried again
inside the pod (``commands.attempts``): Argo does not retry the exit handler's rollback after
``argo stop`` or the deadline.
"""

from __future__ import annotations

import argparse

from canaryflow.commands.cluster import add_cluster_options, platform_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser)
    parser.add_argument("--reason", default="", help="why, for the Event and the log")


def run(args: argparse.Namespace) -> int:
    import time

    from canaryflow.commands.attempts import until_done
    from canaryflow.commands.release_metrics import report
    from canaryflow.telemetry import exposition as metrics

    def rollback():
        plan, platform = platform_from_args(args)
        report(plan, metrics.phase("rolling-back"))
        return plan, platform.rollback()

    from canaryflow.progress import reporting

    with reporting():  # the router's confirmation and the drain: progress on stderr
        plan, outcome = until_done(rollback, "rollback")  # Argo does not retry it after a stop
    report(
        plan,
        metrics.phase("rolled-back"),
        metrics.weight(0),
        metrics.rollback_timestamp(time.time()),
    )
    from canaryflow.commands.arguments import emit

    reason = args.reason or "no reason given"
    document = {"service": plan.service.name, "outcome": outcome, "reason": args.reason}
    emit(args, document, f"rolled back {plan.service.name}: {outcome} ({reason})")
    return 0
