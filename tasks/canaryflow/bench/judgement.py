"""How good the verdict is on a noisy fleet: real local releases with the DEFAULT gates, one
fault class at a time, good canaries that differ from stable only by noise, each metric
flavour the catalogue has.

Every release runs the sample Go service behind the local nginx router, scraped by a real
Prometheus, under the load generator's users; the noise is the kind no fault switch controls
and is the same on both versions (``NOISE``): a 1 % base 5xx rate (each failure logging a line
the default log patterns match), steady "error" log lines on 0.2 % of good requests, pods that
stall for 1 s every 30 s at their own phase (30 % of the requests caught answered 500), a cold
start (its cache empty and twice the work for 20 s) and a connection pool filled lazily (10 %
of its 32 dials logged as refused). Stable is ``STABLE_PODS`` pods (``bench.fleet``: one
process, each pod scraped on its own), the canary one. A bad release's fault is scheduled
through the canary's ``PUT /admin/faults`` as its first window starts; the service reports the
exact moment it took effect.

Reported per release: which gate caught the fault (a rollback by another gate, or by an
inconclusive window, is counted apart), fault → traffic safe, and the information limit of the
fault *as configured* at the alpha that gate had in this very release (read from its
measurements) and its own tolerance.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.statistics import clopper_pearson
from canaryflow.bench.fleet import StableFleet, load_lasts
from canaryflow.bench.offline import information_limit_at
from canaryflow.bench.scenarios import schedule_faults
from canaryflow.local.load import LoadGenerator
from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.load import plan_from_dict
from canaryflow.plan.model import ReleasePlan
from canaryflow.platform.split import split_for
from canaryflow.release.events import EventKind
from canaryflow.release.record import Event
from canaryflow.report.figures import percentile

WORK_MS = 15.0
BASE_ERROR_RATE = 0.01
BASE_LOG_RATE = 0.002
"""Good requests that log an error line anyway (the default patterns match it)."""
COLD_S = 20.0
STABLE_PODS = 4
ROUTER_RPS = 200.0
"""The users' requests through the router, split between stable's first pod and the canary."""
EXTRA_POD_RPS = 40.0
"""Each other stable pod's own steady load."""
FAULT_DELAY_S = 2.0
SETTLE_S = 2.0
NOISE: tuple[str, ...] = (
    "-work-ms", f"{WORK_MS:g}",
    "-error-rate", f"{BASE_ERROR_RATE:g}",
    "-log-error-rate", f"{BASE_LOG_RATE:g}",
    "-stall-every", "30s", "-stall-for", "1s", "-stall-fail", "0.3",
    "-cold-for", f"{COLD_S:g}s",
    "-pool-size", "32", "-pool-refused", "0.1",
    "-pods", str(STABLE_PODS),
)  # fmt: skip
"""Both versions' flags: the canary runs them too (its extra pods get no traffic and are not
scraped: the canary is one pod)."""


def noise_args(cold_start: bool = True) -> tuple[str, ...]:
    """``NOISE``, or without its cold start (every pod warm from its first request)."""
    if cold_start:
        return NOISE
    at = NOISE.index("-cold-for")
    return NOISE[:at] + NOISE[at + 2 :]


JUDGED_OVER_LIMIT = 1.5
"""How many times a class's information limit the plan's first step must judge: a plan that
ends before the evidence can exist measures the plan, not the judge (and the target is
1.5 x limit + one scrape + 1 s)."""
FIRST_STEP_S = 150
"""The first step's judged time at 10 % (the warm-up comes before it). The 5xx 1 % → 3 %
classes' limit against the fresh baseline's 20 requests/s is about 95 s at the smallest alpha
share a gate can get (every sequential gate exported), so 150 s is at least 1.5 x it. The
log-only class's limit (about 1,600 s) is beyond any bounded run here: its row says the plan
judges only a fraction of it."""

