"""``canaryflow rollback``: all traffic to stable (verified), then the canary goes.

Stable is never modified, except to undo a promotion that did not complete: then stable is put
back exactly as the promotion recorded it, and the output says "promotion failed, stable
restored". Safe to run twice, and safe when no canary exists.
"""

from __future__ import annotations

import argparse
import sys

from canaryflow.commands.cluster import add_cluster_options, platform_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser)
    parser.add_argument("--reason", default="", help="why, for the Event and the log")


def run(args: argparse.Namespace) -> int:
    plan, platform = platform_from_args(args)
    outcome = platform.rollback()
    reason = args.reason or "no reason given"
    print(f"rolled back {plan.service.name}: {outcome} ({reason})", file=sys.stdout)
    return 0
