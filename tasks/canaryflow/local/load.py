"""A steady stream of user requests through the router, counted per track and outcome.

K client threads share a fixed request rate, each on one keep-alive ``HTTPConnection``. Like
any pooling HTTP client (urllib3, Go's net/http), a client reopens a connection the server has
already closed before sending on it. A request that fails is counted and never retried (a retry
would hide exactly the drops a zero-downtime router must not have); the connection is then
reopened for the next request.

Outcome: a request *failed* if it got no HTTP answer (refused, reset, closed, timed out) or
an answer >= 500. Anything else (2xx, 3xx, 4xx) is the service's own answer and counts as ok.
The track is read from the router's ``X-Canaryflow-Track`` response header.
"""

from __future__ import annotations

import http.client
import random
import select
import threading
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from canaryflow.errors import InputError
from canaryflow.local.nginx_config import TRACK_HEADER
from canaryflow.platform.protocol import HeaderRoute
from canaryflow.platform.requests import NO_ANSWER, LoadCounters, Request

TRACKS = ("unknown", "stable", "canary", "baseline")


@dataclass(frozen=True)
class LoadConfig:
    url: str
    rate: float = 100.0
    clients: int = 8
    paths: Sequence[str] = ("/",)
    headers: Mapping[str, str] = field(default_factory=dict)
    override_share: float = 0.0
    override: HeaderRoute = field(default_factory=HeaderRoute)
    users: int = 1000
    timeout_s: float = 2.0
    max_duration_s: float = 600.0

    def validate(self) -> None:
        problems = []
        if self.rate <= 0:
            problems.append("rate: must be > 0 requests per second")
        if self.clients < 1:
            problems.append("clients: must be at least 1")
        if not self.paths or not all(p.startswith("/") for p in self.paths):
            problems.append("paths: give at least one path, each starting with /")
        if not 0.0 <= self.override_share <= 1.0:
            problems.append("override_share: must be between 0 and 1")
        if self.max_duration_s <= 0:
            problems.append("max_duration_s: must be > 0 so the load stops by itself")
        if urlsplit(self.url).scheme != "http":
            problems.append(f"url: {self.url!r} must be an http:// URL")
        if problems:
            raise InputError("\n".join(problems))


class _Timeline:
    """One client's events as parallel typed arrays: ~15 bytes per request."""

    def __init__(self) -> None:
        self.at = array("d")
        self.track = array("b")
        self.status = array("H")
        self.latency = array("f")

    def record(self, at: float, track: int, status: int, latency: float) -> None:
        # Appended last-to-first so a concurrent reader never sees a time without its details.
        self.latency.append(latency)
        self.status.append(status)
        self.track.append(track)
        self.at.append(at)

    def events(self, start: float, end: float) -> list[Request]:
        count = len(self.at)
        return [
            Request(self.at[i], TRACKS[self.track[i]], self.status[i], self.latency[i])
            for i in range(count)
            if start <= self.at[i] < end
        ]


class LoadGenerator:
    """Start, watch, stop; also stops by itself after ``max_duration_s``."""

    def __init__(self, config: LoadConfig):
        config.validate()
        self.config = config
        parts = urlsplit(config.url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._stop = threading.Event()
        self._timelines = [_Timeline() for _ in range(config.clients)]
        self._threads: list[threading.Thread] = []
        self.started_at: float | None = None

    def start(self) -> LoadGenerator:
        self.started_at = time.time()
        deadline = time.monotonic() + self.config.max_duration_s
        for index, timeline in enumerate(self._timelines):
            thread = threading.Thread(
                target=self._client,
                args=(index, timeline, deadline),
                name=f"load-client-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout_s: float = 5.0) -> LoadCounters:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        return self.counters()

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def events(self, start: float = 0.0, end: float = float("inf")) -> list[Request]:
        """Events with ``start <= at < end`` (Unix time), oldest first."""
        merged = [e for timeline in self._timelines for e in timeline.events(start, end)]
        return sorted(merged, key=lambda event: event.at)

    def counters(self, start: float = 0.0, end: float = float("inf")) -> LoadCounters:
        return LoadCounters.of(self.events(start, end))

    def failures(self, start: float = 0.0, end: float = float("inf")) -> list[Request]:
        return [event for event in self.events(start, end) if event.failed]

    def _client(self, index: int, timeline: _Timeline, deadline: float) -> None:
        config = self.config
        rng = random.Random(index)
        interval = config.clients / config.rate
        next_at = time.monotonic() + interval * index / config.clients
        conn = http.client.HTTPConnection(self._host, self._port, timeout=config.timeout_s)
        try:
            while not self._stop.is_set() and next_at < deadline:
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                self._request(conn, rng, timeline)
                next_at += interval
                # Fall behind rather than burst: the rate is a ceiling, never a catch-up.
                next_at = max(next_at, time.monotonic())
        finally:
            conn.close()

    def _request(
        self, conn: http.client.HTTPConnection, rng: random.Random, timeline: _Timeline
    ) -> None:
        config = self.config
        headers = {"X-User-Id": f"user-{rng.randrange(config.users)}", **config.headers}
        if config.override_share and rng.random() < config.override_share:
            headers[config.override.name] = config.override.value
        if _closed_by_server(conn):
            conn.close()
        sent_at = time.time()
        began = time.perf_counter()
        try:
            conn.request("GET", rng.choice(config.paths), headers=headers)
            response = conn.getresponse()
            response.read()
            status, track = response.status, response.getheader(TRACK_HEADER, "")
        except (OSError, http.client.HTTPException):
            conn.close()
            status, track = NO_ANSWER, ""
        track_code = TRACKS.index(track) if track in TRACKS else 0
        timeline.record(sent_at, track_code, status, time.perf_counter() - began)


def _closed_by_server(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket that is readable has been closed (or spoiled) by the server."""
    if conn.sock is None:
        return False
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)
