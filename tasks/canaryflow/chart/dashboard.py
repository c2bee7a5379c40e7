"""The Grafana dashboard: canary against stable for every built-in gate, and the traffic split.

Panels use the catalogue's own PromQL (``canaryflow.analysis.catalogue``) so the dashboard shows
exactly what the gates judge, with Grafana variables for the service, namespace and track label.

The weight is shown twice: the *observed* canary share of requests (from the same request
metric the gates use, so it works everywhere), and the *configured* weight as a value, the
``canaryflow_release_weight`` the release pods push (``monitoring.pushgateway.url``). The
phases and rollbacks the pods push are Grafana annotations on every panel.

The track label is the chart's ``monitoring.podMonitor.trackLabel``: the JSON carries
``TRACK_LABEL_TOKEN`` and the chart's ConfigMap template replaces it (the schema keeps the
value a bare label name, so it is JSON-safe). cAdvisor series (``container_*``) carry only
``namespace``, ``pod`` and ``container``: their panels select a track's pods by name, as
``canaryflow.kubernetes.scrape`` and the catalogue's ``{{ pods }}`` do, never by app/track.
"""

from __future__ import annotations

import re
from typing import Any

from canaryflow.analysis.catalogue import METRICS, REQUEST_COUNT, CatalogueMetric
from canaryflow.analysis.query import Subject, placeholder_values

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_UNITS = {"ratio": "percentunit", "seconds": "s", "count": "short"}
UID = "canaryflow-release"
TRACK_LABEL_TOKEN = "__canaryflow_track_label__"
# A branch of the catalogue's per-pod sums selecting a cAdvisor series by pod labels it lacks.
_CADVISOR_BY_SELECTOR = re.compile(
    r"sum\(rate\(container_\w+\{ \{\{ selector \}\} \}\[\{\{ window \}\}\]\)\) or "
)
_RELEASE = 'namespace="$namespace",service="$service"'


def grafana_query(template: str, track: str) -> str:
    """A catalogue template filled with Grafana variables for one track (the gates' selectors)."""
    subject = Subject("$service", "$namespace", "$track_label")
    values = placeholder_values(subject, track, "$__rate_interval")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
    }


def _panel(panel_id: int, title: str, description: str, unit: str, targets: list, x: int, y: int):
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": targets,
    }


def cluster_template(template: str) -> str:
    """The catalogue template as a cluster's Prometheus can answer it: cAdvisor series by pod
    name only (the gates keep both branches: a local run has the labels, a cluster the names)."""
    return _CADVISOR_BY_SELECTOR.sub("", template)


def _gate_panel(metric: CatalogueMetric, flavour: str, panel_id: int, x: int, y: int):
    template = cluster_template(metric.query(flavour) or "")
    targets = [
        _target(grafana_query(template, track), track, ref)
        for track, ref in (("canary", "A"), ("stable", "B"))
    ]
    unit = _UNITS.get(metric.unit, "short")
    return _panel(panel_id, metric.name, metric.description, unit, targets, x, y)


def _weight_panels(flavour: str, y: int) -> list[dict[str, Any]]:
    canary = grafana_query(REQUEST_COUNT[flavour], "canary")
    stable = grafana_query(REQUEST_COUNT[flavour], "stable")
    observed = _panel(
        1,
        "Canary share of requests (observed)",
        "Requests served by the canary over all requests, from the gates' request metric.",
        "percentunit",
        [_target(f"({canary}) / (({canary}) + ({stable}))", "canary share", "A")],
        0,
        y,
    )
    configured = _panel(
        2,
        "Canary weight (configured)",
        "The canary weight the release pods last verified and pushed "
        "(canaryflow_release_weight; the chart's monitoring.pushgateway.url).",
        "percent",
        [_target(f"max(canaryflow_release_weight{{{_RELEASE}}})", "weight", "A")],
        12,
        y,
    )
    return [observed, configured]


def _variable(name: str, query: str, label: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name},
        "refresh": 2,
        "includeAll": False,
        "multi": False,
    }


def _templating(flavour: str) -> dict[str, Any]:
    series = "http_requests_total" if flavour == "go" else "istio_requests_total"
    if flavour == "go":
        namespaces = f"label_values({series}, namespace)"
        services = f'label_values({series}{{namespace="$namespace"}}, app)'
    else:
        namespaces = f"label_values({series}, destination_workload_namespace)"
        services = (
            f'label_values({series}{{destination_workload_namespace="$namespace"}}, '
            "destination_app)"
        )
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
            },
            _variable("namespace", namespaces, "Namespace"),
            _variable("service", services, "Service"),
            {
                "name": "track_label",
                "label": "Track label",
                "type": "constant",
                "query": TRACK_LABEL_TOKEN,
                "hide": 2,
            },
        ]
    }


def _annotations() -> dict[str, Any]:
    """Release phases and finished rollbacks as annotations: each is a change of a pushed
    series within the last two minutes (the Pushgateway keeps the last value)."""
    phase = f"canaryflow_release_phase{{{_RELEASE}}}"
    rollback = f"canaryflow_release_rollback_timestamp_seconds{{{_RELEASE}}}"

    def annotation(name: str, expr: str, colour: str, title: str) -> dict[str, Any]:
        return {
            "name": name,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "enable": True,
            "iconColor": colour,
            "expr": expr,
            "step": "60s",
            "titleFormat": title,
            "tagKeys": "namespace,service",
            "useValueForTime": False,
        }

    return {
        "list": [
            annotation(
                "Release phase",
                f"({phase} == 1) and on (namespace, service, phase) (changes({phase}[2m]) > 0)",
                "blue",
                "{{phase}}",
            ),
            annotation("Rollback", f"changes({rollback}[2m]) > 0", "red", "rolled back"),
        ]
    }


def dashboard(flavour: str) -> dict[str, Any]:
    """The whole dashboard for a catalogue flavour (``go`` or ``istio``)."""
    panels = _weight_panels(flavour, 0)
    gates = [m for m in METRICS.values() if m.query(flavour) is not None]
    for index, metric in enumerate(gates):
        x, y = (index % 2) * 12, 8 + (index // 2) * 8
        panels.append(_gate_panel(metric, flavour, 3 + index, x, y))
    return {
        "uid": f"{UID}-{flavour}",
        "title": f"canaryflow: canary vs stable ({flavour} metrics)",
        "tags": ["canaryflow", "canary"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": _templating(flavour),
        "annotations": _annotations(),
        "panels": panels,
    }
