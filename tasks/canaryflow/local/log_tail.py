"""A process log read incrementally, each line stamped with the time it was first seen.

The log gate asks for "lines written since T". Services may or may not prefix their lines with
a timestamp, so the arrival time is recorded by reading the file as it grows: a line is at most
one poll interval older than its stamp.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path


class LogTail:
    """Follows one log file from a byte offset; ``poll`` picks up complete new lines."""

    def __init__(self, path: Path, offset: int = 0, max_lines: int = 100_000):
        self.path = Path(path)
        self._offset = offset
        self._partial = b""
        self._lines: deque[tuple[float, str]] = deque(maxlen=max_lines)
        self._lock = threading.Lock()

    @classmethod
    def from_end(cls, path: Path, max_lines: int = 100_000) -> LogTail:
        """Follow only what is written from now on (the file may already hold older runs)."""
        try:
            offset = Path(path).stat().st_size
        except FileNotFoundError:
            offset = 0
        return cls(path, offset, max_lines)

    def poll(self) -> None:
        with self._lock:
            try:
                with self.path.open("rb") as log:
                    log.seek(self._offset)
                    chunk = log.read()
            except FileNotFoundError:
                return
            if not chunk:
                return
            self._offset += len(chunk)
            now = time.time()
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            self._lines.extend((now, line.decode(errors="replace")) for line in complete)

    def since(self, since: float) -> list[str]:
        """Lines first seen at or after the Unix time ``since``, oldest first."""
        return [line for _, line in self.stamped_since(since)]

    def stamped_since(self, since: float) -> list[tuple[float, str]]:
        """``since``'s lines with the time each was first seen (at most a poll after it was
        written), for a gate that counts lines up to their process' last scrape."""
        self.poll()
        with self._lock:
            return [(seen, line) for seen, line in self._lines if seen >= since]


class TailPoller:
    """Polls tails on a background thread so stamps stay within ``interval_s`` of the write."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.tails: list[LogTail] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-tail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for tail in list(self.tails):
                tail.poll()
