"""``canaryflow run``: one whole release of a plan, by the same engine on either platform.

``--platform local`` runs it on this machine (real processes behind nginx, a real Prometheus,
a load generator as the users), so a team can try its own service and tune its gates before
it touches a cluster. ``--platform kubernetes`` drives a cluster from one process, with the
plan's Prometheus.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from canaryflow.commands.arguments import add_json_option
from canaryflow.errors import EXIT_OK, EXIT_RELEASE_FAILED, FieldError, InputError
from canaryflow.release.events import EventKind, EventPrinter


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, required=True, help="the release plan")
    parser.add_argument("--platform", choices=("local", "kubernetes"), default="local")
    parser.add_argument("--version", default="v2", help="the canary's version label")
    parser.add_argument("--out", type=Path, default=Path("out/run"), help="reports go here")
    add_json_option(parser, "print the result as JSON")
    local = parser.add_argument_group("local platform (default: the plan's local section)")
    local.add_argument("--stable-command", help="stable's command line; {port} = its port")
    local.add_argument("--canary-command", help="canary's command line; {port} = its port")
    local.add_argument("--stable-go", metavar="PKG", help="a Go main package to build as stable")
    local.add_argument("--canary-go", metavar="PKG", help="a Go main package to build as canary")
    local.add_argument("--rate", type=float, help="requests per second of the load")
    cluster = parser.add_argument_group("kubernetes platform")
    cluster.add_argument("--image", help="the canary image, pinned by digest")
    cluster.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, ~/.kube)")
    cluster.add_argument("--context", help="kubeconfig context")


def run(args: argparse.Namespace) -> int:
    from canaryflow.plan.load import load_plan
    from canaryflow.release.record import JOURNAL_SUFFIX, ReleaseRecord, path_inside

    version = checked_version(args.version)
    plan = _with_options(load_plan(args.plan), args)
    report = path_inside(args.out, f"release-{version}.json")
    record = ReleaseRecord(plan.service.name, version, args.platform)
    if not args.json:
        record.listeners.append(EventPrinter(time.time()))
    journal = record.open_journal(report.with_name(f"release-{version}{JOURNAL_SUFFIX}"))
    notifier = _notifications(plan, record)
    result, users = None, {}
    try:
        run_on = _run_local if args.platform == "local" else _run_cluster
        result = run_on(plan, args, record, users)
    finally:
        record.close_journal()
        if notifier is not None:
            unsent = notifier.close(drain_s=NOTIFY_DRAIN_S)
            for problem in [*notifier.problems, *([f"{unsent} not delivered"] if unsent else [])]:
                print(f"warning: notification: {problem}", file=sys.stderr)
        saved = _save(record, report)
        if result is None and record.events:  # interrupted or crashed: say where the record is
            print(f"record so far: {saved or journal or 'not written'}", file=sys.stderr)
    summary = {
        "phase": str(result.phase),
        "reason": result.reason,
        "report": str(saved) if saved else None,
        "journal": str(record.journal_path or journal) if journal else None,
        "users": users or None,
    }
    where = saved or journal or "no record could be written"
    print(json.dumps(summary) if args.json else f"{result.phase}: {result.reason}\n{where}")
    return EXIT_OK if result.phase == "promoted" else EXIT_RELEASE_FAILED


NOTIFY_DRAIN_S = 5.0
# record event -> the plan's notification event
_NOTIFIED = {
    EventKind.STARTED: "started",
    EventKind.WINDOW_ENDED: "step",
    EventKind.PROMOTED: "promoted",
}


def _notifications(plan, record):
    """The plan's webhooks, fed from the record on a background thread (never blocking)."""
    targets = [n for n in plan.notifications if n.webhook is not None]
    if not targets:  # secretKey targets live in the cluster's Secret: the workflow sends those
        return None
    from canaryflow.notify.background import BackgroundNotifier
    from canaryflow.notify.message import ReleaseSummary

    notifier = BackgroundNotifier()

    def on_event(event) -> None:
        kind = _NOTIFIED.get(event.kind) or (
            str(event.data.get("phase")) if event.kind == EventKind.ROLLED_BACK else None
        )
        if kind is None:
            return
        summary = ReleaseSummary(
            service=plan.service.name,
            namespace=plan.service.namespace,
            event=kind,
            version=record.version,
            reason=str(event.data.get("reason", "")),
        )
        for target in targets:
            if kind in target.events:
                body = summary.slack() if target.format == "slack" else summary.json()
                notifier.submit(target.webhook, body)

    record.listeners.append(on_event)
    return notifier


