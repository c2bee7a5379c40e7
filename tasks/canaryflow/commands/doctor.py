"""``canaryflow doctor``: check a cluster before the first push, every failure with its fix.

Read-only. Exit 0 when every check passed (warnings allowed), 1 when one failed, 2 on bad
input (nothing was read). ``--json`` prints the findings as one JSON document.

``--rights`` checks instead that the account doctor runs as may do everything a release of
``--namespace`` needs (``canaryflow.doctor.rights``: one SelfSubjectAccessReview per right);
exit 3 when the API server cannot answer.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from canaryflow.commands.arguments import add_json_option
from canaryflow.errors import EXIT_OK, EXIT_RELEASE_FAILED, FieldError, InputError

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_RESOURCE_NAME = re.compile(r"^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$")


def configure(parser: argparse.ArgumentParser) -> None:
    from canaryflow.doctor.checks import DoctorSettings
    from canaryflow.plan.routers import ROUTER_KINDS

    default = {name: f.default for name, f in DoctorSettings.model_fields.items()}

    parser.add_argument("--engine", choices=("argo", "tekton"), default=default["engine"])
    parser.add_argument(
        "--events", action="store_true", help="also check push events (Argo Events / Triggers)"
    )
    parser.add_argument(
        "--release-namespace",
        default=default["namespace"],
        metavar="NS",
        help="where the chart is installed and releases run (default: %(default)s)",
    )
    parser.add_argument("--argo-namespace", default=default["argo_namespace"], metavar="NS")
    parser.add_argument("--events-namespace", default=default["events_namespace"], metavar="NS")
    parser.add_argument("--tekton-namespace", default=default["tekton_namespace"], metavar="NS")
    parser.add_argument(
        "--router",
        action="append",
        default=[],
        choices=ROUTER_KINDS,
        help="a router releases use; repeat it for each (the chart's helm test passes "
        "release.routerKind and every registered service's router)",
    )
    parser.add_argument(
        "--build-service-account",
        default=default["build_service_account"],
        metavar="NAME",
        help="go-test/go-build's account, whose token Secret Argo's executor mounts "
        "(empty: not checked)",
    )
    parser.add_argument(
        "--go-cache-claim",
        default=default["cache_claim"],
        metavar="NAME",
        help="the Go cache claim on Argo (empty: an emptyDir, not checked)",
    )
    parser.add_argument("--prometheus", metavar="URL", help="the Prometheus the gates query")
    parser.add_argument("--service", metavar="NAME", help="also check this service")
    parser.add_argument(
        "--namespace", metavar="NS", help="the service's namespace (with --service)"
    )
    parser.add_argument(
        "--metrics", choices=("go", "otel", "grpc", "istio"), default=default["flavour"]
    )
    parser.add_argument(
        "--service-only",
        action="store_true",
        help="check only the service and Prometheus, not the cluster's controllers and CRDs",
    )
    parser.add_argument(
        "--rights",
        action="store_true",
        help="check only that the account doctor runs as may do everything a release of "
        "--namespace needs (one SelfSubjectAccessReview per right; the chart's helm test runs "
        "it as each team's release account)",
    )
    parser.add_argument(
        "--registry",
        metavar="JSON",
        default="",
        help='(--rights) the services registered: {"NS": [{"service": ..., "router": ..., '
        '"deployment": ..., "kubernetesService": ..., "route": ...}]} (the chart\'s '
        "events.services); a namespace with none: its Role names no objects, and --router "
        "gives its routers",
    )
    parser.add_argument(
        "--flag-config-map",
        action="append",
        default=[],
        metavar="NAME",
        help="(--rights) a flag ConfigMap releases read and update (flags.configMaps); repeat it",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context")
    add_json_option(parser, "print the findings as JSON")


def settings_from(args: argparse.Namespace):
    """The checked settings; every bad value named at once (exit 2, nothing read)."""
    from canaryflow.doctor.checks import DoctorSettings

    errors = []
    names = {
        "--release-namespace": args.release_namespace,
        "--argo-namespace": args.argo_namespace,
        "--events-namespace": args.events_namespace,
        "--tekton-namespace": args.tekton_namespace,
        "--namespace": args.namespace,
    }
    for flag, value in names.items():
        if value is not None and not _NAME.match(value):
            errors.append(FieldError(flag, f"{value!r} is not a namespace name (RFC 1123 label)"))
    for flag, value in (
        ("--service", args.service),
        ("--build-service-account", args.build_service_account or None),
        ("--go-cache-claim", args.go_cache_claim or None),
    ):
        if value is not None and not _RESOURCE_NAME.match(value):
            errors.append(
                FieldError(
                    flag,
                    f"{value!r} is not an object name: lower-case letters, digits, '-' and '.'",
                )
            )
    if args.namespace and not args.service and not args.rights:
        errors.append(FieldError("--namespace", "is the service's namespace: give --service"))
    if args.service_only and not args.service:
        errors.append(FieldError("--service-only", "checks one service: give --service"))
    if args.prometheus is not None and not re.match(r"^https?://[^\s/]+", args.prometheus):
        errors.append(FieldError("--prometheus", "expected an http:// or https:// URL"))
    if errors:
        raise InputError(errors)
    return DoctorSettings(
        engine=args.engine,
        events=args.events,
        namespace=args.release_namespace,
        argo_namespace=args.argo_namespace,
        events_namespace=args.events_namespace,
        tekton_namespace=args.tekton_namespace,
        routers=tuple(dict.fromkeys(args.router)),
        build_service_account=args.build_service_account or None,
        cache_claim=args.go_cache_claim or None,
        prometheus_url=args.prometheus,
        service=args.service,
        service_namespace=args.namespace,
        flavour=args.metrics,
        cluster=not args.service_only,
    )


def _registered(text: str, namespace: str) -> list:
    """``--registry``'s entries of ``namespace``; every mistake named at once."""
    from canaryflow.kubernetes.rights import Registered
    from canaryflow.plan.routers import ROUTER_KINDS

    if not text:
        return []
    try:
        registry = json.loads(text)
    except ValueError as error:
        raise InputError(FieldError("--registry", f"is not JSON ({error})")) from None
    if not isinstance(registry, dict) or not all(isinstance(v, list) for v in registry.values()):
        raise InputError(
            FieldError("--registry", 'expected {"namespace": [{"service": ..., ...}], ...}')
        )
    errors, entries = [], []
    for index, entry in enumerate(registry.get(namespace, [])):
        path = f"--registry.{namespace}[{index}]"
        if not isinstance(entry, dict):
            errors.append(FieldError(path, "expected an object with service and router"))
            continue
        unknown = set(entry) - {"service", "router", "deployment", "kubernetesService", "route"}
        if unknown:
            errors.append(FieldError(path, f"unknown keys {sorted(unknown)}: drop them"))
        if entry.get("router") not in ROUTER_KINDS:
            errors.append(
                FieldError(f"{path}.router", f"expected one of {', '.join(ROUTER_KINDS)}")
            )
        for key in ("service", "deployment", "kubernetesService", "route"):
            value = entry.get(key, "")
            if key == "service" and not value:
                errors.append(FieldError(f"{path}.service", "is required: the service's name"))
            elif value and not (isinstance(value, str) and _RESOURCE_NAME.match(value)):
                errors.append(
                    FieldError(
                        f"{path}.{key}",
                        f"{value!r} is not an object name: lower-case letters, digits, '-' and '.'",
                    )
                )
        if not errors:
            entries.append(Registered(**entry))
    if errors:
        raise InputError(errors)
    return entries


