"""How good the verdict is: real local releases with the DEFAULT gates, faults switched on mid-
release, and good canaries that differ from stable only by noise.

Every release runs the sample Go service (lognormal simulated work around ``WORK_MS``) behind
the local nginx router, scraped by a real Prometheus, under the load generator's users. A bad
release's fault is scheduled through the canary's ``PUT /admin/faults`` a few seconds into the
first window; the service reports the exact moment it took effect.

Beside the judge, on the same recorded data (the same Prometheus, the same time span), a
fixed-threshold baseline in the style of Argo Rollouts and Flagger is replayed: request success
rate ≥ 99 % and p99 latency ≤ 500 ms over the plan's query window, checked every interval, the
first breach ending the analysis. And beside each fault class its information limit: the
requests an ideal sequential test (Wald's SPRT, knowing both distributions) needs at the plan's
alpha to tell the recorded canary from the recorded stable, divided by the canary's request rate.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canaryflow.analysis.evidence import cumulative_by_le
from canaryflow.analysis.query import Subject, render
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.sequential import bernoulli_kl, information_limit, multinomial_kl
from canaryflow.analysis.source import PrometheusSource, Sample
from canaryflow.bench.replay import ReplayClock, ReplaySource, ReplayTrackLogs
from canaryflow.bench.scenarios import schedule_faults
from canaryflow.local.load import LoadGenerator
from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.load import plan_from_dict
from canaryflow.plan.model import ReleasePlan
from canaryflow.release.events import EventKind
from canaryflow.release.record import Event
from canaryflow.report.figures import percentile

WORK_MS = 15.0
FAULT_DELAY_S = 4.0
FAULT_PHASES = 5
SETTLE_S = 2.0
BASELINE_SUCCESS = 0.99
BASELINE_P99_S = 0.5

# The short plan: windows of 10-20 s, a measurement every second, the DEFAULT gates.
JUDGEMENT_PLAN: dict[str, Any] = {
    "apiVersion": "canaryflow.dev/v1alpha1",
    "kind": "ReleasePlan",
    "service": {"name": "checkout", "namespace": "bench", "healthTimeout": "15s"},
    "owners": {"team": "bench"},
    "steps": [
        {"weight": 10, "duration": "20s"},
        {"weight": 50, "duration": "10s"},
        {"weight": 100, "duration": "10s"},
    ],
    "analysis": {"interval": "1s", "queryWindow": "5s"},
    "local": {"scrapeInterval": "1s", "load": {"rate": 150, "clients": 16}},
}


@dataclass(frozen=True)
class FaultClass:
    """A fault switched on mid-release, and which recorded evidence its information limit uses."""

    name: str
    faults: Mapping[str, Any]
    signal: str


FAULT_CLASSES: tuple[FaultClass, ...] = (
    FaultClass("5xx 1 %", {"error_rate": 0.01}, "errors"),
    FaultClass("5xx 2 %", {"error_rate": 0.02}, "errors"),
    FaultClass("5xx 5 %", {"error_rate": 0.05}, "errors"),
    FaultClass("+150 ms on 10 %", {"latency_ms": 150, "latency_share": 0.1}, "latency"),
    FaultClass("latency x 1.3", {"latency_factor": 1.3}, "latency"),
    FaultClass("goroutine leak (2/request)", {"goroutine_leak": 2}, "goroutines"),
    FaultClass("GC pressure (1 MiB/request)", {"gc_pressure_kb": 1024}, "gc"),
    FaultClass("outbound errors 5 %", {"outbound_error_rate": 0.05}, "outbound"),
    FaultClass("slow DB (+20 ms)", {"slow_db_ms": 20}, "db"),
    FaultClass("cache misses 10 → 25 %", {"cache_miss_rate": 0.25}, "cache"),
    FaultClass("log-only errors 2 %", {"log_error_rate": 0.02}, "logs"),
)


@dataclass(frozen=True)
class ReleaseRun:
    """One live release: when traffic was safe again, and what users saw."""

    fault: str  # a fault class's name, or "good"
    phase: str
    reason: str
    fault_on: float | None
    detection_s: float | None  # fault on -> traffic safe; None if never rolled back after it
    before_fault: bool  # rolled back before the fault existed (a false rollback)
    baseline_s: float | None  # good canaries: window start -> the baseline's first breach
    requests: int
    failed: int

    @property
    def caught(self) -> bool:
        return self.detection_s is not None


@dataclass(frozen=True)
class Observation:
    """One fault watched for a fixed time at the first step's weight, without a judge acting;
    then the judge's gates and the baseline are both replayed over exactly that data."""

    fault: str
    fault_on: float
    judge_s: float | None  # fault on -> the replayed judge's deciding failure
    judge_before_fault: bool
    judge_reason: str
    baseline_s: float | None  # fault on -> the baseline's first breach
    baseline_before_fault: bool
    canary_rps: float
    limit_requests: float | None  # the ideal test's requests; None: no per-request evidence

    @property
    def limit_s(self) -> float | None:
        if self.limit_requests is None or not self.canary_rps:
            return None
        return self.limit_requests / self.canary_rps


