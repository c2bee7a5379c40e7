"""The embedded platform: stable and canary as local processes behind the nginx router.

A fresh baseline (``deploy_baseline``) is one more process of stable's artifact, started with
the canary (one instance, as the canary), scraped as ``track="baseline"`` and routed its share
by the same nginx; rollback and promotion stop it once traffic has left it.

A service is started from ``Artifact.command``, an argv in which ``{port}`` is replaced by the
port it must listen on (``["./svc", "-listen", "127.0.0.1:{port}"]``); the port is also in the
environment as ``PORT``, for programs that read it from there. Health is ``GET health_path``.

Order matters for zero failed requests: traffic leaves a process (router reload, verified, old
workers drained) before that process is stopped, and a process is healthy before it gets
traffic. Prometheus follows along through ``targets()`` and ``on_targets_changed``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from canaryflow.errors import InputError, PlatformError
from canaryflow.local.log_tail import LogTail, TailPoller
from canaryflow.local.process import (
    LOOPBACK,
    ManagedProcess,
    ProcessGroup,
    free_port,
    wait_http_ok,
)
from canaryflow.local.router import Design, NginxRouter
from canaryflow.platform.protocol import Artifact, HealthReport

PORT_PLACEHOLDER = "{port}"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScrapeTarget:
    """One process Prometheus should scrape, with the labels that tell the tracks apart."""

    address: str
    labels: Mapping[str, str]


@dataclass
class _Service:
    """An artifact running as a process on a port."""

    track: str
    artifact: Artifact
    port: int
    process: ManagedProcess
    log: LogTail

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


def service_argv(artifact: Artifact, port: int) -> list[str]:
    """The artifact's argv with its listen port filled in."""
    if not artifact.command:
        raise InputError(
            "artifact.command: empty; give the service's argv, with {port} where the port goes"
        )
    return [part.replace(PORT_PLACEHOLDER, str(port)) for part in artifact.command]


ROLLBACK_ATTEMPTS = 3


