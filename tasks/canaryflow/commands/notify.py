"""``canaryflow notify``: the workflow's exit handler tells the plan's webhooks how it went."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from canaryflow.errors import FieldError, InputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, required=True, help="the (resolved) release plan")
    parser.add_argument("--status", required=True, help="Argo's {{workflow.status}}")
    parser.add_argument("--workflow", default="", help="the workflow's name")
    parser.add_argument("--version", default="", help="the released version (commit)")
    parser.add_argument("--failures", default="", help="Argo's {{workflow.failures}} (JSON)")
    parser.add_argument(
        "--rolled-back", action="store_true", help="the rollback branch ran (else: failed early)"
    )
    parser.add_argument("--webhook", action="append", default=[], help="extra webhook URL")
    parser.add_argument(
        "--commit-status-url",
        help="GitHub statuses URL (…/repos/O/R/statuses/SHA); token from $GITHUB_TOKEN",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.notify.message import ReleaseSummary, event_of_workflow_status
    from canaryflow.notify.webhook import post_json
    from canaryflow.plan.load import load_plan

    plan = load_plan(args.plan)
    event = event_of_workflow_status(args.status, args.rolled_back)
    summary = ReleaseSummary(
        service=plan.service.name,
        namespace=plan.service.namespace,
        event=event,
        version=args.version,
        reason=f"workflow {args.status}",
        workflow=args.workflow,
        failures=_failures(args.failures),
    )
    targets = [(n.webhook, n.format) for n in plan.notifications if event in n.events]
    targets += [(url, "slack") for url in args.webhook]
    problems = []
    for url, form in targets:
        problem = post_json(url, summary.slack() if form == "slack" else summary.json())
        if problem:
            problems.append(f"{url}: {problem}")
    if args.commit_status_url:
        token = os.environ.get("GITHUB_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status = {
            "state": summary.commit_state(),
            "context": f"canaryflow/{plan.service.name}",
            "description": summary.text().splitlines()[0][:140],
        }
        problem = post_json(args.commit_status_url, status, headers)
        if problem:
            problems.append(f"{args.commit_status_url}: {problem}")
    for problem in problems:
        print(f"warning: notification not delivered: {problem}", file=sys.stderr)
    print(summary.text())
    return 0


def _failures(text: str) -> list[dict]:
    if not text.strip() or text.strip() == "null":
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            FieldError(
                "--failures",
                f"not JSON ({error.msg}): pass Argo's {{{{workflow.failures}}}} unchanged",
            )
        ) from None
    return value if isinstance(value, list) else []
