"""What ``canaryflow bench`` measures on this machine, each measurement one function.

Every figure comes from real processes: the sample Go service behind the nginx router, a
real Prometheus, the load generator's users. A bad release's fault is switched on through
the canary's ``PUT /admin/faults`` a fixed delay after its first window starts, and the
service reports the exact moment it took effect, so detection-to-safe is measured from the
service's own clock to the router's confirmed weight 0.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import PrometheusSource
from canaryflow.bench.analysis_round import full_catalogue_spec, time_rounds
from canaryflow.bench.reload import start_static, weight_changes
from canaryflow.flags.document import flag_off
from canaryflow.flags.store import FileFlagStore, replace_with
from canaryflow.local.flag_demo import DEMO_PLAN
from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.process import ProcessGroup
from canaryflow.local.programs import sample_service
from canaryflow.local.router import NginxRouter
from canaryflow.local.stack import LocalStack
from canaryflow.plan.load import plan_from_dict
from canaryflow.plan.model import ReleasePlan
from canaryflow.release.decision import Phase
from canaryflow.release.events import EventKind
from canaryflow.release.flag_run import flag_rollout
from canaryflow.release.record import Event

FAULT_DELAY_S = 2.0
# Spread over one analysis interval, so detection times sample every phase of the round clock.
FAULT_PHASES = 10
BAD_ERROR_RATE = 0.3
SPLIT_WEIGHTS = (5, 25, 50)
SPLIT_REQUESTS = 20_000
HEAVY_MODULES = ("hera", "kubernetes", "prometheus_api_client", "matplotlib", "pydantic")
# Runs ``canaryflow --help`` in-process, then prints the top-level modules it imported.
HELP_IMPORTS_PROBE = """
import contextlib, io, sys
from canaryflow.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""

# One short first step to catch the fault in, then two quick steps for the healthy releases.
BENCH_PLAN = {
    "apiVersion": "canaryflow.dev/v1alpha1",
    "kind": "ReleasePlan",
    "service": {"name": "checkout", "namespace": "bench", "healthTimeout": "15s"},
    "owners": {"team": "bench"},
    "steps": [
        {"weight": 10, "duration": "12s"},
        {"weight": 50, "duration": "3s"},
        {"weight": 100, "duration": "3s"},
    ],
    "analysis": {
        "interval": "1s",
        "queryWindow": "4s",
        "minCanaryRequests": 10,
        "inconclusiveLimit": 6,
        "consecutiveErrorLimit": 2,
        "gates": [
            {"metric": "error-rate", "threshold": {"max": 0.02}},
            {"metric": "latency-p95", "relative": {"maxRatio": 1.5, "floor": 0.05}},
            {"metric": "log-errors"},
        ],
    },
    "local": {"scrapeInterval": "1s", "load": {"rate": 150, "clients": 8}},
}


@dataclass(frozen=True)
class BadRelease:
    phase: str
    fault_on: float | None
    detection_to_safe_s: float | None
    requests: int
    failed: int

    @property
    def failed_share(self) -> float:
        return self.failed / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class BadFlagRollout:
    """A flag whose flag-on requests start failing mid-window: how fast users lose it."""

    phase: str
    fault_on: float | None
    detection_to_off_s: float | None  # fault on -> flag "off" written to the document
    off_served_s: float | None  # written -> every instance reports serving the off document

    @property
    def fault_to_served_off_s(self) -> float | None:
        if self.detection_to_off_s is None or self.off_served_s is None:
            return None
        return round(self.detection_to_off_s + self.off_served_s, 3)


@dataclass(frozen=True)
class HealthyRelease:
    phase: str
    requests: int
    failed: int
    weight_changes: int
    reason: str = ""
    """Why a healthy release was not promoted (a false rollback to explain), else empty."""


@dataclass(frozen=True)
class SplitSample:
    weight: int
    requests: int
    canary: int

    @property
    def observed(self) -> float:
        return 100 * self.canary / self.requests if self.requests else 0.0

    @property
    def error_points(self) -> float:
        return abs(self.observed - self.weight)


@dataclass
class BenchResults:
    machine: dict[str, str]
    bad: list[BadRelease] = field(default_factory=list)
    bad_flags: list[BadFlagRollout] = field(default_factory=list)
    healthy: list[HealthyRelease] = field(default_factory=list)
    split: list[SplitSample] = field(default_factory=list)
    reload: list[dict[str, Any]] = field(default_factory=list)
    analysis_round: dict[str, Any] = field(default_factory=dict)
    cli_help: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_plan() -> ReleasePlan:
    return plan_from_dict(BENCH_PLAN, origin="bench plan")


