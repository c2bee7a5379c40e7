"""``canaryflow flag-off``: the plan's feature flag off for everyone, the exposure kept.

The workflow's safety net: it runs when the ``flag-rollout`` task failed or errored (a killed
pod cannot switch the flag off itself). Only the plan's flag is touched; the document it
replaces is kept as the previous one, and a flag already off is not written again, so running
it twice keeps the exposure that the first run switched off.
"""

from __future__ import annotations

import argparse
import json

from canaryflow.commands.flag_rollout import add_store_options, flag_plan, flag_store


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_options(parser)
    parser.add_argument("--reason", default="", help="why, for the log")


def run(args: argparse.Namespace) -> int:
    from canaryflow.commands.attempts import until_done
    from canaryflow.flags.document import flag_off, with_flag

    plan = flag_plan(args.plan)
    store = flag_store(args, plan)
    off = flag_off(plan.flag.key, plan.flag.variants.variants())
    # Argo does not retry the exit handler's flag-off after a stop: it tries again itself.
    digest = until_done(
        lambda: store.update(lambda document: with_flag(document, plan.flag.key, off)), "flag-off"
    )
    summary = {"flag": plan.flag.key, "state": "off", "store": store.describe(), "digest": digest}
    print(json.dumps({**summary, "reason": args.reason or "no reason given"}))
    return 0
