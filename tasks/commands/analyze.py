"""``canaryflow analyze``: one analysis window of a plan's gates against a live Prometheus.

Prints every measurement as it is taken and the verdict with its reason (``--json``: one JSON
document instead). Exit 0 when the window passed, 1 when it failed, errored or was
inconclusive, 2 for bad input (nothing measured).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from canaryflow.errors import EXIT_OK, EXIT_RELEASE_FAILED, FieldError, InputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, required=True, help="the release plan (YAML)")
    parser.add_argument(
        "--duration", default="60s", help="length of the window, e.g. 60s or 5m (default 60s)"
    )
    parser.add_argument(
        "--prometheus", metavar="URL", help="Prometheus base URL (default: the plan's)"
    )
    parser.add_argument("--service", help="service to analyse (default: the plan's)")
    parser.add_argument("--namespace", help="its namespace (default: the plan's)")
    parser.add_argument(
        "--canary-log",
        type=Path,
        metavar="PATH",
        help="file the canary appends its log to, for logs gates",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from canaryflow.analysis.logfile import LogFileSource
    from canaryflow.analysis.measurement import Outcome
    from canaryflow.analysis.run import AnalysisRun
    from canaryflow.analysis.source import PrometheusSource
    from canaryflow.plan.load import load_plan

    plan = load_plan(args.plan)
    spec = plan.analysis
    duration = _duration(args.duration)
    url = args.prometheus or spec.prometheus.url
    if not url:
        raise InputError(
            FieldError(
                "--prometheus",
                "no Prometheus to ask: pass --prometheus URL "
                "or set analysis.prometheus.url in the plan",
            )
        )
    source = PrometheusSource(url, timeout=spec.prometheus.timeout)
    _reject_bad_promql(plan, source)
    analysis = AnalysisRun(
        spec,
        source,
        args.service or plan.service.name,
        args.namespace or plan.service.namespace,
        logs=LogFileSource(args.canary_log) if args.canary_log else None,
        on_round=None if args.json else _print_round,
    )
    result = analysis.window(duration)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(f"verdict: {result.verdict.outcome.value.upper()}: {result.reason}")
    return EXIT_OK if result.verdict.outcome is Outcome.PASS else EXIT_RELEASE_FAILED


def _duration(text: str) -> float:
    from canaryflow.plan.duration import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise InputError(FieldError("--duration", str(error))) from None
    if seconds <= 0:
        raise InputError(FieldError("--duration", "must be longer than 0s, e.g. 60s"))
    return seconds


def _reject_bad_promql(plan, source) -> None:
    """Queries Prometheus cannot parse are the plan's mistake: exit 2 before measuring."""
    from canaryflow.analysis.source import MeasurementError
    from canaryflow.plan.promql import check_queries

    try:
        errors = check_queries(plan, source)
    except MeasurementError as error:  # down: the window will show it as ERROR measurements
        print(f"warning: queries not checked: {error}", file=sys.stderr)
        return
    if errors:
        raise InputError(errors)


def _print_round(batch: Sequence, verdict) -> None:
    width = max(len(m.gate) for m in batch)
    for m in batch:
        dry = " (dry run)" if m.dry_run else ""
        print(
            f"round {m.round:<3} {m.gate:<{width}}  {m.outcome.value.upper():<12} {m.reason}{dry}"
        )
    sys.stdout.flush()