# A 5 s scrape, not the 15 s of a cluster: ranges of 4 scrapes then need 20 s windows, and a
# release of 15 s-scrape windows (60 s each) would not fit a bounded run on this machine.
JUDGEMENT_PLAN: dict[str, Any] = {
    "apiVersion": "canaryflow.dev/v1alpha1",
    "kind": "ReleasePlan",
    "service": {"name": "checkout", "namespace": "bench", "healthTimeout": "15s"},
    "owners": {"team": "bench"},
    "steps": [
        {"weight": 10, "duration": f"{FIRST_STEP_S}s"},
        {"weight": 50, "duration": "20s"},
        {"weight": 100, "duration": "10s"},
    ],
    "analysis": {"interval": "5s", "queryWindow": "20s"},
    "local": {"scrapeInterval": "5s", "load": {"rate": ROUTER_RPS, "clients": 16}},
}


@dataclass(frozen=True)
class FaultClass:
    """A fault switched on as the first window starts, the gate that watches it, and the
    flavour the service exports its metrics in."""

    name: str
    faults: Mapping[str, Any]
    gate: str
    flavour: str = "go"

    def rates(self) -> tuple[float, float] | None:
        """Stable's and the canary's configured rate of the gate's events per request, where
        the fault is a rate of counted events (else None: no closed-form limit)."""
        if self.gate == "error-rate" and "error_rate" in self.faults:
            return BASE_ERROR_RATE, float(self.faults["error_rate"])
        if self.gate == "log-errors" and "log_error_rate" in self.faults:
            # Every 5xx logs a matching line too; a good request logs one at log_error_rate.
            canary = BASE_ERROR_RATE + (1 - BASE_ERROR_RATE) * float(self.faults["log_error_rate"])
            return BASE_ERROR_RATE + (1 - BASE_ERROR_RATE) * BASE_LOG_RATE, canary
        return None


FAULT_CLASSES: tuple[FaultClass, ...] = (
    FaultClass("5xx 1 % → 3 %", {"error_rate": 0.03}, "error-rate"),
    FaultClass("log-only errors 0.2 % → 2 %", {"log_error_rate": 0.02}, "log-errors"),
    FaultClass("latency x 1.5", {"latency_factor": 1.5}, "latency-p95"),
    FaultClass("5xx 1 % → 3 %, otel", {"error_rate": 0.03}, "error-rate", "otel"),
    FaultClass("5xx 1 % → 3 %, grpc", {"error_rate": 0.03}, "error-rate", "grpc"),
    # The goroutines gate is advisory by default (dryRun: it never decides): this class shows
    # whether a leak is rolled back by a deciding gate (gc-frequency, latency) or promoted.
    FaultClass("goroutine leak, 10 per request", {"goroutine_leak": 10}, "goroutines"),
)
FLAVOURS: tuple[str, ...] = ("go", "otel", "grpc")


@dataclass(frozen=True)
class ReleaseRun:
    """One live release: how it ended, which gate decided, when traffic was safe again."""

    fault: str  # a fault class's name, or "good"
    flavour: str
    phase: str
    reason: str
    gate: str | None  # the first failing gate, None when no gate failed
    outcome: str  # pass (promoted), fail, inconclusive, error
    fault_on: float | None
    detection_s: float | None  # fault on -> traffic safe; None if never rolled back after it
    before_fault: bool  # rolled back before the fault existed (a false rollback)
    gate_alpha: float | None  # the deciding (or expected) gate's alpha in this release
    limit_s: float | None  # the configured fault's information limit at that alpha
    requests: int
    failed: int


@dataclass
class JudgementResults:
    runs: list[ReleaseRun] = field(default_factory=list)
    alpha: float = 0.01
    plan: dict[str, Any] = field(default_factory=lambda: JUDGEMENT_PLAN)
    seconds: float = 0.0
    cold_start: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judgement_plan(flavour: str = "go") -> ReleasePlan:
    document = {**JUDGEMENT_PLAN, "analysis": {**JUDGEMENT_PLAN["analysis"], "metrics": flavour}}
    return plan_from_dict(document, origin="judgement bench plan")


