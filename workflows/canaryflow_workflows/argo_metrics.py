"""Argo's own metrics hook on the release WorkflowTemplates: a second metrics path, beside the
release pods' Pushgateway push (``canaryflow_release_*``), that needs nothing but the workflow
controller's /metrics.

Argo custom metrics (docs/metrics.md, "Defining metrics"; ``spec.metrics.prometheus`` of a
Workflow): the controller evaluates a Workflow-level metric once the Workflow completes, with
``{{workflow.duration}}`` (seconds) and ``{{workflow.status}}`` (Succeeded, Failed, Error)
substituted, and exports it with the ``argo_workflows_`` prefix. Names may hold only
alphanumerics, ``_`` and ``:``; one name keeps one help string and one type everywhere (a
Prometheus rule), which is why both templates share these definitions and tell themselves apart
by the ``workflow`` label. Labels stay low-cardinality: the template, the service, its
namespace and the outcome, never a Workflow's name or a revision.
"""

from __future__ import annotations

from hera.workflows import models as m

DURATION = "canaryflow_release_duration_seconds"
OUTCOMES = "canaryflow_release_outcomes"
DURATION_HELP = "Seconds the last canaryflow release of a service took (its Workflow's duration)."
OUTCOMES_HELP = "Finished canaryflow releases by service and outcome (Succeeded, Failed, Error)."


def _labels(workflow: str, *extra: m.MetricLabel) -> list[m.MetricLabel]:
    return [
        m.MetricLabel(key="workflow", value=workflow),
        m.MetricLabel(key="service", value="{{workflow.parameters.service}}"),
        m.MetricLabel(key="namespace", value="{{workflow.parameters.namespace}}"),
        *extra,
    ]


def release_metrics(workflow: str) -> m.Metrics:
    """A gauge of the last release's duration and a counter of outcomes, per service."""
    status = m.MetricLabel(key="status", value="{{workflow.status}}")
    return m.Metrics(
        prometheus=[
            m.Prometheus(
                name=DURATION,
                help=DURATION_HELP,
                labels=_labels(workflow),
                gauge=m.Gauge(value="{{workflow.duration}}", realtime=False),
            ),
            m.Prometheus(
                name=OUTCOMES,
                help=OUTCOMES_HELP,
                labels=_labels(workflow, status),
                counter=m.Counter(value="1"),
            ),
        ]
    )
