"""A real Distribution registry (Debian's ``docker-registry`` 2.8) for tests, and its fixtures.

Each instance gets its own YAML config, filesystem storage in a temp dir and a free port on
127.0.0.1, and is stopped by PID through ``ProcessGroup``; the system service is never used.
With ``users`` it requires HTTP Basic auth from an htpasswd file; the bcrypt hashes come from
the system's libcrypt (libxcrypt) through ctypes, so no extra Python package or tool is needed.

Use the context manager directly, or the module-scoped fixtures by importing them::

    from registry import registry  # noqa: F401
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import hashlib
import http.server
import json
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from canaryflow.errors import PlatformError
from canaryflow.local.process import LOOPBACK, ManagedProcess, ProcessGroup, free_port

REGISTRY_BINARY = "/usr/bin/docker-registry"
TEST_USERS = {"ci": "correct-horse"}


@dataclass
class RunningRegistry:
    host: str
    storage: Path
    process: ManagedProcess
    users: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def docker_config(self, directory: Path, user: str | None = None, password: str | None = None):
        """Write a docker ``config.json`` (the dockerconfigjson secret's format) for this host."""
        user = user or next(iter(self.users), "anonymous")
        password = self.users.get(user, "") if password is None else password
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        path = Path(directory) / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        return path

    def fetch(self, path: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """GET ``/v2/...`` independently of the code under test, as the first user if any.

        Answers a Basic challenge directly and a Bearer one with a token from its realm.
        """
        status, headers, body = _get(self.url + path, accept, None)
        challenge = headers.get("Www-Authenticate", "")
        if status != 401 or not self.users:
            return status, headers, body
        user, password = next(iter(self.users.items()))
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if challenge.startswith("Bearer "):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            query = urllib.parse.urlencode({k: v for k, v in params.items() if k != "realm"})
            _, _, token = _get(f"{params['realm']}?{query}", None, basic)
            return _get(self.url + path, accept, f"Bearer {json.loads(token)['token']}")
        return _get(self.url + path, accept, basic)


def _get(url: str, accept: str | None, authorization: str | None):
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """A ``$2b$`` bcrypt hash from libcrypt; the low cost keeps the registry's checks fast."""
    libcrypt = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    libcrypt.crypt_gensalt.restype = ctypes.c_char_p
    libcrypt.crypt_gensalt.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    libcrypt.crypt.restype = ctypes.c_char_p
    libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = libcrypt.crypt_gensalt(b"$2b$", cost, None, 0)
    hashed = libcrypt.crypt(password.encode(), salt) if salt else None
    if not hashed or not hashed.startswith(b"$2b$"):
        raise RuntimeError("libcrypt cannot make bcrypt hashes here")
    return hashed.decode()


def registry_config(
    storage: Path, port: int, htpasswd: Path | None = None, token: dict | None = None
) -> dict:
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"{LOOPBACK}:{port}", "secret": "canaryflow-test-only"},
        "health": {"storagedriver": {"enabled": False}},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "canaryflow-test", "path": str(htpasswd)}}
    if token is not None:
        config["auth"] = {"token": token}
    return config


@contextmanager
def running_registry(
    workdir: Path,
    users: Mapping[str, str] | None = None,
    *,
    auth: str = "basic",
    timeout_s: float = 10.0,
) -> Iterator[RunningRegistry]:
    """Start a registry in ``workdir``; everything started is stopped by PID when the block ends.

    Without ``users`` it is anonymous. With them, ``auth="basic"`` checks an htpasswd file, and
    ``auth="token"`` delegates to a token server (started here too) as hosted registries do:
    the registry answers ``Bearer realm=...`` and accepts only JWTs that server signed.
    """
    workdir = Path(workdir)
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / "config.yml"
    with ProcessGroup(workdir) as group:
        htpasswd = token = None
        if users and auth == "basic":
            htpasswd = workdir / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in users.items()))
        elif users and auth == "token":
            token = _start_token_server(group, workdir, users, timeout_s)
        elif users:
            raise ValueError(f"auth must be basic or token, not {auth!r}")
        config_path.write_text(yaml.safe_dump(registry_config(storage, port, htpasswd, token)))
        process = group.start("docker-registry", [REGISTRY_BINARY, "serve", str(config_path)])
        running = RunningRegistry(f"{LOOPBACK}:{port}", storage, process, dict(users or {}))
        _wait_answering(running, timeout_s)
        yield running


