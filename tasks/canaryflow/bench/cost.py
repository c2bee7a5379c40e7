"""What one analysis round costs on a big fleet: a real Prometheus holding backfilled data.

Sequential gates read every pod's counters at a common instant (to align them, see
``analysis.evidence``), summed by pod in PromQL, so what a round reads grows with pods, not with
label values; what Prometheus touches still grows with both. To measure it without
running hundreds of pods, the series a fleet would have are written as OpenMetrics with
timestamps and turned into TSDB blocks by ``promtool tsdb create-blocks-from openmetrics``
(Prometheus' own backfill); a Prometheus of our own (``local.prometheus``) then serves them, and
``AnalysisRun`` rounds are replayed at times inside the data (``bench.replay``): the same
queries and parsing as a live round, against a real TSDB.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from canaryflow.analysis.fleet_sample import FLEET_DISCOVERY_ROUNDS, FLEET_SAMPLE_PODS
from canaryflow.analysis.query import BASELINE, FLEET, Subject
from canaryflow.analysis.run import AnalysisRun, CallPool
from canaryflow.analysis.source import Pinned, PrometheusSource, Sample, Series, pin
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
    """``services`` services, each with ``stable_pods`` stable pods and one canary pod (and
    with ``fresh``, one fresh baseline pod), every pod exporting requests by ``labels`` paths
    x 2 codes and a latency histogram by path."""

    services: int
    stable_pods: int
    labels: int
    minutes: float = 10.0
    fresh: bool = False
    """Judged against a fresh baseline (one pod of stable's version, ``track="baseline"``,
    as many as the canary's), the stable fleet read only for its over-dispersion
    (``query.FLEET``): the product's default where the router splits three ways. False: the
    canary judged against the stable fleet itself (``baseline: stable``)."""

    @property
    def pods(self) -> int:
        """Pods per service: the stable fleet's, the canary's and the baseline's."""
        return self.stable_pods + 1 + (1 if self.fresh else 0)

    @property
    def series(self) -> int:
        per_pod = self.labels * (2 + len(BOUNDS) + 1)
        return self.services * self.pods * per_pod


def openmetrics(shape: Shape, end: float) -> Iterator[str]:
    """The fleet's samples up to ``end``, one series after another, in time order."""
    steps = int(shape.minutes * 60 / SCRAPE_S)
    times = [end - SCRAPE_S * (steps - i) for i in range(steps + 1)]
    yield "# TYPE http_requests counter"
    for service, pod, track, path in _units(shape):
        scope = _scope(service, pod, track, path)
        offset = zlib.crc32(pod.encode()) % 1500 / 100
        for code, rate in (("200", 20.0), ("500", 0.2)):
            for i, t in enumerate(times):
                count = rate * i * SCRAPE_S
                yield f'http_requests_total{{{scope},code="{code}"}} {count:.0f} {t - offset:.3f}'
    yield "# TYPE http_request_duration_seconds histogram"
    for service, pod, track, path in _units(shape):
        scope = _scope(service, pod, track, path)
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


def _scope(service: int, pod: str, track: str, path: int) -> str:
    """A series' labels but its own: stable's pods carry no track label (as a stock fleet's
    pods do not), the canary's and the fresh baseline's their track."""
    scope = f'app="svc{service}",namespace="{NAMESPACE}",pod="{pod}",path="/p{path}"'
    return scope if track == "stable" else scope + f',track="{track}"'


def _units(shape: Shape) -> Iterator[tuple[int, str, str, int]]:
    for service in range(shape.services):
        pods = [(f"svc{service}-stable-{p}", "stable") for p in range(shape.stable_pods)]
        pods.append((f"svc{service}-canary-0", "canary"))
        if shape.fresh:
            pods.append((f"svc{service}-{BASELINE}-0", BASELINE))
        for pod, track in pods:
            for path in range(shape.labels):
                yield service, pod, track, path


class CountingSource(ReplaySource):
    """Counts the numbers (vector elements, raw samples) and the requests each round reads,
    one request per read (the judge before reads were batched)."""

    def __init__(self, source: PrometheusSource, clock: ReplayClock):
        super().__init__(source, clock)
        self.prometheus = source
        self.samples = 0
        self.requests = 0
        self.lock = threading.Lock()

    def _count(self, numbers: int) -> None:
        with self.lock:
            self.samples += numbers
            self.requests += 1

    def series(self, query: str, at: float | None = None) -> list[Series]:
        found = super().series(query, at)
        self._count(sum(len(s.points) for s in found))
        return found

    def vector(self, query: str, at: float | None = None) -> list[Sample]:
        found = super().vector(query, at)
        self._count(len(found))
        return found


class BatchingSource(CountingSource):
    """Counts as ``CountingSource``; a look's instant reads go out as one query, pinned at
    their instants (``PinnedVectors``), as a live round's ``PrometheusSource`` does."""

    def __init__(self, source: PrometheusSource, clock: ReplayClock):
        super().__init__(source, clock)
        self.pinned: list[tuple[str, Pinned]] = []
        """Every batched read so far, by its key (``<track>/<role>/<instant>/<read>``): what
        ``touched`` asks Prometheus to account for."""

    def vectors(self, reads: Mapping[str, Pinned]) -> dict[str, list[Sample]]:
        found = self.prometheus.vectors(reads)
        self._count(sum(len(samples) for samples in found.values()))
        with self.lock:
            self.pinned.extend(reads.items())
        return found


def touched(url: str, reads: Sequence[tuple[str, Pinned]]) -> dict[str, dict[str, float]]:
    """What Prometheus itself did for ``reads``, read by read (``POST /api/v1/query`` with
    ``stats=all``: ``totalQueryableSamples``, the samples its evaluation loaded, and
    ``evalTotalTime``), summed by track and by kind of read (``v``: the pods' sums,
    ``t``: their scrape times, ``r``: what restarted series lost; ``requests``: the canary's
    request count, under the canary). Asked again after the timed rounds, one read at a time,
    so it costs the timing nothing."""
    totals: dict[str, dict[str, float]] = {}
    for key, read in reads:
        parts = key.split("/")[1:]  # the gate's name, then a look's read or a scrape probe
        if not parts:  # the canary's request count, batched with a look's reads
            parts = ["canary", key]
        track, kind = (parts[0], parts[3]) if len(parts) == 4 else (parts[0], parts[-1])
        form = {"query": pin(read), "time": f"{read.at:.3f}", "stats": "all"}
        request = urllib.request.Request(
            f"{url}/api/v1/query", data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            stats = json.loads(response.read())["data"]["stats"]
        for name in (f"track:{track}", f"read:{kind.rstrip('0123456789')}", "all"):
            into = totals.setdefault(name, {"samples": 0.0, "eval_ms": 0.0, "reads": 0.0})
            into["samples"] += stats["samples"]["totalQueryableSamples"]
            into["eval_ms"] += stats["timings"]["evalTotalTime"] * 1000
            into["reads"] += 1
    return totals


@dataclass(frozen=True)
class Cost:
    shape: Shape
    rounds: int
    batched: bool
    median_ms: float
    """One release's round (``AnalysisRun.measure``), rounds after the first."""
    p95_ms: float
    all_median_ms: float
    """Every release's round, ``RELEASE_WORKERS`` at a time, rounds after the first."""
    samples_per_round: float
    """Numbers returned to the judge per round, all releases together."""
    prometheus_cpu_ms: float
    """CPU time Prometheus spent per round (user + system, all releases together)."""
    judge_cpu_ms: float
    """CPU time this process (the judge: requests, JSON, statistics) spent per round."""
    requests_per_round: float
    first_ms: float
    backfill_s: float
    outcomes: tuple[str, ...]
    """What the last round's gates said: proof the rounds judged data, not empty answers."""
    touched: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """What Prometheus did for one release's last round (``touched``), by track and by read:
    where its work goes (empty when reads were not batched)."""

    def share(self, track: str, what: str = "samples") -> float:
        """The share of one release's round that reads ``track`` (``samples``: samples
        Prometheus loaded, ``eval_ms``: its evaluation time)."""
        whole = self.touched.get("all", {}).get(what, 0.0)
        part = self.touched.get(f"track:{track}", {}).get(what, 0.0)
        return part / whole if whole > 0 else math.nan


COST_SHAPES = (
    (Shape(1, 20, 10, fresh=True), True),
    (Shape(1, 200, 1, fresh=True), True),
    (Shape(1, 200, 10, fresh=True), True),
    (Shape(1, 200, 10), True),
    (Shape(1, 2000, 1, fresh=True), True),
    (Shape(50, 4, 10, fresh=True), True),
)
"""A release on a growing fleet, the same fleet with one and ten label values, and 50
releases at once, each against a fresh baseline with the stable fleet read for its
over-dispersion (the default), and 200 x 10 against the stable fleet itself for comparison.
A round's looks are one query for all its gates and the canary's request count, the fleet's
sample's reads included, beside a fresh baseline, one per instant against the stable fleet
(one request per read, one per gate and instant, and the fleet's and the count's apart were
measured against it in this section's earlier runs).
2,000 pods with 10 label values, 220,000 series, takes longer to backfill than this
benchmark's budget; with one label value it has as many series as 200 x 10."""

SPEC = {
    "interval": "10s",
    "queryWindow": "60s",
    "gates": [{"metric": "error-rate"}, {"metric": "latency-p99"}],
}

RELEASE_WORKERS = 4
"""Releases measured at once: a process judging many releases does so on a few threads, and
their calls share one bounded pool; a thread per release (5,100 threads at 50 releases in an
earlier version of this benchmark) measures the machine's scheduler, not the judge."""

QUERY_WORKERS = 8
"""Calls in flight at once, all releases together (Prometheus evaluates 20 at most)."""


def measure(shape: Shape, workdir: Path, rounds: int = 8, batched: bool = True) -> Cost:
    """Backfill ``shape``, start Prometheus on it, and time ``rounds`` rounds of every
    service's analysis, each release's round timed on its own (``batched``: a look's reads
    in one query; else one request per read, to compare)."""
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
    queries = CallPool(QUERY_WORKERS, name="cost query")
    releases = CallPool(RELEASE_WORKERS, name="cost release")
    with ProcessGroup(workdir / "processes") as group:
        server = PrometheusServer(group, workdir / "prometheus", scrape_interval=SCRAPE_S).start()
        clock = ReplayClock(end - shape.minutes * 60 + 300)
        window_started = clock.now() - 60  # a minute into the window: data to judge
        spec = AnalysisSpec.model_validate(SPEC)
        sources = []
        runs = []
        for service in range(shape.services):
            reading = BatchingSource if batched else CountingSource
            source = reading(PrometheusSource(server.url, timeout=30), clock)
            sources.append(source)
            name = f"svc{service}"
            subject = Subject(name, NAMESPACE, baseline=shape.fresh)
            runs.append(
                AnalysisRun(
                    spec, source, name, NAMESPACE, clock=clock, pool=queries, subject=subject
                )
            )
        prometheus_cpu: list[float] = []
        judge_cpu: list[float] = []
        each: list[list[float]] = []
        whole: list[float] = []
        samples: list[int] = []
        requests: list[int] = []
        outcomes: list = []
        for round_no in range(1, rounds + 1):
            clock.sleep(10.0)
            read_before = sum(s.samples for s in sources)
            asked_before = sum(s.requests for s in sources)
            outcomes = []
            for one in sources:
                if isinstance(one, BatchingSource):
                    one.pinned = []  # the last round's reads are accounted for below
            cpu_before = _cpu_ms(server.process.pid) if server.process else 0.0
            own_before = time.process_time()
            started = time.perf_counter()
            futures = [
                releases.submit(partial(_timed, run, round_no, window_started)) for run in runs
            ]
            timed = [future.result() for future in futures]
            whole.append((time.perf_counter() - started) * 1000)
            judge_cpu.append((time.process_time() - own_before) * 1000)
            if server.process is not None:
                prometheus_cpu.append(_cpu_ms(server.process.pid) - cpu_before)
            each.append([ms for ms, _ in timed])
            outcomes = [m for _, batch in timed for m in batch]
            samples.append(sum(s.samples for s in sources) - read_before)
            requests.append(sum(s.requests for s in sources) - asked_before)
        first = sources[0]
        accounted = touched(server.url, first.pinned) if isinstance(first, BatchingSource) else {}
        server.stop()
    shutil.rmtree(workdir / "prometheus", ignore_errors=True)
    later = [ms for one in each[1:] for ms in one]  # the first round also reads the history
    return Cost(
        shape,
        rounds,
        batched,
        statistics.median(later),
        _percentile(later, 0.95),
        statistics.median(whole[1:]),
        statistics.median(samples[1:]),
        statistics.median(prometheus_cpu[1:]) if len(prometheus_cpu) > 1 else math.nan,
        statistics.median(judge_cpu[1:]),
        statistics.median(requests[1:]),
        statistics.median(each[0]),
        backfill_s,
        tuple(sorted({f"{m.gate}: {m.outcome.value}" for m in outcomes})),
        accounted,
    )


def _timed(run: AnalysisRun, round_no: int, window_started: float) -> tuple[float, list]:
    started = time.perf_counter()
    batch = run.measure(round_no, window_started)
    return (time.perf_counter() - started) * 1000, batch


def _cpu_ms(pid: int) -> float:
    """A process's CPU time so far (user + system, ``/proc/<pid>/stat``), in milliseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) * 1000 / ticks


def _percentile(values: Sequence[float], q: float) -> float:
    """The smallest value with at least a share ``q`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def markdown(costs: Sequence[Cost], header: str) -> str:
    lines = [
        "## Cost of an analysis round on a big fleet",
        "",
        header,
        "",
        "`canaryflow bench --cost` (`make bench-cost`): the series of a fleet written as "
        "OpenMetrics with timestamps (10 min at a 15 s scrape, each pod at its own offset; "
        "requests by path and code, a 9-bucket latency histogram by path), turned into TSDB "
        "blocks by `promtool tsdb create-blocks-from openmetrics` and served by Prometheus 2.42 "
        "on 127.0.0.1; gates error-rate and latency-p99 (sequential) replayed at times inside "
        "the data. *Against*: a fresh baseline (one pod of stable's version, `track=baseline`, "
        "the default where the router splits three ways), the stable fleet then read for its "
        "over-dispersion only (`query.FLEET`), through a sample of at most "
        f"{FLEET_SAMPLE_PODS} of its pods (`analysis.fleet_sample`: ranked by a hash of the "
        f"pod's name, found by one `group by (pod)` query every {FLEET_DISCOVERY_ROUNDS}th "
        "round); or the stable fleet itself (`baseline: stable`), compared whole (its "
        "buckets read at the cuts and `+Inf` once they are set, above "
        f"{FLEET_SAMPLE_PODS} pods). "
        "A look of a gate: each track's pods summed in PromQL (`sum by (instance, pod)`) "
        "at the common instant and one scrape later, their scrape times, and what series that "
        "restarted alone held (`alignment.lost_query`), for all the round's gates and the "
        "canary's request count in one query (`@` pins each read at its instant), the "
        "fleet's sample's reads included beside a fresh baseline, one query per instant "
        "against the stable fleet. "
        "Releases are judged "
        f"{RELEASE_WORKERS} at a time, their calls sharing {QUERY_WORKERS} threads. "
        "*One release's round*: `AnalysisRun.measure` of one release, median and 95th "
        "percentile over every release and every round after the first (the first also reads "
        "10 min of the fleet's history and probes the scrape interval; its median is in the "
        "last column but one). *All releases*: one round of every release, median. CPU: what the "
        "Prometheus process and the judge's process spent per round (`/proc/<pid>/stat`, "
        "`time.process_time`), median, all releases together: the cost, where the wall clock "
        "also counts waiting for a core. Numbers read: what Prometheus returned to the judge "
        "per round. *Samples loaded*: what Prometheus loaded to evaluate the first release's "
        "last round, its reads asked again one by one with `stats=all` "
        "(`totalQueryableSamples`), and the fleet's share of those and of Prometheus' "
        "evaluation time (`evalTotalTime`). The benchmark runs at `nice -n 19` on a shared "
        "machine: wall-clock figures depend on the load, given in the header.",
        "",
        "| against | releases | stable pods | label values | series | one release's round: "
        "median | p95 | all releases' round | Prometheus CPU per round | judge CPU per round "
        "| numbers read per round | requests per round | samples loaded per round (one release) "
        "| fleet's share: samples, eval time | first round | gates said |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cost in costs:
        s = cost.shape
        against = "fresh baseline" if s.fresh else "stable fleet"
        loaded = cost.touched.get("all", {}).get("samples", math.nan)
        share = "-"
        if s.fresh and cost.touched:
            share = f"{cost.share(FLEET):.0%}, {cost.share(FLEET, 'eval_ms'):.0%}"
        lines.append(
            f"| {against} | {s.services} | {s.stable_pods} | {s.labels} | {s.series} "
            f"| {cost.median_ms:.0f} ms | {cost.p95_ms:.0f} ms | {cost.all_median_ms:.0f} ms "
            f"| {cost.prometheus_cpu_ms:.0f} ms | {cost.judge_cpu_ms:.0f} ms "
            f"| {cost.samples_per_round:.0f} | {cost.requests_per_round:.0f} "
            f"| {loaded:.0f} | {share} "
            f"| {cost.first_ms:.0f} ms | {'; '.join(cost.outcomes)} |"
        )
    return "\n".join(lines) + "\n"
