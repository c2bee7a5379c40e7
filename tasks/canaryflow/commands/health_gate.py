"""``canaryflow health-gate``: wait for the canary to be available; exit 1 if it never is."""

from __future__ import annotations

import argparse

from canaryflow.commands.arguments import emit, seconds
from canaryflow.commands.cluster import add_cluster_options, platform_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser)
    parser.add_argument(
        "--timeout",
        type=seconds,
        help="seconds to wait (default: the plan's service.healthTimeout)",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.progress import reporting

    plan, platform = platform_from_args(args)
    with reporting():  # minutes of waiting: progress on stderr
        report = platform.wait_healthy(args.timeout or plan.service.health_timeout)
    document = {"ok": report.healthy, "healthy": report.healthy, "detail": report.detail}
    emit(args, document, f"canary healthy: {report.healthy}: {report.detail}")
    return 0 if report.healthy else 1
