"""Offline judgement: a recorded (or simulated) release judged window by window, in no time.

The real ``AnalysisRun`` reads the recording through ``RecordedSource`` as it would read
Prometheus, on a clock that jumps instead of waiting, one window per traffic step, exactly as
the engine drives it: with ``carry=True`` one e-process per gate runs over the whole release
(the engine's way), with ``carry=False`` every window is a test of its own and alpha is split
over the windows (the way separate ``canaryflow analyze`` processes per step judge).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.query import Subject
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.sequential import bernoulli_kl, canary_share, information_limit
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.analysis.statistics import clopper_pearson
from canaryflow.bench.replay import ReplayClock
from canaryflow.bench.streams import Fleet, RecordedSource, Recording, simulate

EPOCH = 1_700_000_000.0
"""The Unix time a recording's second 0 is replayed at."""


@dataclass(frozen=True)
class Judged:
    """How one release ended: the outcome of its last window, which gate decided, when."""

    outcome: Outcome
    step: int
    gate: str | None
    seconds: float | None
    """Seconds from the release's start to the deciding look."""
    samples_read: int

    @property
    def rolled_back_by_evidence(self) -> bool:
        return self.outcome is Outcome.FAIL


class _ClockedSource(RecordedSource):
    def __init__(self, recording: Recording, clock: ReplayClock):
        super().__init__(recording, clock_start=EPOCH)
        self.clock = clock

    @property  # type: ignore[override]
    def now(self) -> float:
        return self.clock.now()

    @now.setter
    def now(self, value: float) -> None:
        pass


def judge_release(
    recording: Recording,
    steps: Sequence[tuple[float, float]],
    spec: AnalysisSpec,
    carry: bool = True,
    baseline: bool = False,
) -> Judged:
    """Judge ``recording`` step by step; stop at the first window that does not pass.

    ``baseline``: the canary is judged against the recording's fresh baseline pods, as the
    engine does with ``analysis.baseline: fresh``. The plan's warm-up (``spec.warmup``; 0 here
    when omitted, as this replay knows no scrape discovery) is waited before the first window,
    as the engine waits it; ``steps`` are the windows, the recording must include the warm-up
    (``with_warmup``)."""
    clock = ReplayClock(EPOCH)
    source = _ClockedSource(recording, clock)
    subject = Subject("svc", "prod", spec.track_label, baseline=baseline)
    run = AnalysisRun(
        spec,
        source,
        "svc",
        "prod",
        clock=clock,
        windows=len(steps),
        carry_evidence=carry,
        subject=subject,
    )
    run.concurrent = False  # the recording answers from memory: no threads needed
    clock.sleep(spec.warmup or 0.0)
    outcome = Outcome.PASS
    for index, (_, seconds) in enumerate(steps):
        result = run.window(seconds)
        outcome = result.verdict.outcome
        if outcome is not Outcome.PASS:
            deciding = [m for m in result.measurements if m.outcome is outcome and not m.dry_run]
            first = deciding[0] if deciding else None
            return Judged(
                outcome,
                index,
                first.gate if first else None,
                (first.started - EPOCH) if first else None,
                source.samples_read,
            )
    return Judged(outcome, len(steps) - 1, None, None, source.samples_read)


def with_warmup(steps: Sequence[tuple[float, float]], warmup_s: float) -> list[tuple[float, float]]:
    """The traffic a release really serves: the first step lasts its warm-up longer (the
    engine waits the warm-up at the first weight, then judges the step's full window)."""
    if not steps:
        return []
    (weight, seconds), *rest = steps
    return [(weight, seconds + warmup_s), *rest]


def judge_many(
    fleet: Fleet,
    steps: Sequence[tuple[float, float]],
    spec: AnalysisSpec,
    releases: int,
    seed: int,
    canary_factor: float = 1.0,
    carry: bool = True,
) -> list[Judged]:
    """``releases`` simulated releases of ``fleet`` judged offline, seeded; against the fleet's
    fresh baseline when it has one, after the plan's warm-up."""
    rng = random.Random(seed)
    served = with_warmup(steps, spec.warmup or 0.0)
    baseline = fleet.baseline_pods > 0
    return [
        judge_release(simulate(fleet, served, rng, canary_factor), steps, spec, carry, baseline)
        for _ in range(releases)
    ]


# The offline benchmark: many releases of a production-shaped fleet ------------------------------

