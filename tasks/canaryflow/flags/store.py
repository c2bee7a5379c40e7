"""Where a flag document lives: the FlagStore protocol, and the file the local service polls.

A store edits the document in force and keeps the one it replaces (``<file>.previous``, or the
ConfigMap key ``<key>.previous``), so a rollback to "off" never loses the exposure that was in
force and a person can see what was switched off, or restore it. An edit that changes nothing
writes nothing: switching off twice keeps the exposure that the first switch-off replaced.
The Kubernetes store (a ConfigMap) is ``canaryflow.kubernetes.flag_store``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from canaryflow.errors import PlatformError
from canaryflow.flags.document import document_digest, encode_document, validate_document
from canaryflow.input_file import read_input_file

PREVIOUS = ".previous"
MAX_FLAG_FILE_BYTES = 1 << 20  # a flagd document; bounded like a plan (see plan/load.py)
Edit = Callable[[dict | None], dict]
"""From the document in force (None when there is none) to the one to put in force."""


class FlagStore(Protocol):
    def read(self) -> dict | None:
        """The document in force; None when there is none yet."""
        ...

    def update(self, edit: Edit) -> str:
        """Put ``edit(current)`` in force, keeping ``current`` as the previous; its digest."""
        ...

    def previous(self) -> dict | None:
        """The document the last change replaced."""
        ...

    def describe(self) -> str: ...


def replace_with(document: dict) -> Edit:
    """An edit that puts the whole ``document`` in force, once it is valid."""
    validate_document(document)
    return lambda _current: document


def parse_document(text: str, where: str) -> dict:
    try:
        return json.loads(text)
    except ValueError as error:
        raise PlatformError(f"{where} is not JSON: {error}; fix it by hand first") from error


class FileFlagStore:
    """A flagd file; each write is a temp file renamed over it, so a poller never reads half."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.previous_path = self.path.with_name(self.path.name + PREVIOUS)
        if self.path.exists():  # a FIFO, /dev/zero or a folder: refused before anything runs
            self._read_text(self.path)

    def read(self) -> dict | None:
        return self._load(self.path)

    def previous(self) -> dict | None:
        return self._load(self.previous_path)

    def update(self, edit: Edit) -> str:
        current = self._read_text(self.path) if self.path.exists() else None
        current_document = None if current is None else parse_document(current, str(self.path))
        text = encode_document(edit(current_document))
        if text != current:
            if current is not None:
                _replace_atomically(self.previous_path, current)
            _replace_atomically(self.path, text)
            if self._read_text(self.path) != text:  # the writer checks what a reader will see
                raise PlatformError(f"{self.path}: does not read back as written")
        return document_digest(text)

    def describe(self) -> str:
        return str(self.path)

    def _load(self, path: Path) -> dict | None:
        if not path.exists():
            return None
        return parse_document(self._read_text(path), str(path))

    @staticmethod
    def _read_text(path: Path) -> str:
        return read_input_file(path, MAX_FLAG_FILE_BYTES, "flag")


def _replace_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