@dataclass
class JudgementResults:
    runs: list[ReleaseRun] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    alpha: float = 0.01
    plan: dict[str, Any] = field(default_factory=lambda: JUDGEMENT_PLAN)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judgement_plan() -> ReleasePlan:
    return plan_from_dict(JUDGEMENT_PLAN, origin="judgement bench plan")


def judgement(
    workdir: Path,
    build: Path,
    runs: int,
    good: int,
    say: Callable[[str], None],
    classes: tuple[FaultClass, ...] = FAULT_CLASSES,
) -> JudgementResults:
    """``runs`` releases per fault class and ``good`` good canaries, interleaved, on one stack."""
    began = time.monotonic()
    plan = judgement_plan()
    work = ("-work-ms", str(WORK_MS))
    stable, canary = sample_service("v1", build, work), sample_service("v2", build, work)
    results = JudgementResults(alpha=plan.analysis.alpha)
    schedule = [(c, i) for i in range(runs) for c in classes] + [(None, i) for i in range(good)]
    with LocalStack(plan, stable, workdir / "judgement") as stack:
        source = PrometheusSource(stack.prometheus.url)
        for number, (fault, index) in enumerate(schedule, start=1):
            _keep_load_running(stack)
            run = _release(stack, source, plan, canary, fault, index)
            results.runs.append(run)
            say(f"judgement {number}/{len(schedule)}: {_line(run)}")
            time.sleep(SETTLE_S)
            if fault is not None:
                seen = _observe(stack, source, plan, canary, fault, index)
                results.observations.append(seen)
                say(f"  watched: {_watched(seen)}")
                time.sleep(SETTLE_S)
    results.seconds = time.monotonic() - began
    return results


LOAD_MARGIN_S = 120.0


def _keep_load_running(stack) -> None:
    """The load generator stops by itself after its maximum duration (10 min), and a whole
    judgement run is longer: start a fresh one before a release could outlive it."""
    load = stack.load
    left = load.started_at + load.config.max_duration_s - time.time()
    if left > LOAD_MARGIN_S and load.running:
        return
    load.stop()
    stack.load = LoadGenerator(load.config).start()
    time.sleep(SETTLE_S)  # traffic on both tracks again before the next window


def _line(run: ReleaseRun) -> str:
    caught = f"safe {run.detection_s:.2f}s after the fault" if run.caught else "not caught"
    if run.fault == "good":
        caught = "false rollback" if run.phase != "promoted" else "promoted"
    return f"{run.fault}: {run.phase}, {caught} ({run.reason[:160]})"


def _watched(seen: Observation) -> str:
    judge = f"judge {seen.judge_s:.2f}s" if seen.judge_s is not None else "judge never"
    base = f"baseline {seen.baseline_s:.2f}s" if seen.baseline_s is not None else "baseline never"
    limit = f"limit {seen.limit_s:.2f}s" if seen.limit_s is not None else "no limit"
    return f"{seen.fault}: {judge}, {base}, {limit} ({seen.judge_reason[:120]})"


