"""``canaryflow validate PLAN``: exit 0, or 2 with every mistake named; never a traceback."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from canaryflow.errors import EXIT_OK, FieldError, InputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", type=Path, help="the release plan (YAML)")
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="check every query against this Prometheus (default: the plan's URL, if any)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="do not ask Prometheus, even if the plan names one"
    )
    parser.add_argument(
        "--resolved-out",
        type=Path,
        metavar="PATH",
        help="write the plan with every default filled in (for later workflow tasks)",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.plan.load import load_plan

    plan = load_plan(args.plan)
    url = None if args.offline else (args.prometheus or plan.analysis.prometheus.url)
    if url:
        _check_promql(plan, url)
    if args.resolved_out:
        args.resolved_out.parent.mkdir(parents=True, exist_ok=True)
        document = plan.model_dump(mode="json", by_alias=True)
        args.resolved_out.write_text(yaml.safe_dump(document, sort_keys=False))
    steps = ", ".join(
        f"{s.weight}%/{s.duration:g}s" if s.is_traffic else "approve" for s in plan.steps
    )
    checked = f"queries checked against {url}" if url else "queries not checked (no Prometheus)"
    print(
        f"{args.plan}: valid: {plan.service.name} in {plan.service.namespace}; steps {steps}; "
        f"{len(plan.analysis.gates)} gates; {checked}"
    )
    return EXIT_OK


def _check_promql(plan, url: str) -> None:
    from canaryflow.analysis.source import PrometheusSource
    from canaryflow.plan.promql import check_queries

    source = PrometheusSource(url, timeout=plan.analysis.prometheus.timeout)
    try:
        errors = check_queries(plan, source)
    except Exception as error:  # unreachable Prometheus: the user asked for a check
        raise InputError(
            FieldError(
                "analysis.prometheus.url",
                f"cannot check queries at {url}: {error}: fix the URL or pass --offline",
            )
        ) from None
    if errors:
        raise InputError(errors)
