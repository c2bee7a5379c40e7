"""The canary's log lines from a file it appends to (the local engine's process log).

Each call returns what was appended since the previous one, so a log gate counts every line
exactly once across rounds. A file that rotates (shrinks) is read again from its start.
``TrackLogFiles`` reads stable's file too, for logs gates that compare the tracks.
"""

from __future__ import annotations

from pathlib import Path


class LogFileSource:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._offset = self._size()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def lines_since(self, since: float) -> list[str]:
        """Lines appended since the last call (``since`` is implied by that bookkeeping)."""
        size = self._size()
        if size < self._offset:
            self._offset = 0
        if size == self._offset:
            return []
        with self.path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read(size - self._offset)
        complete, newline, _ = chunk.rpartition(b"\n")  # a half-written line waits
        if not newline:
            return []
        self._offset += len(complete) + 1
        return complete.decode(errors="replace").splitlines()


class TrackLogFiles(LogFileSource):
    """The canary's and stable's log files (stable's: every stable instance writes to it)."""

    def __init__(self, canary: Path, stable: Path):
        super().__init__(canary)
        self.stable = LogFileSource(stable)

    def stable_lines_since(self, since: float) -> tuple[list[str], float]:
        return self.stable.lines_since(since), 1.0
