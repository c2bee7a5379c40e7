"""Where a workflow's analyze pods keep the release's sequential evidence between windows.

Each step's window runs in a pod of its own; the evidence it leaves (``analysis.carried``) is
read by the next window's pod. A store is read once before the window and written once after
it, and the write succeeds only if nothing else wrote in between (compare-and-set on what the
read saw), so two pods never merge their evidence silently.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from canaryflow.errors import PlatformError


@dataclass(frozen=True)
class Stored:
    """What a read found: the state's text (None: nothing stored) and the version a write
    must still find."""

    text: str | None
    version: str


class EvidenceStore(Protocol):
    where: str
    """Said in reports: where the evidence is kept."""

    def read(self) -> Stored: ...

    def write(self, text: str, read: Stored) -> None:
        """Store ``text`` if the store is still as ``read`` found it; else PlatformError."""
        ...


class FileEvidenceStore:
    """A file (``analyze --evidence-file``): for runs outside a cluster and for tests."""

    def __init__(self, path: Path):
        self.path = path
        self.where = f"file {path}"

    def _version(self, text: str | None) -> str:
        return "absent" if text is None else hashlib.sha256(text.encode()).hexdigest()

    def read(self) -> Stored:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as error:
            raise PlatformError(f"{self.where}: cannot read it: {error}") from error
        return Stored(text, self._version(text))

    def write(self, text: str, read: Stored) -> None:
        if self.read().version != read.version:
            raise PlatformError(f"{self.where}: changed since this window read it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".evidence-")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, self.path)  # whole or not at all
