"""The plan's steps as the generic ``go-canary-release`` workflow walks them: plain strings.

``validate-plan`` writes these values as its output parameters; the workflow reads a step's
fields with Argo's ``jsonpath`` expression function and passes them on as arguments. Every
value is a string and every step carries every key (empty when it does not apply), so a
lookup never misses and Argo never has to format a number. Pure: no I/O.
"""

from __future__ import annotations

import json

from canaryflow.duration import format_duration
from canaryflow.plan.model import ReleasePlan, StepSpec

TRAFFIC = "traffic"
APPROVE = "approve"
STEP_KEYS = ("kind", "weight", "duration", "message", "timeout")

STEPS = "steps"
LAST_STEP = "last-step"
PROMOTION = "promotion"
OUTPUT_NAMES = (STEPS, LAST_STEP, PROMOTION)
# The walk nests one template per step, and Argo stops nesting at 100 levels
# (workflow/controller/controller.go maxAllowedStackDepth): leave room for the DAG around it.
MAX_STEPS = 90


def step_fields(step: StepSpec) -> dict[str, str]:
    """One step as the workflow sees it: ``kind`` says which template runs it."""
    if step.approve is not None:
        timeout = step.approve.timeout
        return {
            "kind": APPROVE,
            "weight": "",
            "duration": "",
            "message": step.approve.message,
            "timeout": "" if timeout is None else str(max(1, round(timeout))),
        }
    assert step.weight is not None and step.duration is not None
    return {
        "kind": TRAFFIC,
        "weight": str(step.weight),
        "duration": format_duration(step.duration),
        "message": "",
        "timeout": "",
    }


def workflow_outputs(plan: ReleasePlan) -> dict[str, str]:
    """``{output parameter name: value}`` that drive the release's step walk."""
    steps = [step_fields(step) for step in plan.steps]
    return {
        STEPS: json.dumps(steps, separators=(",", ":"), ensure_ascii=False),
        LAST_STEP: str(len(steps) - 1),
        PROMOTION: "auto" if plan.promotion.auto else APPROVE,
    }
