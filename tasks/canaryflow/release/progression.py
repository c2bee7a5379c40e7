"""The one progression engine: a change reaches users step by step, each step judged.

Traffic weight steps (``canaryflow.release.engine``) and flag exposure steps
(``canaryflow.release.flag_rollout``) are the same walk, as in Flagger's ``advanceCanary``:
prepare, then for each step either ask a person or *expose* the step and judge an analysis
window, then *finish*. What differs is behind the small ``Exposure`` protocol; the rules
(``onInconclusive``, approvals, promotion only on an unbroken run of passes) come from
``canaryflow.release.decision`` and hold for every exposure alike.

Whatever goes wrong once users may have been exposed (a failing gate, a platform error, a crash,
Ctrl-C) ends in ``withdraw``: rollback is the ``finally`` of a progression, finishing only its
last step. Every decision goes into one ``ReleaseRecord``; a window an infrastructure fault
cuts short still ends in it (``window-ended``, verdict ``error``, the fault named) before the
rollback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from canaryflow.analysis.measurement import Measurement, Outcome
from canaryflow.errors import CanaryflowError
from canaryflow.release.decision import (
    DEFAULT_RULES,
    Action,
    Phase,
    Rules,
    after_hold,
    after_window,
    final_phase,
)
from canaryflow.release.events import EventKind
from canaryflow.release.record import ReleaseRecord


class WindowOutcome(Protocol):
    verdict: Outcome
    reason: str


class WindowAnalyzer(Protocol):
    """Runs the plan's gates for one window; stops at the first deciding breach."""

    def run_window(
        self, duration_s: float, on_round: Callable[[list[Measurement]], None]
    ) -> WindowOutcome: ...


@dataclass(frozen=True)
class CutWindow:
    """A window that ended without a verdict of its own (``cut_window``)."""

    verdict: Outcome
    reason: str


def cut_window(error: BaseException) -> CutWindow:
    """A window cut by an infrastructure fault: ERROR, the verdict of missing data (a
    rollback under every ``onInconclusive``, never a pass), with a reason naming the fault."""
    return CutWindow(Outcome.ERROR, f"window cut by {type(error).__name__}: {error}")


class Approver(Protocol):
    def approve(self, message: str, timeout_s: float | None) -> bool: ...


class AutoApprover:
    """Says yes: for demos and tests that have no person at hand."""

    def approve(self, message: str, timeout_s: float | None) -> bool:
        return True


class NobodyApprover:
    """Says no: where no person can be asked, a hold is a refusal and so a rollback."""

    def approve(self, message: str, timeout_s: float | None) -> bool:
        return False


@dataclass(frozen=True)
class Step:
    """One step: expose ``target`` for a judged window of ``duration_s``, or ask ``approve``."""

    target: Any = None
    """What the exposure widens to: a traffic weight, a flag segment."""
    duration_s: float | None = None
    describe: Mapping[str, Any] = field(default_factory=dict)
    """How the record names the step (``weight=5``, ``segment="5% of users"``)."""
    label: str = ""
    """How a rollback reason names it (``" at 5%"``, ``" (5% of users)"``)."""
    approve: str | None = None
    approve_timeout_s: float | None = None


class Exposure(Protocol):
    """How a change reaches users; the engine decides when, the exposure does it."""

    identity: Mapping[str, Any]
    """What the record's ``started`` and ``promoted`` events name (a version, a flag)."""
    finish_failure: str
    """How a rollback reason names a failed ``finish``."""
    reached: bool
    """True once users may have been exposed: a rollback then, not merely a failure."""

    def prepare(self) -> None:
        """Everything before the first step (deploy and health-gate a canary); may abort."""

    def expose(self, index: int, target: Any) -> None:
        """Widen the exposure to ``target`` and return once it is in force."""

    def finish(self) -> None:
        """Everyone on the change (promote the canary, the flag on for everyone)."""

    def withdraw(self, reason: str, interrupted: bool) -> None:
        """Everyone back on the known-good state; ``interrupted``: do not wait to confirm."""


class Abort(Exception):
    """Leave the step loop for the rollback branch, with the reason why."""


@dataclass(frozen=True)
class ReleaseResult:
    phase: Phase
    reason: str
    record: ReleaseRecord


