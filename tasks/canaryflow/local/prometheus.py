"""A Prometheus of our own: Debian's binary, a generated config, storage in a temp dir.

Targets come from a ``file_sd_configs`` file, so the local engine can add the canary, retarget
or relabel tracks while Prometheus runs, exactly as Kubernetes service discovery would. Each
target's labels (app, namespace, track, version) become its series' labels, which is what the
analysis queries select on.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from canaryflow.duration import format_duration
from canaryflow.errors import PlatformError
from canaryflow.local.process import LOOPBACK, ManagedProcess, ProcessGroup, free_port, wait_http_ok

PROMETHEUS = "/usr/bin/prometheus"
JOB = "canaryflow"

Target = tuple[str, Mapping[str, str]]
"""A scrape target: ``host:port`` and the labels its series get."""


class PrometheusServer:
    """One Prometheus process on 127.0.0.1 with a rewritable target list."""

    def __init__(
        self,
        group: ProcessGroup,
        workdir: Path,
        scrape_interval: float = 1.0,
        binary: str = PROMETHEUS,
        name: str = "prometheus",
    ):
        self.group = group
        self.workdir = Path(workdir).resolve()
        self.scrape_interval = scrape_interval
        self.binary = binary
        self.name = name
        self.port = 0
        self.process: ManagedProcess | None = None
        self.startup_s: float | None = None
        """Seconds from exec to /-/ready, measured by ``start``."""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def targets_file(self) -> Path:
        return self.workdir / "targets.json"

    def start(self, targets: Sequence[Target] = (), timeout_s: float = 20.0) -> PrometheusServer:
        """Write the config, start Prometheus and wait until it is ready to answer queries."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.set_targets(targets)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config(), sort_keys=False))
        self.port = free_port()
        began = time.monotonic()
        self.process = self.group.start(
            self.name,
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                "--storage.tsdb.retention.time=1d",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=warn",
            ],
        )
        self.wait_ready(timeout_s)
        self.startup_s = time.monotonic() - began
        return self

    def _config(self) -> dict:
        interval = format_duration(self.scrape_interval)
        return {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "file_sd_configs": [
                        {"files": [str(self.targets_file)], "refresh_interval": interval}
                    ],
                }
            ],
        }

    def set_targets(self, targets: Sequence[Target]) -> None:
        """Replace the scraped targets; Prometheus notices the file within a second."""
        groups = [{"targets": [address], "labels": dict(labels)} for address, labels in targets]
        partial = self.targets_file.with_suffix(".json.tmp")
        partial.write_text(json.dumps(groups, indent=2))
        os.replace(partial, self.targets_file)  # atomic: never a half-written file

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        wait_http_ok(f"{self.url}/-/ready", timeout_s, self.process)

    def active_targets(self) -> list[dict]:
        """Prometheus' view of its targets (labels, health, last error)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets?state=active", timeout=2) as r:
            return json.load(r)["data"]["activeTargets"]

    def wait_targets_up(self, count: int, timeout_s: float = 10.0) -> None:
        """Wait until ``count`` targets have been scraped successfully."""
        deadline = time.monotonic() + timeout_s
        up: list[dict] = []
        while time.monotonic() < deadline:
            up = [t for t in self.active_targets() if t["health"] == "up"]
            if len(up) >= count:
                return
            time.sleep(0.1)
        raise PlatformError(f"{len(up)} of {count} Prometheus targets up after {timeout_s}s")

    def stop(self) -> None:
        if self.process is not None:
            self.group.stop(self.process)
            self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: for tests of a metrics outage."""
        if self.process is not None:
            self.process.kill()