def schedule(runs: int, good: int, classes=FAULT_CLASSES) -> dict[str, list[FaultClass | None]]:
    """Per flavour, the releases in order: good canaries and faults interleaved."""
    plan: dict[str, list[FaultClass | None]] = {}
    for flavour in FLAVOURS:
        mine: list[FaultClass | None] = [c for c in classes if c.flavour == flavour] * runs
        if flavour == "go":
            mine = [None] * good + mine
        if mine:
            plan[flavour] = mine
    return plan


def judgement(
    workdir: Path,
    build: Path,
    runs: int,
    good: int,
    say: Callable[[str], None],
    classes: tuple[FaultClass, ...] = FAULT_CLASSES,
    cold_start: bool = True,
) -> JudgementResults:
    """``runs`` releases per fault class and ``good`` good canaries (go flavour); one stack per
    flavour, started and stopped in turn (never more than one at a time)."""
    began = time.monotonic()
    results = JudgementResults(cold_start=cold_start)
    for flavour, releases in schedule(runs, good, classes).items():
        plan = judgement_plan(flavour)
        results.alpha = plan.analysis.alpha
        args = (*noise_args(cold_start), "-metrics", flavour)
        stable, canary = sample_service("v1", build, args), sample_service("v2", build, args)
        with LocalStack(plan, stable, workdir / f"judgement-{flavour}") as stack:
            fleet = StableFleet(stack, STABLE_PODS, EXTRA_POD_RPS).start()
            try:
                time.sleep(COLD_S + SETTLE_S)  # stable warm before the first release
                span = release_span_s(plan)
                for fault in releases:
                    _keep_load_running(stack, span)
                    fleet.keep_loaded(span)
                    run = _release(stack, plan, canary, fault, flavour)
                    results.runs.append(run)
                    say(f"judgement {len(results.runs)}: {_line(run)}")
                    # A promotion started a new stable process: let it warm up as the old did.
                    time.sleep(COLD_S + SETTLE_S if run.phase == "promoted" else SETTLE_S)
            finally:
                fleet.stop()
    results.seconds = time.monotonic() - began
    return results


DEPLOY_MARGIN_S = 30.0
"""Seconds a release spends outside its health wait and windows: the canary's and the
baseline's processes started, weights set and verified, the promotion."""


def release_span_s(plan: ReleasePlan) -> float:
    """The longest a release of ``plan`` can need its users: the health wait, the warm-up,
    every traffic step's window extended by ``maxExtension`` while gates collect, and
    ``DEPLOY_MARGIN_S``.

    The users' load must last that long. With a fixed margin of 150 s (before), a load with
    167 s left was kept for a release of about 250 s: it stopped about ten seconds into the
    50 % step of the goroutine-leak release (main at 824bfaa), and the release ended
    "inconclusive: ... 0 of 20 canary requests in this window" after a 60 s extension at
    100 %: no user sent a request to either track, the canary had not stopped serving."""
    analysis = plan.analysis
    scrape = plan.local.scrape_interval
    warmup = analysis.warmup_for(scrape, analysis.baseline == "fresh")
    windows = sum(step.duration + analysis.max_extension for step in plan.traffic_steps)
    return plan.service.health_timeout + warmup + windows + DEPLOY_MARGIN_S


def _keep_load_running(stack, span_s: float) -> None:
    """The load generator stops by itself after its maximum duration (10 min), and a whole
    judgement run is longer: start a fresh one unless it lasts the next release's longest
    span (``release_span_s``)."""
    load = stack.load
    if load.config.max_duration_s <= span_s:
        raise ValueError(
            f"a release may need users for {span_s:g}s, longer than the load generator's "
            f"{load.config.max_duration_s:g}s: shorten the judgement plan"
        )
    if load_lasts(load, span_s):
        return
    load.stop()
    stack.load = LoadGenerator(load.config).start()
    time.sleep(SETTLE_S)  # traffic on both tracks again before the next window


