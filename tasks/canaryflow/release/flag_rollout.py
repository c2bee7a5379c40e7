"""A flag rollout: widen a feature flag's audience step by step, each step judged by the gates.

The one ``ProgressionEngine`` walks it, with the flag document in the router's place: a step
writes the segment's rule into the document and waits until the service serves it, then an
analysis window compares flag-on with flag-off requests. The plan's rules apply as they do to a
traffic release (``onInconclusive``, ``promotion.auto``). Anything but a passing window (a
failing gate, an error, a document never applied, Ctrl-C or SIGTERM) writes the flag back to
"off" at once, keeping the document it replaces; only an unbroken run of passing windows
switches everyone on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from canaryflow.errors import CanaryflowError
from canaryflow.flags.applied import DocumentApplication, FlagNotApplied
from canaryflow.flags.document import Everyone, Nobody, Segment, segment_document, with_flag
from canaryflow.flags.spec import FlagRolloutSpec
from canaryflow.flags.store import FlagStore
from canaryflow.release.decision import DEFAULT_RULES, Rules
from canaryflow.release.events import EventKind
from canaryflow.release.progression import (
    Approver,
    NobodyApprover,
    ProgressionEngine,
    ReleaseResult,
    Step,
    WindowAnalyzer,
)
from canaryflow.release.record import ReleaseRecord


def flag_steps(spec: FlagRolloutSpec) -> list[Step]:
    return [
        Step(segment, step.duration, {"segment": str(segment)}, f" ({segment})")
        for step, segment in zip(spec.steps, spec.segments(), strict=True)
    ]


@dataclass
class FlagExposure:
    """Exposes a feature by the audience its flag document serves it to."""

    spec: FlagRolloutSpec
    store: FlagStore
    record: ReleaseRecord
    application: DocumentApplication
    reached: bool = field(default=False, init=False)
    finish_failure = "switching everyone on failed"

    def prepare(self) -> None:
        self.record.add(
            EventKind.FLAG_FOUND, store=self.store.describe(), document=self.store.read()
        )

    def expose(self, index: int | None, target: Segment) -> None:
        self.reached = True
        digest = self._write(target)
        self.record.add(EventKind.FLAG_WRITTEN, step=index, segment=str(target), digest=digest)
        seconds = self.application.wait(digest)
        self.record.add(EventKind.FLAG_APPLIED, step=index, segment=str(target), after_s=seconds)

    @property
    def identity(self) -> dict[str, str]:
        return {"flag": self.spec.key}

    def _write(self, segment: Segment) -> str:
        flag = segment_document(self.spec.key, segment, self.spec.variants.variants())
        return self.store.update(lambda document: with_flag(document, self.spec.key, flag))

    def finish(self) -> None:
        self.expose(None, Everyone())

    def withdraw(self, reason: str, interrupted: bool) -> None:
        """The flag back to "off" for everyone; the document it replaces is kept."""
        try:
            digest = self._write(Nobody())
        except (CanaryflowError, OSError) as error:
            self.record.add(EventKind.ROLLBACK_ERROR, stage="flag", error=str(error))
            raise
        self.record.add(EventKind.FLAG_OFF, store=self.store.describe(), digest=digest)
        if not interrupted and self.application.confirms:
            self._confirm_off(digest)

    def _confirm_off(self, digest: str) -> None:
        """Record when the service stopped serving the feature; the write already happened."""
        try:
            self.record.add(EventKind.FLAG_OFF_APPLIED, after_s=self.application.wait(digest))
        except FlagNotApplied as error:
            self.record.add(EventKind.FLAG_OFF_UNCONFIRMED, error=str(error))


class FlagRollout:
    """A plan's flag rollout through one flag store.

    ``approver`` answers holds and a ``promotion.auto: false``; a flag rollout runs as one
    task with nobody to ask, so by default a hold is a refusal and ends flag-off.
    """

    def __init__(
        self,
        spec: FlagRolloutSpec,
        store: FlagStore,
        analyzer: WindowAnalyzer,
        record: ReleaseRecord,
        application: DocumentApplication,
        rules: Rules = DEFAULT_RULES,
        approver: Approver | None = None,
    ):
        self.spec = spec
        self.analyzer = analyzer
        self.record = record
        self.exposure = FlagExposure(spec, store, record, application)
        self.rules = rules
        self.approver = approver or NobodyApprover()

    def run(self) -> ReleaseResult:
        steps = flag_steps(self.spec)
        engine = ProgressionEngine(
            self.exposure, steps, self.analyzer, self.record, self.rules, self.approver
        )
        return engine.run()