def rights_from(args: argparse.Namespace) -> tuple[str, list]:
    """``--rights``: the namespace and every right a release there needs (exit 2 on bad
    input, nothing asked)."""
    from canaryflow.kubernetes.rights import needed_rights

    errors = []
    if not args.namespace:
        errors.append(FieldError("--namespace", "--rights checks one namespace: give it"))
    elif not _NAME.match(args.namespace):
        errors.append(
            FieldError(
                "--namespace", f"{args.namespace!r} is not a namespace name (RFC 1123 label)"
            )
        )
    for flag, given in (
        ("--service", args.service or args.service_only),
        ("--prometheus", args.prometheus),
        ("--events", args.events),
    ):
        if given:
            errors.append(FieldError("--rights", f"checks the release account only: drop {flag}"))
    for value in args.flag_config_map:
        if not _RESOURCE_NAME.match(value):
            errors.append(
                FieldError(
                    "--flag-config-map",
                    f"{value!r} is not an object name: lower-case letters, digits, '-' and '.'",
                )
            )
    if errors:
        raise InputError(errors)
    services = _registered(args.registry, args.namespace)
    if services and args.router:
        raise InputError(
            FieldError(
                "--router",
                f"the services registered in {args.namespace} name their routers, which the "
                "Role grants alone: drop --router",
            )
        )
    rights = needed_rights(
        args.namespace, services, dict.fromkeys(args.router), args.flag_config_map
    )
    return args.namespace, rights


def _only_with_rights(args: argparse.Namespace) -> None:
    errors = [
        FieldError(flag, "is a --rights setting: add --rights or drop it")
        for flag, given in (
            ("--registry", args.registry),
            ("--flag-config-map", args.flag_config_map),
        )
        if given
    ]
    if errors:
        raise InputError(errors)


def run(args: argparse.Namespace) -> int:
    from canaryflow.doctor.checks import Status, evaluate, failed
    from canaryflow.kubernetes.platform import api_client_from_environment

    if args.rights:
        from canaryflow.doctor.review import SelfReviewer
        from canaryflow.doctor.rights import check_rights

        namespace, rights = rights_from(args)
        client = api_client_from_environment(args.kubeconfig, args.context)
        findings = check_rights(namespace, rights, SelfReviewer(client))
    else:
        from canaryflow.doctor.probe import read_facts

        _only_with_rights(args)
        settings = settings_from(args)
        client = api_client_from_environment(args.kubeconfig, args.context)
        findings = evaluate(read_facts(client, settings))
    bad = failed(findings)
    if args.json:
        document = {"ok": not bad, "findings": [f.model_dump(mode="json") for f in findings]}
        print(json.dumps(document, indent=2))
    else:
        for finding in findings:
            print(f"{finding.status.value:<4}  {finding.check}: {finding.detail}")
            if finding.fix and finding.status in (Status.FAIL, Status.WARN):
                print(f"      fix: {finding.fix}")
        if args.rights:
            summary = "a right is missing" if bad else "the release account has every right"
        else:
            summary = "a check failed" if bad else "ready for a first release"
        print(f"doctor: {summary}", file=sys.stderr)
    return EXIT_RELEASE_FAILED if bad else EXIT_OK
