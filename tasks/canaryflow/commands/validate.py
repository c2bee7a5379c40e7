"""``canaryflow validate PLAN``: exit 0, or 2 with every mistake named; never a traceback.

``--json`` prints one JSON document on stdout instead of prose, for CI annotations: on success
``{"ok": true, "service", "namespace", "steps", "gates", "warnings", "queriesCheckedAgainst"}``,
on bad input ``{"ok": false, "kind": "input", "errors": [{"path", "message"}]}`` (exit 2);
a Prometheus that does not answer is ``"kind": "unreachable"`` and exit 3, not a broken plan.

Only Prometheus' own parse error (HTTP 400, ``errorType`` ``bad_data``) makes a query the
plan's mistake (exit 2, ``analysis.gates[N].query: ...``). A Prometheus that answers with
anything else (401/403: the operator's credentials; a 5xx or a proxy's page; no API at the
URL) is ``"kind": "failed"``, exit 1: it answered, so it is not 3 (README "Exit codes": "a
service that answers, even 4xx, is 1 or 2"), and the plan may be fine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from canaryflow import transport
from canaryflow.commands.arguments import add_json_option
from canaryflow.errors import EXIT_OK, FieldError, InputError, ServiceError, UnreachableError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", type=Path, help="the release plan (YAML)")
    parser.add_argument(
        "--default-plan",
        type=Path,
        metavar="PATH",
        help="the plan for a repository without PLAN (the chart's default; empty file: none); "
        "its service name and namespace are taken from --service and --namespace",
    )
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="check every query against this Prometheus (default: the plan's URL, if any)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="do not ask Prometheus, even if the plan names one"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also check the service's contract in the cluster (its Deployment, Service and "
        "pod labels; kubeconfig or the pod's account), before anything is built",
    )
    parser.add_argument("--kubeconfig", help="with --cluster: the kubeconfig (default: usual)")
    parser.add_argument("--context", help="with --cluster: the kubeconfig context")
    add_json_option(parser, "print the result or the errors ({path, message}) as JSON on stdout")
    parser.add_argument("--service", help="the workflow's service parameter: must match the plan")
    parser.add_argument("--namespace", help="the workflow's namespace: must match the plan")
    parser.add_argument(
        "--router-kind", default="", help="override the plan's router.kind (empty: keep it)"
    )
    parser.add_argument(
        "--registered-routers",
        default="",
        metavar="JSON",
        help="the router kinds each registered service may use, as the chart renders them "
        '(events.services): {"NAMESPACE/SERVICE": ["KIND", ...]}; a plan for a registered '
        "service whose router.kind is not among its kinds is refused (exit 2) before anything "
        "runs; empty: no check",
    )
    parser.add_argument(
        "--resolved-out",
        type=Path,
        metavar="PATH",
        help="write the plan with every default filled in (for later workflow tasks)",
    )
    parser.add_argument(
        "--workflow-outputs",
        type=Path,
        metavar="DIR",
        help="write the values that drive the workflow's step walk, one file each "
        "(steps, last-step, promotion)",
    )
    parser.add_argument(
        "--compiled-steps",
        default="",
        metavar="SHAPE",
        help="the plan shape an unrolled (Tekton) pipeline was compiled from: a plan whose "
        "steps differ is refused (exit 2) before anything is deployed; empty: no check",
    )


def run(args: argparse.Namespace) -> int:
    from canaryflow.analysis.prometheus_auth import OperatorPrometheus
    from canaryflow.release.walk import workflow_outputs

    registered = _registered_routers(args.registered_routers)
    plan = _with_parameters(_load(args, quiet=args.json), args)
    _check_registration(plan, registered)
    _check_compiled_steps(plan, args.compiled_steps)
    # The plan's choice of Prometheus is checked offline too (a pure comparison with the
    # operator's), so a URL the installation does not allow fails here, not at the first window.
    endpoint = OperatorPrometheus.from_environment(args.prometheus).endpoint_for(
        plan.analysis.prometheus
    )
    url = None if args.offline else endpoint.url
    scrape = _check_promql(plan, endpoint) if url else None
    url = transport.without_userinfo(url) if url else None  # as shown: no user:password@
    contract = _check_contract(plan, args) if args.cluster else ""
    outputs = _walkable(plan, workflow_outputs) if args.workflow_outputs else {}
    if args.resolved_out:
        args.resolved_out.parent.mkdir(parents=True, exist_ok=True)
        document = plan.model_dump(mode="json", by_alias=True)
        args.resolved_out.write_text(yaml.safe_dump(document, sort_keys=False))
    if args.workflow_outputs:
        args.workflow_outputs.mkdir(parents=True, exist_ok=True)
        for name, value in outputs.items():
            (args.workflow_outputs / name).write_text(value)
    steps = ", ".join(
        f"{s.weight}%/{s.duration:g}s" if s.is_traffic else "approve" for s in plan.steps
    )
    if plan.flag is not None:
        exposure = ", ".join(
            f"{s}/{step.duration:g}s"
            for s, step in zip(plan.flag.segments(), plan.flag.steps, strict=True)
        )
        steps += f"; flag {plan.flag.key}: {exposure}, then everyone"
    from canaryflow.plan.maturity import maturity_warnings, traffic_needed
    from canaryflow.plan.routers import deprecation

    deprecated = deprecation(plan.router.kind)
    warnings = [*([deprecated] if deprecated else [])]
    warnings += [str(warning) for warning in maturity_warnings(plan, scrape)]
    if args.json:
        _print_json(plan, warnings, url)
        return EXIT_OK
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if (needed := traffic_needed(plan, scrape)) is not None:
        print(f"note: {needed}", file=sys.stderr)
    checked = f"queries checked against {url}" if url else "queries not checked (no Prometheus)"
    print(
        f"{args.plan}: valid: {plan.service.name} in {plan.service.namespace}; steps {steps}; "
        f"{len(plan.analysis.gates)} gates; {checked}{contract}"
    )
    return EXIT_OK


def _check_contract(plan, args: argparse.Namespace) -> str:
    """The service's objects as deploy-canary will read them (``kubernetes.contract``): exit 2
    naming every broken rule and its fix, before anything is built or deployed."""
    from canaryflow.kubernetes.api import ClusterApi
    from canaryflow.kubernetes.contract import resolve
    from canaryflow.kubernetes.platform import api_client_from_environment
    from canaryflow.kubernetes.resources import DEPLOYMENT, SERVICE

    service = plan.service
    api = ClusterApi(api_client_from_environment(args.kubeconfig, args.context), service.namespace)
    contract = resolve(
        service.namespace,
        service.deployment_name,
        service.service_name,
        service.selector,
        service.app_label,
        api.get(DEPLOYMENT, service.deployment_name),
        api.get(SERVICE, service.service_name),
    )
    from canaryflow.kubernetes.owned_services import check_name_free, stable_service_name
    from canaryflow.plan.routers import OWNED_SERVICE, STABLE_SELECTION

    if STABLE_SELECTION[plan.router.kind] == OWNED_SERVICE:  # deploy-canary creates it
        owned = api.get(SERVICE, stable_service_name(service.name))
        check_name_free(owned, service.namespace, service.name)
    pods = ", ".join(f"{k}={v}" for k, v in contract.selector.items())
    return (
        f"; cluster: deployment {contract.deployment}, service {contract.service}, pods {pods}, "
        f"metrics app={service.app_label}"
    )


def _print_json(plan, warnings: list[str], url: str | None) -> None:
    import json

    steps = [
        {"weight": s.weight, "durationSeconds": s.duration} if s.is_traffic else {"approve": True}
        for s in plan.steps
    ]
    document = {
        "ok": True,
        "service": plan.service.name,
        "namespace": plan.service.namespace,
        "steps": steps,
        "gates": len(plan.analysis.gates),
        "warnings": warnings,
        "queriesCheckedAgainst": url,
    }
    print(json.dumps(document, indent=2))


def _check_compiled_steps(plan, compiled: str) -> None:
    """The steps this run will walk are the compiled pipeline's, not the plan's: refuse a plan
    that changed them since (canaryflow.plan.shape says what counts)."""
    from canaryflow.plan.shape import compiled_shape

    found = compiled_shape(plan)
    if compiled and found != compiled:
        raise InputError(
            FieldError(
                "steps",
                f"this pipeline was compiled for {compiled!r} but the repository's plan is "
                f"{found!r}: recompile it from this plan (`canaryflow compile --engine tekton "
                "--plan canaryflow.yaml`, or the chart's plan) and apply it, or restore the "
                "plan's steps; nothing was deployed",
            )
        )


def _load(args: argparse.Namespace, quiet: bool = False):
    """The repository's own plan; the default plan only when the repository has none."""
    from canaryflow.plan.load import load_plan

    default = _default_text(args.default_plan)
    if _exists(args.plan) or default is None:
        return load_plan(args.plan)
    try:
        document = yaml.safe_load(default)
    except yaml.YAMLError as error:
        raise InputError(FieldError("--default-plan", f"not valid YAML: {error}")) from None
    if not isinstance(document, dict):
        raise InputError(FieldError("--default-plan", "expected a mapping of plan sections"))
    service = dict(document.get("service") or {})
    service.update({k: v for k, v in (("name", args.service), ("namespace", args.namespace)) if v})
    document["service"] = service
    if not quiet:
        print(f"{args.plan}: not in the repository: releasing with the default plan")
    return load_plan(yaml.safe_dump(document, sort_keys=False))


