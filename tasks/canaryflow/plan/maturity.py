"""Can a plan's windows give its gates the data they need? Warnings for ``canaryflow validate``.

A gate passes only once it has enough data (maturity); a window that ends before then is
inconclusive, which rolls the release back by default. These checks find that at plan time:
windows shorter than the interval, windows in which the expected canary traffic (known for
local runs from ``local.load.rate``) is below what a gate needs, and a 100 % step that no gate
can judge because every deciding gate compares with a stable that no longer serves. With the
scrape interval (``analysis.scrapeInterval``, or read from Prometheus by ``validate``): ranges
that would span fewer than four scrapes (they are widened), and windows too short to see the
canary scraped twice. ``traffic_needed`` says what request rate the first step needs. A plan
that asks for a fresh baseline on a router that cannot split three ways is told it gets stable.
"""

from __future__ import annotations

import math

from canaryflow.analysis.catalogue import METRICS, Buckets
from canaryflow.analysis.spec import SCRAPES_PER_RANGE
from canaryflow.plan.model import ReleasePlan
from canaryflow.plan.routers import DEPRECATED, THREE_WAY, can, routers_with

SCRAPES_PER_WINDOW = 3
"""A window sees the canary's counters move only between two of its scrapes, and the first may
come up to one scrape interval after the window starts."""


def required_requests(plan: ReleasePlan) -> tuple[int, str]:
    """The most canary requests any deciding gate needs before it can pass, and which gate."""
    spec = plan.analysis
    needed, who = spec.min_canary_requests, "minCanaryRequests"
    for gate in spec.sequential_gates:
        evidence = METRICS[gate.metric].evidence_for(spec.metrics)
        if isinstance(evidence, Buckets):
            quantile_needs = math.ceil(1 / (1 - evidence.quantile))
            if quantile_needs > needed:
                needed, who = quantile_needs, gate.name
    return needed, who


def traffic_needed(plan: ReleasePlan, scrape_interval: float | None = None) -> str | None:
    """What request rate to the whole service the first traffic step needs for its gates to
    judge before the window (and its maxExtension) runs out, as one line people read."""
    spec = plan.analysis
    steps = [(i, s) for i, s in enumerate(plan.steps) if s.is_traffic and 0 < s.weight < 100]
    if not steps:
        return None
    index, step = steps[0]
    share = step.weight / 100
    needed, who = required_requests(plan)
    seconds = step.duration + spec.max_extension
    rate = needed / seconds / share
    why = f"{who} needs {needed} canary requests within {seconds:g}s"
    comparing = [g for g in spec.deciding_gates if g.sequential is None and g.logs is None]
    if comparing and spec.min_canary_requests > 0:
        window = spec.range_for(scrape_interval)
        in_window = spec.min_canary_requests / window / share
        if in_window > rate:
            rate = in_window
            why = f"minCanaryRequests {spec.min_canary_requests} in each {window:g}s query range"
    return (
        f"steps[{index}] needs about {rate:.2g} requests/s to the service: at {step.weight}% "
        f"the canary gets {rate * share:.2g}/s, and {why} (window {step.duration:g}s + "
        f"maxExtension {spec.max_extension:g}s)"
    )


def scrape_warnings(plan: ReleasePlan, scrape_interval: float | None) -> list[str]:
    """What a scrape interval (the plan's, else ``scrape_interval``) does to the plan."""
    spec = plan.analysis
    scrape = spec.scrape_interval or scrape_interval
    if not scrape:
        return []
    warnings = []
    used = spec.range_for(scrape)
    if used > spec.query_window:
        warnings.append(
            f"analysis.queryWindow: {spec.query_window:g}s spans fewer than "
            f"{SCRAPES_PER_RANGE} scrapes (every {scrape:g}s), so queries use {used:g}s: set "
            f"queryWindow to at least {used:g}s to say so"
        )
    if spec.interval < scrape:
        warnings.append(
            f"analysis.interval: {spec.interval:g}s is shorter than the scrape interval "
            f"{scrape:g}s, so most rounds see no new sample: set it to at least {scrape:g}s"
        )
    for index, step in enumerate(plan.steps):
        if step.is_traffic and step.duration + spec.max_extension < SCRAPES_PER_WINDOW * scrape:
            warnings.append(
                f"steps[{index}]: its {step.duration:g}s window (+ maxExtension "
                f"{spec.max_extension:g}s) sees the canary scraped fewer than twice (every "
                f"{scrape:g}s), so no gate can judge it: lengthen it to at least "
                f"{SCRAPES_PER_WINDOW * scrape:g}s"
            )
    return warnings


