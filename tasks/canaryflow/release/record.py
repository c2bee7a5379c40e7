"""The release's own account of itself: every decision and measurement, timestamped.

It is the JSON report, the feed of the live view and notifications, and the source of the
benchmark's detection-to-safe times, so all of them tell the same story.

It is also what an operator reads after an incident, so it must outlive the process: with a
journal, every event is appended to a JSON-lines file and flushed to disk as it happens. A
SIGTERM, a SIGINT, a crash, a full or read-only output folder leaves a readable record up to
the last event. When the journal cannot be written where asked, it moves to the temporary
folder (``journal_path`` says where); the release itself never fails because of its record.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from canaryflow.errors import FieldError, InputError

Listener = Callable[["Event"], None]
JOURNAL_SUFFIX = ".events.jsonl"


@dataclass(frozen=True)
class Event:
    at: float
    kind: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, **self.data}


class Journal:
    """An append-only JSON-lines file: a header line, then one line per event, each flushed.

    Usable on its own as a record ``Listener`` (``journal.append``), for records another
    component owns. Never raises: when the file cannot be written it moves once to the
    temporary folder, and ``error`` says what happened; ``path`` is None if nothing works.
    """

    def __init__(self, path: Path, header: dict[str, Any], events: list[Event] = ()):
        self.path: Path | None = None
        self.error: str | None = None
        self._handle: IO[str] | None = None
        self._header = header
        self._open(Path(path), list(events))

    def append(self, event: Event) -> None:
        if self._handle is not None and not self._write([event.to_dict()]):
            self._move([event])

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

    def _open(self, path: Path, events: list[Event]) -> None:
        for candidate in (path, _fallback(path)):
            try:
                candidate.parent.mkdir(parents=True, exist_ok=True)
                self._handle = candidate.open("w", encoding="utf-8")
            except OSError as error:
                self.error = f"{candidate}: {error.strerror or error}"
                continue
            self.path = candidate
            if self._write([self._header, *(e.to_dict() for e in events)]):
                return
        self.path = None

    def _write(self, lines: list[dict[str, Any]]) -> bool:
        assert self._handle is not None
        try:
            self._handle.write("".join(json.dumps(x, default=str) + "\n" for x in lines))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except (OSError, ValueError) as error:
            self.error = f"{self.path}: {getattr(error, 'strerror', None) or error}"
            self.close()
            return False
        return True

    def _move(self, pending: list[Event]) -> None:
        """The folder filled up or turned read-only mid-release: carry on in the temp folder."""
        failed, error = self.path, self.error
        self.path = None
        if failed is None or failed.parent == Path(tempfile.gettempdir()):
            return
        self._events_so_far(failed, pending)
        self.error = error

    def _events_so_far(self, failed: Path, pending: list[Event]) -> None:
        try:
            done = read_journal(failed)["events"]
        except (OSError, ValueError):
            done = []
        self._open(_fallback(failed), [])
        if self._handle is not None:
            lines = [*done, *(e.to_dict() for e in pending)]
            if not self._write(lines):
                self.path = None


@dataclass
class ReleaseRecord:
    service: str
    version: str
    platform: str
    events: list[Event] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)
    journal: Journal | None = field(default=None, repr=False)

    def add(self, kind: str, **data: Any) -> Event:
        event = Event(at=self.clock(), kind=kind, data=data)
        self.events.append(event)
        if self.journal is not None:
            self.journal.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def first(self, kind: str) -> Event | None:
        return next((e for e in self.events if e.kind == kind), None)

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def header(self) -> dict[str, Any]:
        return {"service": self.service, "version": self.version, "platform": self.platform}

    def to_dict(self) -> dict[str, Any]:
        return {**self.header(), "events": [e.to_dict() for e in self.events]}

    def write_json(self, path: Path) -> None:
        """The whole record, replaced atomically: a failed write never truncates an old one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            partial.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
            os.replace(partial, path)
        finally:
            with contextlib.suppress(OSError):
                partial.unlink()

    def open_journal(self, path: Path) -> Path | None:
        """Append every event from now on to ``path`` (the ones so far first); returns where."""
        self.close_journal()
        self.journal = Journal(path, self.header(), self.events)
        return self.journal.path

    def close_journal(self) -> None:
        if self.journal is not None:
            self.journal.close()

    @property
    def journal_path(self) -> Path | None:
        return self.journal.path if self.journal is not None else None

    @property
    def journal_error(self) -> str | None:
        return self.journal.error if self.journal is not None else None


def _fallback(path: Path) -> Path:
    return Path(tempfile.gettempdir()) / f"canaryflow-{os.getpid()}-{path.name}"


def read_journal(path: Path) -> dict[str, Any]:
    """A journal as a record document; a last line cut short by a crash is skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    documents = []
    for line in lines:
        try:
            documents.append(json.loads(line))
        except json.JSONDecodeError:
            break
    if not documents:
        raise ValueError(f"{path}: not a release journal")
    return {**documents[0], "events": documents[1:]}


def path_inside(out: Path, name: str, what: str = "--version") -> Path:
    """``out/name``, refusing a ``name`` that would leave ``out`` (``../../x``, ``/etc/x``)."""
    root = Path(out).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise InputError(
            FieldError(what, f"{name[:80]!r} would write outside {out}: use a plain name")
        )
    return path
