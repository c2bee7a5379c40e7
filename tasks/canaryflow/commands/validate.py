"""``canaryflow validate PLAN``: exit 0, or 2 with every mistake named; never a traceback."""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("--service", help="the workflow's service parameter: must match the plan")
    parser.add_argument("--namespace", help="the workflow's namespace: must match the plan")
    parser.add_argument(
        "--router-kind", default="", help="override the plan's router.kind (empty: keep it)"
    )
    parser.add_argument(
        "--resolved-out",
        type=Path,
        metavar="PATH",
        help="write the plan with every default filled in (for later workflow tasks)",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.plan.load import load_plan

    plan = _with_parameters(load_plan(args.plan), args)
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
    if plan.flag is not None:
        exposure = ", ".join(
            f"{s}/{step.duration:g}s"
            for s, step in zip(plan.flag.segments(), plan.flag.steps, strict=True)
        )
        steps += f"; flag {plan.flag.key}: {exposure}, then everyone"
    from canaryflow.analysis.maturity import maturity_warnings

    for warning in maturity_warnings(plan):
        print(f"warning: {warning}", file=sys.stderr)
    checked = f"queries checked against {url}" if url else "queries not checked (no Prometheus)"
    print(
        f"{args.plan}: valid: {plan.service.name} in {plan.service.namespace}; steps {steps}; "
        f"{len(plan.analysis.gates)} gates; {checked}"
    )
    return EXIT_OK


def _with_parameters(plan, args: argparse.Namespace):
    """The plan as the workflow's parameters see it; a mismatch is an input error."""
    from canaryflow.plan.load import plan_from_dict
    from canaryflow.plan.model import ROUTER_KINDS

    errors = []
    for field, given, planned in (
        ("service.name", args.service, plan.service.name),
        ("service.namespace", args.namespace, plan.service.namespace),
    ):
        if given and given != planned:
            errors.append(
                FieldError(
                    field,
                    f"the plan says {planned!r} but the release was started for {given!r}: "
                    "fix the workflow parameter or the plan",
                )
            )
    if args.router_kind and args.router_kind not in ROUTER_KINDS:
        errors.append(
            FieldError(
                "--router-kind", f"{args.router_kind!r}: use one of {', '.join(ROUTER_KINDS)}"
            )
        )
    if errors:
        raise InputError(errors)
    if not args.router_kind:
        return plan
    document = plan.model_dump(mode="json", by_alias=True)
    document["router"]["kind"] = args.router_kind
    return plan_from_dict(document)


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
