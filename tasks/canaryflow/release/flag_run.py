"""A flag rollout wired to its parts: a flag store, Prometheus, and the plan's gates.

The same wiring serves both platforms; only the store differs (a file locally, a ConfigMap in
Kubernetes), so a local rollout exercises exactly what a workflow's ``flag-rollout`` task runs.
"""

from __future__ import annotations

from canaryflow.analysis.prometheus_auth import PrometheusEndpoint
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import PrometheusSource
from canaryflow.flags.applied import DocumentApplication, FixedDelay, ReportedDigest
from canaryflow.flags.store import FlagStore
from canaryflow.flags.variant_analysis import variant_gates, variant_subject
from canaryflow.plan.model import ReleasePlan
from canaryflow.release.decision import Rules
from canaryflow.release.events import EventKind
from canaryflow.release.flag_rollout import FlagRollout
from canaryflow.release.progression import ReleaseResult
from canaryflow.release.record import Listener, ReleaseRecord
from canaryflow.release.windows import AnalysisWindows


def flag_rollout(
    plan: ReleasePlan,
    store: FlagStore,
    prometheus: str | PrometheusEndpoint,
    platform: str,
    listeners: list[Listener] = (),
) -> ReleaseResult:
    """Roll out ``plan.flag`` through ``store``, judged on ``prometheus``: a URL asked without
    credentials (the local engine's own), or the endpoint the operator allows for this plan."""
    assert plan.flag is not None
    analysis, skipped = variant_gates(plan.analysis)
    if isinstance(prometheus, str):
        source = PrometheusSource(prometheus, timeout=analysis.prometheus.timeout)
    else:
        source = PrometheusSource.for_endpoint(prometheus)
    run = AnalysisRun(
        analysis,
        source,
        plan.service.name,
        plan.service.namespace,
        subject=variant_subject(plan.service.name, plan.service.namespace),
        windows=len(plan.flag.steps),
    )
    record = ReleaseRecord(plan.service.name, f"flag/{plan.flag.key}", platform)
    record.listeners.extend(listeners)
    if skipped:
        record.add(EventKind.GATES_SKIPPED, gates=skipped, why="not labelled by variant")
    application = document_application(plan, source)
    windows = AnalysisWindows(run, None)
    rollout = FlagRollout(plan.flag, store, windows, record, application, Rules.of(plan))
    return rollout.run()


def document_application(plan: ReleasePlan, source: PrometheusSource) -> DocumentApplication:
    """How a step knows its document is served: the plan's info metric, or a flat wait."""
    flag = plan.flag
    assert flag is not None
    if flag.applied_metric is None:
        return FixedDelay(flag.apply_timeout)
    return ReportedDigest(
        source,
        flag.applied_metric,
        plan.service.name,
        plan.service.namespace,
        flag.key,
        flag.apply_timeout,
    )
