"""Asking Prometheus whether a plan's queries parse, before a release relies on them.

A misconfigured query that silently returns nothing would only ever be inconclusive (Flagger
#1581); catching it at ``validate`` time names the gate and what Prometheus said.
"""

from __future__ import annotations

from typing import Protocol

from canaryflow.analysis.catalogue import REQUEST_COUNT
from canaryflow.analysis.query import TRACKS, Subject, render
from canaryflow.errors import FieldError
from canaryflow.plan.model import ReleasePlan


def plan_subject(plan: ReleasePlan, baseline: bool = False) -> Subject:
    """Whose metrics a plan's gates read: its service and namespace, its track label, the app
    label its ``service.selector`` names and stable's Deployment (``service.deployment``). One
    place, so the one-process release, the analyze pods, validate and the runbook agree."""
    return Subject(
        plan.service.name,
        plan.service.namespace,
        plan.analysis.track_label,
        app=plan.service.app_label if plan.service.selector else None,
        deployment=plan.service.deployment,
        baseline=baseline,
    )


class QueryChecker(Protocol):
    def validate_query(self, query: str) -> str | None:
        """Prometheus' complaint about ``query``, or None when it parses."""


def check_queries(plan: ReleasePlan, checker: QueryChecker) -> list[FieldError]:
    spec = plan.analysis
    subject = plan_subject(plan)
    # auto is decided at the first round: its templates are checked as go's (the fallback).
    flavour = spec.metrics if spec.metrics in REQUEST_COUNT else "go"
    templates = {"analysis.minCanaryRequests": REQUEST_COUNT[flavour]}
    for index, gate in enumerate(spec.gates):
        template = gate.template(flavour)
        if template is not None and gate.logs is None:
            templates[f"analysis.gates[{index}].query"] = template
    errors = []
    for path, template in templates.items():
        for track in TRACKS:
            problem = checker.validate_query(render(template, subject, track, spec.query_window))
            if problem is not None:
                errors.append(
                    FieldError(path, f"Prometheus rejects the {track} query: {problem}: fix it")
                )
                break
    return errors
