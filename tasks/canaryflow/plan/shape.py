"""The shape of a plan an unrolled pipeline is compiled from, as one line people can compare.

Tekton has no loop a result could drive, so its release Pipeline is unrolled from a plan when
it is compiled: one task per traffic step, an approval (with its timeout) per ``approve`` step,
the header route opened by the first weight when the plan has one, a ``hold-<i>`` after each
window with ``onInconclusive: hold`` and an approval before ``promote`` without
``promotion.auto``. A repository whose plan changed any of these since would run the old
steps; ``validate --compiled-steps`` compares this line with the one the Pipeline was compiled
with and stops the release before anything is deployed. Gates, thresholds, windows and the
router are read from the repository's plan at run time, so they are not part of the shape.
"""

from __future__ import annotations

from canaryflow.duration import format_duration
from canaryflow.plan.model import ReleasePlan


def compiled_shape(plan: ReleasePlan) -> str:
    """E.g. ``10% approve/30m 100%; header route; hold if inconclusive; promote when approved``."""
    steps = []
    for step in plan.steps:
        if step.is_traffic:
            steps.append(f"{step.weight}%")
        else:
            timeout = step.approve.timeout
            steps.append("approve/" + (format_duration(timeout) if timeout else "unbounded"))
    parts = [" ".join(steps)]
    parts.append("header route" if plan.router.header is not None else "no header route")
    if plan.rollback.on_inconclusive == "hold":
        parts.append("hold if inconclusive")
    parts.append("promote at once" if plan.promotion.auto else "promote when approved")
    return "; ".join(parts)