def _delay(index: int) -> float:
    return FAULT_DELAY_S + (index % FAULT_PHASES) / FAULT_PHASES * 2


def _release(stack, source, plan, artifact, fault: FaultClass | None, index: int) -> ReleaseRun:

    switch: dict[str, float] = {}
    delay = _delay(index)

    def on_event(event: Event) -> None:
        if fault is not None and event.kind == EventKind.WINDOW_STARTED and event.data["step"] == 0:
            address = next(
                t.address for t in stack.platform.targets() if t.labels["track"] == "canary"
            )
            switch["at"] = schedule_faults(address, dict(fault.faults), delay)

    result = stack.release(artifact, listeners=[on_event])
    record = result.record
    start, end = record.events[0].at, record.events[-1].at
    window = record.first(EventKind.WINDOW_STARTED)
    window_start = window.at if window is not None else start
    safe = record.first(EventKind.TRAFFIC_SAFE)
    fault_on = switch.get("at")
    rolled_back = result.phase != "promoted" and safe is not None
    before = rolled_back and (fault_on is None or safe.at < fault_on)
    detection = round(safe.at - fault_on, 3) if rolled_back and not before else None
    subject = Subject(plan.service.name, plan.service.namespace, plan.analysis.track_label)
    breach = None
    if fault is None:  # a good canary: would the baseline have rolled it back?
        breach = _baseline_breach(source, subject, plan.analysis.query_window, window_start, end)
    counters = stack.load.counters(start, end)
    return ReleaseRun(
        fault=fault.name if fault else "good",
        phase=str(result.phase),
        reason=result.reason,
        fault_on=fault_on,
        detection_s=detection,
        before_fault=bool(before),
        baseline_s=round(breach - window_start, 3) if breach is not None else None,
        requests=counters.total,
        failed=counters.failed,
    )


def _observe(stack, source, plan, artifact, fault: FaultClass, index: int) -> Observation:
    """The fault on a canary at the first step's weight for the first step's duration, nobody
    acting on it; then judge and baseline replayed over that stretch of Prometheus data."""
    platform, step = stack.platform, plan.traffic_steps[0]
    platform.deploy_canary(artifact)
    try:
        health = platform.wait_healthy(plan.service.health_timeout)
        if not health.healthy:
            raise RuntimeError(f"observation canary unhealthy: {health.detail}")
        platform.router.set_weight(step.weight)
        deadline = time.monotonic() + 10
        while not platform.router.verify_weight(step.weight) and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.time()
        address = next(t.address for t in platform.targets() if t.labels["track"] == "canary")
        fault_on = schedule_faults(address, dict(fault.faults), _delay(index))
        time.sleep(max(0.0, started + step.duration - time.time()))
        ended = time.time()
        time.sleep(2 * plan.local.scrape_interval)  # the last seconds scraped
        judge = _replay_judge(source, platform, plan, started, ended)
    finally:
        platform.router.set_weight(0)
        platform.rollback()
    subject = Subject(plan.service.name, plan.service.namespace, plan.analysis.track_label)
    breach = _baseline_breach(source, subject, plan.analysis.query_window, started, ended)
    rps, limit = _information(source, subject, fault, fault_on, ended, plan.analysis.alpha)
    decided_at, reason = judge
    return Observation(
        fault=fault.name,
        fault_on=fault_on,
        judge_s=round(decided_at - fault_on, 3) if decided_at and decided_at >= fault_on else None,
        judge_before_fault=decided_at is not None and decided_at < fault_on,
        judge_reason=reason,
        baseline_s=round(breach - fault_on, 3) if breach and breach >= fault_on else None,
        baseline_before_fault=breach is not None and breach < fault_on,
        canary_rps=round(rps, 2),
        limit_requests=limit,
    )


