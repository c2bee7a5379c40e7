"""How canaryflow reaches a Prometheus as deployed: the operator's endpoint, auth, CA, headers.

The Prometheus that carries credentials is the operator's, never the plan's. A plan is pushed
by anyone with write access to a registered repository; if it could name both a host and where
a credential is (a file such as the pod's service-account token, an environment variable), it
could send that credential anywhere (issue 23, item 8). So the URL, the token or password, the
CA bundle and extra headers come from the installation: the chart hands them to every task as
``CANARYFLOW_PROMETHEUS_*`` variables (Secrets mounted as files), and a person running the CLI
sets the same variables or passes ``--prometheus``. A plan may only *choose* among what the
operator allows: omit ``analysis.prometheus.url`` (the operator's) or repeat it exactly. Where
the operator configured no Prometheus, a plan's URL is asked without any credential.

Secrets are read when a request is sent (a rotated token is picked up), bounded and refused
when they are devices or FIFOs (``input_file``), go only into that request's headers, and
appear in no log, error or report. Everything here configures one ``requests.Session`` that
``prometheus_api_client`` is given: its query methods send with ``verify=session.verify`` and,
when their own ``headers``/``auth`` are unset, the session's, so the library carries every
setting without subclassing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from canaryflow import transport
from canaryflow.errors import FieldError, InputError
from canaryflow.input_file import read_input_file

ENV_URL = "CANARYFLOW_PROMETHEUS_URL"
# A secret is given as a file (a mounted Secret, rotated tokens) or, as the chart does with a
# secretKeyRef, as the variable's value.
ENV_BEARER_TOKEN_FILE = "CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE"
ENV_BEARER_TOKEN = "CANARYFLOW_PROMETHEUS_BEARER_TOKEN"
ENV_USERNAME = "CANARYFLOW_PROMETHEUS_USERNAME"
ENV_PASSWORD_FILE = "CANARYFLOW_PROMETHEUS_PASSWORD_FILE"
ENV_PASSWORD = "CANARYFLOW_PROMETHEUS_PASSWORD"
ENV_CA_FILE = "CANARYFLOW_PROMETHEUS_CA_FILE"
ENV_CA = "CANARYFLOW_PROMETHEUS_CA"
ENV_HEADERS = "CANARYFLOW_PROMETHEUS_HEADERS"
CREDENTIAL_VARIABLES = (
    ENV_BEARER_TOKEN_FILE,
    ENV_BEARER_TOKEN,
    ENV_USERNAME,
    ENV_PASSWORD_FILE,
    ENV_PASSWORD,
    ENV_CA_FILE,
    ENV_CA,
    ENV_HEADERS,
)
MAX_SECRET_BYTES = 64 * 1024

_URL = re.compile(r"https?://[\x21-\x7e]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,1024}")
RESERVED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "host", "content-length", "content-type"}
)


class CredentialUnavailable(OSError):
    """A configured token or password could not be read (the message names where, not what)."""


@dataclass(frozen=True)
class SecretRef:
    """Where the operator put a secret: a file (read bounded, never a device or a FIFO) or one
    of the ``CANARYFLOW_PROMETHEUS_*`` variables (exactly one)."""

    file: str | None = None
    env: str | None = None

    def read(self) -> str:
        if self.file is not None:
            try:
                return read_input_file(Path(self.file), MAX_SECRET_BYTES, "credential").strip()
            except InputError as error:
                raise CredentialUnavailable(f"credential file: {error}") from None
        value = os.environ.get(self.env or "", "").strip()
        if not value:
            raise CredentialUnavailable(f"environment variable {self.env} is not set")
        return value

    def where(self) -> str:
        return f"file {self.file}" if self.file is not None else f"${self.env}"


def _secret(env: Mapping[str, str], file_variable: str, value_variable: str) -> SecretRef | None:
    if env.get(file_variable) and env.get(value_variable):
        raise InputError(FieldError(file_variable, f"and {value_variable} both set: keep one"))
    if env.get(file_variable):
        return SecretRef(file=env[file_variable])
    return SecretRef(env=value_variable) if env.get(value_variable) else None


@dataclass(frozen=True)
class PrometheusAccess:
    """Everything but the URL that a request to Prometheus needs; holds no secret value."""

    timeout: float = 5.0
    bearer_token: SecretRef | None = None
    basic_username: str | None = None
    basic_password: SecretRef | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    ca_pem: str | None = field(default=None, repr=False)
    """The CA bundle itself (the chart hands a ConfigMap key over as a variable)."""

    def credentials_advice(self, status: int) -> str:
        """What to fix when Prometheus (or its gateway) answered 401 or 403: the settings
        these credentials come from, by name (a file's path, a variable's name; never a
        value)."""
        if self.bearer_token is not None:
            sent = f"the bearer token from {self.bearer_token.where()}"
            settings = (
                f"{ENV_BEARER_TOKEN_FILE} or {ENV_BEARER_TOKEN} "
                "(the chart's analysis.prometheus.bearerTokenSecret)"
            )
        elif self.basic_username is not None and self.basic_password is not None:
            sent = (
                f"basic auth as {self.basic_username!r} with the password from "
                f"{self.basic_password.where()}"
            )
            settings = (
                f"{ENV_USERNAME} and {ENV_PASSWORD_FILE} or {ENV_PASSWORD} "
                "(the chart's analysis.prometheus.basicAuth)"
            )
        else:
            return (
                "no credentials were sent: set a bearer token in "
                f"{ENV_BEARER_TOKEN_FILE} (or {ENV_BEARER_TOKEN}), or basic auth in "
                f"{ENV_USERNAME} and {ENV_PASSWORD_FILE} (or {ENV_PASSWORD}), together with "
                f"{ENV_URL}: credentials go only to the operator's Prometheus (the chart's "
                "analysis.prometheus.url and bearerTokenSecret or basicAuth)"
            )
        if status == 401:
            return f"{sent} was not accepted: check {settings}; is it current?"
        tenant = f", and the tenant header in {ENV_HEADERS}" if self.headers else ""
        return (
            f"{sent} was accepted but may not query this Prometheus: grant it read access, "
            f"or check {settings}{tenant}"
        )

    def secret_values(self) -> list[str]:
        """The secrets' current values, to blot out of any text shown (unreadable: none)."""
        values = []
        for secret in (self.bearer_token, self.basic_password):
            if secret is not None:
                with contextlib.suppress(CredentialUnavailable):
                    values.append(secret.read())
        if self.basic_username is not None and self.basic_password is not None and values:
            pair = f"{self.basic_username}:{values[-1]}".encode()
            values.append(base64.b64encode(pair).decode("ascii"))  # as the header carries it
        return [value for value in values if value]

    def session(self) -> Any:
        """A ``requests.Session`` sending these settings on every request."""
        import requests

        session = transport.guard_session(requests.Session())
        session.trust_env = False  # no ~/.netrc or proxy variables deciding where tokens go
        session.headers.update(self.headers)
        if self.ca_file is not None:
            session.verify = self.ca_file
        elif self.ca_pem is not None:
            session.verify = _ca_bundle_file(self.ca_pem)
        if self.bearer_token is not None:
            session.auth = _BearerAuth(self.bearer_token)
        elif self.basic_username is not None and self.basic_password is not None:
            session.auth = _BasicAuth(self.basic_username, self.basic_password)
        return session


