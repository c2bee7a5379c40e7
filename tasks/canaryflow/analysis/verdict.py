"""From measurements to a window's verdict: Argo Rollouts' limits, decided at the first breach.

Per deciding gate: more failures than ``failureLimit`` is FAIL, more errors in a row than
``consecutiveErrorLimit`` is ERROR, more inconclusive measurements than ``inconclusiveLimit``
is INCONCLUSIVE, and any of these ends the window in the round it happens. When the window
runs out, a gate's *last state* decides: its last PASS, COLLECTING or NOT APPLICABLE
measurement (FAIL, INCONCLUSIVE and ERROR are events counted against the limits above, and a
tolerated one does not change the state). So a gate is not applicable once that is
established, whatever an earlier round said while Prometheus had not yet scraped anything; it
passes only if its last state is a PASS (positive evidence now, not a pass some rounds ago);
and a gate still collecting at the end is inconclusive. A gate whose every measurement errored
never passes (Argo Rollouts #4479), nor does one never measured. dryRun gates never decide.
Gates combine worst-first: FAIL > ERROR > INCONCLUSIVE > PASS.

Maturity is not evidence: a COLLECTING measurement (too few requests yet) counts against no
limit, and only a window that *ends* still collecting is inconclusive (``still_collecting``
says so, as it does of a window in which no gate could judge yet, so a window may extend
itself, ``analysis.maxExtension``). A gate NOT
APPLICABLE at the end (the service exports no such series, or only one track does; no stable
traffic to compare with at a 100 % step) is named once in the reason and left out; a window in
which no gate could judge at all is inconclusive, never a pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from canaryflow.analysis.measurement import Measurement, Outcome, worst
from canaryflow.analysis.spec import AnalysisSpec


@dataclass(frozen=True)
class Limits:
    failure_limit: int = 0
    consecutive_error_limit: int = 2
    inconclusive_limit: int = 3

    @classmethod
    def of(cls, spec: AnalysisSpec) -> Limits:
        return cls(spec.failure_limit, spec.consecutive_error_limit, spec.inconclusive_limit)


@dataclass(frozen=True)
class GateVerdict:
    gate: str
    outcome: Outcome
    reason: str
    breached: bool
    passes: int = 0
    failures: int = 0
    errors: int = 0
    inconclusives: int = 0
    collecting: int = 0
    not_applicable: int = 0
    still_collecting: bool = False
    """The window ended while this gate was still collecting data (its last state)."""


@dataclass(frozen=True)
class WindowVerdict:
    """The window's outcome; ``decided`` once a limit breached or the window is over."""

    outcome: Outcome
    decided: bool
    reason: str
    gates: tuple[GateVerdict, ...]
    decided_in_round: int | None = None
    """The round whose measurements breached a limit, if one did."""

    @property
    def still_collecting(self) -> bool:
        """Inconclusive only because deciding gates are still collecting data: more time (a
        longer window, more traffic) could decide it; nothing failed, errored or breached."""
        if self.outcome is not Outcome.INCONCLUSIVE or self.decided_in_round is not None:
            return False
        judging = [g for g in self.gates if g.outcome is not Outcome.NOT_APPLICABLE]
        if not judging:  # no gate could judge yet: a young canary's series may still come
            return bool(self.gates)
        waiting = [g for g in judging if g.outcome is not Outcome.PASS]
        return bool(waiting) and all(g.still_collecting for g in waiting)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        for gate in data["gates"]:
            gate["outcome"] = gate["outcome"].value
        return data