def baseline_warnings(plan: ReleasePlan, scrape_interval: float | None = None) -> list[str]:
    """``analysis.baseline: fresh`` written in the plan, on a router that splits two ways: the
    release judges against stable instead (a warning, not an error: the release still works, as
    it did before baselines, and the default says nothing, to keep nginx-ingress plans quiet).
    A warm-up shorter than one scrape: the first window may open before Prometheus has a
    sample of the new baseline pods (the workflow's analyze pod and ``run --platform
    kubernetes`` wait for that first scrape, ``release.first_scrape``)."""
    spec = plan.analysis
    kind = plan.router.kind
    if spec.baseline != "fresh":
        return []
    warnings = []
    if "baseline" in spec.model_fields_set and not can(kind, THREE_WAY):
        able = " or ".join(k for k in routers_with(THREE_WAY) if k not in DEPRECATED)
        warnings.append(
            f"analysis.baseline: fresh needs a router that splits three ways; router.kind "
            f"{kind} does not, so in a cluster the canary is judged against stable: set "
            f"baseline: stable to say so, or use {able}"
        )
    scrape = spec.scrape_interval or scrape_interval
    if spec.warmup is not None and scrape and spec.warmup < scrape:
        warnings.append(
            f"analysis.warmup: {spec.warmup:g}s is shorter than one scrape ({scrape:g}s), so the "
            "first window may open before the fresh baseline is scraped: set it to at least "
            f"{scrape:g}s, or omit it (none against the baseline: the first step waits for "
            "its first scrape)"
        )
    return warnings


def maturity_warnings(plan: ReleasePlan, scrape_interval: float | None = None) -> list[str]:
    """One line per problem, naming the step and what to change."""
    spec = plan.analysis
    warnings = scrape_warnings(plan, scrape_interval) + baseline_warnings(plan, scrape_interval)
    needed, who = required_requests(plan)
    load = plan.local.load.rate if "local" in plan.model_fields_set else None
    # At 100 % stable serves no requests, but its pods still run: per-pod gauges and rates
    # (relative) and fixed rules still judge. Request comparisons (sequential, logs with a
    # tolerance) add nothing there, but their test carries the release's evidence from the
    # earlier steps (one test per gate for the release): they judge a 100 % step that follows
    # a step below 100 %, not one that comes first.
    compared_before = False
    absolute = [
        g
        for g in spec.deciding_gates
        if g.threshold is not None
        or g.relative is not None
        or (g.logs is not None and not g.logs.compares)
    ]
    for index, step in enumerate(plan.steps):
        if not step.is_traffic:
            continue
        where = f"steps[{index}]"
        if step.duration < spec.interval:
            warnings.append(
                f"{where}: its {step.duration:g}s window is shorter than analysis.interval "
                f"{spec.interval:g}s, so it is measured once: shorten the interval"
            )
        if load is not None and step.weight < 100:
            expected = load * step.weight / 100 * step.duration
            if expected < needed:
                warnings.append(
                    f"{where}: at {step.weight}% of {load:g} requests/s the canary serves about "
                    f"{expected:.0f} requests in {step.duration:g}s, but {who} needs {needed} "
                    "before it can pass, so the window would end inconclusive: lengthen the "
                    "step or raise local.load.rate"
                )
        carried = compared_before and bool(spec.sequential_gates)
        compared_before = compared_before or step.weight < 100
        if step.weight == 100 and not absolute and not carried:
            warnings.append(
                f"{where}: at 100% stable serves nothing, so comparisons with it are "
                "inconclusive by rule and no deciding gate can judge this window (no step "
                "below 100% before it has carried evidence to it): add a threshold, relative "
                "or logs (max) gate, or a step below 100% first"
            )
    return warnings