@dataclass(frozen=True)
class PrometheusEndpoint:
    """The Prometheus one verb asks: its URL (None: none configured) and how to reach it."""

    url: str | None
    access: PrometheusAccess


@dataclass(frozen=True)
class OperatorPrometheus:
    """What the installation allows: one URL, and the credentials that go to it alone."""

    url: str | None = None
    access: PrometheusAccess = field(default_factory=PrometheusAccess)
    from_flag: bool = False
    """The URL was given on the command line by the person running the verb (it outranks a
    plan's URL, as ``--prometheus`` always has)."""

    @classmethod
    def from_environment(
        cls, flag_url: str | None = None, environ: Mapping[str, str] | None = None
    ) -> OperatorPrometheus:
        """From ``--prometheus`` and the ``CANARYFLOW_PROMETHEUS_*`` variables (the chart's)."""
        env = os.environ if environ is None else environ
        url = flag_url or env.get(ENV_URL) or None
        where = "--prometheus" if flag_url else ENV_URL
        if url is not None and not _URL.fullmatch(url):
            raise InputError(FieldError(where, "not an http(s) URL: give http(s)://host:port"))
        configured = [name for name in CREDENTIAL_VARIABLES if env.get(name)]
        if configured and url is None:
            raise InputError(
                FieldError(
                    configured[0],
                    f"set without {ENV_URL}: credentials go only to the operator's Prometheus; "
                    f"set {ENV_URL} (the chart's analysis.prometheus.url) too",
                )
            )
        username = env.get(ENV_USERNAME) or None
        password = _secret(env, ENV_PASSWORD_FILE, ENV_PASSWORD)
        if (username is None) != (password is None):
            raise InputError(
                FieldError(ENV_USERNAME, f"give both {ENV_USERNAME} and {ENV_PASSWORD}(_FILE)")
            )
        token = _secret(env, ENV_BEARER_TOKEN_FILE, ENV_BEARER_TOKEN)
        if token is not None and username is not None:
            raise InputError(
                FieldError(ENV_BEARER_TOKEN, "both a bearer token and basic auth: keep one")
            )
        if env.get(ENV_CA_FILE) and env.get(ENV_CA):
            raise InputError(FieldError(ENV_CA_FILE, f"and {ENV_CA} both set: keep one"))
        access = PrometheusAccess(
            bearer_token=token,
            basic_username=username,
            basic_password=password,
            headers=_headers(env.get(ENV_HEADERS) or ""),
            ca_file=env.get(ENV_CA_FILE) or None,
            ca_pem=env.get(ENV_CA) or None,
        )
        return cls(url=url, access=access, from_flag=bool(flag_url))

    def endpoint_for(self, spec: Any) -> PrometheusEndpoint:
        """The Prometheus for a plan's ``analysis.prometheus`` (``PrometheusSpec``).

        The plan's URL is honoured only where it cannot carry the operator's credentials
        elsewhere: equal to the operator's, or with no operator URL at all (then no credential
        is sent). A different URL under an operator's is refused (exit 2) rather than asked.
        """
        timeout = float(spec.timeout)
        planned = spec.url
        if self.url is None:
            return PrometheusEndpoint(planned, PrometheusAccess(timeout=timeout))
        if planned and not self.from_flag and _same(planned) != _same(self.url):
            raise InputError(
                FieldError(
                    "analysis.prometheus.url",
                    f"{_shown(planned)} is not the Prometheus this installation allows "
                    f"({_shown(self.url)}): remove the key to use it, or ask the operator to "
                    "change the chart's analysis.prometheus.url",
                )
            )
        return PrometheusEndpoint(self.url, replace(self.access, timeout=timeout))


