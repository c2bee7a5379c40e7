"""``canaryflow demo``: a healthy release promoted, then a faulty one rolled back, watched live.

One ``LocalStack`` (real Prometheus, nginx router, Go processes, user load) runs both
releases. The faulty build turns on a 30 % error rate part-way into the second step
(``-after``), so the gates catch a regression that appears under traffic, not at start-up.
Every process started is stopped on exit, Ctrl-C included (``LocalStack`` owns them).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from canaryflow.commands.arguments import add_json_option
from canaryflow.plan.model import ReleasePlan

DEFAULT_PLAN = Path(__file__).resolve().parents[1] / "examples" / "plans" / "demo.yaml"
FAULTY_ERROR_RATE = "0.3"
# Canary process start to the first window: health gate plus Prometheus' first scrape.
DEPLOY_ESTIMATE_S = 5.0
REASON_WIDTH = 48
FAULT_SWITCHED_ON = re.compile(r"switched on.*?since\W+(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class DemoRelease:
    name: str
    version: str
    faults: tuple[str, ...]
    expected: str


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="report folder")
    add_json_option(parser, "print a machine-readable summary")
    parser.add_argument("--no-live", action="store_true", help="plain event lines, no live view")
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help="release plan (YAML)")
    parser.add_argument(
        "--flags",
        action="store_true",
        help="instead: a good and a bad feature-flag rollout (flagd file, same gates)",
    )


def run(args: argparse.Namespace) -> int:
    if args.flags:
        return _flag_demo(args)
    from canaryflow.local.programs import sample_service
    from canaryflow.local.stack import LocalStack
    from canaryflow.plan.load import load_plan

    plan = load_plan(args.plan)
    out: Path = args.out
    build = out / "build"
    releases = demo_releases(plan)
    v1 = sample_service("v1", build)
    artifacts = [sample_service(r.version, build, r.faults) for r in releases]
    live = not (args.no_live or args.json) and sys.stdout.isatty()
    summaries = []
    with (
        tempfile.TemporaryDirectory(prefix="canaryflow-demo-") as tmp,
        LocalStack(plan, v1, Path(tmp)) as stack,
    ):
        for release, artifact in zip(releases, artifacts, strict=True):
            summaries.append(_release(stack, release, artifact, out, live, args.json))
    ok = all(s.phase == r.expected for s, r in zip(summaries, releases, strict=True))
    if args.json:
        print(json.dumps({"ok": ok, "releases": [s.to_dict() for s in summaries]}, indent=2))
    else:
        _print_summary(summaries, out)
    return 0 if ok else 1


def demo_releases(plan: ReleasePlan) -> list[DemoRelease]:
    """Healthy v2, then a v3 whose errors switch on a few seconds into the second step (after
    the warm-up the first step begins with, ``analysis.warmup``)."""
    durations = [s.duration for s in plan.steps if s.duration is not None]
    second = durations[1] if len(durations) > 1 else durations[0]
    warmup = plan.analysis.warmup_for(plan.local.scrape_interval, plan.analysis.baseline == "fresh")
    first = DEPLOY_ESTIMATE_S + warmup + durations[0] if durations else 0.0
    after = first + min(3.0, second / 2) if durations else 10.0
    faults = ("-error-rate", FAULTY_ERROR_RATE, "-after", f"{after:g}")
    return [
        DemoRelease("healthy-v2", "v2", (), "promoted"),
        DemoRelease("faulty-v3", "v3", faults, "rolled-back"),
    ]


def _release(stack, release: DemoRelease, artifact, out: Path, live: bool, quiet: bool):
    from canaryflow.local.live import ReleaseWatch, live_view
    from canaryflow.release.events import EventPrinter
    from canaryflow.release.record import JOURNAL_SUFFIX, ReleaseRecord
    from canaryflow.report import summarize, write_report

    t0 = time.time()
    watch = ReleaseWatch(release.version, started=t0)
    log = sys.stderr if quiet else sys.stdout
    listeners = [watch] if live else [EventPrinter(t0, log)]
    if not live:
        print(f"== release {release.name}", file=log, flush=True)
    record = ReleaseRecord(stack.plan.service.name, release.version, "local")
    journal = record.open_journal(out / f"{release.name}{JOURNAL_SUFFIX}")
    try:
        if live:
            with live_view(watch, lambda: stack.load.counters(t0), len(stack.plan.steps)):
                result = stack.release(artifact, listeners=listeners, record=record)
        else:
            result = stack.release(artifact, listeners=listeners, record=record)
    except BaseException:
        print(f"{release.name}: record so far: {record.journal_path or journal}", file=sys.stderr)
        raise
    finally:
        record.close_journal()
    end = record.events[-1].at
    requests = stack.load.events(record.events[0].at, end)
    fault_on = fault_switched_on(stack.platform.canary_logs(0)) if release.faults else None
    summary = summarize(record, result.phase, result.reason, requests, fault_on)
    write_report(out, release.name, record, summary, requests)
    return summary


def fault_switched_on(log_lines: list[str]) -> float | None:
    """Unix time the sample service's start faults switched on, from its log line."""
    for line in log_lines:
        match = FAULT_SWITCHED_ON.search(line)
        if match:
            return float(match.group(1))
    return None


def _print_summary(summaries, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="canaryflow demo")
    columns = ("version", "phase", "reason", "duration", "requests", "failed by track")
    for column in (*columns, "detection → safe"):
        table.add_column(column)
    for s in summaries:
        failed = ", ".join(f"{t} {n}" for t, n in sorted(s.failed_by_track.items())) or "0"
        safe = "-" if s.detection_to_safe_s is None else f"{s.detection_to_safe_s:.2f}s"
        reason = s.reason if len(s.reason) <= REASON_WIDTH else s.reason[:REASON_WIDTH] + "…"
        table.add_row(
            s.version, s.phase, reason, f"{s.duration_s:.1f}s", str(s.requests), failed, safe
        )
    console = Console(width=max(Console().width, 130))
    console.print(table)
    console.print(f"reports: {out}/<release>.json (and .png with the report extra)")


def _flag_demo(args: argparse.Namespace) -> int:
    """A flag that reaches everyone, and one whose flag-on requests fail and is switched off."""
    from canaryflow.local.flag_demo import run_flag_demo

    summary = run_flag_demo(args.out / "flags", live=not args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for name, outcome in summary.items():
            print(f"{name} flag rollout: {outcome['phase']}: {outcome['reason']}")
    good, bad = summary["good"]["phase"], summary["bad"]["phase"]
    return 0 if good == "promoted" and bad == "rolled-back" else 1
