"""How canaryflow reaches a Prometheus as deployed: auth, tenant headers, CA bundle, timeout.

The plan names where secrets are (a file, often a mounted Secret or the pod's projected
service-account token, or an environment variable), never the secrets themselves; they are read
when a request is sent (a rotated token is picked up), go only into that request's headers, and
appear in no log, error or report. Everything here configures one ``requests.Session`` that
``prometheus_api_client`` is given: its query methods send with ``verify=session.verify`` and,
when their own ``headers``/``auth`` are unset, the session's, so the library carries every
setting without subclassing. (Its own ``disable_ssl`` flag is all-or-nothing: no CA bundle.)
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canaryflow import transport


class CredentialUnavailable(OSError):
    """A configured token or password could not be read (the message names where, not what)."""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is: a file path or an environment variable name (exactly one)."""

    file: str | None = None
    env: str | None = None

    def read(self) -> str:
        if self.file is not None:
            try:
                return Path(self.file).read_text().strip()
            except OSError as error:
                raise CredentialUnavailable(
                    f"cannot read the credential file {self.file}: {error.strerror}"
                ) from None
        value = os.environ.get(self.env or "")
        if not value:
            raise CredentialUnavailable(f"environment variable {self.env} is not set")
        return value.strip()

    def where(self) -> str:
        return f"file {self.file}" if self.file is not None else f"${self.env}"


@dataclass(frozen=True)
class PrometheusAccess:
    """Everything but the URL that a request to Prometheus needs; holds no secret value."""

    timeout: float = 5.0
    bearer_token: SecretRef | None = None
    basic_username: str | None = None
    basic_password: SecretRef | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None

    @classmethod
    def from_spec(cls, spec: Any) -> PrometheusAccess:
        """From the plan's ``analysis.prometheus`` (``canaryflow.analysis.spec.PrometheusSpec``)."""
        bearer = spec.bearer_token
        basic = spec.basic_auth
        return cls(
            timeout=spec.timeout,
            bearer_token=SecretRef(bearer.file, bearer.env) if bearer else None,
            basic_username=basic.username if basic else None,
            basic_password=SecretRef(basic.password_file, basic.password_env) if basic else None,
            headers=dict(spec.headers),
            ca_file=spec.ca_file,
        )

    def session(self) -> Any:
        """A ``requests.Session`` sending these settings on every request."""
        import requests

        session = transport.guard_session(requests.Session())
        session.trust_env = False  # no ~/.netrc or proxy variables deciding where tokens go
        session.headers.update(self.headers)
        if self.ca_file is not None:
            session.verify = self.ca_file
        if self.bearer_token is not None:
            session.auth = _BearerAuth(self.bearer_token)
        elif self.basic_username is not None and self.basic_password is not None:
            session.auth = _BasicAuth(self.basic_username, self.basic_password)
        return session


class _BearerAuth:
    """``Authorization: Bearer <token>``, the token read per request (projected tokens rotate)."""

    def __init__(self, token: SecretRef):
        self.token = token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token.read()}"
        return request

    def __repr__(self) -> str:
        return f"BearerAuth({self.token.where()})"


class _BasicAuth:
    def __init__(self, username: str, password: SecretRef):
        self.username, self.password = username, password

    def __call__(self, request: Any) -> Any:
        pair = f"{self.username}:{self.password.read()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return request

    def __repr__(self) -> str:
        return f"BasicAuth({self.username}, {self.password.where()})"
