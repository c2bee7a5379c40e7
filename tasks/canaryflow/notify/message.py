"""What a release notification says, and which event a finished workflow is: pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

_ICONS = {
    "started": ":arrow_forward:",
    "promoted": ":white_check_mark:",
    "rolled-back": ":rewind:",
    "failed": ":x:",
}
# GitHub commit states: error, failure, pending, success (REST "Create a commit status").
_GITHUB_STATES = {
    "started": "pending",
    "step": "pending",
    "promoted": "success",
    "rolled-back": "failure",
    "failed": "error",
}
# GitLab commit states: pending, running, success, failed, canceled (API "Commits" statuses).
_GITLAB_STATES = {
    "started": "running",
    "step": "running",
    "promoted": "success",
    "rolled-back": "failed",
    "failed": "failed",
}
GIT_PROVIDERS = ("github", "gitlab")


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

    def commit_state(self, provider: str = "github") -> str:
        """The commit status state for this event, in the provider's vocabulary."""
        states = _GITLAB_STATES if provider == "gitlab" else _GITHUB_STATES
        return states.get(self.event, states["step"])

    def commit_status(self, provider: str, context: str) -> dict[str, str]:
        """The body of a commit status request (GitHub names it context, GitLab name)."""
        description = self.text().splitlines()[0][:140]
        key = "name" if provider == "gitlab" else "context"
        return {"state": self.commit_state(provider), key: context, "description": description}


def event_of_workflow_status(status: str, rolled_back: bool) -> str:
    """Argo's ``{{workflow.status}}`` (Succeeded/Failed/Error) as a release event."""
    if status == "Succeeded":
        return "promoted"
    return "rolled-back" if rolled_back else "failed"


def reached_traffic(failures: Iterable[dict[str, Any]], traffic_tasks: Iterable[str]) -> bool:
    """Whether the workflow failed in a task that runs once the canary gets traffic.

    Argo's ``{{workflow.failures}}`` lists every Failed or Errored node with its
    ``displayName``: the DAG task of the step walk fails with any step inside it, so a failed
    gate, a refused approval or ``argo stop`` mid-step all name one of ``traffic_tasks``.
    """
    names = set(traffic_tasks)
    return any(failure.get("displayName") in names for failure in failures)
