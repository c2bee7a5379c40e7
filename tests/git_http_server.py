"""Git's smart HTTP on loopback: ``git http-backend`` (git's own CGI program) behind a small
``http.server`` bridge, serving the bare repositories under one folder: read-only, or, with
``credentials``, behind HTTP basic auth and open to pushes (git-http-backend(1) enables
receive-pack for an authenticated ``REMOTE_USER``, as behind Apache's ``Require valid-user``).

The bridge is what a web server does for git-http-backend(1): each request runs the CGI with
``GIT_PROJECT_ROOT``, ``PATH_INFO``, ``QUERY_STRING``, ``CONTENT_TYPE`` and the client's
``Git-Protocol`` header (so protocol v2 works as behind Apache or nginx), and its ``Status:``
line and headers become the response. Each CGI run is waited for; stopping the server stops
the thread it started.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from http_stub import LoopbackServer, QuietHandler

BACKEND = ("git", "http-backend")


@dataclass
class BasicAuth:
    """The one user the server accepts, and what the requests brought."""

    username: str
    password: str
    seen: list[str | None] = field(default_factory=list)
    """Each request's ``Authorization`` header (None when it had none)."""

    def allows(self, header: str | None) -> bool:
        self.seen.append(header)
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"


def _handler(root: Path, auth: BasicAuth | None):
    class GitBackend(QuietHandler):
        def do_GET(self) -> None:
            if self._authorized():
                self._cgi(b"")

        def do_POST(self) -> None:
            if not self._authorized():
                return
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self._cgi(self._chunked())
            else:
                self._cgi(self.rfile.read(length))

        def _authorized(self) -> bool:
            if auth is None or auth.allows(self.headers.get("Authorization")):
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def _chunked(self) -> bytes:
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body

        def _cgi(self, body: bytes) -> None:
            url = urlsplit(self.path)
            env = {
                "PATH": "/usr/bin:/bin",
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": url.path,
                "QUERY_STRING": url.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": "127.0.0.1",
            }
            if auth is not None:
                env["REMOTE_USER"] = auth.username
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            done = subprocess.run(
                BACKEND, input=body, env=env, capture_output=True, timeout=60, check=False
            )
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            headers = [line.split(b":", 1) for line in head.split(b"\r\n") if b":" in line]
            status = next((int(v.split()[0]) for k, v in headers if k.lower() == b"status"), 200)
            self.send_response(status)
            for key, value in headers:
                if key.lower() != b"status":
                    self.send_header(key.decode(), value.strip().decode())
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return GitBackend


class GitHttpServer(LoopbackServer):
    """``http://127.0.0.1:PORT/<name>`` serves ``root/<name>`` (a bare repository)."""

    def __init__(self, root: Path, credentials: tuple[str, str] | None = None):
        self.auth = BasicAuth(*credentials) if credentials else None
        super().__init__(_handler(root, self.auth))

    def url_of(self, name: str) -> str:
        return f"{self.url}/{name}"
