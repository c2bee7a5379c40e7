"""``canaryflow set-weight``: send N % of traffic to the canary and wait until the router does."""

from __future__ import annotations

import argparse

from canaryflow.commands.cluster import add_cluster_options, platform_from_args
from canaryflow.errors import FieldError, InputError


def configure(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser)
    parser.add_argument("--weight", type=int, required=True, help="canary percent, 0-100")
    parser.add_argument(
        "--header-route",
        action="store_true",
        help="also route the plan's header (x-release-channel: canary) to the canary",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.platform.protocol import HeaderRoute
    from canaryflow.platform.weights import apply_weight

    if not 0 <= args.weight <= 100:
        raise InputError(FieldError("--weight", f"{args.weight} is not 0-100: pass a percent"))
    plan, platform = platform_from_args(args)
    router = platform.router
    header = plan.router.header
    if args.header_route and header is not None:
        router.set_header_route(HeaderRoute(header.name, header.value))
    apply_weight(router, args.weight)
    from canaryflow.commands.release_metrics import report
    from canaryflow.telemetry import exposition as metrics

    report(plan, metrics.phase("progressing"), metrics.weight(args.weight))
    print(f"canary weight {args.weight}% verified")
    return 0
