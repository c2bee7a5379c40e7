"""``canaryflow runbook PLAN [--out FILE]``: the plan's on-call runbook as Markdown."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from canaryflow.errors import EXIT_OK, FieldError, InputError

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", type=Path, help="the release plan (YAML)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    parser.add_argument(
        "--workflow-namespace",
        default="argo",
        metavar="NS",
        help="namespace the release workflows run in (default: argo)",
    )
    parser.add_argument(
        "--scrape-interval",
        default="30s",
        metavar="D",
        help="your Prometheus' scrape interval, for the detection bound (default: 30s)",
    )
    parser.add_argument(
        "--fail-safe",
        default="2s",
        metavar="D",
        help="time for the analyze pod to set weight 0 and verify it (default: 2s)",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.duration import parse_duration
    from canaryflow.plan.load import load_plan
    from canaryflow.runbook import RunbookContext, render_runbook

    plan = load_plan(args.plan)
    if not _NAMESPACE.fullmatch(args.workflow_namespace):
        raise InputError(
            FieldError(
                "--workflow-namespace",
                f"{args.workflow_namespace[:80]!r} is not a namespace: lower-case letters, "
                "digits and '-', e.g. argo",
            )
        )
    context = RunbookContext(
        workflow_namespace=args.workflow_namespace,
        scrape_interval_s=_duration(parse_duration, "--scrape-interval", args.scrape_interval),
        fail_safe_s=_duration(parse_duration, "--fail-safe", args.fail_safe),
    )
    text = render_runbook(plan, context)
    if args.out is None:
        sys.stdout.write(text)
    else:
        from canaryflow.input_file import write_output_file

        write_output_file(args.out, text, "--out")
        print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def _duration(parse, flag: str, text: str) -> float:
    try:
        return parse(text)
    except ValueError as error:
        raise InputError(FieldError(flag, str(error))) from None