BENCH_FLEET = Fleet(
    stable_pods=4,
    canary_pods=1,
    rps=1000.0,
    scrape_s=15.0,
    base_rate=0.01,
    stall_every_s=30.0,
    stall_share=0.35,
    blip_every_s=120.0,
    history_s=600.0,
)
BENCH_FLEETS: tuple[tuple[str, Fleet], ...] = (
    ("lumpy", BENCH_FLEET),
    ("mild lumps", replace(BENCH_FLEET, stall_share=0.1)),
    ("no lumps", replace(BENCH_FLEET, stall_every_s=0.0, blip_every_s=0.0)),
)
"""Stalls turning 35 % / 10 % / none of a stalled second's requests bad (every 30 s per pod):
a lump of 70 / 20 / 0 against a pod's 60 base 5xx per 30 s."""
BENCH_STEPS = ((0.1, 120.0), (0.3, 120.0), (0.6, 120.0))
BENCH_FAULTS: tuple[tuple[str, float, float], ...] = (
    ("A/A (identical canary)", 1.0, 0.0),
    ("A/A, canary cold for 30 s (3x errors)", 1.0, 30.0),
    ("5xx x3 (+2 % over 1 %)", 3.0, 0.0),
    ("5xx x2 (+1 % over 1 %)", 2.0, 0.0),
)


def information_limit_s(
    fleet: Fleet, weight: float, factor: float, alpha: float, tolerance: float
) -> float:
    """Seconds an ideal test needs at ``weight`` to reject the tolerated ratio when the canary's
    rate is ``factor`` times stable's, at the gate's own alpha: log(1/alpha) / (KL per event times
    events per second). Lumps and blips are left out: the bound of clean binomial data."""
    kl = bernoulli_kl(canary_share(factor, weight), canary_share(1 + tolerance, weight))
    events_per_s = fleet.rps * fleet.base_rate * (weight * factor + 1 - weight)
    return information_limit(kl * events_per_s, alpha)


