"""The release's own account of itself: every decision and measurement, timestamped.

It is the JSON report, the feed of the live view and notifications, and the source of the
benchmark's detection-to-safe times, so all of them tell the same story.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Listener = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    at: float
    kind: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, **self.data}


@dataclass
class ReleaseRecord:
    service: str
    version: str
    platform: str
    events: list[Event] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def add(self, kind: str, **data: Any) -> Event:
        event = Event(at=self.clock(), kind=kind, data=data)
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def first(self, kind: str) -> Event | None:
        return next((e for e in self.events if e.kind == kind), None)

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "version": self.version,
            "platform": self.platform,
            "events": [e.to_dict() for e in self.events],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
