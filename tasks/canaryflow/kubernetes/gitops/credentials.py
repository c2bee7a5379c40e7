"""The credentials a GitOps push uses: the files of the mounted Secret, never anything else.

The Secret (chart value ``gitops.credentialsSecret``, type ``kubernetes.io/basic-auth``) is
mounted as a folder: ``username`` and ``password`` as git's basic auth over https, or only a
``token`` (or ``password``), for which ``x-access-token`` is the user, as GitHub app tokens
and most forges accept. The values go to the http client for the configuration repository's
own origin (``canaryflow.gitclient``): never into an argv, the environment, a URL, the
clone's ``.git/config`` or a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from canaryflow.errors import FieldError, InputError
from canaryflow.input_file import read_input_file

DEFAULT_USERNAME = "x-access-token"
"""What GitHub (app tokens) and most forges accept as the user of a token-only Secret."""
PASSWORD_KEYS = ("password", "token")
MAX_BYTES = 4096
_VALUE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space: one basic-auth header


@dataclass(frozen=True)
class GitCredentials:
    username: str
    password: str = field(repr=False)


def read_credentials(directory: Path | None) -> GitCredentials | None:
    """The basic-auth pair from the Secret's folder; None when it holds no password or token
    (a repository the task may read and push to without credentials)."""
    if directory is None:
        return None
    password = next(
        (_read(directory, key) for key in PASSWORD_KEYS if (directory / key).is_file()), ""
    )
    if not password:
        return None
    username = _read(directory, "username") if (directory / "username").is_file() else ""
    if ":" in username:  # basic auth is user:password, split at the first colon
        raise InputError(
            FieldError("gitops.credentialsSecret", "key username: a user name has no ':'")
        )
    return GitCredentials(username or DEFAULT_USERNAME, password)


def _read(directory: Path, key: str) -> str:
    value = read_input_file(directory / key, MAX_BYTES, "gitops credentials").strip()
    if value and not _VALUE.fullmatch(value):
        raise InputError(
            FieldError(
                "gitops.credentialsSecret",
                f"key {key}: the value holds spaces or control characters: store it alone",
            )
        )
    return value