def replay_benchmark(releases: int, seed: int = 1, say=print) -> dict:
    """``releases`` judged releases per class; the error-rate gate at the plan defaults."""
    spec = AnalysisSpec.model_validate(
        {"interval": "10s", "queryWindow": "30s", "gates": [{"metric": "error-rate"}]}
    )
    rows = []
    for number, (fleet_name, base) in enumerate(BENCH_FLEETS):
        for index, (name, factor, cold) in enumerate(BENCH_FAULTS):
            fleet = replace(base, cold_s=cold)
            count = releases if number == index == 0 else max(1, releases // 5)
            seed_here = seed + 10 * number + index
            judged = judge_many(fleet, BENCH_STEPS, spec, count, seed_here, factor)
            rows.append(_row(fleet_name, name, fleet, factor, judged, spec.alpha))
            say(f"{fleet_name}, {name}: {rows[-1]['rolled_back']}/{count} rolled back")
    return {
        "rows": rows,
        "fleets": {name: fleet.__dict__ for name, fleet in BENCH_FLEETS},
        "steps": BENCH_STEPS,
        "seed": seed,
    }


def _row(
    fleet_name: str, name: str, fleet: Fleet, factor: float, judged: list[Judged], alpha: float
) -> dict:
    count = len(judged)
    fails = [j for j in judged if j.outcome is Outcome.FAIL]
    low, high = clopper_pearson(len(fails), count)
    times = sorted(j.seconds for j in fails if j.seconds is not None)
    # One exported sequential gate: it has the whole alpha. The limit is of clean binomial
    # data at the first step's weight; lumps make any test slower.
    limit = information_limit_s(fleet, BENCH_STEPS[0][0], factor, alpha, 0.2)
    return {
        "fleet": fleet_name,
        "class": name,
        "releases": count,
        "rolled_back": len(fails),
        "ci95": [low, high],
        "inconclusive": sum(j.outcome is Outcome.INCONCLUSIVE for j in judged),
        "gates": sorted({j.gate for j in fails if j.gate}),
        "median_s": times[len(times) // 2] if times else None,
        "limit_s": limit if factor > 1.2 else None,
        "target_s": 1.5 * limit + fleet.scrape_s + 1 if factor > 1.2 else None,
        "reads_per_release": sum(j.samples_read for j in judged) / count,
    }


def replay_markdown(result: dict, header: str) -> str:
    lines = [
        "## Offline replay: simulated production-shaped fleet",
        "",
        header,
        "",
        "Simulated count streams (`canaryflow.bench.streams`), judged by the real `AnalysisRun` "
        "(evidence carried over the steps, as `canaryflow run` does) through "
        "`canaryflow.bench.offline`. Fleet: 4 stable pods + 1 canary pod, 1000 requests/s, a "
        "15 s scrape at per-pod offsets, 1 % base 5xx, 10 min of stable history; *lumpy*: each "
        "pod stalls 1 s every 30 s and 35 % of that second's requests fail (*mild lumps*: 10 %), "
        "and a shared dependency blips for 2 s about every 2 min (30 % fail); *no lumps*: "
        "neither. Steps 10 → 30 → 60 % of 120 s each, interval 10 s, the error-rate gate alone "
        "at alpha 0.01 (so the gate has all of it), tolerance 20 %. The fault is present from "
        "the canary's first request; seconds count from the release's start. Information "
        "limit: log(1/alpha) / KL of the configured fault at the 10 % step and the tolerated "
        "ratio, for clean binomial data (lumps make every test slower); target = 1.5 x limit "
        "+ one scrape + 1 s. Not simulated: logs, latency histograms, goroutines, GC, "
        "live processes.",
        "",
        "| fleet | class | releases | rolled back (fail) | 95 % CI (Clopper-Pearson) "
        "| inconclusive | deciding gate | median s to fail | information limit s | target s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        low, high = row["ci95"]
        median = "-" if row["median_s"] is None else f"{row['median_s']:.0f}"
        limit = "-" if row["limit_s"] is None else f"{row['limit_s']:.0f}"
        target = "-" if row["target_s"] is None else f"{row['target_s']:.0f}"
        gates = ", ".join(row["gates"]) or "-"
        lines.append(
            f"| {row['fleet']} | {row['class']} | {row['releases']} | {row['rolled_back']} "
            f"| {low:.2%} to {high:.2%} | {row['inconclusive']} | {gates} "
            f"| {median} | {limit} | {target} |"
        )
    return "\n".join(lines) + "\n"


COLD_FLEET = replace(BENCH_FLEET, stall_every_s=0.0, blip_every_s=0.0, cold_s=30.0)
"""The "no lumps" fleet whose new pods start cold for 30 s with 3x the errors: the case where a
canary judged against the warm fleet is rolled back though identical (issue 20 item 3)."""
COLD_WARMUP_S = 45.0
"""The default warm-up of this fleet: its 15 s scrape + 30 s."""
COLD_CASES: tuple[tuple[str, int, float], ...] = (
    ("against stable, no warm-up (before)", 0, 0.0),
    ("against a fresh baseline, no warm-up", 1, 0.0),
    ("against stable, warm-up 45 s", 0, COLD_WARMUP_S),
    ("against a fresh baseline, warm-up 45 s (the default)", 1, COLD_WARMUP_S),
)


def cold_start_comparison(
    releases: int, seed: int = 200, say=print, factor: float = 1.0, cold_s: float = 30.0
) -> list[dict]:
    """The same cold-starting identical canary judged four ways: against stable or a fresh
    baseline (one pod, cold alike), with or without the default warm-up. ``factor`` > 1: a bad
    canary instead, to show the baseline still catches it; ``cold_s``: how long new pods stay
    cold (longer than the warm-up: only a baseline of the same age helps)."""
    rows = []
    for name, baseline_pods, warmup in COLD_CASES:
        spec = AnalysisSpec.model_validate(
            {
                "interval": "10s",
                "queryWindow": "30s",
                "warmup": f"{warmup:g}s",
                "gates": [{"metric": "error-rate"}],
            }
        )
        fleet = replace(COLD_FLEET, baseline_pods=baseline_pods, cold_s=cold_s)
        judged = judge_many(fleet, BENCH_STEPS, spec, releases, seed, factor)
        fails = sum(j.outcome is Outcome.FAIL for j in judged)
        inconclusive = sum(j.outcome is Outcome.INCONCLUSIVE for j in judged)
        passed = sum(j.outcome is Outcome.PASS for j in judged)
        low, high = clopper_pearson(fails, releases)
        rows.append(
            {
                "cold_s": cold_s,
                "case": name,
                "releases": releases,
                "rolled_back": fails,
                "ci95": [low, high],
                "inconclusive": inconclusive,
                "passed": passed,
            }
        )
        say(
            f"cold {cold_s:g}s x{factor:g}, {name}: {fails}/{releases} failed, "
            f"{inconclusive} inconclusive, {passed} passed every window"
        )
    return rows


COLD_LENGTHS_S = (30.0, 300.0)
"""Cold for less than the default warm-up, and for longer than any warm-up."""


def cold_start_all(releases: int, say=print) -> dict[str, list[dict]]:
    """``cold_start_comparison`` for each cold length, identical and bad (5xx x2) canaries."""
    good: list[dict] = []
    bad: list[dict] = []
    for cold in COLD_LENGTHS_S:
        good += cold_start_comparison(releases, say=say, cold_s=cold)
        bad += cold_start_comparison(releases, say=say, factor=2.0, cold_s=cold)
    return {"good": good, "bad": bad}


def cold_start_markdown(rows: list[dict], bad_rows: list[dict] | None = None) -> str:
    lines = [
        "",
        "### A cold canary: against stable or a fresh baseline, with or without warm-up",
        "",
        "The *no lumps* fleet above, its new pods cold for their first 30 s or 300 s (3x the "
        "5xx). A "
        "fresh baseline is one pod of stable's version started with the canary, cold alike, at "
        "the canary's share (`canaryflow.platform.split`); the warm-up is waited at the first "
        "step before its window (the window keeps its 120 s). Steps 10 → 30 → 60 %, the "
        "error-rate gate alone at alpha 0.01.",
        "",
        "| cold for | judged | releases | identical canary: failed | 95 % CI | inconclusive "
        "| passed |" + (" 5xx x2 canary: failed | 95 % CI | inconclusive |" if bad_rows else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|---|" if bad_rows else ""),
    ]
    for index, row in enumerate(rows):
        low, high = row["ci95"]
        line = (
            f"| {row['cold_s']:g} s | {row['case']} | {row['releases']} | {row['rolled_back']} "
            f"| {low:.2%} to {high:.2%} | {row['inconclusive']} | {row['passed']} |"
        )
        if bad_rows:
            bad = bad_rows[index]
            b_low, b_high = bad["ci95"]
            line += f" {bad['rolled_back']} | {b_low:.2%} to {b_high:.2%} | {bad['inconclusive']} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


CARRY_FLEET = Fleet(
    stable_pods=2, rps=100.0, scrape_s=5.0, stall_every_s=0.0, blip_every_s=0.0, history_s=300.0
)
CARRY_CASES: tuple[tuple[str, float, float], ...] = (
    ("1 % → 2 % 5xx, 20 s windows", 2.0, 20.0),
    ("1 % → 3 % 5xx, 20 s windows", 3.0, 20.0),
    ("1 % → 2 % 5xx, 40 s windows", 2.0, 40.0),
    ("1 % → 3 % 5xx, 40 s windows", 3.0, 40.0),
)


def carry_comparison(releases: int, seed: int = 100, say=print) -> list[dict]:
    """The same simulated releases judged with one test per gate over the release (carried)
    and with a new test per window at alpha / windows (restarted): 100 requests/s, 10 → 30 →
    60 %, a 5 s scrape, interval 5 s, the error-rate gate at alpha 0.01."""
    spec = AnalysisSpec.model_validate(
        {"interval": "5s", "queryWindow": "30s", "gates": [{"metric": "error-rate"}]}
    )
    rows = []
    for index, (name, factor, window) in enumerate(CARRY_CASES):
        steps = [(0.1, window), (0.3, window), (0.6, window)]
        row: dict = {"case": name, "releases": releases}
        for carry in (True, False):
            judged = judge_many(CARRY_FLEET, steps, spec, releases, seed + index, factor, carry)
            caught = sum(j.outcome is Outcome.FAIL for j in judged)
            key = "carried" if carry else "restarted"
            row[key] = caught
            row[f"{key}_ci95"] = list(clopper_pearson(caught, releases))
            row[f"{key}_inconclusive"] = sum(j.outcome is Outcome.INCONCLUSIVE for j in judged)
        say(f"{name}: carried {row['carried']}, restarted {row['restarted']} of {releases}")
        rows.append(row)
    return rows


def carry_markdown(rows: list[dict]) -> str:
    lines = [
        "",
        "### One test per gate over the release vs a new test per window",
        "",
        "The same recordings judged both ways: 2 stable pods + 1 canary pod, 100 requests/s, "
        "no lumps, a 5 s scrape, interval 5 s, steps 10 → 30 → 60 %, the error-rate gate at "
        "alpha 0.01 (restarted: 0.01 / 3 per window). Caught = rolled back by a failing "
        "measurement; a window ending still collecting is counted as inconclusive.",
        "",
        "| case | releases | caught, carried | 95 % CI | caught, restarted per window | 95 % CI "
        "| inconclusive (carried / restarted) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        c_low, c_high = row["carried_ci95"]
        r_low, r_high = row["restarted_ci95"]
        lines.append(
            f"| {row['case']} | {row['releases']} | {row['carried']} "
            f"| {c_low:.1%} to {c_high:.1%} | {row['restarted']} | {r_low:.1%} to {r_high:.1%} "
            f"| {row['carried_inconclusive']} / {row['restarted_inconclusive']} |"
        )
    return "\n".join(lines) + "\n"
