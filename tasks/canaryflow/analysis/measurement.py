"""What one gate measured once, and why it judged so: the evidence people read after a release.

Argo Rollouts users ask why an analysis failed (AR #2276); every measurement here carries the
rendered queries, both tracks' values, the limit and a one-line reason, and is plain JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    COLLECTING = "collecting"
    """Not enough data yet to pass or fail: a young canary, not evidence against it."""
    NOT_APPLICABLE = "not-applicable"
    """The service exports no series for this gate, or (at a 100 % step) there is no stable
    traffic to compare with: the gate has nothing to judge and never counts."""


_SEVERITY = {
    Outcome.NOT_APPLICABLE: -2,
    Outcome.COLLECTING: -1,
    Outcome.PASS: 0,
    Outcome.INCONCLUSIVE: 1,
    Outcome.ERROR: 2,
    Outcome.FAIL: 3,
}


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    """The outcome that wins when gates are combined: FAIL > ERROR > INCONCLUSIVE > PASS.

    Gates that are collecting or not applicable never decide; ``judge_window`` leaves them out.
    """
    return max(outcomes, key=_SEVERITY.__getitem__, default=Outcome.INCONCLUSIVE)


@dataclass(frozen=True)
class Evidence:
    """The numbers behind a judgement. ``None`` means not measured (or not a number)."""

    limit: str
    queries: Mapping[str, str] = field(default_factory=dict)
    canary: float | None = None
    stable: float | None = None
    detail: Mapping[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    """What a pure gate evaluator concludes from values: the outcome and its reason."""

    outcome: Outcome
    reason: str
    canary: float | None = None
    stable: float | None = None
    detail: Mapping[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurement:
    """One gate, one round: outcome, reason, timing and evidence."""

    gate: str
    round: int
    outcome: Outcome
    reason: str
    started: float
    finished: float
    evidence: Evidence
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["evidence"]["canary"] = _json_number(self.evidence.canary)
        data["evidence"]["stable"] = _json_number(self.evidence.stable)
        data["evidence"]["queries"] = dict(self.evidence.queries)
        data["evidence"]["detail"] = {
            k: _json_number(v) if isinstance(v, float) else v
            for k, v in self.evidence.detail.items()
        }
        return data


def _json_number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity; they are kept as Prometheus spells them."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
