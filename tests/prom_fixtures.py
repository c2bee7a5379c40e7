"""A real Prometheus scraping simulated Go services whose errors and latency tests choose.

``SimulatedService`` serves /metrics on 127.0.0.1 as client_golang would write them, and a
background thread advances its counters and histograms as if ``rps`` requests a second arrived
with the chosen error share and latency distribution. Latencies are drawn deterministically
(a low-discrepancy sequence through the distribution's quantile function), so histograms, and
hence the verdicts, are the same on every run.

The ``fleet`` fixture starts one canary/stable pair per scenario before Prometheus, so every
scenario has been scraped for the same few seconds when the first test runs. Import the
fixtures into a test module: ``from prom_fixtures import fleet, prometheus  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from statistics import NormalDist

import pytest
from http_stub import QuietHandler

from canaryflow.analysis.source import PrometheusSource
from canaryflow.bench.cost import PROMTOOL, BatchingSource
from canaryflow.bench.replay import ReplayClock
from canaryflow.local.process import LOOPBACK, ProcessGroup
from canaryflow.local.prometheus import PrometheusServer

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
GOLDEN = (math.sqrt(5) - 1) / 2
NAMESPACE = "shop"
EXPOSITION = "text/plain; version=0.0.4"  # the Prometheus text format


@contextlib.contextmanager
def backfilled_prometheus(
    workdir: Path, openmetrics: Iterable[str], scrape_interval: float
) -> Iterator[str]:
    """A Prometheus of our own on 127.0.0.1 serving exactly ``openmetrics`` (OpenMetrics lines
    with timestamps, turned into TSDB blocks by ``promtool tsdb create-blocks-from
    openmetrics``), so every sample a test reads is known; yields its URL and stops it."""
    data = workdir / "series.txt"
    data.write_text("\n".join(openmetrics) + "\n")
    blocks = workdir / "prometheus" / "data"
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(data), str(blocks)],
        check=True,
        capture_output=True,
    )
    with ProcessGroup(workdir / "processes") as group:
        server = PrometheusServer(group, workdir / "prometheus", scrape_interval=scrape_interval)
        yield server.start().url
        server.stop()


@dataclass(frozen=True)
class Traffic:
    """Simulated load: requests per second, share answered 5xx, lognormal latency."""

    rps: float = 100.0
    error_share: float = 0.001
    median_latency_s: float = 0.05
    latency_spread: float = 0.4  # sigma of the log
    cache: bool = True  # False: a service without a cache exports no cache_requests_total
    cadvisor: bool = True  # False: no container_cpu_cfs_* (a local run has no cAdvisor)
    buckets: tuple[float, ...] = BUCKETS  # the latency histogram's layout (a new version's own)

    def latency(self, u: float) -> float:
        """The latency at quantile ``u`` of the distribution."""
        return self.median_latency_s * math.exp(self.latency_spread * _normal_quantile(u))


_normal_quantile = NormalDist().inv_cdf
"""Inverse standard normal CDF (Wichura's AS 241, to about 1e-16): every simulated request
draws one, in every worker that holds a fleet, so it is not a 60-step bisection on erfc (within
3e-12 of it, and in the same bucket for each of the first 200,000 draws of every scenario)."""


@dataclass
class _Histogram:
    bounds: tuple[float, ...] = BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        lines = [
            f'{name}_bucket{{{labels},le="{bound:g}"}} {count}'
            for bound, count in zip(self.bounds, self.counts, strict=True)
        ]
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum{{{labels}}} {self.total!r}")
        lines.append(f"{name}_count{{{labels}}} {self.count}")
        return lines


class SimulatedService:
    """A /metrics endpoint whose counters advance as ``traffic`` says, until ``stop``."""

    tick_s = 0.1

    def __init__(self, traffic: Traffic):
        self.traffic = traffic
        self._lock = threading.Lock()
        self._requests: dict[str, int] = {}
        self._latency = _Histogram(traffic.buckets)
        self._db = _Histogram()
        self._cache = {"hit": 0, "miss": 0}
        self._carry = 0.0
        self._errors_carry = 0.0
        self._sequence = 0
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._simulate, daemon=True),
        ]

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> SimulatedService:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(2)

    def set_traffic(self, traffic: Traffic) -> None:
        with self._lock:
            self.traffic = traffic

    def _simulate(self) -> None:
        while not self._stopped.wait(self.tick_s):
            with self._lock:
                self._advance(self.tick_s)

    def _advance(self, seconds: float) -> None:
        traffic = self.traffic
        self._carry += traffic.rps * seconds
        arrived = int(self._carry)
        self._carry -= arrived
        self._errors_carry += arrived * traffic.error_share
        errors = int(self._errors_carry)
        self._errors_carry -= errors
        for code, n in (("500", errors), ("200", arrived - errors)):
            if n:
                self._requests[code] = self._requests.get(code, 0) + n
        for _ in range(arrived):
            self._sequence += 1
            u = (self._sequence * GOLDEN) % 1.0 or 0.5
            latency = traffic.latency(u)
            self._latency.observe(latency)
            self._db.observe(latency / 4)  # p99 31.7 ms, mid-bucket (a fifth: 0.4 ms past 25 ms)
            self._cache["miss" if self._sequence % 10 == 0 else "hit"] += 1

    def exposition(self) -> str:
        with self._lock:
            lines = ["# TYPE http_requests_total counter"]
            lines += [
                f'http_requests_total{{code="{code}",method="GET",path="/"}} {n}'
                for code, n in sorted(self._requests.items())
            ]
            lines.append("# TYPE http_request_duration_seconds histogram")
            lines += self._latency.lines("http_request_duration_seconds", 'path="/"')
            lines.append("# TYPE db_query_duration_seconds histogram")
            lines += self._db.lines("db_query_duration_seconds", 'operation="select"')
            if self.traffic.cache:
                lines.append("# TYPE cache_requests_total counter")
                lines += [
                    f'cache_requests_total{{result="{r}"}} {n}' for r, n in self._cache.items()
                ]
            calls = self._latency.count
            lines += [
                "# TYPE http_client_requests_total counter",
                f'http_client_requests_total{{code="200",host="db"}} {calls}',
            ]
            if self.traffic.cadvisor:
                lines += [
                    "# TYPE container_cpu_cfs_periods_total counter",
                    f"container_cpu_cfs_periods_total {calls}",
                    "# TYPE container_cpu_cfs_throttled_periods_total counter",
                    f"container_cpu_cfs_throttled_periods_total {calls // 50}",
                ]
            lines += [
                "# TYPE go_goroutines gauge",
                f"go_goroutines {8 + calls % 3}",
                # client_golang's Go collector: quantiles 0 to 1 of recent pauses, and NumGC.
                "# TYPE go_gc_duration_seconds summary",
                'go_gc_duration_seconds{quantile="0"} 0.00005',
                'go_gc_duration_seconds{quantile="0.25"} 0.0001',
                'go_gc_duration_seconds{quantile="0.5"} 0.00015',
                'go_gc_duration_seconds{quantile="0.75"} 0.0002',
                'go_gc_duration_seconds{quantile="1"} 0.0004',
                f"go_gc_duration_seconds_sum {calls // 100 * 0.00015}",
                f"go_gc_duration_seconds_count {calls // 100}",
            ]
        return "\n".join(lines) + "\n"

    def _handler(self) -> type[QuietHandler]:
        service = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self.reply(200, service.exposition().encode(), EXPOSITION)

        return Handler


STABLE = Traffic()
SCENARIOS: Mapping[str, Traffic] = {
    "healthy": Traffic(error_share=0.001),
    "erroring": Traffic(error_share=0.05),
    "idle": Traffic(rps=0),
    "slow": Traffic(median_latency_s=0.15),
    "cacheless": Traffic(error_share=0.001, cache=False),
}
"""Canary traffic per scenario; every scenario's stable gets ``STABLE``. App label = name."""


@dataclass
class Fleet:
    """One canary and one stable ``SimulatedService`` per scenario, by (app, track)."""

    services: dict[tuple[str, str], SimulatedService]

    def targets(self) -> list[tuple[str, dict[str, str]]]:
        return [
            (
                service.address,
                {"app": app, "namespace": NAMESPACE, "track": track, "version": track},
            )
            for (app, track), service in self.services.items()
        ]


@contextlib.contextmanager
def running_fleet(baselines: tuple[str, ...] = ()) -> Iterator[Fleet]:
    """Every scenario's canary and stable, and a fresh baseline (stable's traffic,
    ``track="baseline"``) for each scenario named in ``baselines``."""
    services = {}
    try:
        for app, canary in SCENARIOS.items():
            services[(app, "canary")] = SimulatedService(canary).start()
            stable = dataclasses.replace(STABLE, cache=canary.cache)  # same program, same metrics
            services[(app, "stable")] = SimulatedService(stable).start()
            if app in baselines:
                services[(app, "baseline")] = SimulatedService(stable).start()
        yield Fleet(services)
    finally:
        for service in services.values():
            service.stop()


# Module-scoped, not session-scoped: the fleet's threads and this Prometheus took about 6 % of a
# core while they ran (measured idle, before the fleet drew each latency once by AS 241), and a
# session fixture ran on to the end of the run in every worker whose files had used it.
@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """No baseline: a fresh baseline's pod waits for, and never finds, its first scrape."""
    with running_fleet() as started:
        yield started


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, fleet: Fleet
) -> Iterator[PrometheusServer]:
    """Prometheus scraping the fleet every second, with a few seconds of data already."""
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    with ProcessGroup(workdir) as group:
        server = PrometheusServer(group, workdir, scrape_interval=1.0).start(fleet.targets())
        server.wait_targets_up(len(fleet.services), timeout_s=15)
        time.sleep(4.5)  # rate() over the tests' 4s window needs several scrapes
        yield server


class RecordingBatches(BatchingSource):
    """A replay's Prometheus that keeps every batched answer by the read's key within its
    gate, round by round (the caller appends a round's dict before it judges the round)."""

    def __init__(self, source: PrometheusSource, clock: ReplayClock):
        super().__init__(source, clock)
        self.answers: list[dict] = []

    def vectors(self, reads):
        found = super().vectors(reads)
        # One gate's reads, each keyed by the gate's name first (one request for all gates);
        # the canary's request count, batched with them, under its own key.
        self.answers[-1].update({key.split("/", 1)[-1]: value for key, value in found.items()})
        return found
