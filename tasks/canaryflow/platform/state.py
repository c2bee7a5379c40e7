"""Where a release stands, recorded in annotations on the canary Deployment.

Each workflow step runs in its own pod, so the state must live in the cluster: a re-run reads it
back and knows whether the canary is deployed, how much traffic it takes, and which version it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

PREFIX = "canaryflow.dev/"
PHASE, WEIGHT, VERSION, UPDATED_AT = (
    f"{PREFIX}phase",
    f"{PREFIX}weight",
    f"{PREFIX}version",
    f"{PREFIX}updated-at",
)


class Phase(StrEnum):
    DEPLOYED = "Deployed"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    PROGRESSING = "Progressing"
    PROMOTING = "Promoting"
    PROMOTION_FAILED = "PromotionFailed"
    """Stable put back as recorded before the promotion, the canary at weight 0."""
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    """Traffic on stable and the canary scaled to zero, kept for inspection (scale-to-zero)."""


@dataclass(frozen=True)
class ReleaseState:
    phase: Phase
    weight: int
    version: str
    updated_at: str

    @classmethod
    def now(cls, phase: Phase, weight: int, version: str) -> ReleaseState:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(phase, weight, version, stamp)

    def annotations(self) -> dict[str, str]:
        return {
            PHASE: str(self.phase),
            WEIGHT: str(self.weight),
            VERSION: self.version,
            UPDATED_AT: self.updated_at,
        }

    @classmethod
    def from_annotations(cls, annotations: dict[str, str]) -> ReleaseState | None:
        """None when the annotations carry no (or an unreadable) release state."""
        try:
            return cls(
                Phase(annotations[PHASE]),
                int(annotations[WEIGHT]),
                annotations[VERSION],
                annotations[UPDATED_AT],
            )
        except (KeyError, ValueError):
            return None
