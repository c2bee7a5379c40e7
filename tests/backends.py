"""Tiny HTTP backends for router and platform tests, each run as its own process.

    python tests/backends.py --port 8081 --version v1 --fail-rate 0

Answers /healthz with 200, every other path with 200 and ``version=<version>`` (or 500 with
probability ``--fail-rate``), and logs one timestamped line per request to stdout.

``start_backend`` runs that script under a ProcessGroup; ``start_static_backend`` runs an nginx
that answers the same way, for tests that need thousands of requests per second.
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from canaryflow.local.nginx import NginxInstance
from canaryflow.local.nginx_config import NginxFiles, render_static
from canaryflow.local.process import ProcessGroup, free_port, wait_http_ok

SCRIPT = Path(__file__).resolve()


def make_handler(version: str, fail_rate: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            failing = self.path != "/healthz" and random.random() < fail_rate
            status = 500 if failing else 200
            body = f"version={version}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend-Version", version)
            self.end_headers()
            self.wfile.write(body)
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            user = self.headers.get("X-User-Id", "-")
            print(f"{stamp} {version} GET {self.path} {status} user={user}", flush=True)

        def log_message(self, format: str, *args: object) -> None:
            """Request lines are printed by do_GET; silence the stderr default."""

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", default="v1")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(args.version, args.fail_rate)
    )
    server.daemon_threads = True
    server.request_queue_size = 128
    print(f"listening on 127.0.0.1:{args.port} version={args.version}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def backend_command(version: str, fail_rate: float = 0.0) -> list[str]:
    """argv for LocalPlatform artifacts: ``{port}`` is filled in by the platform."""
    return [
        sys.executable,
        str(SCRIPT),
        "--port",
        "{port}",
        "--version",
        version,
        "--fail-rate",
        str(fail_rate),
    ]


def start_backend(group: ProcessGroup, version: str, fail_rate: float = 0.0) -> str:
    """Start this script on a free port under ``group``; returns its HOST:PORT once healthy."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in backend_command(version, fail_rate)]
    process = group.start(f"backend-{version}-{port}", argv)
    wait_http_ok(f"http://127.0.0.1:{port}/healthz", 10, process)
    return f"127.0.0.1:{port}"


def start_static_backend(group: ProcessGroup, workdir: Path, version: str) -> str:
    """An nginx answering ``version=<version>`` on every path; returns its HOST:PORT."""
    port = free_port()
    files = NginxFiles(Path(workdir) / f"static-{version}-{port}", "static")
    files.prefix.mkdir(parents=True)
    NginxInstance(files, group).start(render_static(files, port, version))
    return f"127.0.0.1:{port}"


if __name__ == "__main__":
    sys.exit(main())
