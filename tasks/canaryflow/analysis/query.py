"""PromQL templates rendered for one track: the same query, canary and stable alike."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
TRACKS: tuple[str, str] = ("canary", "stable")


@dataclass(frozen=True)
class Subject:
    """Whose metrics are queried: the service, its namespace, and the label telling tracks."""

    service: str
    namespace: str
    track_label: str = "track"
    track_values: Mapping[str, str] | None = None
    """Label value per track when it is not the track's name (a flag: canary -> "on")."""

    def workload(self, track: str) -> str:
        return f"{self.service}-canary" if track == "canary" else self.service

    def selector(self, track: str) -> str:
        value = self.track_values[track] if self.track_values else track
        return f'app="{self.service}",namespace="{self.namespace}",{self.track_label}="{value}"'


def promql_duration(seconds: float) -> str:
    """A range for ``rate()``: whole seconds when possible, else milliseconds."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def render(template: str, subject: Subject, track: str, window: float) -> str:
    """``template`` with every ``{{ placeholder }}`` filled in for ``track``."""
    values = {
        "selector": subject.selector(track),
        "window": promql_duration(window),
        "service": subject.service,
        "namespace": subject.namespace,
        "track": track,
        "workload": subject.workload(track),
    }

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"unknown placeholder {{{{ {name} }}}} in {template!r}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)