def _line(run: ReleaseRun) -> str:
    caught = f"safe {run.detection_s:.2f}s after the fault" if run.detection_s else "not caught"
    if run.fault == "good":
        caught = "false rollback" if run.phase != "promoted" else "promoted"
    return f"{run.fault}: {run.phase}, {caught}, gate {run.gate} ({run.reason[:160]})"


_DECIDED = re.compile(r"\b(fail|inconclusive|error): ([a-z0-9-]+):")


def deciding_gate(items_by_round: list[list[dict]], reason: str) -> tuple[str | None, str]:
    """The first failing gate of the release's measurement rounds and the outcome that ended
    it: a failing measurement decides; without one, the verdict's reason names the gate."""
    for items in items_by_round:
        for item in items:
            if item.get("outcome") == "fail" and not item.get("dry_run"):
                return item["gate"], "fail"
    match = _DECIDED.search(reason)
    if match:
        return match.group(2), match.group(1)
    return None, "pass"


def gate_alpha(items_by_round: list[list[dict]], gate: str) -> float | None:
    """The alpha ``gate`` had in this release: its e-process's threshold, log(1/alpha), as its
    latest measurement reported it."""
    for items in reversed(items_by_round):
        for item in items:
            if item.get("gate") != gate:
                continue
            threshold = item.get("evidence", {}).get("detail", {}).get("log_threshold")
            if isinstance(threshold, (int, float)) and threshold > 0:
                return math.exp(-threshold)
    return None


def exposure_share(weight: float) -> float:
    """The canary's share of the requests both tracks serve at ``weight`` (0..1): the router's
    users split by weight, the other stable pods' own load on stable's side."""
    canary = ROUTER_RPS * weight
    return canary / (ROUTER_RPS + (STABLE_PODS - 1) * EXTRA_POD_RPS)


def configured_limit_s(
    fault: FaultClass, alpha: float, weight: float, baseline: bool = True
) -> float | None:
    """The configured fault's information limit at the first step's ``weight``: the gate's own
    tolerance (the catalogue default the plan uses) and ``alpha``, against the reference the
    judge compares with: a fresh baseline (``baseline``, the plan's default here: only its
    requests, the canary's share of the router's), else every stable pod's."""
    rates = fault.rates()
    if rates is None:
        return None
    base, canary = rates
    limit = METRICS[fault.gate].default_limit
    tolerance = (limit.get("sequential") or limit.get("logs") or {}).get("tolerance")
    if tolerance is None:
        return None
    if baseline:
        split = split_for(round(weight * 100), True)
        compared = (split.canary + split.baseline) / 100
        return information_limit_at(
            ROUTER_RPS * compared,
            split.canary / 100 / compared,
            base,
            canary / base,
            alpha,
            tolerance,
        )
    total_rps = ROUTER_RPS + (STABLE_PODS - 1) * EXTRA_POD_RPS
    return information_limit_at(
        total_rps, exposure_share(weight), base, canary / base, alpha, tolerance
    )


