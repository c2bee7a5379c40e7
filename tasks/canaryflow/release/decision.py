"""What a release does after each window: continue, hold for a person, or roll back.

Pure logic, no I/O, so the rules are read (and property-tested) in one place:
a window that did not pass never leads to promotion, and missing data is never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from canaryflow.analysis.measurement import Outcome
from canaryflow.plan.model import ReleasePlan


class Action(StrEnum):
    CONTINUE = "continue"
    HOLD = "hold"
    ROLLBACK = "rollback"


class Phase(StrEnum):
    """Where a release ended."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"  # something broke before any traffic reached the canary


@dataclass(frozen=True)
class Rules:
    """The plan's rules for every progression, traffic or flag alike."""

    on_inconclusive: Literal["rollback", "hold"] = "rollback"
    auto_promote: bool = True

    @classmethod
    def of(cls, plan: ReleasePlan) -> Rules:
        return cls(plan.rollback.on_inconclusive, plan.promotion.auto)


DEFAULT_RULES = Rules()
"""Roll back an inconclusive window; promote without asking: the plan's own defaults."""


def after_window(verdict: Outcome, on_inconclusive: str) -> Action:
    """The next action once a step's analysis window has its verdict.

    A window still collecting data when it ended, or with no gate that could judge it, is
    inconclusive: maturity that never came is not a pass.
    """
    if verdict in (Outcome.COLLECTING, Outcome.NOT_APPLICABLE):
        verdict = Outcome.INCONCLUSIVE
    if verdict is Outcome.PASS:
        return Action.CONTINUE
    if verdict is Outcome.INCONCLUSIVE and on_inconclusive == "hold":
        return Action.HOLD
    return Action.ROLLBACK


def after_hold(approved: bool) -> Action:
    """A held release goes on only with a person's explicit yes."""
    return Action.CONTINUE if approved else Action.ROLLBACK


def final_phase(windows: list[Outcome], approvals: list[bool], traffic_reached: bool) -> Phase:
    """Promoted only when every window passed and every approval said yes."""
    if windows and all(v is Outcome.PASS for v in windows) and all(approvals):
        return Phase.PROMOTED
    return Phase.ROLLED_BACK if traffic_reached else Phase.FAILED
