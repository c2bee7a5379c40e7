"""What one analysis round costs on a big fleet: a real Prometheus holding backfilled data.

Sequential gates read raw samples of every series (to align counters, see
``analysis.evidence``), so a round's cost grows with pods x label values. To measure it without
running hundreds of pods, the series a fleet would have are written as OpenMetrics with
timestamps and turned into TSDB blocks by ``promtool tsdb create-blocks-from openmetrics``
(Prometheus' own backfill); a Prometheus of our own (``local.prometheus``) then serves them, and
``AnalysisRun`` rounds are replayed at times inside the data (``bench.replay``): the same
queries and parsing as a live round, against a real TSDB.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import PrometheusSource, Sample, Series
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.replay import ReplayClock, ReplaySource
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import PrometheusServer

PROMTOOL = "/usr/bin/promtool"
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SCRAPE_S = 15.0
NAMESPACE = "prod"


@dataclass(frozen=True)
class Shape:
    """``services`` services, each with ``stable_pods`` stable pods and one canary pod, every
    pod exporting requests by ``labels`` paths x 2 codes and a latency histogram by path."""

    services: int
    stable_pods: int
    labels: int
    minutes: float = 10.0

    @property
    def series(self) -> int:
        per_pod = self.labels * (2 + len(BOUNDS) + 1)
        return self.services * (self.stable_pods + 1) * per_pod


def openmetrics(shape: Shape, end: float) -> Iterator[str]:
    """The fleet's samples up to ``end``, one series after another, in time order."""
    steps = int(shape.minutes * 60 / SCRAPE_S)
    times = [end - SCRAPE_S * (steps - i) for i in range(steps + 1)]
    yield "# TYPE http_requests counter"
    for service, pod, track, path in _units(shape):
        scope = f'app="svc{service}",namespace="{NAMESPACE}",pod="{pod}",path="/p{path}"'
        if track == "canary":
            scope += ',track="canary"'
        offset = zlib.crc32(pod.encode()) % 1500 / 100
        for code, rate in (("200", 20.0), ("500", 0.2)):
            for i, t in enumerate(times):
                count = rate * i * SCRAPE_S
                yield f'http_requests_total{{{scope},code="{code}"}} {count:.0f} {t - offset:.3f}'
    yield "# TYPE http_request_duration_seconds histogram"
    for service, pod, track, path in _units(shape):
        scope = f'app="svc{service}",namespace="{NAMESPACE}",pod="{pod}",path="/p{path}"'
        if track == "canary":
            scope += ',track="canary"'
        offset = zlib.crc32(pod.encode()) % 1500 / 100
        for k, bound in enumerate((*BOUNDS, float("inf"))):
            share = min(1.0, (k + 1) / len(BOUNDS))
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            for i, t in enumerate(times):
                count = 20.0 * share * i * SCRAPE_S
                yield (
                    f'http_request_duration_seconds_bucket{{{scope},le="{le}"}} '
                    f"{count:.0f} {t - offset:.3f}"
                )
    yield "# EOF"


def _units(shape: Shape) -> Iterator[tuple[int, str, str, int]]:
    for service in range(shape.services):
        pods = [(f"svc{service}-stable-{p}", "stable") for p in range(shape.stable_pods)]
        pods.append((f"svc{service}-canary-0", "canary"))
        for pod, track in pods:
            for path in range(shape.labels):
                yield service, pod, track, path


class CountingSource(ReplaySource):
    """Counts the raw samples and series each round reads."""

    def __init__(self, source: PrometheusSource, clock: ReplayClock):
        super().__init__(source, clock)
        self.samples = 0
        self.lock = threading.Lock()

    def series(self, query: str, at: float | None = None) -> list[Series]:
        found = super().series(query, at)
        with self.lock:
            self.samples += sum(len(s.points) for s in found)
        return found

    def vector(self, query: str, at: float | None = None) -> list[Sample]:
        found = super().vector(query, at)
        with self.lock:
            self.samples += len(found)
        return found


