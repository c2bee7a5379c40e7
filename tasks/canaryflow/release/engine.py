"""A traffic release: canary up, health gate, weighted steps under analysis, then the end.

The walk itself (steps, windows, approvals, rollback as the ``finally``) is the one
``ProgressionEngine``; this module is the traffic ``Exposure`` it drives. All I/O goes through
the ``Platform`` protocol, so the local and Kubernetes platforms run the same release. A
rollback puts traffic on stable first (verified), then removes the canary; stable is not
touched.

With a fresh baseline (``analysis.baseline: fresh`` on a ``BaselinePlatform``) the baseline is
deployed right after the canary, every step splits three ways (``canaryflow.platform.split``),
and the rollback or promotion removes it with the canary. Before the first window the release
waits out ``analysis.warmup`` with the canary and baseline taking traffic, so the evidence of
both starts warm.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import MetricSource
from canaryflow.errors import CanaryflowError, PlatformError
from canaryflow.plan.model import ReleasePlan
from canaryflow.plan.promql import plan_subject
from canaryflow.platform.protocol import (
    Artifact,
    BaselinePlatform,
    HeaderRoute,
    Platform,
    log_source,
    runs_baseline,
)
from canaryflow.platform.split import split_for
from canaryflow.platform.weights import VERIFY_WEIGHT_TIMEOUT_S, wait_for_weight
from canaryflow.release.decision import Rules
from canaryflow.release.events import EventKind
from canaryflow.release.first_scrape import FirstScrape
from canaryflow.release.progression import (
    Abort,
    Approver,
    AutoApprover,
    ProgressionEngine,
    ReleaseResult,
    Step,
    WindowAnalyzer,
)
from canaryflow.release.record import ReleaseRecord
from canaryflow.release.windows import AnalysisWindows

__all__ = ["Approver", "AutoApprover", "ReleaseEngine", "ReleaseResult", "WindowAnalyzer"]


def traffic_steps(plan: ReleasePlan) -> list[Step]:
    """The plan's steps as the engine walks them: weights judged for a window, or approvals."""
    steps = []
    for step in plan.steps:
        if step.approve is not None:
            steps.append(Step(approve=step.approve.message, approve_timeout_s=step.approve.timeout))
        else:
            describe = {"weight": step.weight}
            steps.append(Step(step.weight, step.duration, describe, f" at {step.weight}%"))
    return steps


@dataclass
class TrafficExposure:
    """Exposes a canary by traffic weight through the platform's router."""

    plan: ReleasePlan
    platform: Platform
    artifact: Artifact
    record: ReleaseRecord
    sleep: Callable[[float], None] = time.sleep
    verify_timeout_s: float = VERIFY_WEIGHT_TIMEOUT_S
    baseline: bool = False
    """Run and route a fresh baseline (``runs_baseline``): decided once, before the release."""
    warmup_s: Callable[[], float] | None = None
    """The warm-up waited once the canary first takes traffic (``AnalysisRun.warmup_s``)."""
    first_scrape: FirstScrape | None = None
    """Where Prometheus finds a fresh baseline only some time after it runs (a cluster): its
    first scrape is waited for when the canary first takes traffic, before the warm-up (which
    counts the wait); never scraped, the first window is refused (``AnalysisWindows``)."""
    reached: bool = field(default=False, init=False)
    warmed: bool = field(default=False, init=False)
    finish_failure = "promotion failed"

    @property
    def identity(self) -> dict[str, str]:
        return {"version": self.artifact.version}

    def prepare(self) -> None:
        self._deploy()
        self._header_route()

    def _deploy(self) -> None:
        artifact = self.artifact
        self.platform.deploy_canary(artifact)
        self.record.add(EventKind.CANARY_DEPLOYED, version=artifact.version, image=artifact.image)
        health = self.platform.wait_healthy(self.plan.service.health_timeout)
        self.record.add(EventKind.HEALTH, healthy=health.healthy, detail=health.detail)
        if not health.healthy:
            raise Abort(f"canary never became healthy: {health.detail}")
        self._deploy_baseline()

    def _deploy_baseline(self) -> None:
        platform = self.platform
        if self.plan.analysis.baseline != "fresh":
            return
        if not self.baseline:
            problem = (
                platform.baseline_problem()
                if isinstance(platform, BaselinePlatform)
                else "this platform cannot run one"
            )
            self.record.add(EventKind.BASELINE_SKIPPED, reason=problem, judged_against="stable")
            return
        assert isinstance(platform, BaselinePlatform)
        platform.deploy_baseline()
        self.record.add(EventKind.BASELINE_DEPLOYED, version="stable")

    def _header_route(self) -> None:
        header = self.plan.router.header
        if header is None:
            return
        self.reached = True
        self.platform.router.set_header_route(HeaderRoute(header.name, header.value))
        self.record.add(EventKind.HEADER_ROUTE, header=header.name, value=header.value)

    def expose(self, index: int, target: int) -> None:
        self.reached = True
        split = split_for(target, self.baseline)
        shares = {"baseline": split.baseline} if split.baseline else {}
        if split.baseline:
            self.platform.router.set_weight(target, split.baseline)
        else:
            self.platform.router.set_weight(target)
        self.record.add(EventKind.WEIGHT_SET, step=index, weight=target, **shares)
        self._verify(target, split.baseline)
        self.record.add(EventKind.WEIGHT_VERIFIED, step=index, weight=target, **shares)
        self._warm_up(target)

    def _warm_up(self, target: int) -> None:
        """Once, when the canary first takes traffic: wait for a fresh baseline's first
        scrape where that is needed (``first_scrape``), then the rest of ``analysis.warmup``,
        so the first window's evidence starts after it (the window keeps its full duration)."""
        if self.warmed or target <= 0:
            return
        self.warmed = True
        waited = 0.0
        if self.first_scrape is not None and self.baseline:
            found, waited = self.first_scrape.wait()
            scraped = {"scraped": found, "waited": round(waited, 3)}
            self.record.add(EventKind.BASELINE_SCRAPED, **scraped)
            if not found:
                return  # the first window is refused: no warm-up for a verdict never given
        if self.warmup_s is None:
            return
        seconds = self.warmup_s() - waited
        if seconds > 0:
            self.record.add(EventKind.WARMUP, seconds=seconds)
            self.sleep(seconds)

    def _verify(self, weight: int, baseline: int = 0) -> None:
        wait_for_weight(
            self.platform.router, weight, self.verify_timeout_s, sleep=self.sleep, baseline=baseline
        )

    def finish(self) -> None:
        self.record.add(EventKind.PROMOTING, version=self.artifact.version)
        self.platform.promote(self.artifact)

    def withdraw(self, reason: str, interrupted: bool) -> None:
        """Traffic to stable first (verified), then the canary (and baseline) go; stable is not
        touched. ``set_weight(0)`` leaves no baseline share either."""
        try:
            self.platform.router.set_weight(0)
            self._verify(0)
            self.record.add(EventKind.TRAFFIC_SAFE, weight=0)
        except (CanaryflowError, OSError) as error:
            self.record.add(EventKind.ROLLBACK_ERROR, stage="weight", error=str(error))
        try:
            self.platform.rollback()
        except (CanaryflowError, OSError) as error:
            self.record.add(EventKind.ROLLBACK_ERROR, stage="canary", error=str(error))
            raise PlatformError(f"rollback incomplete: {error} (after: {reason})") from error


