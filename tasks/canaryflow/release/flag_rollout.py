"""A flag rollout: widen a feature flag's audience step by step, each step judged by the gates.

The same shape as the traffic release (``canaryflow.release.engine``), with the flag document
in the router's place: a step writes the segment's rule into the document, waits until the
service serves it, then an analysis window compares flag-on with flag-off requests. Anything
but a passing window (a failing gate, an error, a document never applied, Ctrl-C or SIGTERM)
writes the flag back to "off" at once, keeping the document it replaces; only an unbroken run
of passing windows switches everyone on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from canaryflow.analysis.measurement import Measurement, Outcome
from canaryflow.errors import CanaryflowError
from canaryflow.flags.applied import DocumentApplication, FlagNotApplied
from canaryflow.flags.document import Everyone, Nobody, Segment, segment_document, with_flag
from canaryflow.flags.spec import FlagRolloutSpec, FlagStepSpec
from canaryflow.flags.store import FlagStore
from canaryflow.release.decision import Action, Phase, after_window, final_phase
from canaryflow.release.engine import WindowAnalyzer
from canaryflow.release.record import ReleaseRecord


@dataclass(frozen=True)
class FlagRolloutResult:
    phase: Phase
    reason: str
    record: ReleaseRecord


class _Abort(Exception):
    """Leave the step loop for the rollback branch, with the reason why."""


class FlagRollout:
    def __init__(
        self,
        spec: FlagRolloutSpec,
        store: FlagStore,
        analyzer: WindowAnalyzer,
        record: ReleaseRecord,
        application: DocumentApplication,
    ):
        self.spec = spec
        self.store = store
        self.analyzer = analyzer
        self.record = record
        self.application = application
        self._windows: list[Outcome] = []
        self._exposed = False

    def run(self) -> FlagRolloutResult:
        self.record.add("started", flag=self.spec.key, steps=len(self.spec.steps))
        self.record.add("flag-found", store=self.store.describe(), document=self.store.read())
        try:
            for index, step in enumerate(self.spec.steps):
                self._step(index, step, self.spec.segments()[index])
        except _Abort as abort:
            return self._roll_back(str(abort))
        except (CanaryflowError, OSError) as error:
            return self._roll_back(f"{type(error).__name__}: {error}")
        except BaseException as error:  # Ctrl-C, SIGTERM or a bug: never leave users exposed
            self._roll_back(f"interrupted: {type(error).__name__}: {error}", confirm=False)
            raise
        return self._promote()

    def _step(self, index: int, step: FlagStepSpec, segment: Segment) -> None:
        self._expose(index, segment)
        self.record.add("window-started", step=index, segment=str(segment), duration=step.duration)
        window = self.analyzer.run_window(step.duration, self._on_round(index))
        self._windows.append(window.verdict)
        self.record.add("window-ended", step=index, verdict=window.verdict, reason=window.reason)
        if after_window(window.verdict, "rollback") is Action.ROLLBACK:
            raise _Abort(f"step {index} ({segment}): {window.verdict}: {window.reason}")

    def _expose(self, index: int | None, segment: Segment) -> None:
        self._exposed = True
        digest = self._write(segment)
        self.record.add("flag-written", step=index, segment=str(segment), digest=digest)
        seconds = self.application.wait(digest)
        self.record.add("flag-applied", step=index, segment=str(segment), after_s=seconds)

    def _write(self, segment: Segment) -> str:
        flag = segment_document(self.spec.key, segment, self.spec.variants.variants())
        return self.store.update(lambda document: with_flag(document, self.spec.key, flag))

    def _on_round(self, index: int) -> Callable[[list[Measurement]], None]:
        def on_round(measurements: list[Measurement]) -> None:
            self.record.add("measurements", step=index, items=[m.to_dict() for m in measurements])

        return on_round

    def _promote(self) -> FlagRolloutResult:
        phase = final_phase(self._windows, [], self._exposed)
        if phase is not Phase.PROMOTED:  # defensive: the loop above should have aborted
            return self._roll_back("not every window passed")
        try:
            self._expose(None, Everyone())
        except (CanaryflowError, OSError) as error:
            return self._roll_back(f"switching everyone on failed: {error}")
        self.record.add("promoted", flag=self.spec.key)
        return FlagRolloutResult(Phase.PROMOTED, "every window passed", self.record)

    def _roll_back(self, reason: str, confirm: bool = True) -> FlagRolloutResult:
        """The flag back to "off" for everyone; the document it replaces is kept."""
        self.record.add("rollback-started", reason=reason)
        try:
            digest = self._write(Nobody())
        except (CanaryflowError, OSError) as error:
            self.record.add("rollback-error", stage="flag", error=str(error))
            raise
        self.record.add("flag-off", store=self.store.describe(), digest=digest)
        if confirm and self.application.confirms:
            self._confirm_off(digest)
        phase = Phase.ROLLED_BACK if self._exposed else Phase.FAILED
        self.record.add("rolled-back", phase=phase, reason=reason)
        return FlagRolloutResult(phase, reason, self.record)

    def _confirm_off(self, digest: str) -> None:
        """Record when the service stopped serving the feature; the write already happened."""
        try:
            self.record.add("flag-off-applied", after_s=self.application.wait(digest))
        except FlagNotApplied as error:
            self.record.add("flag-off-unconfirmed", error=str(error))
