"""How a step's traffic is shared between stable, a fresh baseline and the canary. Pure.

A fresh baseline is a copy of stable's version started with the canary, as many instances as
the canary, so that the canary is judged against something of its own age and size (Kayenta /
Netflix ACA: "compare the canary with a fresh baseline of the old version, not with the
long-running stable: warm caches and heap differences otherwise dominate"). Spinnaker's ACA runs
baseline and canary at the same small share, and so does this rule:

- the baseline gets the canary's share while stable keeps at least as much as each of them
  (``canary <= 33``: ``baseline == canary``, ``stable = 100 - 2 x canary >= canary``);
- above that, baseline and stable share what the canary leaves, the baseline never more than
  half of it (rounded down), so the baseline, which has only the canary's few instances, never
  carries more per instance than the canary, and stable, sized for the whole service, keeps the
  rest;
- at 0 % and at 100 % there is no baseline traffic (nothing to compare, or nothing left).

Above a third, the baseline's share is below the canary's; the evidence is per request (rates,
ratios), so a share difference changes how fast a test decides, not what it compares.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """Percentages of requests per track; they always add up to 100."""

    canary: int
    baseline: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.canary <= 100 or not 0 <= self.baseline <= 100 - self.canary:
            raise ValueError(
                f"split canary {self.canary}% baseline {self.baseline}%: each 0..100, "
                "together at most 100"
            )

    @property
    def stable(self) -> int:
        return 100 - self.canary - self.baseline

    def text(self) -> str:
        if not self.baseline:
            return f"{self.canary}%"
        return f"{self.canary}% (baseline {self.baseline}%, stable {self.stable}%)"


def split_for(canary_percent: int, fresh_baseline: bool) -> Split:
    """The three-way split of a step at ``canary_percent`` (see the module's rule)."""
    if not fresh_baseline:
        return Split(canary_percent)
    return Split(canary_percent, min(canary_percent, (100 - canary_percent) // 2))