def _release(stack, plan, artifact, fault: FaultClass | None, flavour: str) -> ReleaseRun:
    switch: dict[str, float] = {}

    def on_event(event: Event) -> None:
        if fault is not None and event.kind == EventKind.WINDOW_STARTED and event.data["step"] == 0:
            address = next(
                t.address for t in stack.platform.targets() if t.labels["track"] == "canary"
            )
            switch["at"] = schedule_faults(address, dict(fault.faults), FAULT_DELAY_S)

    result = stack.release(artifact, listeners=[on_event])
    record = result.record
    start, end = record.events[0].at, record.events[-1].at
    rounds = [e.data["items"] for e in record.of_kind(EventKind.MEASUREMENTS)]
    gate, outcome = deciding_gate(rounds, result.reason)
    if result.phase == "promoted":
        gate, outcome = None, "pass"
    safe = record.first(EventKind.TRAFFIC_SAFE)
    fault_on = switch.get("at")
    rolled_back = result.phase != "promoted" and safe is not None
    before = rolled_back and (fault_on is None or safe.at < fault_on)
    detection = round(safe.at - fault_on, 3) if rolled_back and not before else None
    watched = fault.gate if fault is not None else gate
    alpha = gate_alpha(rounds, watched) if watched else None
    weight = plan.traffic_steps[0].weight / 100
    fresh = plan.analysis.baseline == "fresh"
    limit = configured_limit_s(fault, alpha, weight, fresh) if fault and alpha else None
    counters = stack.load.counters(start, end)
    return ReleaseRun(
        fault=fault.name if fault else "good",
        flavour=flavour,
        phase=str(result.phase),
        reason=result.reason,
        gate=gate,
        outcome=outcome,
        fault_on=fault_on,
        detection_s=detection,
        before_fault=bool(before),
        gate_alpha=alpha,
        limit_s=limit,
        requests=counters.total,
        failed=counters.failed,
    )


# Summary ----------------------------------------------------------------------------------


def summary(results: JudgementResults) -> list[dict[str, Any]]:
    """One row per fault class (caught by its own gate, by another, not at all), then one for
    the good canaries."""
    rows = []
    for fault in FAULT_CLASSES:
        runs = [r for r in results.runs if r.fault == fault.name]
        if not runs:
            continue
        caught = [r for r in runs if r.gate == fault.gate and r.outcome == "fail"]
        times = [r.detection_s for r in caught if r.detection_s is not None]
        limits = [r.limit_s for r in runs if r.limit_s is not None]
        rows.append(
            {
                "class": fault.name,
                "flavour": fault.flavour,
                "gate": fault.gate,
                "runs": len(runs),
                "caught": len(caught),
                "other": sorted(
                    "promoted" if r.phase == "promoted" else f"{r.outcome}: {r.gate}"
                    for r in runs
                    if r not in caught
                ),
                "before_fault": sum(r.before_fault for r in runs),
                "median_s": statistics.median(times) if times else None,
                "p95_s": percentile(times, 95, "nearest-rank"),
                "limit_s": statistics.median(limits) if limits else None,
                "alpha": next((r.gate_alpha for r in runs if r.gate_alpha), None),
            }
        )
    good = [r for r in results.runs if r.fault == "good"]
    if good:
        rows.append(
            {
                "class": "good canaries",
                "runs": len(good),
                "rolled_back": sum(r.phase != "promoted" for r in good),
                "reasons": sorted(
                    f"{r.outcome}: {r.gate}: {r.reason[:160]}"
                    for r in good
                    if r.phase != "promoted"
                ),
            }
        )
    return rows


def judged_over_limit(judged_s: float, limit_s: float | None) -> str:
    """The first step's judged seconds as a multiple of the class's information limit, and
    whether that is enough to judge it."""
    if limit_s is None or not math.isfinite(limit_s) or limit_s <= 0:
        return "-"
    ratio = judged_s / limit_s
    enough = "" if ratio >= JUDGED_OVER_LIMIT else ": too short to judge"
    return f"{judged_s:g} s, {ratio:.2g}x limit{enough}"


def _s(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1f} s"