@dataclass(frozen=True)
class Cost:
    shape: Shape
    rounds: int
    median_ms: float
    max_ms: float
    samples_per_round: float
    backfill_s: float
    first_ms: float
    outcomes: tuple[str, ...]
    """What the last round's gates said: proof the rounds judged data, not empty answers."""


SPEC = {
    "interval": "10s",
    "queryWindow": "60s",
    "gates": [{"metric": "error-rate"}, {"metric": "latency-p99"}],
}


def measure(shape: Shape, workdir: Path, rounds: int = 5) -> Cost:
    """Backfill ``shape``, start Prometheus on it, and time ``rounds`` rounds of every
    service's analysis at once."""
    workdir.mkdir(parents=True, exist_ok=True)
    end = time.time() - 120
    data = workdir / "openmetrics.txt"
    with data.open("w") as out:
        for line in openmetrics(shape, end):
            out.write(line + "\n")
    blocks = workdir / "prometheus" / "data"
    began = time.monotonic()
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(data), str(blocks)],
        check=True,
        capture_output=True,
    )
    backfill_s = time.monotonic() - began
    data.unlink()
    with ProcessGroup(workdir / "processes") as group:
        server = PrometheusServer(group, workdir / "prometheus", scrape_interval=SCRAPE_S).start()
        clock = ReplayClock(end - shape.minutes * 60 + 300)
        window_started = clock.now() - 60  # a minute into the window: data to judge
        spec = AnalysisSpec.model_validate(SPEC)
        sources = []
        runs = []
        for service in range(shape.services):
            source = CountingSource(PrometheusSource(server.url, timeout=30), clock)
            sources.append(source)
            runs.append(AnalysisRun(spec, source, f"svc{service}", NAMESPACE, clock=clock))
        durations = []
        samples = []
        for round_no in range(1, rounds + 1):
            clock.sleep(10.0)
            before = sum(s.samples for s in sources)
            outcomes: list = []
            threads = [
                threading.Thread(target=_measure, args=(run, round_no, window_started, outcomes))
                for run in runs
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            durations.append((time.perf_counter() - started) * 1000)
            samples.append(sum(s.samples for s in sources) - before)
        server.stop()
    shutil.rmtree(workdir / "prometheus", ignore_errors=True)
    later = durations[1:] or durations  # the first round also reads stable's history
    return Cost(
        shape,
        rounds,
        statistics.median(later),
        max(later),
        statistics.median(samples[1:] or samples),
        backfill_s,
        durations[0],
        tuple(sorted({f"{m.gate}: {m.outcome.value}" for m in outcomes})),
    )


def _measure(run: AnalysisRun, round_no: int, window_started: float, into: list) -> None:
    into.extend(run.measure(round_no, window_started))


def markdown(costs: Sequence[Cost], header: str) -> str:
    lines = [
        "## Cost of an analysis round on a big fleet",
        "",
        header,
        "",
        "Backfilled with `promtool tsdb create-blocks-from openmetrics` (10 min at a 15 s scrape, "
        "each pod at its own offset; requests by path and code, a 9-bucket latency histogram by "
        "path) into Prometheus 2.42 on 127.0.0.1; gates error-rate and latency-p99, sequential: "
        "each round reads every pod's counters summed in PromQL (`sum by (instance, pod)`) and "
        "their scrape times at two instants; every service's round at once. Samples: vector "
        "elements returned to the judge per round, all services together, rounds after the "
        "first; the first round also reads 10 min of stable's history and probes the scrape "
        "interval. Wall-clock figures depend on the machine's load, given in the header.",
        "",
        "| services | stable pods | label values | series | median round | max round "
        "| samples read per round | first round (with history) | backfill | gates said |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cost in costs:
        s = cost.shape
        lines.append(
            f"| {s.services} | {s.stable_pods} | {s.labels} | {s.series} "
            f"| {cost.median_ms:.0f} ms | {cost.max_ms:.0f} ms | {cost.samples_per_round:.0f} "
            f"| {cost.first_ms:.0f} ms | {cost.backfill_s:.0f} s | {'; '.join(cost.outcomes)} |"
        )
    return "\n".join(lines) + "\n"