class LocalPlatform:
    """Platform over local processes; use as a context manager (or ``start``/``close``)."""

    def __init__(
        self,
        workdir: Path,
        stable: Artifact,
        *,
        group: ProcessGroup | None = None,
        app: str = "app",
        namespace: str = "local",
        health_path: str = "/healthz",
        router_port: int | None = None,
        router_design: Design = "two-tier",
        start_timeout_s: float = 10.0,
        drain_timeout_s: float = 30.0,
        on_targets_changed: Callable[[list[ScrapeTarget]], None] | None = None,
    ):
        service_argv(stable, 0)
        self.workdir = Path(workdir).resolve()
        self.stable_artifact = stable
        self.app = app
        self.namespace = namespace
        self.health_path = health_path
        self.start_timeout_s = start_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.on_targets_changed = on_targets_changed
        self._own_group = group is None
        self.group = group or ProcessGroup(self.workdir)
        self._router_port = router_port
        self._router_design = router_design
        self._router: NginxRouter | None = None
        self._stable: _Service | None = None
        self._canary: _Service | None = None
        self._baseline: _Service | None = None
        self._canary_log: _Service | None = None
        self._poller = TailPoller()
        self._started = 0
        self.router_restarts = 0
        self.targets_error: Exception | None = None

    # Lifecycle

    def start(self) -> LocalPlatform:
        if self._own_group:
            self.group.__enter__()
        try:
            self._stable = self._start_service("stable", self.stable_artifact)
            self._router = NginxRouter(
                self.workdir / "router",
                self.group,
                self._stable.address,
                port=self._router_port,
                design=self._router_design,
            )
            self._router.start()
            self._poller.start()
        except BaseException:
            self.close()
            raise
        self._notify_targets()
        return self

    def close(self) -> None:
        self._poller.stop()
        if self._router is not None:
            self._router.stop()
        for service in (self._canary, self._baseline, self._stable):
            if service is not None:
                self.group.stop(service.process)
        self._canary = self._baseline = self._stable = None
        if self._own_group:
            self.group.__exit__(None, None, None)

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # Platform

    @property
    def router(self) -> NginxRouter:
        if self._router is None:
            raise PlatformError("the local platform is not started")
        return self._router

    @property
    def url(self) -> str:
        """Where users reach the service: the router's port."""
        return self.router.url

    def deploy_canary(self, artifact: Artifact) -> None:
        """Start the canary and register it at the router, at weight 0.

        If telling the scrape side fails, the error is raised with the canary in place:
        ``rollback()`` removes it, as after any failed step.
        """
        if self._canary is not None:
            raise PlatformError(
                f"a canary ({self._canary.artifact.version}) is already deployed; "
                "promote or roll back first"
            )
        canary = self._start_service("canary", artifact, wait=False)
        try:
            self.router.add_canary(canary.address)
        except BaseException:
            self._stop_service(canary)
            raise
        self._canary = self._canary_log = canary
        self._notify_targets()

    def baseline_problem(self) -> str | None:
        """nginx splits three ways: a baseline can always run here."""
        return None

    def deploy_baseline(self) -> None:
        """Start a baseline of stable's artifact, healthy, registered at the router at 0 %.

        Like the canary it is in place before anything can fail, so ``rollback()`` removes it.
        """
        if self._baseline is not None:
            raise PlatformError("a baseline is already deployed; promote or roll back first")
        baseline = self._start_service("baseline", self.stable_artifact)
        self._baseline = baseline
        self.router.add_baseline(baseline.address)
        self._notify_targets()

    def wait_healthy(self, timeout_s: float) -> HealthReport:
        """The canary answers its health check, and the router it sits behind still serves.

        The engine asks this every analysis round, so a router that died or hangs (nginx
        master or worker killed or stopped) fails the window at once.
        """
        canary = self._canary
        if canary is None:
            return HealthReport(False, "no canary is deployed")
        problem = self.router.health()
        if problem is not None:
            return HealthReport(False, f"router: {problem}")
        try:
            wait_http_ok(self._health_url(canary), timeout_s, canary.process)
        except PlatformError as error:
            return HealthReport(False, str(error))
        return HealthReport(True, f"canary {canary.artifact.version} answers {self.health_path}")

    def process(self, track: str) -> ManagedProcess | None:
        """The process running ``track`` ("stable", "canary" or "baseline"): to watch it, or to
        crash it."""
        service = {"stable": self._stable, "canary": self._canary, "baseline": self._baseline}[
            track
        ]
        return service.process if service is not None else None

    def canary_alive(self) -> bool:
        return self._canary is not None and self._canary.process.alive()

    def promote(self, artifact: Artifact) -> None:
        """New stable from ``artifact``, all traffic to it, then canary and old stable stopped."""
        old_stable, canary = self._require_stable(), self._canary
        problem = self.router.health()
        if problem is not None:  # never promote across a router failure
            raise PlatformError(f"promotion refused, the router is broken: {problem}")
        new_stable = self._start_service("stable", artifact)
        try:
            self.router.replace_stable(new_stable.address)
        except BaseException:
            self._stop_service(new_stable)
            raise
        baseline = self._baseline
        self._stable, self._canary, self._baseline = new_stable, None, None
        self._await_router("promotion")
        for service in (canary, baseline, old_stable):
            if service is not None:
                self._stop_service(service)
        self.stable_artifact = artifact
        self._notify_targets(after_safe_change=True)

    def rollback(self) -> None:
        """Weight 0 and no canary routes, verified and drained; only then the canary stops.

        A broken router (a dead or stopped nginx) is restarted from its last good config
        without canary routes. Either way a request through the user port must come back
        from stable before the rollback counts as done. A failed attempt is retried, the
        retries restarting the router (which starts with no canary route at all), so a
        rollback ends with traffic on stable or says, after ``ROLLBACK_ATTEMPTS``, why not.
        """
        problem: str | None = None
        for attempt in range(ROLLBACK_ATTEMPTS):
            try:
                broken = self.router.health() if attempt == 0 else problem
                if broken is None:
                    self.router.remove_managed_routes()
                else:
                    _log.warning("rollback: router broken (%s): restarting it on stable", broken)
                    self.router_restarts += 1
                    self.router.restart()
                self._await_router("rollback")
                problem = self.router.stable_serves()
            except (PlatformError, OSError) as error:
                problem = str(error)
            if problem is None:
                break
            _log.warning("rollback attempt %d: %s", attempt + 1, problem)
        else:
            raise PlatformError(f"rollback: {problem}")
        canary, self._canary = self._canary, None
        baseline, self._baseline = self._baseline, None
        for service in (canary, baseline):
            if service is not None:
                self._stop_service(service)
        self._notify_targets(after_safe_change=True)

    def canary_logs(self, since: float) -> list[str]:
        """From the current canary, or the last one after a rollback or promotion."""
        last = self._canary_log
        return last.log.since(since) if last is not None else []

    def stable_logs(self, since: float) -> tuple[list[str], float]:
        """The reference's lines, for logs gates that compare: the fresh baseline's while one
        runs, else stable's (its one process: the whole fleet)."""
        stable = self._baseline or self._stable
        return (stable.log.since(since) if stable is not None else [], 1.0)

    def canary_logs_by_pod(self, since: float) -> dict[str, list[str]]:
        """``canary_logs`` under the process' scrape address: the ``instance`` its counters
        carry, so a logs gate can match its lines with its requests."""
        last = self._canary_log
        return {last.address: last.log.since(since)} if last is not None else {}

    def stable_logs_by_pod(self, since: float) -> tuple[dict[str, list[str]], float]:
        """``stable_logs`` under the reference process' scrape address (one process: there is
        no spread between pods to estimate, and the test's over-dispersion stays 1)."""
        stable = self._baseline or self._stable
        return ({stable.address: stable.log.since(since)} if stable is not None else {}, 1.0)

    def logs_by_pod_stamped(
        self, track: str, since: float, pods: Sequence[str] | None = None
    ) -> tuple[dict[str, list[tuple[float, str]]], float]:
        """The canary's or the reference's lines (``canary_logs_by_pod``,
        ``stable_logs_by_pod``), each with the time its tail first saw it (``LogTail``: within
        a poll of the write, on the clock Prometheus stamps its scrapes with). The local
        engine has no stable fleet apart from the reference ("fleet": none)."""
        if track == "canary":
            last = self._canary_log
            return ({last.address: last.log.stamped_since(since)} if last is not None else {}), 1.0
        stable = self._baseline or self._stable
        if track != "stable" or stable is None:
            return {}, 1.0
        return {stable.address: stable.log.stamped_since(since)}, 1.0

    # Prometheus

    def targets(self) -> list[ScrapeTarget]:
        services = [s for s in (self._stable, self._baseline, self._canary) if s is not None]
        return [
            ScrapeTarget(
                address=service.address,
                labels={
                    "track": service.track,
                    "version": service.artifact.version,
                    "app": self.app,
                    "namespace": self.namespace,
                },
            )
            for service in services
        ]

    # Internals

    def _start_service(self, track: str, artifact: Artifact, wait: bool = True) -> _Service:
        port = free_port()
        self._started += 1
        name = f"{track}-{artifact.version}-{self._started}"
        log = LogTail.from_end(self.group.workdir / f"{name}.log")
        process = self.group.start(
            name, service_argv(artifact, port), env={**artifact.env, "PORT": str(port)}
        )
        service = _Service(track, artifact, port, process, log)
        self._poller.tails.append(log)
        if wait:
            try:
                wait_http_ok(self._health_url(service), self.start_timeout_s, process)
            except PlatformError:
                self._stop_service(service)
                raise
        return service

    def _stop_service(self, service: _Service) -> None:
        service.log.poll()
        self.group.stop(service.process)
        with contextlib.suppress(ValueError):
            self._poller.tails.remove(service.log)

    def _await_router(self, step: str) -> None:
        """The new routes serve alone and the old workers have finished their requests."""
        if self.router.wait_serving(self.drain_timeout_s) is None:
            raise PlatformError(f"{step}: the router did not apply the new routes in time")
        if not self.router.wait_drained(self.drain_timeout_s):
            raise PlatformError(f"{step}: old router workers still busy after drain timeout")

    def _require_stable(self) -> _Service:
        if self._stable is None:
            raise PlatformError("the local platform is not started")
        return self._stable

    def _health_url(self, service: _Service) -> str:
        return f"http://{service.address}{self.health_path}"

    def _notify_targets(self, after_safe_change: bool = False) -> None:
        """Tell the scrape side; once a promotion or rollback is done, its failure cannot undo it.

        A dead Prometheus must not turn a completed rollback into a "rollback incomplete": the
        error is logged and kept in ``targets_error`` instead of raised.
        """
        if self.on_targets_changed is None:
            return
        try:
            self.on_targets_changed(self.targets())
            self.targets_error = None
        except Exception as error:
            if not after_safe_change:
                raise
            self.targets_error = error
            _log.warning("scrape targets not updated after the change: %s", error)
