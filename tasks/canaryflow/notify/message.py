"""What a release notification says: pure text and JSON, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

_ICONS = {"promoted": ":white_check_mark:", "rolled-back": ":rewind:", "failed": ":x:"}
_STATES = {"promoted": "success", "rolled-back": "failure", "failed": "error", "started": "pending"}


@dataclass(frozen=True)
class ReleaseSummary:
    service: str
    namespace: str
    event: str  # started | step | promoted | rolled-back | failed
    version: str = ""
    reason: str = ""
    workflow: str = ""
    url: str = ""
    failures: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        icon = _ICONS.get(self.event, ":information_source:")
        head = f"{icon} {self.service} {self.version} in {self.namespace}: {self.event}".strip()
        lines = [head.replace("  ", " ")]
        if self.reason:
            lines.append(f"> {self.reason}")
        for failure in self.failures[:5]:
            lines.append(f"• {failure.get('displayName', '?')}: {failure.get('message', '')}")
        if self.workflow:
            lines.append(f"workflow: {self.url or self.workflow}")
        return "\n".join(lines)

    def slack(self) -> dict[str, Any]:
        return {"text": self.text()}

    def json(self) -> dict[str, Any]:
        return asdict(self)

    def commit_state(self) -> str:
        """GitHub commit status state for this event."""
        return _STATES.get(self.event, "pending")


def event_of_workflow_status(status: str, rolled_back: bool) -> str:
    """Argo's ``{{workflow.status}}`` (Succeeded/Failed/Error) as a release event."""
    if status == "Succeeded":
        return "promoted"
    return "rolled-back" if rolled_back else "failed"
