"""What a release records, by kind, and the one way an event is shown to a person.

Every event the progression engine and its exposures add to a ``ReleaseRecord`` has a kind
here (as Argo Rollouts keeps its event reasons as constants): the report, the live view, the
benchmarks and notifications match on these members, never on a string spelled again.
``EventKind`` is a ``StrEnum``, so the JSON record and journal keep the plain names.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TextIO

from canaryflow.release.record import Event


class EventKind(StrEnum):
    # every progression
    STARTED = "started"
    WINDOW_STARTED = "window-started"
    MEASUREMENTS = "measurements"
    WINDOW_ENDED = "window-ended"
    APPROVAL_REQUESTED = "approval-requested"
    APPROVAL = "approval"
    PROMOTED = "promoted"
    ROLLBACK_STARTED = "rollback-started"
    ROLLBACK_ERROR = "rollback-error"
    ROLLED_BACK = "rolled-back"
    # a traffic release
    CANARY_DEPLOYED = "canary-deployed"
    BASELINE_DEPLOYED = "baseline-deployed"
    BASELINE_SKIPPED = "baseline-skipped"
    BASELINE_WAIT = "baseline-wait"
    BASELINE_SCRAPED = "baseline-scraped"
    WARMUP = "warmup"
    HEALTH = "health"
    HEADER_ROUTE = "header-route"
    WEIGHT_SET = "weight-set"
    WEIGHT_VERIFIED = "weight-verified"
    PROMOTING = "promoting"
    TRAFFIC_SAFE = "traffic-safe"
    # a flag rollout
    GATES_SKIPPED = "gates-skipped"
    FLAG_FOUND = "flag-found"
    FLAG_WRITTEN = "flag-written"
    FLAG_APPLIED = "flag-applied"
    FLAG_OFF = "flag-off"
    FLAG_OFF_APPLIED = "flag-off-applied"
    FLAG_OFF_UNCONFIRMED = "flag-off-unconfirmed"


END_KINDS = (EventKind.PROMOTED, EventKind.ROLLED_BACK)
BULKY = frozenset({"document"})
"""Event fields too large for a console line (a whole flag document); the record keeps them."""


def event_detail(event: Event) -> str:
    """The event's data as one line: a measurement round as ``gate=outcome`` pairs."""
    if event.kind == EventKind.MEASUREMENTS:
        return " ".join(f"{m['gate']}={m['outcome']}" for m in event.data["items"])
    return " ".join(f"{k}={v}" for k, v in event.data.items() if k not in BULKY)


@dataclass
class EventPrinter:
    """The one console view of a record: a ``Listener`` printing each event as it happens.

    ``lines`` (the default) prints ``seconds-since-t0 kind detail``, for people; ``json``
    prints one JSON object per event, for a workflow step's log that tools read.
    """

    t0: float
    out: TextIO = field(default_factory=lambda: sys.stdout)
    style: str = "lines"
    skip: Collection[str] = ()

    def __call__(self, event: Event) -> None:
        if event.kind in self.skip:
            return
        if self.style == "json":
            detail = {k: v for k, v in event.data.items() if k not in BULKY}
            line = json.dumps({"event": event.kind, **detail}, default=str)
        else:
            line = f"{event.at - self.t0:7.2f}s {event.kind:<16} {event_detail(event)}"
        print(line, file=self.out, flush=True)
