"""Measure what the router costs users: failed requests across weight changes, per design.

    python -m canaryflow.local.reload_bench --changes 100 --rate 200 --clients 8
    python -m canaryflow.local.reload_bench --max-rate

The backends are nginx answering fixed text, so every failure counted is the router's (or the
client's) and none the service's. ``--max-rate`` reports how many requests per second the load
generator itself sustains on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def max_rate(clients: int, seconds: float) -> dict:
    """Ask for far more than the generator can do, against a direct nginx backend."""
    with (
        tempfile.TemporaryDirectory(prefix="canaryflow-bench-") as tmp,
        ProcessGroup(Path(tmp)) as group,
    ):
        backend = start_static(group, Path(tmp), "v1")
        config = LoadConfig(f"http://{backend}", rate=100_000, clients=clients)
        with LoadGenerator(config) as load:
            time.sleep(seconds)
        counters = load.counters()
    return {
        "clients": clients,
        "requests_per_s": round(counters.total / seconds),
        "failed": counters.failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--designs", nargs="+", default=["two-tier", "single"])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between changes")
    parser.add_argument("--max-rate", action="store_true")
    args = parser.parse_args(argv)
    if args.max_rate:
        for clients in (1, 4, args.clients):
            print(json.dumps(max_rate(clients, 3.0)), flush=True)
        return 0
    for design in args.designs:
        result = weight_changes(design, args.changes, args.rate, args.clients, args.pause)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