def _exists(path: Path) -> bool:
    """Whether a plan is there; a name the system cannot even look up (too long) is not."""
    try:
        return path.exists()
    except OSError:
        return False


def _default_text(path: Path | None) -> str | None:
    """The default plan's text, read as a plan is (bounded, never a device or FIFO); None
    when there is none (no such file, or an empty one)."""
    from canaryflow.input_file import read_input_file
    from canaryflow.plan.load import MAX_PLAN_BYTES

    if path is None or not _exists(path):
        return None
    try:
        text = read_input_file(path, MAX_PLAN_BYTES, "default plan")
    except InputError as error:
        raise InputError(FieldError("--default-plan", str(error))) from None
    return text if text.strip() else None


def _walkable(plan, workflow_outputs) -> dict[str, str]:
    """The workflow's step-walk outputs; a plan too long to walk is an input error."""
    from canaryflow.release.walk import MAX_STEPS

    if len(plan.steps) > MAX_STEPS:
        raise InputError(
            FieldError(
                "steps",
                f"{len(plan.steps)} steps; a release workflow walks at most {MAX_STEPS} "
                "(Argo nests templates at most 100 deep): merge some steps",
            )
        )
    return workflow_outputs(plan)


def _with_parameters(plan, args: argparse.Namespace):
    """The plan as the workflow's parameters see it; a mismatch is an input error."""
    from canaryflow.plan.load import plan_from_dict
    from canaryflow.plan.routers import ROUTER_KINDS

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


