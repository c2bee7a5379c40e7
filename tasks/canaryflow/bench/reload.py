"""Measure what the router costs users: failed requests across weight changes, per design.

``canaryflow bench`` runs it (``--reload-changes``). The backends are nginx answering fixed
text, so every failure counted is the router's (or the client's) and none the service's.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.nginx import NginxInstance
from canaryflow.local.nginx_config import NginxFiles, render_static
from canaryflow.local.process import LOOPBACK, ProcessGroup, free_port
from canaryflow.local.router import NginxRouter


def start_static(group: ProcessGroup, workdir: Path, version: str) -> str:
    port = free_port()
    files = NginxFiles(workdir / f"static-{version}", "static")
    files.prefix.mkdir(parents=True)
    NginxInstance(files, group).start(render_static(files, port, version))
    return f"{LOOPBACK}:{port}"


def weight_changes(design: str, changes: int, rate: float, clients: int, pause_s: float) -> dict:
    """Keep-alive load through the router while its weight changes ``changes`` times."""
    with (
        tempfile.TemporaryDirectory(prefix="canaryflow-bench-") as tmp,
        ProcessGroup(Path(tmp)) as group,
    ):
        workdir = Path(tmp)
        stable, canary = start_static(group, workdir, "v1"), start_static(group, workdir, "v2")
        with NginxRouter(workdir / "router", group, stable, design=design) as router:
            router.set_canary_upstream(canary)
            config = LoadConfig(router.url, rate=rate, clients=clients, max_duration_s=3600)
            with LoadGenerator(config) as load:
                unverified = 0
                for change in range(changes):
                    percent = (change * 37) % 101
                    router.set_weight(percent)
                    unverified += not router.verify_weight(percent)
                    time.sleep(pause_s)
            counters = load.counters()
    return {
        "design": design,
        "weight_changes": changes,
        "unverified_changes": unverified,
        "requests": counters.total,
        "failed": counters.failed,
        "failed_percent": round(100 * counters.failed / max(counters.total, 1), 4),
    }
