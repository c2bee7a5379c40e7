"""``canaryflow flag-rollout``: widen a plan's feature flag step by step under its gates.

Local without ``--prometheus`` starts the sample service on a fresh flag file behind a local
stack (Prometheus, nginx, load); with ``--flags-file`` and ``--prometheus`` it drives a service
already reading that file. Kubernetes edits the flag document in the ConfigMap flagd mounts.
Exit 0 when everyone ends on, 1 when the flag went back to off, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from canaryflow.errors import EXIT_OK, EXIT_RELEASE_FAILED, FieldError, InputError


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """Which plan, and where its flag document lives: shared by flag-rollout and flag-off."""
    parser.add_argument("--plan", type=Path, required=True, help="release plan with a flag section")
    parser.add_argument("--platform", choices=("local", "kubernetes"), default="local")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--flags-file", type=Path, help="flagd file the local service reads")
    where.add_argument("--configmap", help="ConfigMap holding the flagd document (kubernetes)")
    parser.add_argument("--configmap-key", default="flags.json", help="its data key")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or ~/.kube)")


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_options(parser)
    parser.add_argument("--prometheus", help="Prometheus URL (default: the plan's)")
    parser.add_argument("--record", type=Path, help="write the rollout record (JSON) here")


def flag_plan(path: Path):
    """The plan at ``path``, which must carry a flag section."""
    from canaryflow.plan.load import load_plan

    plan = load_plan(path)
    if plan.flag is None:
        raise InputError(FieldError("flag", "the plan has no flag section: add flag.key, steps"))
    return plan


def run(args: argparse.Namespace) -> int:
    from canaryflow.analysis.prometheus_auth import OperatorPrometheus
    from canaryflow.local.flag_demo import run_local
    from canaryflow.release.decision import Phase
    from canaryflow.release.events import EventKind, EventPrinter
    from canaryflow.release.flag_run import flag_rollout

    plan = flag_plan(args.plan)
    printer = EventPrinter(
        time.time(), style="json", skip=(EventKind.MEASUREMENTS, EventKind.FLAG_FOUND)
    )
    endpoint = OperatorPrometheus.from_environment(args.prometheus).endpoint_for(
        plan.analysis.prometheus
    )
    if args.platform == "local" and endpoint.url is None:
        if args.flags_file is not None:
            raise InputError(FieldError("--prometheus", "give the Prometheus that scrapes it"))
        with tempfile.TemporaryDirectory(prefix="canaryflow-flag-") as workdir:
            result = run_local(plan, Path(workdir), listeners=[printer])
    else:
        store = flag_store(args, plan)
        if endpoint.url is None:
            raise InputError(FieldError("--prometheus", "set it or analysis.prometheus.url"))
        result = flag_rollout(plan, store, endpoint, args.platform, [printer])
    if args.record is not None:
        result.record.write_json(args.record)
    print(json.dumps({"phase": str(result.phase), "reason": result.reason}))
    return EXIT_OK if result.phase is Phase.PROMOTED else EXIT_RELEASE_FAILED


def flag_store(args: argparse.Namespace, plan):
    from canaryflow.flags.store import FileFlagStore

    if args.platform == "local":
        if args.flags_file is None:
            raise InputError(FieldError("--flags-file", "name the flag file the service reads"))
        return FileFlagStore(args.flags_file)
    if args.configmap is None:
        raise InputError(FieldError("--configmap", "name the ConfigMap that holds the flags"))
    from canaryflow.kubernetes.flag_store import ConfigMapFlagStore
    from canaryflow.kubernetes.platform import api_client_from_environment

    client = api_client_from_environment(args.kubeconfig)
    return ConfigMapFlagStore(client, plan.service.namespace, args.configmap, args.configmap_key)
