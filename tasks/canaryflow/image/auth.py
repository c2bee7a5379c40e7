"""Registry credentials from a Docker config file, and the challenges registries answer with.

A Kubernetes ``kubernetes.io/dockerconfigjson`` secret mounted in the task pod is exactly this
file: ``{"auths": {"host:port": {"auth": base64("user:pass")}}}`` (or ``username``/``password``).
Credential helpers (``credsStore``, ``credHelpers``) run programs that a task pod does not have,
so they are not consulted.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canaryflow.errors import FieldError, InputError

# Docker Hub's credentials live under its legacy index URL.
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^,\s]+)')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: ``Basic realm=...`` or ``Bearer realm=,service=``."""

    scheme: str
    params: Mapping[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, _, rest = header.strip().partition(" ")
        params = {
            (m[1] or m[3]).lower(): m[2] if m[1] else m[4] for m in _CHALLENGE_PARAM.finditer(rest)
        }
        return cls(scheme.lower(), params)


def default_docker_config() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (as the docker CLI)."""
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker/config.json"


@dataclass(frozen=True)
class DockerConfig:
    """Credentials per registry host, as read from one file (which may not exist)."""

    path: Path
    auths: Mapping[str, Credentials]

    @classmethod
    def load(
        cls, path: Path | None, field_path: str = "docker-config", optional: bool = False
    ) -> DockerConfig:
        """An explicit ``path`` must exist unless ``optional`` (a Secret mounted with
        ``optional: true``: absent means the registry is pushed to anonymously); the default
        location may always be absent (anonymous)."""
        explicit = path is not None
        path = Path(path) if explicit else default_docker_config()
        if not path.is_file():
            if explicit and not optional:
                raise InputError(
                    FieldError(field_path, f"{path} does not exist: mount the docker config secret")
                )
            return cls(path, {})
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(
                FieldError(field_path, f"{path} is not readable JSON: {error}")
            ) from error
        return cls(path, _auths(document, path, field_path))

    def credentials_for(self, host: str) -> Credentials | None:
        keys = [host, *(_HUB_KEYS if host in (*_HUB_KEYS, "registry-1.docker.io") else ())]
        return next((self.auths[k] for k in keys if k in self.auths), None)


def _auths(document: Any, path: Path, field_path: str) -> dict[str, Credentials]:
    auths = document.get("auths", {}) if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise InputError(FieldError(field_path, f"{path}: 'auths' must be an object of hosts"))
    found = {}
    for key, entry in auths.items():
        credentials = _entry_credentials(entry, f"{field_path}.auths.{key}", path)
        if credentials is not None:
            found[_host_of(key)] = credentials
    return found


def _entry_credentials(entry: Any, field_path: str, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("username") and entry.get("password") is not None:
        return Credentials(str(entry["username"]), str(entry["password"]))
    if not entry.get("auth"):
        return None
    try:
        decoded = base64.b64decode(entry["auth"], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    user, sep, password = decoded.partition(":")
    if not sep:
        raise InputError(
            FieldError(field_path, f"in {path}: 'auth' must be base64 of user:password")
        )
    return Credentials(user, password)


def _host_of(key: str) -> str:
    """``https://host:port/v1/`` and ``host:port`` both mean ``host:port``."""
    if key in _HUB_KEYS:
        return key
    return key.split("://", 1)[-1].split("/", 1)[0]
