"""The release driver: canary up, health gate, weighted steps under analysis, then the end.

Decisions come from ``canaryflow.release.decision``; all I/O goes through the ``Platform`` and
``WindowAnalyzer`` protocols, so the local and Kubernetes platforms run the same release.
Whatever goes wrong once traffic may have reached the canary (a failing gate, a platform
error, a crash, Ctrl-C) ends with all traffic on stable: rollback is the ``finally`` of a
release, promotion only its last step on an unbroken run of passing windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from canaryflow.analysis.measurement import Measurement, Outcome
from canaryflow.errors import CanaryflowError, PlatformError
from canaryflow.plan.model import ReleasePlan, StepSpec
from canaryflow.platform.protocol import Artifact, HeaderRoute, Platform
from canaryflow.release.decision import Action, Phase, after_hold, after_window, final_phase
from canaryflow.release.record import ReleaseRecord

VERIFY_TIMEOUT_S = 10.0


class WindowOutcome(Protocol):
    verdict: Outcome
    reason: str


class WindowAnalyzer(Protocol):
    """Runs the plan's gates for one window; stops at the first deciding breach."""

    def run_window(
        self, duration_s: float, on_round: Callable[[list[Measurement]], None]
    ) -> WindowOutcome: ...


class Approver(Protocol):
    def approve(self, message: str, timeout_s: float | None) -> bool: ...


class AutoApprover:
    """Says yes: for demos and tests that have no person at hand."""

    def approve(self, message: str, timeout_s: float | None) -> bool:
        return True


@dataclass(frozen=True)
class ReleaseResult:
    phase: Phase
    reason: str
    record: ReleaseRecord


class _Abort(Exception):
    """Leave the step loop for the rollback branch, with the reason why."""


class ReleaseEngine:
    def __init__(
        self,
        plan: ReleasePlan,
        platform: Platform,
        analyzer: WindowAnalyzer,
        record: ReleaseRecord,
        approver: Approver | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.plan = plan
        self.platform = platform
        self.analyzer = analyzer
        self.record = record
        self.approver = approver or AutoApprover()
        self.sleep = sleep
        self._windows: list[Outcome] = []
        self._approvals: list[bool] = []
        self._traffic_reached = False

    def run(self, artifact: Artifact) -> ReleaseResult:
        self.record.add("started", version=artifact.version, steps=len(self.plan.steps))
        try:
            self._deploy(artifact)
            self._header_route()
            for index, step in enumerate(self.plan.steps):
                self._step(index, step)
            self._confirm_promotion()
        except _Abort as abort:
            return self._roll_back(str(abort))
        except (CanaryflowError, OSError) as error:
            return self._roll_back(f"{type(error).__name__}: {error}")
        except BaseException as error:  # Ctrl-C, or a bug: never leave traffic on the canary
            self._roll_back(f"interrupted: {type(error).__name__}: {error}")
            raise
        return self._promote(artifact)

    def _deploy(self, artifact: Artifact) -> None:
        self.platform.deploy_canary(artifact)
        self.record.add("canary-deployed", version=artifact.version, image=artifact.image)
        health = self.platform.wait_healthy(self.plan.service.health_timeout)
        self.record.add("health", healthy=health.healthy, detail=health.detail)
        if not health.healthy:
            raise _Abort(f"canary never became healthy: {health.detail}")

    def _header_route(self) -> None:
        header = self.plan.router.header
        if header is None:
            return
        self._traffic_reached = True
        self.platform.router.set_header_route(HeaderRoute(header.name, header.value))
        self.record.add("header-route", header=header.name, value=header.value)

    def _step(self, index: int, step: StepSpec) -> None:
        if step.approve is not None:
            self._ask(index, step.approve.message, step.approve.timeout)
            return
        assert step.weight is not None and step.duration is not None
        self._set_weight(index, step.weight)
        self.record.add("window-started", step=index, weight=step.weight, duration=step.duration)
        window = self.analyzer.run_window(step.duration, self._on_round(index))
        self._windows.append(window.verdict)
        self.record.add("window-ended", step=index, verdict=window.verdict, reason=window.reason)
        action = after_window(window.verdict, self.plan.rollback.on_inconclusive)
        if action is Action.HOLD:
            action = self._ask(index, f"step {index} inconclusive: {window.reason}", None)
            # A person vouched for this window: it counts as passed, and says so in the record.
            self._windows[-1] = Outcome.PASS
        if action is Action.ROLLBACK:
            raise _Abort(f"step {index} at {step.weight}%: {window.verdict}: {window.reason}")

    def _set_weight(self, index: int, weight: int) -> None:
        self._traffic_reached = True
        router = self.platform.router
        router.set_weight(weight)
        self.record.add("weight-set", step=index, weight=weight)
        self._verify(weight)
        self.record.add("weight-verified", step=index, weight=weight)

    def _verify(self, weight: int) -> None:
        deadline = time.monotonic() + VERIFY_TIMEOUT_S
        while not self.platform.router.verify_weight(weight):
            if time.monotonic() > deadline:
                raise PlatformError(f"router did not apply weight {weight}% within 10s")
            self.sleep(0.1)

    def _on_round(self, index: int) -> Callable[[list[Measurement]], None]:
        def on_round(measurements: list[Measurement]) -> None:
            self.record.add("measurements", step=index, items=[m.to_dict() for m in measurements])

        return on_round

    def _ask(self, index: int, message: str, timeout_s: float | None) -> Action:
        self.record.add("approval-requested", step=index, message=message)
        approved = self.approver.approve(message, timeout_s)
        self._approvals.append(approved)
        self.record.add("approval", step=index, approved=approved)
        action = after_hold(approved)
        if action is Action.ROLLBACK:
            raise _Abort(f"step {index}: approval refused or timed out")
        return action

    def _confirm_promotion(self) -> None:
        if not self.plan.promotion.auto:
            self._ask(len(self.plan.steps), "promote?", None)

    def _promote(self, artifact: Artifact) -> ReleaseResult:
        phase = final_phase(self._windows, self._approvals, self._traffic_reached)
        if phase is not Phase.PROMOTED:  # defensive: the loop above should have aborted
            return self._roll_back("not every window passed")
        try:
            self.record.add("promoting", version=artifact.version)
            self.platform.promote(artifact)
        except (CanaryflowError, OSError) as error:
            return self._roll_back(f"promotion failed: {error}")
        self.record.add("promoted", version=artifact.version)
        return ReleaseResult(Phase.PROMOTED, "every window passed", self.record)

    def _roll_back(self, reason: str) -> ReleaseResult:
        """Traffic to stable first (verified), then the canary goes; stable is not touched."""
        self.record.add("rollback-started", reason=reason)
        try:
            self.platform.router.set_weight(0)
            self._verify(0)
            self.record.add("traffic-safe", weight=0)
        except (CanaryflowError, OSError) as error:
            self.record.add("rollback-error", stage="weight", error=str(error))
        try:
            self.platform.rollback()
        except (CanaryflowError, OSError) as error:
            self.record.add("rollback-error", stage="canary", error=str(error))
            raise PlatformError(f"rollback incomplete: {error} (after: {reason})") from error
        phase = Phase.ROLLED_BACK if self._traffic_reached else Phase.FAILED
        self.record.add("rolled-back", phase=phase, reason=reason)
        return ReleaseResult(phase, reason, self.record)
