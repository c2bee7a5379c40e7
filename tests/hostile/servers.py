"""Small real HTTP servers on 127.0.0.1 that misbehave on purpose, stopped by the fixture."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

last_server: ThreadingHTTPServer | None = None  # the newest, for a test to wrap in TLS


class Seen:
    """What a server received: (method, path, headers) per request."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def headers_named(self, name: str) -> list[str]:
        return [h[name] for _, _, h in self.requests if name in h]


@contextlib.contextmanager
def serve(answer: Callable[[BaseHTTPRequestHandler, Seen], None]) -> Iterator[tuple[str, Seen]]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def _any(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.requests.append((self.command, self.path, dict(self.headers)))
            answer(self, seen)

        do_GET = do_POST = do_PUT = do_HEAD = _any

        def log_message(self, *args):
            pass

    global last_server
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    last_server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def redirect_to(location: str) -> Callable:
    def answer(handler, seen):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def ok(handler, seen):
    handler.send_response(200)
    handler.send_header("Content-Length", "2")
    handler.end_headers()
    handler.wfile.write(b"ok")


def hang(seconds: float) -> Callable:
    def answer(handler, seen):
        time.sleep(seconds)
        with contextlib.suppress(OSError):
            ok(handler, seen)

    return answer


class Held:
    """An answer that hangs until the test lets it go (or ``limit_s``, a safety net).

    Tests assert *order* with it, not elapsed time: "the rollback finished while the webhook was
    still hanging" is ``held.answered == 0`` when the rollback returned, however loaded the
    machine is. ``arrived`` counts requests that reached the handler.
    """

    def __init__(self, limit_s: float = 120.0):
        self._go = threading.Event()
        self._lock = threading.Lock()
        self.limit_s = limit_s
        self.arrived = 0
        self.answered = 0
        self.first_arrival: dict[str, float] = {}
        """Path -> when its first request arrived (``time.monotonic``)."""

    def __call__(self, handler, seen):
        with self._lock:
            self.arrived += 1
            self.first_arrival.setdefault(handler.path, time.monotonic())
        self._go.wait(self.limit_s)
        with contextlib.suppress(OSError):
            ok(handler, seen)
        with self._lock:
            self.answered += 1

    def release(self) -> None:
        self._go.set()

    def wait_arrived(self, count: int, within_s: float = 30.0) -> bool:
        """True once ``count`` requests are hanging here (a safety net bounds the wait)."""
        deadline = time.monotonic() + within_s
        while self.arrived < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.arrived >= count


def huge(handler, seen):
    handler.send_response(200)
    handler.end_headers()  # no length: read until close
    with contextlib.suppress(OSError):
        for _ in range(64):
            handler.wfile.write(b"x" * (1 << 20))


class Drip:
    """200 with a ``length``-byte body sent one byte every ``every_s``: each read gets a byte
    well within any socket timeout, so only a deadline over the whole answer stops it.

    ``finished`` counts answers sent whole; a client that gave up in time returns while it is
    still 0 (the whole body takes ``length`` times ``every_s``).
    """

    def __init__(self, every_s: float, length: int = 60):
        self.every_s = every_s
        self.length = length
        self.finished = 0

    def __call__(self, handler, seen):
        handler.send_response(200)
        handler.send_header("Content-Length", str(self.length))
        handler.end_headers()
        try:
            for _ in range(self.length):
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(self.every_s)
        except OSError:
            return
        self.finished += 1


def drip(every_s: float, length: int = 60) -> Drip:
    return Drip(every_s, length)