# Releases -------------------------------------------------------------------------------


def releases(
    workdir: Path, build: Path, bad_count: int, healthy_count: int, say: Callable[[str], None]
) -> tuple[list[BadRelease], list[HealthyRelease], dict[str, Any]]:
    """Bad releases (fault on 2-3 s into the first window), then healthy ones, on one stack."""
    plan = bench_plan()
    v1, v2 = sample_service("v1", build), sample_service("v2", build)
    bad, healthy = [], []
    with LocalStack(plan, v1, workdir / "stack") as stack:
        for index in range(bad_count):
            delay = FAULT_DELAY_S + (index % FAULT_PHASES) / FAULT_PHASES
            bad.append(_bad_release(stack, v2, delay))
            say(f"bad release {index + 1}/{bad_count}: {bad[-1]}")
        for index in range(healthy_count):
            healthy.append(_healthy_release(stack, v2 if index % 2 == 0 else v1))
            say(f"healthy release {index + 1}/{healthy_count}: {healthy[-1]}")
        timing = analysis_round(stack)
    return bad, healthy, timing


def _bad_release(stack, artifact, delay_s: float) -> BadRelease:
    switch: dict[str, float] = {}

    def on_event(event: Event) -> None:
        if event.kind == EventKind.WINDOW_STARTED and event.data["step"] == 0:
            switch["at"] = schedule_fault(_canary_address(stack), delay_s)

    result = stack.release(artifact, listeners=[on_event])
    record = result.record
    start, end = record.events[0].at, record.events[-1].at
    counters = stack.load.counters(start, end)
    safe = record.first(EventKind.TRAFFIC_SAFE)
    fault_on = switch.get("at")
    return BadRelease(
        phase=str(result.phase),
        fault_on=fault_on,
        detection_to_safe_s=(
            round(safe.at - fault_on, 3) if safe is not None and fault_on is not None else None
        ),
        requests=counters.total,
        failed=counters.failed,
    )


def _healthy_release(stack, artifact) -> HealthyRelease:
    result = stack.release(artifact)
    record = result.record
    counters = stack.load.counters(record.events[0].at, record.events[-1].at)
    return HealthyRelease(
        phase=str(result.phase),
        requests=counters.total,
        failed=counters.failed,
        weight_changes=len(record.of_kind(EventKind.WEIGHT_SET)),
        reason="" if result.phase is Phase.PROMOTED else result.reason,
    )


def _canary_address(stack) -> str:
    return next(t.address for t in stack.platform.targets() if t.labels["track"] == "canary")


def schedule_fault(address: str, delay_s: float, flag_on_only: bool = False) -> float:
    """Ask the service to start failing ``delay_s`` from now; the Unix time it will switch on."""
    return schedule_faults(
        address, {"error_rate": BAD_ERROR_RATE, "flag_on_only": flag_on_only}, delay_s
    )


def schedule_faults(address: str, faults: dict[str, Any], delay_s: float) -> float:
    """Merge ``faults`` in ``delay_s`` from now; the Unix time they will switch on."""
    _put_faults(address, {**faults, "after": delay_s})
    with urllib.request.urlopen(f"http://{address}/admin/faults", timeout=2) as response:
        return float(json.load(response)["pending"]["at"])


def _put_faults(address: str, fault: dict[str, Any]) -> None:
    """Merge ``fault`` over the service's faults in force (``PUT /admin/faults``)."""
    url = f"http://{address}/admin/faults"
    body = json.dumps(fault).encode()
    urllib.request.urlopen(urllib.request.Request(url, body, method="PUT"), timeout=2).read()


# Flag rollouts ------------------------------------------------------------------------------


def flag_rollouts(
    workdir: Path, build: Path, count: int, say: Callable[[str], None]
) -> list[BadFlagRollout]:
    """Bad flag rollouts on one stack: flag-on requests fail 2-3 s into the first window."""
    document = json.loads(json.dumps(DEMO_PLAN))
    document["flag"]["steps"] = [{"percent": 50, "duration": "12s"}]
    plan = ReleasePlan.model_validate(document)
    assert plan.flag is not None
    store = FileFlagStore(workdir / "flags.json")
    store.update(replace_with(flag_off(plan.flag.key)))
    service = sample_service("v1", build, ("-flags-file", str(store.path)))
    results = []
    with LocalStack(plan, service, workdir / "flag-stack") as stack:
        assert stack.prometheus is not None and stack.platform is not None
        address = next(t.address for t in stack.platform.targets())
        for index in range(count):
            delay = FAULT_DELAY_S + (index % FAULT_PHASES) / FAULT_PHASES
            switch: dict[str, float] = {}

            def on_event(event: Event, delay: float = delay, switch: dict = switch) -> None:
                if event.kind == EventKind.WINDOW_STARTED and event.data["step"] == 0:
                    switch["at"] = schedule_fault(address, delay, flag_on_only=True)

            result = flag_rollout(plan, store, stack.prometheus.url, "local", [on_event])
            _put_faults(address, {"error_rate": 0, "flag_on_only": False})
            # Let this rollout's errors leave the query window before the next one is judged.
            time.sleep(plan.analysis.query_window + 2 * plan.local.scrape_interval)
            results.append(_bad_flag(result, switch.get("at")))
            say(f"bad flag rollout {index + 1}/{count}: {results[-1]}")
    return results


