"""Registry credentials from a Docker config file, and the challenges registries answer with.

A Kubernetes ``kubernetes.io/dockerconfigjson`` secret mounted in the task pod is exactly this
file: ``{"auths": {"host:port": {"auth": base64("user:pass")}}}`` (or ``username``/``password``).

Credential helpers are consulted as the docker CLI does (docker/cli
``cli/config/configfile/file.go``, ``GetCredentialsStore``: ``credHelpers[host]`` first, then
``credsStore``, then the file's ``auths``), speaking the docker-credential-helpers protocol
(``docker-credential-<name> get``, the server on stdin, ``{"Username", "Secret"}`` on stdout;
``credentials not found in native keychain`` means none). A cloud's helper (ECR, GCR, ACR) in
the task image then turns the pod's workload identity into registry credentials.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canaryflow.errors import FieldError, InputError, PlatformError

# Docker Hub's credentials live under its legacy index URL.
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^,\s]+)')
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# docker-credential-helpers' ``credentials.errCredentialsNotFoundMessage``.
_NOT_FOUND = "credentials not found in native keychain"
HELPER_TIMEOUT_S = 30.0


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
    """Credentials per registry host, as read from one file (which may not exist): its
    ``auths``, and the credential helpers it names (run only for the host being pushed to)."""

    path: Path
    auths: Mapping[str, Credentials]
    helpers: Mapping[str, str] = field(default_factory=dict)
    store: str | None = None

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
        helpers, store = _helpers(document, path, field_path)
        return cls(path, _auths(document, path, field_path), helpers, store)

    def credentials_for(self, host: str) -> Credentials | None:
        hub = host in (*_HUB_KEYS, "registry-1.docker.io")
        keys = [host, *(_HUB_KEYS if hub else ())]
        helper = next((self.helpers[k] for k in keys if k in self.helpers), self.store)
        if helper is not None:
            return run_credential_helper(helper, _HUB_KEYS[0] if hub else host)
        return next((self.auths[k] for k in keys if k in self.auths), None)


def run_credential_helper(name: str, server: str) -> Credentials | None:
    """``docker-credential-<name> get`` for ``server``: its credentials, or None when it has
    none. A helper that is missing, hangs or fails otherwise is an error naming it: pushing
    anonymously instead would hide the misconfiguration behind a 401."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise InputError(
            FieldError(
                "docker-config",
                f"credential helper docker-credential-{name} (for {server}) is not on PATH: "
                "add it to the task image, or put the credentials under auths",
            )
        )
    try:
        done = subprocess.run(
            [program, "get"],
            input=server,
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PlatformError(f"credential helper docker-credential-{name} failed: {error}") from None
    if done.returncode != 0:
        if _NOT_FOUND in done.stdout + done.stderr:
            return None
        reason = (done.stderr or done.stdout).strip()[:200]
        raise PlatformError(
            f"credential helper docker-credential-{name} exited {done.returncode} for "
            f"{server}: {reason}"
        )
    try:
        answer = json.loads(done.stdout)
        return Credentials(str(answer["Username"]), str(answer["Secret"]))
    except (ValueError, KeyError, TypeError):
        raise PlatformError(
            f"credential helper docker-credential-{name} did not answer "
            '{"Username": ..., "Secret": ...} as JSON'
        ) from None


def _helpers(document: Any, path: Path, field_path: str) -> tuple[dict[str, str], str | None]:
    """``credHelpers`` (host -> helper) and ``credsStore``; names are checked, since each
    becomes part of a program name."""
    if not isinstance(document, dict):
        return {}, None
    helpers = document.get("credHelpers") or {}
    if not isinstance(helpers, dict):
        raise InputError(FieldError(f"{field_path}.credHelpers", f"{path}: must map host to name"))
    checked = {
        _host_of(host): _helper_name(name, f"{field_path}.credHelpers.{host}", path)
        for host, name in helpers.items()
    }
    store = document.get("credsStore") or None
    if store is not None:
        store = _helper_name(store, f"{field_path}.credsStore", path)
    return checked, store


def _helper_name(name: Any, field_path: str, path: Path) -> str:
    if not isinstance(name, str) or not _HELPER_NAME.fullmatch(name):
        raise InputError(
            FieldError(
                field_path,
                f"in {path}: {str(name)[:80]!r} is not a credential helper name: write the part "
                "after docker-credential- ([A-Za-z0-9._-])",
            )
        )
    return name


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