def _replay_judge(source, platform, plan, started: float, ended: float):
    """The plan's own analysis window over [started, ended], every query asked as of its time."""
    clock = ReplayClock(started)
    run = AnalysisRun(
        plan.analysis,
        ReplaySource(source, clock),
        plan.service.name,
        plan.service.namespace,
        logs=ReplayTrackLogs(platform.canary_logs, platform.stable_logs, clock),
        clock=clock,
        windows=len(plan.traffic_steps),
    )
    result = run.window(ended - started)
    verdict = result.verdict
    if verdict.decided_in_round is None or verdict.outcome.value == "pass":
        return None, verdict.reason
    decided = [m.finished for m in result.measurements if m.round == verdict.decided_in_round]
    return max(decided), verdict.reason


# The fixed-threshold baseline, replayed -----------------------------------------------------


def _baseline_breach(
    source: PrometheusSource, subject: Subject, window: float, start: float, end: float
) -> float | None:
    """The first time (every second from ``start``) the canary's success rate over the query
    window fell below 99 % or its p99 rose above 500 ms; NaN (no traffic) is no breach."""
    success = render(
        'sum(rate(http_requests_total{ {{ selector }},code!~"5.." }[{{ window }}])) / '
        "sum(rate(http_requests_total{ {{ selector }} }[{{ window }}]))",
        subject,
        "canary",
        window,
    )
    p99 = render(
        "histogram_quantile(0.99, sum by (le) "
        "(rate(http_request_duration_seconds_bucket{ {{ selector }} }[{{ window }}])))",
        subject,
        "canary",
        window,
    )
    at = start + 1.0
    while at <= end:
        rate = _value(source.vector(success, at))
        tail = _value(source.vector(p99, at))
        if (rate is not None and rate < BASELINE_SUCCESS) or (
            tail is not None and tail > BASELINE_P99_S
        ):
            return at
        at += 1.0
    return None


def _value(samples: list[Sample]) -> float | None:
    values = [s.value for s in samples if math.isfinite(s.value)]
    return values[0] if values else None


# Information limits, from the recorded data ----------------------------------------------


_SIGNALS = {
    "errors": ("http_requests_total", "code", r"5.."),
    "outbound": ("http_client_requests_total", "code", r"5..|error"),
    "cache": ("cache_requests_total", "result", r"miss"),
}


def _information(
    source: PrometheusSource,
    subject: Subject,
    fault: FaultClass | None,
    start: float,
    end: float,
    alpha: float,
) -> tuple[float, float | None]:
    """The canary's request rate over [start, end], and the ideal test's requests."""
    if end <= start:
        return 0.0, None
    requests = {
        t: _increase(source, subject, t, "http_requests_total", start, end)
        for t in ("canary", "stable")
    }
    rps = requests["canary"] / (end - start)
    if fault is None or fault.signal == "goroutines":
        return rps, None  # a gauge's trend has no per-request evidence
    if fault.signal == "logs":
        share = float(fault.faults["log_error_rate"])
        return rps, 1 / share  # the first matching line decides: expected requests until it
    if fault.signal in _SIGNALS:
        metric, label, pattern = _SIGNALS[fault.signal]
        rates = {}
        for track in ("canary", "stable"):
            events = _increase(source, subject, track, metric, start, end, f'{label}=~"{pattern}"')
            total = _increase(source, subject, track, metric, start, end)
            rates[track] = (events, total)
        p1 = rates["canary"][0] / rates["canary"][1] if rates["canary"][1] else 0.0
        events_s, total_s = rates["stable"]
        p0 = max(events_s / total_s if total_s else 0.0, 0.5 / max(total_s, 1.0))
        return rps, information_limit(bernoulli_kl(p1, p0), alpha)
    if fault.signal == "gc":
        gc = {
            t: _increase(source, subject, t, "go_gc_duration_seconds_count", start, end)
            for t in ("canary", "stable")
        }
        lam1 = gc["canary"] / requests["canary"] if requests["canary"] else 0.0
        lam0 = max(
            gc["stable"] / requests["stable"] if requests["stable"] else 0.0,
            0.5 / max(requests["stable"], 1.0),
        )
        kl = lam1 * math.log(lam1 / lam0) - lam1 + lam0 if lam1 > 0 else lam0
        return rps, information_limit(kl, alpha)
    bucket = (
        "db_query_duration_seconds_bucket"
        if fault.signal == "db"
        else "http_request_duration_seconds_bucket"
    )
    shares = {
        t: _bucket_shares(source, subject, t, bucket, start, end) for t in ("canary", "stable")
    }
    if not shares["canary"] or not shares["stable"]:
        return rps, None
    return rps, information_limit(multinomial_kl(shares["canary"], shares["stable"]), alpha)


