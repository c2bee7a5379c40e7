"""``canaryflow set-weight``: send N % of traffic to the canary and wait until the router does.

With a fresh baseline running (``analysis.baseline: fresh``) the baseline gets its share of the
same step (``canaryflow.platform.split``) in the same change."""

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
    from canaryflow.kubernetes.baseline import runs_in_cluster
    from canaryflow.platform.protocol import HeaderRoute
    from canaryflow.platform.split import split_for
    from canaryflow.platform.weights import wait_for_weight

    if not 0 <= args.weight <= 100:
        raise InputError(FieldError("--weight", f"{args.weight} is not 0-100: pass a percent"))
    plan, platform = platform_from_args(args)
    router = platform.router
    header = plan.router.header
    if args.header_route and header is not None:
        router.set_header_route(HeaderRoute(header.name, header.value))
    split = split_for(args.weight, runs_in_cluster(plan) and platform.baseline_running())
    if split.baseline:
        router.set_weight(split.canary, split.baseline)
    else:
        router.set_weight(split.canary)
    from canaryflow.progress import reporting

    with reporting():  # a mesh may take a while to push the weight: progress on stderr
        wait_for_weight(router, split.canary, baseline=split.baseline)
    from canaryflow.commands.release_metrics import report
    from canaryflow.telemetry import exposition as metrics

    report(plan, metrics.phase("progressing"), metrics.weight(args.weight))
    from canaryflow.commands.arguments import emit

    document = {"weight": args.weight, "canary": split.canary, "baseline": split.baseline}
    emit(args, {**document, "verified": True}, f"canary weight {split.text()} verified")
    return 0