def checked_version(version: str) -> str:
    """The canary's version label names files and processes: a plain word, never a path."""
    from canaryflow.plan.model import VERSION

    if not VERSION.fullmatch(version):
        raise InputError(
            FieldError(
                "--version",
                f"{version[:80]!r} is not a version: use letters, digits and . _ + - "
                "(no '/', spaces or quotes), e.g. v2 or 1.4.0-rc.1",
            )
        )
    return version


def _save(record, report: Path) -> Path | None:
    """The full JSON record; if the folder refuses it, the journal still has every event."""
    try:
        record.write_json(report)
    except OSError as error:
        print(
            f"warning: record not written to {report}: {error.strerror or error}; "
            f"the event journal is at {record.journal_path or '(none)'}",
            file=sys.stderr,
        )
        return None
    return report


def _with_options(plan, args: argparse.Namespace):
    """Command-line programs and load override the plan's ``local`` section."""
    from canaryflow.plan.load import plan_from_dict

    document = plan.model_dump(mode="json", by_alias=True)
    local = document["local"]
    for track in ("stable", "canary"):
        command, package = getattr(args, f"{track}_command"), getattr(args, f"{track}_go")
        if command and package:
            raise InputError(
                FieldError(
                    f"--{track}-command", f"give --{track}-command or --{track}-go, not both"
                )
            )
        if command:
            local[track] = {"command": shlex.split(command)}
        elif package:
            local[track] = {"goPackage": str(Path(package).resolve())}
    if args.rate is not None:
        local["load"]["rate"] = args.rate
    return plan_from_dict(document)


def _run_local(plan, args: argparse.Namespace, record, users: dict):
    """The release on this machine; ``users`` gets what the load saw, faults included."""
    from canaryflow.local.programs import program_artifact
    from canaryflow.local.stack import LocalStack

    base = args.plan.resolve().parent
    build = args.out / "build"
    stable = program_artifact(plan.local.stable, "v1", build, base)
    canary = program_artifact(plan.local.canary, args.version, build, base)
    with LocalStack(plan, stable, args.out / "stack") as stack:
        try:
            return stack.release(canary, record=record)
        finally:
            seen = stack.last_users
            if seen is not None:
                users.update(requests=seen.total, failed=seen.failed)
                if not args.json:
                    print(f"users: {seen.total} requests, {seen.failed} failed", flush=True)


def _run_cluster(plan, args: argparse.Namespace, record, users: dict):
    from canaryflow.analysis.prometheus_auth import ENV_URL, OperatorPrometheus
    from canaryflow.analysis.source import PrometheusSource
    from canaryflow.kubernetes.from_plan import platform_for
    from canaryflow.kubernetes.platform import api_client_from_environment
    from canaryflow.platform.protocol import Artifact
    from canaryflow.release.engine import plan_release

    if not args.image:
        raise InputError(FieldError("--image", "required on kubernetes: the image by digest"))
    endpoint = OperatorPrometheus.from_environment().endpoint_for(plan.analysis.prometheus)
    if not endpoint.url:
        raise InputError(
            FieldError(
                "analysis.prometheus.url",
                f"required on kubernetes: add it, or set {ENV_URL} (with its credentials)",
            )
        )
    platform = platform_for(plan, api_client_from_environment(args.kubeconfig, args.context))
    source = PrometheusSource.for_endpoint(endpoint)
    # Prometheus finds a fresh baseline's pods on its own: its first scrape is waited for
    # before the first window, as the workflow's analyze pod does (release.first_scrape).
    release = plan_release(plan, platform, source, record, wait_for_first_scrape=True)
    return release.run(Artifact(version=args.version, image=args.image))