def _increase(
    source: PrometheusSource,
    subject: Subject,
    track: str,
    metric: str,
    start: float,
    end: float,
    matcher: str = "",
) -> float:
    """How much ``metric`` grew on ``track`` between ``start`` and ``end`` (exact counters)."""
    extra = f",{matcher}" if matcher else ""
    query = render(f"sum({metric}{{ {{{{ selector }}}}{extra} }})", subject, track, 1)
    before, after = _value(source.vector(query, start)), _value(source.vector(query, end))
    return max(0.0, (after or 0.0) - (before or 0.0))


def _bucket_shares(
    source: PrometheusSource, subject: Subject, track: str, bucket: str, start: float, end: float
) -> list[float]:
    """The share of requests per histogram bucket (non-cumulative; stable smoothed by +0.5)."""
    query = render(f"sum by (le) ({bucket}{{ {{{{ selector }}}} }})", subject, track, 1)
    before = cumulative_by_le(source.vector(query, start))
    after = cumulative_by_le(source.vector(query, end))
    bounds = sorted(after)
    counts, below = [], 0.0
    for bound in bounds:
        cumulative = max(0.0, after[bound] - before.get(bound, 0.0))
        counts.append(max(0.0, cumulative - below))
        below = max(below, cumulative)
    if track == "stable":
        counts = [c + 0.5 for c in counts]
    whole = sum(counts)
    return [c / whole for c in counts] if whole > 0 else []


# Summary ----------------------------------------------------------------------------------


def summary(results: JudgementResults) -> list[dict[str, Any]]:
    """One row per fault class, then one for the good canaries."""
    rows = []
    names = [c.name for c in FAULT_CLASSES if any(r.fault == c.name for r in results.runs)]
    for name in names:
        runs = [r for r in results.runs if r.fault == name]
        seen = [o for o in results.observations if o.fault == name]
        detections = [r.detection_s for r in runs if r.caught]
        judged = [o.judge_s for o in seen if o.judge_s is not None]
        baseline = [o.baseline_s for o in seen if o.baseline_s is not None]
        limits = [o.limit_s for o in seen if o.limit_s is not None]
        rows.append(
            {
                "class": name,
                "runs": len(runs),
                "caught": len(detections),
                "rolled_back_before_fault": sum(r.before_fault for r in runs),
                "median_s": statistics.median(detections) if detections else None,
                "p95_s": percentile(detections, 95, "nearest-rank"),
                "failed_requests_median": statistics.median(r.failed for r in runs),
                "watched": len(seen),
                "judge_caught": len(judged),
                "judge_median_s": statistics.median(judged) if judged else None,
                "baseline_caught": len(baseline),
                "baseline_median_s": statistics.median(baseline) if baseline else None,
                "limit_s": statistics.median(limits) if limits else None,
                "canary_rps": statistics.median(o.canary_rps for o in seen) if seen else None,
            }
        )
    good = [r for r in results.runs if r.fault == "good"]
    if good:
        rows.append(
            {
                "class": "good canaries",
                "runs": len(good),
                "rolled_back": sum(r.phase != "promoted" for r in good),
                "baseline_rolled_back": sum(r.baseline_s is not None for r in good),
                "reasons": sorted({r.reason[:200] for r in good if r.phase != "promoted"}),
            }
        )
    return rows