@dataclass
class _Tally:
    gate: str
    limits: Limits
    passes: int = 0
    failures: int = 0
    errors: int = 0
    inconclusives: int = 0
    collecting: int = 0
    not_applicable: int = 0
    consecutive_errors: int = 0
    breach: Outcome | None = None
    last_reason: str = ""
    state: Outcome | None = None
    """The last PASS, COLLECTING or NOT APPLICABLE measured: what the gate says at the end."""
    state_reason: str = ""

    def add(self, measurement: Measurement) -> None:
        self.last_reason = measurement.reason
        outcome = measurement.outcome
        if outcome in _STATES:
            self.state, self.state_reason = outcome, measurement.reason
        self.collecting += outcome is Outcome.COLLECTING
        self.not_applicable += outcome is Outcome.NOT_APPLICABLE
        self.passes += outcome is Outcome.PASS
        self.failures += outcome is Outcome.FAIL
        self.inconclusives += outcome is Outcome.INCONCLUSIVE
        self.errors += outcome is Outcome.ERROR
        self.consecutive_errors = self.consecutive_errors + 1 if outcome is Outcome.ERROR else 0
        if self.breach is None:
            self.breach = self._breach()

    def _breach(self) -> Outcome | None:
        if self.failures > self.limits.failure_limit:
            return Outcome.FAIL
        if self.consecutive_errors > self.limits.consecutive_error_limit:
            return Outcome.ERROR
        if self.inconclusives > self.limits.inconclusive_limit:
            return Outcome.INCONCLUSIVE
        return None

    def verdict(self) -> GateVerdict:
        counts = {
            "passes": self.passes,
            "failures": self.failures,
            "errors": self.errors,
            "inconclusives": self.inconclusives,
            "collecting": self.collecting,
            "not_applicable": self.not_applicable,
        }
        if self.breach is not None:
            return GateVerdict(self.gate, self.breach, self._breach_reason(), True, **counts)
        outcome, reason = self._at_end()
        collecting = outcome is Outcome.INCONCLUSIVE and self.state is Outcome.COLLECTING
        return GateVerdict(self.gate, outcome, reason, False, **counts, still_collecting=collecting)

    def _breach_reason(self) -> str:
        limits = self.limits
        why = {
            Outcome.FAIL: f"{self.failures} failed (failureLimit {limits.failure_limit})",
            Outcome.ERROR: f"{self.consecutive_errors} errors in a row "
            f"(consecutiveErrorLimit {limits.consecutive_error_limit})",
            Outcome.INCONCLUSIVE: f"{self.inconclusives} inconclusive "
            f"(inconclusiveLimit {limits.inconclusive_limit})",
        }[self.breach]
        return f"{self.gate}: {why}: {self.last_reason}"

    def _at_end(self) -> tuple[Outcome, str]:
        judged = self.passes + self.failures + self.errors + self.inconclusives
        measured = judged + self.collecting + self.not_applicable
        if not measured:
            return Outcome.INCONCLUSIVE, f"{self.gate}: never measured"
        if self.state is Outcome.PASS:
            return Outcome.PASS, f"{self.gate}: passed {self.passes} of {measured}"
        if self.state is Outcome.NOT_APPLICABLE:
            return Outcome.NOT_APPLICABLE, f"{self.gate}: not applicable: {self.state_reason}"
        if self.state is Outcome.COLLECTING:
            return (
                Outcome.INCONCLUSIVE,
                f"{self.gate}: window ended while still collecting data: {self.state_reason}",
            )
        if self.failures:
            return Outcome.FAIL, f"{self.gate}: no pass, {self.failures} failed: {self.last_reason}"
        if self.errors == measured:
            return Outcome.ERROR, f"{self.gate}: every measurement errored: {self.last_reason}"
        return Outcome.INCONCLUSIVE, f"{self.gate}: no pass in {measured}: {self.last_reason}"


_STATES = frozenset({Outcome.PASS, Outcome.COLLECTING, Outcome.NOT_APPLICABLE})
"""Outcomes that say where a gate stands; the others are events counted against limits."""


def judge_window(
    measurements: Iterable[Measurement],
    deciding_gates: Sequence[str],
    limits: Limits,
    window_over: bool,
) -> WindowVerdict:
    """The verdict of a window so far (``window_over=False``) or in the end.

    Measurements are read round by round; the first round in which any gate breaches a limit
    decides, and later measurements do not change that verdict.
    """
    tallies = {gate: _Tally(gate, limits) for gate in deciding_gates}
    decided_in: int | None = None
    for round_no, batch in _rounds(measurements):
        for measurement in batch:
            tally = tallies.get(measurement.gate)
            if tally is not None and not measurement.dry_run:
                tally.add(measurement)
        if any(t.breach is not None for t in tallies.values()):
            decided_in = round_no
            break
    verdicts = tuple(t.verdict() for t in tallies.values())
    if decided_in is not None:
        breached = [v for v in verdicts if v.breached]
        outcome = worst(v.outcome for v in breached)
        reason = "; ".join(v.reason for v in breached if v.outcome is outcome)
        return WindowVerdict(outcome, True, reason, verdicts, decided_in)
    judging = [v for v in verdicts if v.outcome is not Outcome.NOT_APPLICABLE]
    outcome = worst(v.outcome for v in judging)
    if not judging:
        reason = "no gate could judge this window"
    elif outcome is Outcome.PASS:
        reason = f"all {len(judging)} gates passed"
    else:
        reason = "; ".join(v.reason for v in judging if v.outcome is outcome)
    skipped = [v.reason for v in verdicts if v.outcome is Outcome.NOT_APPLICABLE]
    if skipped:
        reason += " (" + "; ".join(skipped) + ")"
    return WindowVerdict(outcome, window_over, reason, verdicts)


def _rounds(measurements: Iterable[Measurement]) -> list[tuple[int, list[Measurement]]]:
    grouped: dict[int, list[Measurement]] = {}
    for measurement in measurements:
        grouped.setdefault(measurement.round, []).append(measurement)
    return sorted(grouped.items())