def _registered_routers(text: str) -> dict[str, list[str]]:
    """``--registered-routers``: ``{"namespace/service": [router kind, ...]}``, or {} for none."""
    import json

    from canaryflow.plan.routers import ROUTER_KINDS

    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as error:
        document, problem = None, f"not JSON ({error})"
    else:
        problem = "expected a mapping of NAMESPACE/SERVICE to a list of router kinds"
    if isinstance(document, dict) and all(
        isinstance(key, str)
        and isinstance(kinds, list)
        and kinds
        and all(kind in ROUTER_KINDS for kind in kinds)
        for key, kinds in document.items()
    ):
        return document
    raise InputError(
        FieldError(
            "--registered-routers",
            f"{problem}, each kind one of {', '.join(ROUTER_KINDS)}: the chart renders it "
            "from events.services; pass it as rendered, or empty for no check",
        )
    )


def _check_registration(plan, registered: dict[str, list[str]]) -> None:
    """A service registered with a router (the chart's ``events.services[].router``) may only
    be released through it: its release account's Role names only that router's objects, so
    another kind would fail at the first router call, after the canary is deployed."""
    kinds = registered.get(f"{plan.service.namespace}/{plan.service.name}")
    if not kinds or plan.router.kind in kinds:
        return
    named = " or ".join(repr(kind) for kind in kinds)
    raise InputError(
        FieldError(
            "router.kind",
            f"plan says {plan.router.kind!r} but the service is registered with router {named} "
            "(the chart's events.services entry for "
            f"{plan.service.namespace}/{plan.service.name}), whose objects alone its release "
            f"account may edit: set router.kind: {kinds[0]} in the plan, or register the "
            f"service with router {plan.router.kind} (events.services.<repository>.router; "
            "release.routers must list it) and upgrade the chart; nothing was changed",
        )
    )


def _check_promql(plan, endpoint) -> float | None:
    """Every query checked against the Prometheus the plan may ask; returns how often it
    scrapes the service (None when it does not know yet), for the scrape warnings."""
    from canaryflow.analysis.source import (
        MeasurementError,
        PrometheusSource,
        QueryCheckFailed,
    )
    from canaryflow.plan.promql import check_queries

    source = PrometheusSource.for_endpoint(endpoint)
    url = source.shown_url
    try:
        errors = check_queries(plan, source)
    except QueryCheckFailed as error:  # it answered, not about the queries: not the plan's
        raise ServiceError(f"queries not checked: {error}") from None
    except Exception as error:  # Prometheus did not answer: the plan may be fine (exit 3)
        if isinstance(error, MeasurementError) and source.never_answered is None:
            # Not "never answered" (README "Exit codes"): a certificate that does not verify,
            # an unreadable credential file, a broken answer; trying again will not help.
            raise ServiceError(f"queries not checked: {error}") from None
        raise UnreachableError(
            f"cannot check queries at {url}: {error}: "
            "check that Prometheus is up and reachable, or pass --offline",
            path="analysis.prometheus.url",
        ) from None
    if errors:
        raise InputError(errors)
    if plan.analysis.scrape_interval is not None:
        return None
    labels = {"app": plan.service.name, "namespace": plan.service.namespace}
    try:
        return source.scrape_interval(labels)
    except Exception:  # the queries were checked; the scrape interval is only advice
        return None