class ProgressionEngine:
    def __init__(
        self,
        exposure: Exposure,
        steps: Sequence[Step],
        analyzer: WindowAnalyzer,
        record: ReleaseRecord,
        rules: Rules = DEFAULT_RULES,
        approver: Approver | None = None,
    ):
        self.exposure = exposure
        self.steps = list(steps)
        self.analyzer = analyzer
        self.record = record
        self.rules = rules
        self.approver = approver or AutoApprover()
        self._windows: list[Outcome] = []
        self._approvals: list[bool] = []

    def run(self) -> ReleaseResult:
        self.record.add(EventKind.STARTED, **self.exposure.identity, steps=len(self.steps))
        try:
            self.exposure.prepare()
            for index, step in enumerate(self.steps):
                self._step(index, step)
            if not self.rules.auto_promote:
                self._ask(len(self.steps), "promote?", None)
        except Abort as abort:
            return self._roll_back(str(abort))
        except (CanaryflowError, OSError) as error:
            return self._roll_back(f"{type(error).__name__}: {error}")
        except BaseException as error:  # Ctrl-C, SIGTERM or a bug: never leave users exposed
            self._roll_back(f"interrupted: {type(error).__name__}: {error}", interrupted=True)
            raise
        return self._finish()

    def _step(self, index: int, step: Step) -> None:
        if step.approve is not None:
            self._ask(index, step.approve, step.approve_timeout_s)
            return
        assert step.duration_s is not None
        self.exposure.expose(index, step.target)
        self.record.add(
            EventKind.WINDOW_STARTED, step=index, **step.describe, duration=step.duration_s
        )
        window = self._window(index, step.duration_s)
        self._windows.append(window.verdict)
        self.record.add(
            EventKind.WINDOW_ENDED, step=index, verdict=window.verdict, reason=window.reason
        )
        action = after_window(window.verdict, self.rules.on_inconclusive)
        if action is Action.HOLD:
            action = self._ask(index, f"step {index} inconclusive: {window.reason}", None)
            # A person vouched for this window: it counts as passed, and says so in the record.
            self._windows[-1] = Outcome.PASS
        if action is Action.ROLLBACK:
            raise Abort(f"step {index}{step.label}: {window.verdict}: {window.reason}")

    def _window(self, index: int, duration_s: float) -> WindowOutcome:
        """The step's window; one an infrastructure fault cut short (the platform or its API
        failing, a refused or reset connection) still ends, as an ERROR, so the record says
        what happened to the step before the rollback."""
        try:
            return self.analyzer.run_window(duration_s, self._on_round(index))
        except (CanaryflowError, OSError) as error:
            return cut_window(error)

    def _on_round(self, index: int) -> Callable[[list[Measurement]], None]:
        def on_round(measurements: list[Measurement]) -> None:
            self.record.add(
                EventKind.MEASUREMENTS, step=index, items=[m.to_dict() for m in measurements]
            )

        return on_round

    def _ask(self, index: int, message: str, timeout_s: float | None) -> Action:
        self.record.add(EventKind.APPROVAL_REQUESTED, step=index, message=message)
        approved = self.approver.approve(message, timeout_s)
        self._approvals.append(approved)
        self.record.add(EventKind.APPROVAL, step=index, approved=approved)
        action = after_hold(approved)
        if action is Action.ROLLBACK:
            raise Abort(f"step {index}: approval refused or timed out")
        return action

    def _finish(self) -> ReleaseResult:
        phase = final_phase(self._windows, self._approvals, self.exposure.reached)
        if phase is not Phase.PROMOTED:  # defensive: the loop above should have aborted
            return self._roll_back("not every window passed")
        try:
            self.exposure.finish()
        except (CanaryflowError, OSError) as error:
            return self._roll_back(f"{self.exposure.finish_failure}: {error}")
        self.record.add(EventKind.PROMOTED, **self.exposure.identity)
        return ReleaseResult(Phase.PROMOTED, "every window passed", self.record)

    def _roll_back(self, reason: str, interrupted: bool = False) -> ReleaseResult:
        self.record.add(EventKind.ROLLBACK_STARTED, reason=reason)
        self.exposure.withdraw(reason, interrupted)
        phase = Phase.ROLLED_BACK if self.exposure.reached else Phase.FAILED
        self.record.add(EventKind.ROLLED_BACK, phase=phase, reason=reason)
        return ReleaseResult(phase, reason, self.record)