_CA_FILES: dict[str, str] = {}
_CA_LOCK = threading.Lock()


def _ca_bundle_file(pem: str) -> str:
    """``requests`` verifies against a path. Where the kernel has anonymous memory files (Linux,
    every task pod) the PEM goes to one (``memfd_create``, close-on-exec), named by
    ``/proc/self/fd/N``: nothing is written to disk, and the file is gone with the process
    however it ends (an exit, SIGTERM, SIGKILL, the OOM killer). Elsewhere it goes to a private
    file (mode 0600, a name nobody can predict) under the temp dir, removed at exit (a normal
    one, an error, Ctrl-C, and SIGTERM, which the CLI turns into Ctrl-C). Once per process and
    content."""
    import hashlib

    digest = hashlib.sha256(pem.encode()).hexdigest()
    with _CA_LOCK:
        path = _CA_FILES.get(digest)
        if path is None or not os.path.isfile(path):
            path = _memory_file(pem) or _temp_file(pem)
            _CA_FILES[digest] = path
    return path


def _memory_file(pem: str) -> str | None:
    """An anonymous memory file holding ``pem``, as a path this process can open; None where
    there is none (no ``memfd_create``, no ``/proc``)."""
    create = getattr(os, "memfd_create", None)
    if create is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        descriptor = create("canaryflow-prometheus-ca")
    except OSError:
        return None
    left = memoryview(pem.encode())
    while left:
        left = left[os.write(descriptor, left) :]
    return f"/proc/self/fd/{descriptor}"


def _temp_file(pem: str) -> str:
    import atexit
    import tempfile

    descriptor, path = tempfile.mkstemp(prefix="canaryflow-prometheus-ca-", suffix=".pem")
    with os.fdopen(descriptor, "w") as file:
        file.write(pem)
    atexit.register(_remove_quietly, path)
    return path


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _same(url: str) -> str:
    return url.rstrip("/").lower()


def _shown(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _headers(text: str) -> dict[str, str]:
    """``CANARYFLOW_PROMETHEUS_HEADERS``: a JSON object of plain, non-credential headers."""
    if not text.strip():
        return {}
    try:
        headers = json.loads(text)
    except ValueError:
        headers = None
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise InputError(
            FieldError(ENV_HEADERS, 'not a JSON object of strings: {"X-Scope-OrgID": "team"}')
        )
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in RESERVED_HEADERS:
            raise InputError(
                FieldError(
                    ENV_HEADERS,
                    f"{_shown(name)} cannot be set here: a plain header name, credentials go "
                    f"in {ENV_BEARER_TOKEN_FILE} or basic auth",
                )
            )
        if not _HEADER_VALUE.fullmatch(value):
            raise InputError(
                FieldError(ENV_HEADERS, f"the value of {name} is not one printable line")
            )
    return headers


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