def _wait_answering(running: RunningRegistry, timeout_s: float) -> None:
    """Ready once ``/v2/`` answers at all: 200 without auth, 401 with it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not running.process.alive():
            raise PlatformError(f"docker-registry exited:\n{running.process.log_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{running.url}/v2/", timeout=1) as response:
                response.read()
            return
        except urllib.error.HTTPError as error:
            if error.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise PlatformError(f"docker-registry on {running.host} not ready after {timeout_s:.0f}s")


# --- the token server of a token-auth registry ---

TOKEN_ISSUER = "canaryflow-test-issuer"
TOKEN_SERVICE = "canaryflow-test-registry"


def _start_token_server(
    group: ProcessGroup, workdir: Path, users: Mapping[str, str], timeout_s: float
) -> dict:
    """A signing key and certificate, the token server process, and the registry's token config."""
    key, cert = workdir / "token-key.pem", workdir / "token-cert.pem"
    certificate = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    certificate += ["-subj", "/CN=canaryflow-test-token", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(certificate, check=True, capture_output=True, timeout=30)
    port = free_port()
    settings = workdir / "token-server.json"
    settings.write_text(
        json.dumps({"port": port, "key": str(key), "kid": _libtrust_key_id(key), "users": users})
    )
    process = group.start("token-server", [sys.executable, __file__, "serve-tokens", str(settings)])
    realm = f"http://{LOOPBACK}:{port}/token"
    deadline = time.monotonic() + timeout_s
    while not _answers(realm):
        if not process.alive() or time.monotonic() > deadline:
            raise PlatformError(f"token server did not start:\n{process.log_text()[-2000:]}")
        time.sleep(0.05)
    return {
        "realm": realm,
        "service": TOKEN_SERVICE,
        "issuer": TOKEN_ISSUER,
        "rootcertbundle": str(cert),
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _libtrust_key_id(key: Path) -> str:
    """The ``kid`` distribution trusts for a root certificate's key (libtrust's format)."""
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
        timeout=10,
    ).stdout
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed_token(settings: dict, subject: str, scopes: list[str]) -> str:
    """An RS256 JWT granting ``scopes`` (``repository:NAME:ACTIONS``), signed by openssl."""
    now = int(time.time())
    access = []
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        access.append({"type": kind, "name": name, "actions": actions.split(",")})
    header = {"typ": "JWT", "alg": "RS256", "kid": settings["kid"]}
    claims = {
        "iss": TOKEN_ISSUER,
        "sub": subject,
        "aud": TOKEN_SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": secrets.token_hex(8),
        "access": access,
    }
    payload = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", settings["key"]],
        input=payload.encode(),
        check=True,
        capture_output=True,
        timeout=10,
    ).stdout
    return f"{payload}.{_b64url(signature)}"


def serve_tokens(settings_path: str) -> None:
    """The token endpoint: Basic-authenticated users get every scope they ask for."""
    settings = json.loads(Path(settings_path).read_text())

    class TokenHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            user = self._user()
            if user is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="token"')
                self.end_headers()
                return
            token = signed_token(settings, user, query.get("scope", []))
            body = json.dumps({"token": token, "access_token": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _user(self) -> str | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user if settings["users"].get(user) == password else None

    server = http.server.ThreadingHTTPServer((LOOPBACK, settings["port"]), TokenHandler)
    server.serve_forever()


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """An anonymous registry, shared by a test module."""
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A registry requiring HTTP Basic auth for ``TEST_USERS``, shared by a test module."""
    with running_registry(tmp_path_factory.mktemp("auth-registry"), TEST_USERS) as running:
        yield running


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A registry delegating auth to a Bearer token server for ``TEST_USERS``."""
    workdir = tmp_path_factory.mktemp("token-registry")
    with running_registry(workdir, TEST_USERS, auth="token") as running:
        yield running


if __name__ == "__main__" and sys.argv[1:2] == ["serve-tokens"]:
    serve_tokens(sys.argv[2])
