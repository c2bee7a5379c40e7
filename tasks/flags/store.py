"""Where a flag document lives: a file the local service polls, or a ConfigMap flagd mounts.

Every write keeps the document it replaces (``<file>.previous``, or the ConfigMap key
``<key>.previous``), so a rollback to "off" never loses the exposure that was in force and a
person can see what was switched off, or restore it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

from kubernetes.client import ApiClient

from canaryflow.errors import PlatformError
from canaryflow.flags.document import validate_document
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.resources import ResourceKind

CONFIG_MAP = ResourceKind("v1", "ConfigMap", "configmaps")
PREVIOUS = ".previous"


class FlagStore(Protocol):
    def read(self) -> dict | None:
        """The document in force; None when there is none yet."""
        ...

    def write(self, document: dict) -> None:
        """Put ``document`` in force, keeping the one it replaces as the previous."""
        ...

    def previous(self) -> dict | None:
        """The document the last write replaced."""
        ...

    def describe(self) -> str: ...


def _encode(document: dict) -> str:
    return json.dumps(validate_document(document), indent=2, sort_keys=True) + "\n"


class FileFlagStore:
    """A flagd file; each write is a temp file renamed over it, so a poller never reads half."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.previous_path = self.path.with_name(self.path.name + PREVIOUS)

    def read(self) -> dict | None:
        return _load(self.path)

    def previous(self) -> dict | None:
        return _load(self.previous_path)

    def write(self, document: dict) -> None:
        text = _encode(document)
        if self.path.exists():
            _replace_atomically(self.previous_path, self.path.read_text())
        _replace_atomically(self.path, text)

    def describe(self) -> str:
        return str(self.path)


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise PlatformError(f"flag file {path} is not JSON: {error}") from error


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


class ConfigMapFlagStore:
    """The flagd JSON under one key of the user's ConfigMap (the one their pods mount).

    The ConfigMap is shared with the user, so it is read, edited and replaced under its
    resourceVersion (a concurrent edit is re-read, not overwritten), and must already exist.
    """

    def __init__(self, api_client: ApiClient, namespace: str, name: str, key: str = "flags.json"):
        self.api = ClusterApi(api_client, namespace)
        self.namespace = namespace
        self.name = name
        self.key = key

    def read(self) -> dict | None:
        return self._document(self.key)

    def previous(self) -> dict | None:
        return self._document(self.key + PREVIOUS)

    def write(self, document: dict) -> None:
        text = _encode(document)

        def edit(config_map: dict) -> dict:
            data = config_map.setdefault("data", {}) or {}
            config_map["data"] = data
            if self.key in data:
                data[self.key + PREVIOUS] = data[self.key]
            data[self.key] = text
            return config_map

        if self.api.get(CONFIG_MAP, self.name) is None:
            raise self._missing()
        self.api.update(CONFIG_MAP, self.name, edit)

    def describe(self) -> str:
        return f"configmap {self.namespace}/{self.name} key {self.key}"

    def _document(self, key: str) -> dict | None:
        config_map = self.api.get(CONFIG_MAP, self.name)
        if config_map is None:
            raise self._missing()
        text = (config_map.get("data") or {}).get(key)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as error:
            raise PlatformError(f"{self.describe()}: {key} is not JSON: {error}") from error

    def _missing(self) -> PlatformError:
        return PlatformError(
            f"configmap {self.namespace}/{self.name} does not exist: create the ConfigMap your "
            f"flagd or service mounts, with the flag document (flag off) under {self.key!r}"
        )
