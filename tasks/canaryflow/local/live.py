"""Watching a local release as it happens: a live terminal view, or plain event lines.

``ReleaseWatch`` is a record listener that keeps the latest state (step, weight, each gate's
latest value, limit and verdict, the phase); ``live_view`` redraws it about four times a second
with the load generator's per-version request counts. Without a terminal, the one
``EventPrinter`` (``canaryflow.release.events``) writes one line per event instead.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from canaryflow.platform.requests import LoadCounters
from canaryflow.release.events import EventKind
from canaryflow.release.record import Event

REFRESH_PER_S = 4
PHASES = {
    EventKind.STARTED: "starting",
    EventKind.CANARY_DEPLOYED: "deploying",
    EventKind.HEALTH: "health gate",
    EventKind.WINDOW_STARTED: "analysing",
    EventKind.ROLLBACK_STARTED: "rolling back",
    EventKind.TRAFFIC_SAFE: "rolling back (traffic safe)",
    EventKind.ROLLED_BACK: "rolled back",
    EventKind.PROMOTING: "promoting",
    EventKind.PROMOTED: "promoted",
}


@dataclass
class GateState:
    value: float | None
    stable: float | None
    limit: str
    outcome: str
    reason: str


@dataclass
class ReleaseWatch:
    """The latest state of one release, fed by its record's events."""

    version: str
    started: float = field(default_factory=time.time)
    phase: str = "starting"
    step: int | None = None
    weight: int = 0
    verdicts: list[str] = field(default_factory=list)
    gates: dict[str, GateState] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        data = event.data
        self.phase = PHASES.get(event.kind, self.phase)
        if event.kind == EventKind.WEIGHT_VERIFIED:
            self.step, self.weight = data["step"], data["weight"]
        elif event.kind == EventKind.TRAFFIC_SAFE:
            self.weight = 0
        elif event.kind == EventKind.WINDOW_ENDED:
            self.verdicts.append(f"step {data['step']}: {data['verdict']}")
        elif event.kind == EventKind.MEASUREMENTS:
            for item in data["items"]:
                evidence = item["evidence"]
                self.gates[item["gate"]] = GateState(
                    evidence.get("canary"),
                    evidence.get("stable"),
                    evidence.get("limit", ""),
                    item["outcome"],
                    item["reason"],
                )


def render(watch: ReleaseWatch, counters: LoadCounters, steps: int) -> Any:
    """The rich renderable of the current state."""
    from rich.console import Group
    from rich.table import Table

    step = "-" if watch.step is None else f"{watch.step + 1}/{steps}"
    by_track = ", ".join(f"{t} {n}" for t, n in sorted(counters.by_track.items())) or "-"
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{watch.version}[/]",
        f"phase [bold]{watch.phase}[/]",
        f"step {step}",
        f"canary weight [bold]{watch.weight}%[/]",
        f"{time.time() - watch.started:5.1f}s",
    )
    head.add_row("requests", by_track, f"failed {counters.failed}", "", "")
    gates = Table(expand=False)
    for column in ("gate", "canary", "stable", "limit", "verdict"):
        gates.add_column(column)
    colour = {
        "pass": "green",
        "fail": "red",
        "inconclusive": "yellow",
        "error": "magenta",
        "collecting": "cyan",
        "not-applicable": "dim",
    }
    for name, gate in watch.gates.items():
        style = colour.get(gate.outcome, "white")
        gates.add_row(
            name,
            _number(gate.value),
            _number(gate.stable),
            gate.limit,
            f"[{style}]{gate.outcome}[/]",
        )
    return Group(head, gates, " ".join(watch.verdicts[-4:]))


@contextlib.contextmanager
def live_view(
    watch: ReleaseWatch, counters: Callable[[], LoadCounters], steps: int
) -> Iterator[None]:
    """Redraw ``watch`` ~4 times a second until the block ends."""
    from rich.live import Live

    class _Renderable:
        def __rich__(self) -> Any:
            return render(watch, counters(), steps)

    with Live(_Renderable(), refresh_per_second=REFRESH_PER_S, transient=False):
        yield


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
