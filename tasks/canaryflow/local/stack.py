"""One machine, one release stack: Prometheus, stable behind nginx, and users sending load.

``LocalStack`` composes the embedded platform's parts and hands the release engine the same
plan, gates and decisions a cluster run uses. Everything binds 127.0.0.1 and lives in one
``ProcessGroup``, so a finished, failed or interrupted run stops exactly what it started.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from canaryflow.analysis.source import PrometheusSource
from canaryflow.errors import PlatformError
from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.platform import LocalPlatform, ScrapeTarget
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import PrometheusServer
from canaryflow.plan.model import ReleasePlan
from canaryflow.platform.protocol import Artifact, HeaderRoute
from canaryflow.platform.requests import LoadCounters
from canaryflow.release.engine import Approver, ReleaseResult, plan_release
from canaryflow.release.record import Listener, ReleaseRecord

TARGETS_UP_TIMEOUT_S = 20.0


class LocalStack:
    """Prometheus + the local platform + load generator; a context manager."""

    def __init__(self, plan: ReleasePlan, stable: Artifact, workdir: Path):
        self.plan = plan
        self.stable = stable
        self.workdir = Path(workdir).resolve()
        self.group = ProcessGroup(self.workdir / "processes")
        self.prometheus: PrometheusServer | None = None
        self.platform: LocalPlatform | None = None
        self.load: LoadGenerator | None = None
        self._targets: set[str] = set()
        # What the users saw during the last release, faults included (failed = 5xx or no answer).
        self.last_users: LoadCounters | None = None

    def __enter__(self) -> LocalStack:
        self.group.__enter__()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        plan = self.plan
        self.prometheus = PrometheusServer(
            self.group, self.workdir / "prometheus", plan.local.scrape_interval
        ).start()
        self.platform = LocalPlatform(
            self.workdir / "platform",
            self.stable,
            group=self.group,
            app=plan.service.name,
            namespace=plan.service.namespace,
            health_path=plan.service.health_path,
            on_targets_changed=self._retarget,
        ).start()
        self.load = LoadGenerator(self._load_config()).start()

    def _retarget(self, targets: list[ScrapeTarget]) -> None:
        """Point Prometheus at the current processes and wait until it scrapes them.

        Prometheus batches discovery updates (about 5 s), so a canary is not "deployed" for
        analysis until its first scrape: otherwise the first window judges a canary with no
        data at all (Flagger #664).
        """
        if self.prometheus is None:
            return
        self.prometheus.set_targets([(t.address, dict(t.labels)) for t in targets])
        addresses = {t.address for t in targets}
        added, self._targets = addresses - self._targets, addresses
        if added:  # a removal (rollback, promotion) has nothing to wait for
            self._wait_scraped(added)

    def _wait_scraped(self, addresses: set[str]) -> None:
        deadline = time.monotonic() + TARGETS_UP_TIMEOUT_S
        while True:
            up = {
                t["labels"].get("instance")
                for t in self.prometheus.active_targets()
                if t["health"] == "up"
            }
            if addresses <= up:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(addresses - up))
                raise PlatformError(f"Prometheus has not scraped {missing} within 20s")
            time.sleep(0.2)

    def _load_config(self) -> LoadConfig:
        load, header = self.plan.local.load, self.plan.router.header
        return LoadConfig(
            url=self.platform.url,
            rate=load.rate,
            clients=load.clients,
            paths=tuple(load.paths),
            headers=dict(load.headers),
            override_share=load.header_share if header is not None else 0.0,
            override=HeaderRoute(header.name, header.value) if header else HeaderRoute(),
            users=load.users,
        )

    def close(self) -> None:
        if self.load is not None:
            with contextlib.suppress(Exception):
                self.load.stop()
        if self.platform is not None:
            with contextlib.suppress(Exception):
                self.platform.close()
        self.group.__exit__(None, None, None)

    def release(
        self,
        canary: Artifact,
        listeners: list[Listener] = (),
        approver: Approver | None = None,
        record: ReleaseRecord | None = None,
    ) -> ReleaseResult:
        """One release of ``canary`` through the plan's steps, judged by its gates.

        ``record`` lets the caller keep the record (and its journal) if the release raises.
        """
        plan, platform = self.plan, self.platform
        assert platform is not None and self.prometheus is not None
        if record is None:
            record = ReleaseRecord(plan.service.name, canary.version, "local")
        record.listeners.extend(listeners)
        source = PrometheusSource(self.prometheus.url, timeout=plan.analysis.prometheus.timeout)
        engine = plan_release(plan, platform, source, record, approver)
        started = time.time()
        try:
            result = engine.run(canary)
        finally:
            self.last_users = self.load.counters(started) if self.load is not None else None
        if result.phase == "promoted":
            self.stable = canary
        return result
