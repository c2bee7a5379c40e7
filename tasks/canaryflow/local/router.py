"""The local traffic router: nginx splitting requests between stable, canary and a baseline.

Why two nginx masters: a reload (SIGHUP) makes the old workers close their idle keep-alive
connections, and a client that sends on one at that moment gets a reset, about 1 request in
1000 under keep-alive load. So the *edge* nginx, which holds the users' keep-alive connections,
is never reloaded; it opens a fresh unix-socket connection to the *splitter* nginx for every
request. The splitter holds the weights and is reloaded on every change: its listening socket
survives the reload and its old workers finish what they accepted, so there is no idle
connection left to race on. ``design="single"`` is the one-master textbook setup, kept to
measure the difference.

Every change is rendered to a new file and checked with ``nginx -t`` before it replaces the
serving config: a bad config raises ``PlatformError`` and the old one keeps serving.
"""

from __future__ import annotations

import dataclasses
import http.client
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from canaryflow.errors import PlatformError
from canaryflow.local.nginx import NginxInstance
from canaryflow.local.nginx_config import (
    ROUTER_PROBE_ANSWER,
    ROUTER_PROBE_PATH,
    TRACK_HEADER,
    WORKER_PROCESSES,
    NginxFiles,
    RouteState,
    render_edge,
    render_splitter,
    validate_state,
)
from canaryflow.local.process import LOOPBACK, ProcessGroup, free_port
from canaryflow.platform.protocol import HeaderRoute

Design = Literal["two-tier", "single"]
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class ServedRoutes:
    """What the splitter's serving config reports about itself."""

    generation: int
    weight: int
    stable: str
    canary: str | None
    header: str | None
    baseline_weight: int = 0
    baseline: str | None = None

    @classmethod
    def parse(cls, text: str) -> ServedRoutes:
        fields = dict(part.split("=", 1) for part in text.split())
        return cls(
            generation=int(fields["generation"]),
            weight=int(fields["weight"]),
            stable=fields["stable"],
            canary=None if fields["canary"] == "-" else fields["canary"],
            header=None if fields["header"] == "-" else fields["header"],
            baseline_weight=int(fields.get("baseline_weight", "0")),
            baseline=None if fields.get("baseline", "-") == "-" else fields["baseline"],
        )


