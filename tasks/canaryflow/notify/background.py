"""Notifications sent beside a release, never in its way.

A webhook that hangs or fails must not delay a rollback by a millisecond: the release engine's
listener only puts the message on a bounded queue (``submit`` never blocks; a full queue drops
and counts), and one daemon thread delivers them with ``post_json``'s timeouts. At the end
``close`` waits at most ``drain_s`` for what is left, then gives up and says how much.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from canaryflow.notify.webhook import post_json

Deliver = Callable[[str, Mapping[str, Any]], str | None]


class BackgroundNotifier:
    def __init__(self, deliver: Deliver = post_json, capacity: int = 100):
        self._deliver = deliver
        self._queue: queue.Queue[tuple[str, Mapping[str, Any]] | None] = queue.Queue(capacity)
        self.problems: list[str] = []
        self.dropped = 0
        self.sent = 0
        self.submitted = 0
        self._thread = threading.Thread(target=self._work, name="notifications", daemon=True)
        self._thread.start()

    def submit(self, url: str, body: Mapping[str, Any]) -> None:
        """Queue one message; returns at once, whatever the webhook does."""
        try:
            self._queue.put_nowait((url, body))
            self.submitted += 1
        except queue.Full:
            self.dropped += 1

    def close(self, drain_s: float = 5.0) -> int:
        """Let queued messages go for up to ``drain_s``; returns how many were not delivered."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(drain_s)
        return self.submitted - self.sent + self.dropped

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, body = item
            try:
                problem = self._deliver(url, body)
            except Exception as error:  # a notification never takes the release down
                problem = f"{type(error).__name__}: {error}"
            if problem:
                self.problems.append(f"{url}: {problem}")
            else:
                self.sent += 1
