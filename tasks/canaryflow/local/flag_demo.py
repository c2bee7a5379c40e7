"""Flag rollouts on one machine: the sample service reading a flag file, behind a LocalStack.

``run_flag_demo`` shows both endings: a healthy feature reaching everyone, and a feature that
fails only flag-on requests being switched off by the gates, with no redeploy.
"""

from __future__ import annotations

import time
from pathlib import Path

from canaryflow.flags.document import flag_off
from canaryflow.flags.store import FileFlagStore, replace_with
from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.model import ReleasePlan
from canaryflow.release.events import EventPrinter
from canaryflow.release.flag_run import flag_rollout
from canaryflow.release.progression import ReleaseResult
from canaryflow.release.record import JOURNAL_SUFFIX, Journal, Listener

DEMO_PLAN = {
    "service": {"name": "checkout", "namespace": "demo", "healthTimeout": "15s"},
    "router": {"header": None},
    "analysis": {
        "interval": "1s",
        "queryWindow": "4s",
        "minCanaryRequests": 5,
        "inconclusiveLimit": 3,
        "gates": [
            {"metric": "error-rate"},
            {"metric": "latency-p95"},
        ],
    },
    "local": {"scrapeInterval": "1s", "load": {"rate": 100, "clients": 4, "users": 1000}},
    "flag": {
        "key": "new-checkout",
        "userIdPrefix": "user-",
        "steps": [{"users": "0-199", "duration": "5s"}, {"percent": 50, "duration": "5s"}],
    },
}


def run_local(
    plan: ReleasePlan, workdir: Path, faults: tuple[str, ...] = (), listeners: list[Listener] = ()
) -> ReleaseResult:
    """Start the sample service on a flag file (flag off), then roll the flag out."""
    assert plan.flag is not None
    workdir = Path(workdir).resolve()
    store = FileFlagStore(workdir / "flags.json")
    store.update(replace_with(flag_off(plan.flag.key, plan.flag.variants.variants())))
    flag_args = ("-flags-file", str(store.path), "-flag-key", plan.flag.key, *faults)
    stable = sample_service("v1", workdir / "build", flag_args)
    with LocalStack(plan, stable, workdir / "stack") as stack:
        assert stack.prometheus is not None
        return flag_rollout(plan, store, stack.prometheus.url, "local", listeners)


def run_flag_demo(out_dir: Path, live: bool) -> dict:
    """A good flag rollout (ends on for everyone) and a bad one (ends off); both records."""
    out_dir = Path(out_dir)
    plan = ReleasePlan.model_validate(DEMO_PLAN)
    listeners: list[Listener] = [EventPrinter(time.time())] if live else []
    summary = {}
    for name, faults in (("good", ()), ("bad", ("-error-rate", "0.3", "-flag-on-only"))):
        # Every event on disk as it happens: an interrupted demo still leaves its record.
        journal = Journal(
            out_dir / f"flag-{name}{JOURNAL_SUFFIX}",
            {"service": plan.service.name, "version": f"flag/{plan.flag.key}", "platform": "local"},
        )
        try:
            result = run_local(plan, out_dir / name, faults, [*listeners, journal.append])
        finally:
            journal.close()
        result.record.write_json(out_dir / f"flag-{name}.json")
        summary[name] = {
            "phase": str(result.phase),
            "reason": result.reason,
            "record": str(out_dir / f"flag-{name}.json"),
            "flags": str(out_dir / name / "flags.json"),
        }
    return summary
