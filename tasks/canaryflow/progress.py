"""Progress of the waits a verb makes, so minutes of waiting are not minutes of silence.

The wait loops (``kubernetes.platform``: the canary's health, the stable rollout of a
promotion, the router confirming no canary traffic; ``platform.weights``: a weight applied)
call ``waiting`` each time they poll, saying what they wait for and how far it is. That is
the one hook: nothing is printed unless a verb runs inside ``reporting()``, which prints a
line on stderr once a wait passed ``after_s`` (2 s: a quick wait stays silent) and then every
``every_s`` (5 s)::

    waiting for deployment shop/checkout-canary: 1/3 pods ready, 7 s of 300 s

stderr only: stdout stays the verb's result (one JSON object under ``--json``). A reporter
that fails is ignored: progress never fails a release.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

Hook = Callable[[str, str, "float | None"], None]
"""``(what, detail, limit_s)``: e.g. ``("deployment shop/checkout-canary", "1/3 pods ready",
300.0)``; ``limit_s`` None when the wait has no fixed bound."""

_hook: Hook | None = None


def waiting(what: str, detail: str, limit_s: float | None = None) -> None:
    """A wait loop polled once more and is still waiting: tell the reporter, if any."""
    hook = _hook
    if hook is None:
        return
    with contextlib.suppress(Exception):
        hook(what, detail, limit_s)


class StderrProgress:
    """The reporter ``reporting()`` installs: one line per wait at ``after_s``, then every
    ``every_s``. A wait is known by its ``what``; one not polled for ``gap_s`` has ended,
    and the same ``what`` later is a new wait, counted from 0 again."""

    def __init__(
        self,
        after_s: float = 2.0,
        every_s: float = 5.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        gap_s: float = 15.0,
    ):
        self.after_s = after_s
        self.every_s = every_s
        self.stream = stream
        self.clock = clock
        self.gap_s = gap_s
        self._waits: dict[str, list[float]] = {}  # what -> [started, last polled, last said]
        self._lock = threading.Lock()

    def __call__(self, what: str, detail: str, limit_s: float | None) -> None:
        now = self.clock()
        with self._lock:
            wait = self._waits.get(what)
            if wait is None or now - wait[1] > self.gap_s:
                wait = self._waits[what] = [now, now, now - self.every_s + self.after_s]
            wait[1] = now
            if now - wait[2] < self.every_s:
                return
            wait[2] = now
            waited = now - wait[0]
        bound = f" of {limit_s:.0f} s" if limit_s else ""
        subject = f"waiting for {what}" if what else "waiting"
        print(
            f"{subject}: {detail}, {waited:.0f} s{bound}",
            file=self.stream or sys.stderr,
            flush=True,
        )


def drain_sleep(seconds: float) -> None:
    """``time.sleep`` for the drain before the canary goes (``router.drain``, often a minute),
    in steps of at most a second, each reported as a wait."""
    left = seconds
    while left > 0:  # counted, not read off a clock: a test's instant sleep stays instant
        waiting("the drain", "no canary traffic, requests in flight finishing", seconds)
        step = min(1.0, left)
        time.sleep(step)
        left -= step


@contextlib.contextmanager
def reporting(reporter: Hook | None = None) -> Iterator[Hook]:
    """Within the block, waits are reported (``StderrProgress()`` unless given)."""
    global _hook
    previous, _hook = _hook, reporter or StderrProgress()
    try:
        yield _hook
    finally:
        _hook = previous
