"""``canaryflow notify``: tell people and the commit how a release is going.

The workflow calls it at the start (``--event started``), after every plan step (``--event
step --step N``) and from its exit handler (no ``--event``: Argo's ``{{workflow.status}}`` and
``{{workflow.failures}}`` decide between promoted, rolled-back and failed).

Webhook URLs and tokens are credentials: URLs come from the notifications Secret mounted at
``--secrets-dir`` (the plan names the key, ``notifications[].secretKey``; the key
``webhook-url`` is the chart-wide webhook that receives every event), tokens from
``$GITHUB_TOKEN`` / ``$GITLAB_TOKEN`` (set from a Secret by the workflow). Neither is ever
printed: a target is named by its key or its position. Nothing here fails the release: an
undeliverable notification is a warning and the exit code stays 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from canaryflow.errors import FieldError, InputError

EVENTS = ("started", "step", "promoted", "rolled-back", "failed")
CHART_WEBHOOK_KEY = "webhook-url"
TOKEN_ENV = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN"}
UNSAFE = ("Failed", "Error")
UNSAFE_REASON = (
    "the rollback did not complete: traffic may still reach the canary; "
    "roll back by hand (runbook: Roll back by hand)"
)
# Short and few: a notification must never hold up the next step for long.
ATTEMPTS = 2
TIMEOUT_S = 3.0
DEADLINE_S = 7.0  # all attempts of one target together, answers included
MAX_SECRET_BYTES = 8 * 1024  # a webhook URL


def configure(parser: argparse.ArgumentParser) -> None:
    from canaryflow.commands.arguments import add_json_option

    parser.add_argument("--plan", type=Path, required=True, help="the (resolved) release plan")
    add_json_option(parser)  # {"event": ..., "summary": {...}, "undelivered": [...]}
    parser.add_argument(
        "--event",
        default="",
        help=f"one of {', '.join(EVENTS)}; empty: decided from --status (exit handler)",
    )
    parser.add_argument("--status", default="", help="Argo's {{workflow.status}}")
    parser.add_argument("--workflow", default="", help="the workflow's name")
    parser.add_argument("--version", default="", help="the released version (commit)")
    parser.add_argument("--step", default="", help="the plan step a `step` event is about")
    parser.add_argument(
        "--failures",
        default="",
        help="Argo's {{workflow.failures}}: Go-quoted JSON as Argo passes it, or plain JSON",
    )
    parser.add_argument(
        "--rolled-back", action="store_true", help="the rollback branch ran (else: failed early)"
    )
    parser.add_argument(
        "--traffic-tasks",
        default="",
        help="comma-separated workflow tasks that run once the canary has traffic: a failure "
        "in one of them means the release was rolled back, not failed early",
    )
    parser.add_argument(
        "--safety-net",
        default="",
        help="phase of the exit handler's rollback ({{tasks.rollback.status}}): Failed or "
        "Error means traffic may still reach the canary",
    )
    parser.add_argument("--webhook", action="append", default=[], help="extra webhook URL")
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        help="the mounted notifications Secret: one file per key, each a webhook URL",
    )
    parser.add_argument(
        "--commit-status-url",
        default="",
        help="GitHub …/repos/O/R/statuses/SHA or GitLab …/api/v4/projects/ID/statuses/SHA; "
        "sent only when $GITHUB_TOKEN or $GITLAB_TOKEN is set",
    )
    parser.add_argument(
        "--git-provider", default="github", help="github or gitlab: how the commit status looks"
    )
    parser.add_argument(
        "--service", default="", help="the workflow's service: used when the plan never arrived"
    )
    parser.add_argument("--namespace", default="", help="the workflow's namespace: with --service")


def run(args: argparse.Namespace) -> int:
    from canaryflow.notify.failures import parse_failures
    from canaryflow.notify.message import (
        GIT_PROVIDERS,
        ReleaseSummary,
        event_of_workflow_status,
        reached_traffic,
    )
    from canaryflow.plan.load import load_plan

    if args.event and args.event not in EVENTS:
        raise InputError(FieldError("--event", f"{args.event!r}: use one of {', '.join(EVENTS)}"))
    if args.git_provider not in GIT_PROVIDERS:
        raise InputError(FieldError("--git-provider", f"{args.git_provider!r}: github or gitlab"))
    plan = _plan(args, load_plan)
    failures = parse_failures(args.failures)
    tasks = [name for name in args.traffic_tasks.split(",") if name]
    rolled_back = args.rolled_back or reached_traffic(failures, tasks)
    event = args.event or event_of_workflow_status(args.status, rolled_back)
    unsafe = not args.event and args.safety_net in UNSAFE
    if unsafe:
        event = "failed"
    service = plan.service.name if plan else args.service
    summary = ReleaseSummary(
        service=service,
        namespace=plan.service.namespace if plan else args.namespace,
        event=event,
        version=args.version,
        reason=UNSAFE_REASON if unsafe else _reason(plan, event, args, failures),
        workflow=args.workflow,
        failures=failures if event in ("rolled-back", "failed") else [],
    )
    posts = [
        (name, url, summary.slack() if form == "slack" else summary.json(), None)
        for name, url, form in _webhooks(plan, event, args)
    ]
    posts += _commit_status(summary, service, args)
    problems = _post_all(posts)
    for problem in problems:
        print(f"warning: notification not delivered: {problem}", file=sys.stderr)
    from canaryflow.commands.arguments import emit

    document = {"event": event, "summary": summary.json(), "undelivered": problems}
    emit(args, {**document, "sent": len(posts) - len(problems)}, summary.text())
    return 0


def _plan(args: argparse.Namespace, load_plan):
    """The resolved plan; None when it never arrived (checkout or validate-plan failed) and
    the workflow named the service: then the chart-wide webhook and the commit status still
    hear that the release failed."""
    if args.plan.exists() or not args.service:
        return load_plan(args.plan)
    print(
        f"warning: {args.plan}: no plan (the release failed before it was validated)",
        file=sys.stderr,
    )
    return None


PROMOTE_TASK = "promote"
PROMOTION_FAILED = (
    "promotion failed, stable restored: stable runs what it ran before the release and the "
    "canary is gone"
)


def _reason(plan, event: str, args: argparse.Namespace, failures: list[dict]) -> str:
    if event == "rolled-back" and any(f.get("displayName") == PROMOTE_TASK for f in failures):
        # The rollback that ran (the safety net did not fail) restored stable from the record
        # the promotion left (``KubernetesPlatform.rollback``).
        return PROMOTION_FAILED
    if plan is None:
        return f"workflow {args.status}: the plan was never validated"
    if event == "started":
        return f"release started: {len(plan.steps)} steps"
    if event == "step" and args.step.isdigit() and int(args.step) < len(plan.steps):
        index = int(args.step)
        step = plan.steps[index]
        what = f"{step.weight}% passed its analysis window" if step.is_traffic else "approved"
        return f"step {index + 1} of {len(plan.steps)}: {what}"
    return f"workflow {args.status}" if args.status else ""


def _webhooks(plan, event: str, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """``(name to print, URL, format)`` of every target of ``event``; URLs never printed."""
    targets = []
    for index, notification in enumerate(plan.notifications if plan else []):
        if event not in notification.events:
            continue
        if notification.webhook is not None:
            targets.append((f"notifications[{index}]", notification.webhook, notification.format))
            continue
        url = _secret(args.secrets_dir, notification.secret_key)
        if url is None:
            print(
                f"warning: notifications[{index}]: secret key {notification.secret_key!r} is not "
                "in the notifications Secret: add it (kubectl edit secret) or fix the plan",
                file=sys.stderr,
            )
            continue
        targets.append((f"secret key {notification.secret_key}", url, notification.format))
    chart_wide = _secret(args.secrets_dir, CHART_WEBHOOK_KEY)
    if chart_wide is not None:
        targets.append((f"secret key {CHART_WEBHOOK_KEY}", chart_wide, "slack"))
    targets += [(f"--webhook #{i + 1}", url, "slack") for i, url in enumerate(args.webhook)]
    return targets


def _secret(directory: Path | None, key: str | None) -> str | None:
    """A key of the mounted notifications Secret, read bounded (never a device or FIFO); None
    when it is missing or unreadable (a warning says why: notify never fails the release)."""
    from canaryflow.input_file import read_input_file

    if directory is None or key is None or not (directory / key).exists():
        return None
    try:
        value = read_input_file(directory / key, MAX_SECRET_BYTES, "notification secret").strip()
    except InputError as error:
        print(f"warning: {error}", file=sys.stderr)
        return None
    return value or None


def _post_all(posts: list[tuple[str, str, dict, dict | None]]) -> list[str]:
    """Every target at once: ten hanging webhooks cost one deadline, not ten."""
    from concurrent.futures import ThreadPoolExecutor

    if not posts:
        return []
    with ThreadPoolExecutor(max_workers=min(len(posts), 32)) as pool:
        answers = list(pool.map(lambda post: _post(post[1], post[2], post[3]), posts))
    return [
        f"{post[0]}: {problem}" for post, problem in zip(posts, answers, strict=True) if problem
    ]


def _commit_status(summary, service: str, args: argparse.Namespace) -> list:
    if not args.commit_status_url:
        return []
    token = os.environ.get(TOKEN_ENV[args.git_provider], "").strip()
    if not token:
        return []  # no token Secret configured: commit statuses are off
    if args.git_provider == "gitlab":
        headers = {"PRIVATE-TOKEN": token}
    else:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    body = summary.commit_status(args.git_provider, f"canaryflow/{service}")
    return [("commit status", args.commit_status_url, body, headers)]


def _post(url: str, body: dict, headers: dict | None = None) -> str | None:
    from canaryflow.notify.webhook import post_json

    return post_json(
        url, body, headers, attempts=ATTEMPTS, timeout_s=TIMEOUT_S, deadline_s=DEADLINE_S
    )