class NginxRouter:
    """TrafficRouter over nginx on ``127.0.0.1:port``; responses name their track."""

    def __init__(
        self,
        workdir: Path,
        group: ProcessGroup,
        stable: str,
        *,
        port: int | None = None,
        design: Design = "two-tier",
        verify_timeout_s: float = 5.0,
    ):
        # Absolute: nginx resolves a relative path against its own prefix, not our cwd.
        self.workdir = Path(workdir).resolve()
        self.group = group
        self.port = port or free_port()
        self.design = design
        self.verify_timeout_s = verify_timeout_s
        self._state = RouteState(stable=stable)
        validate_state(self._state)
        self._socket_dir = self._choose_socket_dir()
        self.splitter = NginxInstance(NginxFiles(self.workdir, "splitter"), group)
        self.edge = NginxInstance(NginxFiles(self.workdir, "edge"), group)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def state(self) -> RouteState:
        return self._state

    def start(self) -> None:
        self._socket_dir.mkdir(parents=True, exist_ok=True)
        self.splitter.start(self._render())
        if self.design == "two-tier":
            self.edge.start(render_edge(self.edge.files, self.port, self._splitter_socket))

    def health(self) -> str | None:
        """None while the router serves users; else what broke (dead or stopped nginx).

        The request goes through the user port and both tiers to a location the splitter
        answers itself (``ROUTER_PROBE_PATH``), never to an upstream: a canary that hangs
        (SIGSTOP, a deadlock) is the canary's fault, and must not make the router look broken
        while the rollback needs it to move traffic off that canary.
        """
        for instance in self._instances():
            problem = instance.problem()
            if problem is not None:
                return problem
        try:
            conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=1.0)
            try:
                conn.request("GET", ROUTER_PROBE_PATH, headers={"X-Canaryflow-Probe": "1"})
                response = conn.getresponse()
                body = response.read(64).decode(errors="replace").strip()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as error:
            return f"the router port {self.port} does not answer: {error}"
        if response.status != 200 or body != ROUTER_PROBE_ANSWER:
            return f"the router port {self.port} answers {response.status} to its own probe"
        return None

    def restart(self) -> None:
        """Start both tiers again from the last good routes, minus every canary route.

        For a router that died or hangs: stopping SIGKILLs each whole process group (stopped
        masters and orphaned workers included), stale unix sockets are removed, and the
        serving state becomes "all traffic on stable" before anything listens again.
        """
        self.stop()
        for stale in (self._splitter_socket, self._admin_socket):
            stale.unlink(missing_ok=True)
        self._state = dataclasses.replace(
            self._state,
            generation=self._state.generation + 1,
            canary=None,
            canary_percent=0,
            header_route=None,
            baseline=None,
            baseline_percent=0,
        )
        self.start()

    def stable_serves(self) -> str | None:
        """None when a request through the user port is answered by stable; else why not."""
        try:
            conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=2.0)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                track = response.getheader(TRACK_HEADER)
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as error:
            return f"no answer through the router: {error}"
        return None if track == "stable" else f"answered by {track!r}, not stable"

    def _instances(self) -> list[NginxInstance]:
        return [self.splitter, self.edge] if self.design == "two-tier" else [self.splitter]

    def stop(self) -> None:
        self.edge.stop()
        self.splitter.stop()
        if self._socket_dir.parent != self.workdir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> NginxRouter:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # TrafficRouter

    def set_weight(self, canary_percent: int, baseline_percent: int = 0) -> None:
        if baseline_percent and self._state.baseline is None:
            raise PlatformError(
                f"baseline share {baseline_percent}% asked, but no baseline is deployed"
            )
        self._apply(canary_percent=canary_percent, baseline_percent=baseline_percent)

    def verify_weight(self, canary_percent: int, baseline_percent: int = 0) -> bool:
        """True once only workers running the latest config accept, and it has these shares."""
        if self.health() is not None:
            return False
        served = self.wait_serving(self.verify_timeout_s)
        return (
            served is not None
            and served.weight == canary_percent
            and served.baseline_weight == baseline_percent
        )

    def set_header_route(self, route: HeaderRoute) -> None:
        self._apply(header_route=route)

    def remove_managed_routes(self) -> None:
        self._apply(
            canary=None, canary_percent=0, header_route=None, baseline=None, baseline_percent=0
        )

    # Upstreams

    def set_canary_upstream(self, address: str | None) -> None:
        """Where the canary listens; ``None`` removes the canary from the router."""
        self._apply(canary=address)

    def add_canary(self, address: str) -> None:
        """A new canary at ``address`` that takes no traffic yet: weight 0, no header route."""
        self._apply(canary=address, canary_percent=0, header_route=None)

    def add_baseline(self, address: str) -> None:
        """A fresh baseline at ``address`` that takes no traffic yet (its share: 0)."""
        self._apply(baseline=address, baseline_percent=0)

    def replace_stable(self, address: str) -> None:
        """Point stable at ``address`` and drop every canary and baseline route, in one reload
        (promotion)."""
        self._apply(
            stable=address,
            canary=None,
            canary_percent=0,
            header_route=None,
            baseline=None,
            baseline_percent=0,
        )

    # Observation

    def served(self) -> ServedRoutes:
        """Ask the splitter which config answered (any accepting worker, old or new)."""
        conn = _UnixHTTPConnection(self._admin_socket, timeout=2.0)
        try:
            conn.request("GET", "/weight")
            response = conn.getresponse()
            return ServedRoutes.parse(response.read().decode())
        except (OSError, http.client.HTTPException, KeyError, ValueError) as error:
            raise PlatformError(f"router admin endpoint did not answer: {error}") from error
        finally:
            conn.close()

    def wait_serving(self, timeout_s: float) -> ServedRoutes | None:
        """The latest config once it alone accepts requests; ``None`` after the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                served = self.served()
            except PlatformError:
                served = None
            if (
                served is not None
                and served.generation == self._state.generation
                and len(self.splitter.accepting_workers()) == WORKER_PROCESSES
            ):
                return served
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def wait_drained(self, timeout_s: float) -> bool:
        """True once no worker of an older config is still finishing requests."""
        deadline = time.monotonic() + timeout_s
        while self.splitter.draining_workers():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _apply(self, **changes) -> None:
        problem = self.health()
        if problem is not None:  # a reload cannot mend a dead tier: say so now, not in 10 s
            raise PlatformError(f"router broken: {problem}")
        candidate = dataclasses.replace(
            self._state, generation=self._state.generation + 1, **changes
        )
        self.splitter.reload(self._render(candidate))
        self._state = candidate

    def _render(self, state: RouteState | None = None) -> str:
        listen = (
            f"unix:{self._splitter_socket}"
            if self.design == "two-tier"
            else f"{LOOPBACK}:{self.port}"
        )
        return render_splitter(
            state or self._state, self.splitter.files, listen, self._admin_socket
        )

    @property
    def _splitter_socket(self) -> Path:
        return self._socket_dir / "splitter.sock"

    @property
    def _admin_socket(self) -> Path:
        return self._socket_dir / "admin.sock"

    def _choose_socket_dir(self) -> Path:
        """Unix socket paths are limited to 108 bytes (``sun_path``): the run's folder when
        its path is short enough, else a private folder in the temp dir, else in ``/tmp``
        (a deep ``TMPDIR`` is as common as a deep ``--out``)."""
        preferred = self.workdir / "sockets"
        if _fits(preferred):
            return preferred
        for parent in (None, "/tmp"):
            candidate = Path(tempfile.mkdtemp(prefix="canaryflow-nginx-", dir=parent))
            if _fits(candidate):
                return candidate
            candidate.rmdir()
        raise RuntimeError(f"no folder short enough for nginx's unix sockets: {candidate}")


def _fits(folder: Path) -> bool:
    return len(str(folder / "splitter.sock")) <= _MAX_SOCKET_PATH


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)