class ReleaseEngine:
    """A plan's traffic release of one artifact, on one platform."""

    def __init__(
        self,
        plan: ReleasePlan,
        platform: Platform,
        analyzer: WindowAnalyzer,
        record: ReleaseRecord,
        approver: Approver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        verify_timeout_s: float = VERIFY_WEIGHT_TIMEOUT_S,
        warmup_s: Callable[[], float] | None = None,
        first_scrape: FirstScrape | None = None,
    ):
        self.plan = plan
        self.platform = platform
        self.analyzer = analyzer
        self.record = record
        self.approver = approver or AutoApprover()
        self.sleep = sleep
        self.verify_timeout_s = verify_timeout_s
        self.warmup_s = warmup_s
        self.first_scrape = first_scrape
        self.baseline = runs_baseline(platform, plan.analysis.baseline == "fresh")

    def run(self, artifact: Artifact) -> ReleaseResult:
        exposure = TrafficExposure(
            self.plan,
            self.platform,
            artifact,
            self.record,
            self.sleep,
            self.verify_timeout_s,
            self.baseline,
            self.warmup_s,
            self.first_scrape,
        )
        engine = ProgressionEngine(
            exposure,
            traffic_steps(self.plan),
            self.analyzer,
            self.record,
            Rules.of(self.plan),
            self.approver,
        )
        return engine.run()


def plan_release(
    plan: ReleasePlan,
    platform: Platform,
    metrics: MetricSource,
    record: ReleaseRecord,
    approver: Approver | None = None,
    wait_for_first_scrape: bool = False,
) -> ReleaseEngine:
    """A plan's release wired to its parts, the same on every platform: the plan's gates on
    ``metrics`` (against the fresh baseline where one runs), the canary's log and liveness from
    ``platform``, the warm-up from the analysis. ``wait_for_first_scrape``: where Prometheus
    discovers a new pod on its own (a cluster; the local stack waits for it as it deploys),
    the first traffic step waits for a fresh baseline's first scrape as the workflow's analyze
    pod does (``release.first_scrape``), and a baseline never scraped refuses the first
    window (an ERROR: rollback)."""
    baseline = runs_baseline(platform, plan.analysis.baseline == "fresh")
    subject = plan_subject(plan, baseline=baseline)
    analysis = AnalysisRun(
        plan.analysis,
        metrics,
        plan.service.name,
        plan.service.namespace,
        logs=log_source(platform),
        subject=subject,
        windows=len(plan.traffic_steps),
        carry_evidence=True,  # one process for the whole release: one test per gate
    )
    # A platform whose routes need tending while a window runs says so (Kubernetes:
    # ``follow_stable``); the local platform's routes do not change under it.
    upkeep = getattr(platform, "follow_stable", None)
    first_scrape = None
    if wait_for_first_scrape and baseline:

        def announce(patience: float) -> None:
            record.add(EventKind.BASELINE_WAIT, patience=patience)

        first_scrape = FirstScrape(analysis, announce=announce)
    windows = AnalysisWindows(
        analysis, liveness=platform.wait_healthy, upkeep=upkeep, first_scrape=first_scrape
    )
    return ReleaseEngine(
        plan,
        platform,
        windows,
        record,
        approver,
        warmup_s=analysis.warmup_s,
        first_scrape=first_scrape,
    )