def markdown(results: JudgementResults) -> str:
    """The judgement section of BENCHMARKS.md, from a real run's counts."""
    rows = summary(results)
    plan = JUDGEMENT_PLAN
    first = plan["steps"][0]
    steps = ", ".join(f"{s['weight']} % for {s['duration']}" for s in plan["steps"])
    lines = [
        "## Judgement",
        "",
        f"`canaryflow bench --judgement`: real local releases of the sample service (simulated "
        f"work lognormal around {WORK_MS:g} ms) with the **default gates**, steps {steps}, "
        f"a measurement every {plan['analysis']['interval']} (query window "
        f"{plan['analysis']['queryWindow']}), {plan['local']['load']['rate']} requests/s of "
        f"load, alpha {results.alpha:g}. Each fault is switched on {FAULT_DELAY_S:g}-"
        f"{FAULT_DELAY_S + 2:g} s into the first window. This run: {_runs_per_class(results)} "
        f"per fault class and {sum(r.fault == 'good' for r in results.runs)} good canaries, "
        f"{results.seconds / 60:.1f} min.",
        "",
        "*Live*: the release as it ran; fault → safe is from the moment the service switched "
        "the fault on to the router's confirmed weight 0. *Watched*: after each bad release the "
        f"same fault on a fresh canary at {first['weight']} % for {first['duration']}, nobody "
        "acting; on exactly that recorded data the judge (the plan's own window, replayed) and "
        "a fixed-threshold baseline in Argo Rollouts/Flagger style (success ≥ 99 %, p99 ≤ "
        "500 ms over the query window, every second, the first breach decides) are compared, "
        "fault → decision (without the rollback itself). *Information limit*: the requests an "
        "ideal sequential test (Wald's SPRT, knowing both recorded distributions) needs at "
        "alpha to tell that canary from stable, ÷ the canary's request rate.",
        "",
        "| fault | live: caught | median fault → safe | p95 | failed requests (median) | "
        "watched: judge | judge median | baseline | baseline median | information limit | "
        "target 1.5 x limit + 1 s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row["class"] == "good canaries":
            continue
        target = row["limit_s"] * 1.5 + 1 if row["limit_s"] is not None else None
        early = row["rolled_back_before_fault"]
        early_text = f" ({early} before the fault)" if early else ""
        lines.append(
            f"| {row['class']} | {row['caught']}/{row['runs']}{early_text} | "
            f"{_s(row['median_s'])} | {_s(row['p95_s'])} | {row['failed_requests_median']:g} | "
            f"{row['judge_caught']}/{row['watched']} | {_s(row['judge_median_s'])} | "
            f"{row['baseline_caught']}/{row['watched']} | {_s(row['baseline_median_s'])} | "
            f"{_s(row['limit_s'])} | {_s(target)} |"
        )
    good = next((r for r in rows if r["class"] == "good canaries"), None)
    if good:
        lines += [
            "",
            f"Good canaries (the same binary as stable, noise only): {good['rolled_back']}/"
            f"{good['runs']} rolled back by the judge; on the same releases' data the baseline "
            f"would have rolled back {good['baseline_rolled_back']}/{good['runs']}.",
        ]
        lines += [f"- rolled back: {reason}" for reason in good["reasons"]]
    return "\n".join(lines) + "\n"


def _runs_per_class(results: JudgementResults) -> str:
    counts = sorted({sum(r.fault == c.name for r in results.runs) for c in FAULT_CLASSES} - {0})
    return "/".join(str(c) for c in counts) or "0"


def load(data: dict[str, Any]) -> JudgementResults:
    """Results back from ``judgement.json`` (to re-render the section)."""
    return JudgementResults(
        runs=[ReleaseRun(**run) for run in data["runs"]],
        observations=[Observation(**seen) for seen in data["observations"]],
        alpha=data["alpha"],
        plan=data["plan"],
        seconds=data["seconds"],
    )


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"
