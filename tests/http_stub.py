"""Small HTTP(S) servers on loopback for tests that stand in for a remote service.

``QuietHandler`` answers with ``reply`` and logs nothing; ``LoopbackServer`` serves a handler
class from a daemon thread on 127.0.0.1 (HTTPS with a fresh self-signed certificate when asked)
and stops exactly what it started.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOOPBACK = "127.0.0.1"


class QuietHandler(BaseHTTPRequestHandler):
    def reply(self, status: int, body: bytes, content_type: str | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def self_signed_certificate(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A one-day certificate for 127.0.0.1 and its key, made with openssl: (cert, key)."""
    certificate, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    openssl += ["-subj", f"/CN={LOOPBACK}", "-addext", f"subjectAltName=IP:{LOOPBACK}"]
    openssl += ["-keyout", str(key), "-out", str(certificate)]
    subprocess.run(openssl, check=True, capture_output=True, timeout=30)
    return certificate, key


class LoopbackServer:
    """``handler`` served on 127.0.0.1 from a daemon thread; TLS with ``certificate``."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        certificate: tuple[Path, Path] | None = None,
        quiet_errors: bool = False,
    ):
        self.server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.server.daemon_threads = True
        if quiet_errors:  # clients that time out on purpose
            self.server.handle_error = lambda request, address: None
        self.scheme = "http"
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