def _bad_flag(result, fault_on: float | None) -> BadFlagRollout:
    written = result.record.first(EventKind.FLAG_OFF)
    served = result.record.first(EventKind.FLAG_OFF_APPLIED)
    return BadFlagRollout(
        phase=str(result.phase),
        fault_on=fault_on,
        detection_to_off_s=(
            round(written.at - fault_on, 3) if written and fault_on is not None else None
        ),
        off_served_s=round(served.data["after_s"], 3) if served else None,
    )


def analysis_round(stack) -> dict[str, Any]:
    """One round of every Prometheus gate of the catalogue against the stack's Prometheus."""
    spec = full_catalogue_spec(interval="1s", queryWindow="5s")
    run = AnalysisRun(
        spec,
        PrometheusSource(stack.prometheus.url),
        stack.plan.service.name,
        stack.plan.service.namespace,
    )
    timing = time_rounds(run, rounds=20)
    return {**asdict(timing), "text": str(timing)}


# Router ---------------------------------------------------------------------------------


def split_accuracy(
    weights: Sequence[int] = SPLIT_WEIGHTS, requests: int = SPLIT_REQUESTS
) -> list[SplitSample]:
    """The two-tier router at each weight, loaded until ``requests`` answers were counted."""

    samples = []
    with (
        tempfile.TemporaryDirectory(prefix="canaryflow-split-") as tmp,
        ProcessGroup(Path(tmp)) as group,
    ):
        workdir = Path(tmp)
        stable, canary = start_static(group, workdir, "v1"), start_static(group, workdir, "v2")
        with NginxRouter(workdir / "router", group, stable) as router:
            router.set_canary_upstream(canary)
            for weight in weights:
                router.set_weight(weight)
                if not router.verify_weight(weight):
                    raise RuntimeError(f"router did not confirm weight {weight}%")
                samples.append(_split_sample(router.url, weight, requests))
    return samples


def _split_sample(url: str, weight: int, requests: int) -> SplitSample:
    config = LoadConfig(url, rate=100_000, clients=4, max_duration_s=120)
    with LoadGenerator(config) as load:
        while load.counters().total < requests and load.running:
            time.sleep(0.2)
    by_track = load.counters().by_track
    answered = by_track.get("stable", 0) + by_track.get("canary", 0)
    return SplitSample(weight, answered, by_track.get("canary", 0))


def reload_comparison(changes: int, rate: float = 200.0) -> list[dict[str, Any]]:
    """Failed requests across ``changes`` weight changes: two-tier router vs one nginx."""

    return [weight_changes(design, changes, rate, 8, 0.15) for design in ("two-tier", "single")]


# CLI start-up ---------------------------------------------------------------------------


def cli_help(runs: int = 10) -> dict[str, Any]:
    """Median wall time of ``canaryflow --help``, and which heavy modules it imported."""
    script = shutil.which("canaryflow", path=str(Path(sys.executable).parent)) or "canaryflow"
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([script, "--help"], capture_output=True, check=True, timeout=30)
        times.append(time.perf_counter() - began)
    probe = subprocess.run(
        [sys.executable, "-c", HELP_IMPORTS_PROBE], capture_output=True, text=True, timeout=30
    )
    imported = set(probe.stdout.split()) & set(HEAVY_MODULES)
    return {
        "runs": runs,
        "median_s": round(statistics.median(times), 4),
        "max_s": round(max(times), 4),
        "heavy_imports": sorted(imported),
    }


# Machine --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+) kB", _read("/proc/meminfo"))
    go = Path(sys.executable).parent / "go"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit or "unknown",
        "uname": " ".join(os.uname()),
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "memory": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "nginx": _version(["nginx", "-v"], r"nginx/(\S+)"),
        "prometheus": _version(["prometheus", "--version"], r"version (\S+)"),
        "go": _version([str(go) if go.exists() else "go", "version"], r"go version go(\S+)"),
    }


def _version(argv: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return "not found"
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
