"""Can a plan's windows give its gates the data they need? Warnings for ``canaryflow validate``.

A gate passes only once it has enough data (maturity); a window that ends before then is
inconclusive, which rolls the release back by default. These checks find that at plan time:
windows shorter than the interval, windows in which the expected canary traffic (known for
local runs from ``local.load.rate``) is below what a gate needs, and a 100 % step that no gate
can judge because every deciding gate compares with a stable that no longer serves.
"""

from __future__ import annotations

import math

from canaryflow.analysis.catalogue import METRICS, Buckets
from canaryflow.plan.model import ReleasePlan


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


def maturity_warnings(plan: ReleasePlan) -> list[str]:
    """One line per problem, naming the step and what to change."""
    spec = plan.analysis
    warnings = []
    needed, who = required_requests(plan)
    load = plan.local.load.rate if "local" in plan.model_fields_set else None
    absolute = [g for g in spec.deciding_gates if g.threshold is not None or g.logs is not None]
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
        if step.weight == 100 and not absolute:
            warnings.append(
                f"{where}: at 100% stable serves nothing, so comparisons with it are "
                "inconclusive by rule and no deciding gate can judge this window: add a "
                "threshold or logs gate, or end the steps below 100%"
            )
    return warnings