def markdown(results: JudgementResults, header: str = "") -> str:
    """The judgement section of BENCHMARKS.md, from a real run's releases."""
    rows = summary(results)
    plan = results.plan
    first = plan["steps"][0]
    parsed = plan_from_dict(plan, origin="judgement bench plan")
    judged = parsed.traffic_steps[0].duration
    warmup = parsed.analysis.warmup_for(
        parsed.local.scrape_interval, parsed.analysis.baseline == "fresh"
    )
    warm = (
        f"after the default **warm-up** ({warmup:g} s at the first step, left out of the evidence)"
        if warmup
        else "with **no warm-up** (the default against a fresh baseline: it starts as cold as "
        "the canary)"
    )
    steps = ", ".join(f"{s['weight']} % for {s['duration']}" for s in plan["steps"])
    cold = (
        "a 20 s cold start (cache empty, twice the work), "
        if results.cold_start
        else "no cold start (`--warm-canary`: every pod warm from its first request), "
    )
    lines = [
        "## Judgement" if results.cold_start else "## Judgement: canary started warm",
        "",
        *([header, ""] if header else []),
        "`canaryflow bench --judgement`: real local releases (the sample Go service behind the "
        "nginx router, a real Prometheus, the load generator; all on 127.0.0.1) with the "
        f"**default gates**, steps {steps}, a measurement every "
        f"{plan['analysis']['interval']}, query window {plan['analysis']['queryWindow']}, "
        f"alpha {results.alpha:g}. Fleet: {STABLE_PODS} stable pods (one process, `-pods`; "
        "each scraped as its own target) and 1 canary pod, judged as the product judges by "
        "default: against a **fresh baseline** (one process of stable's version the release "
        "starts with the canary and routes the canary's share to; the local platform's "
        f"default) {warm}; a **5 s scrape** (not 15 s: its "
        "60 s windows would not fit a bounded run here); "
        f"{ROUTER_RPS:g} requests/s of users through the router and {EXTRA_POD_RPS:g}/s on "
        f"each other stable pod. Noise on both versions: {BASE_ERROR_RATE:.0%} base 5xx "
        "(each logging a line the default patterns match), error lines on "
        f"{BASE_LOG_RATE:.1%} of good requests, every pod stalling 1 s every 30 s at its own "
        f"phase (30 % of the requests caught answered 500), {cold}a lazily filled pool of 32 "
        "connections (10 % of dials logged refused). The fault is switched on 2 s into the "
        f"first window{' (after the warm-up)' if warmup else ''}. *Caught* = rolled back "
        "by a failing measurement of the fault's own gate; *other* lists any other ending. "
        "*Information limit*: log(1/alpha) / KL of the configured fault at the first step "
        "against the gate's tolerance, with the alpha that gate had in the release (from its "
        "measurements), for clean data; target 1.5 x limit + one scrape + 1 s. "
        f"*First step judges*: the plan's {judged:g} s at {first['weight']} % over that limit; "
        f"below {JUDGED_OVER_LIMIT:g}x the release ends before the evidence can exist, so that "
        "row measures the plan, not the judge.",
        "",
        "| fault | flavour | gate | caught | 95 % CI | other endings | fault → safe, median "
        "| p95 | information limit | target | first step judges |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    scrape = 5.0
    for row in rows:
        if row["class"] == "good canaries":
            continue
        low, high = clopper_pearson(row["caught"], row["runs"])
        limit = row["limit_s"]
        target = JUDGED_OVER_LIMIT * limit + scrape + 1 if limit is not None else None
        other = "; ".join(row["other"]) or "-"
        lines.append(
            f"| {row['class']} | {row['flavour']} | {row['gate']} | {row['caught']}/{row['runs']} "
            f"| {low:.0%} to {high:.0%} | {other} | {_s(row['median_s'])} | {_s(row['p95_s'])} "
            f"| {_s(limit)} | {_s(target)} | {judged_over_limit(judged, limit)} |"
        )
    good = next((r for r in rows if r["class"] == "good canaries"), None)
    if good:
        low, high = clopper_pearson(good["rolled_back"], good["runs"])
        lines += [
            "",
            f"Good canaries (the same binary as stable, noise only): {good['rolled_back']}/"
            f"{good['runs']} rolled back (95 % CI {low:.0%} to {high:.0%}: this few releases "
            "bound nothing; the offline replay below measures the false-rollback rate).",
        ]
        lines += [f"- rolled back: {reason}" for reason in good["reasons"]]
    return "\n".join(lines) + "\n"
