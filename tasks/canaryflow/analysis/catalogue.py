"""The built-in metrics a gate can name, their PromQL, and their default limits.

Queries are templates. ``{{ selector }}`` is the label matcher of one track
(``app="<service>",namespace="<ns>",<trackLabel>="canary"``); ``{{ window }}`` is the range of
``rate()``/``increase()``; ``{{ service }}``, ``{{ namespace }}``, ``{{ track }}`` and
``{{ workload }}`` (``<service>`` or ``<service>-canary``) are there for queries that need
them; ``{{ pods }}`` selects the track's containers by pod name, for series that carry no pod
labels (cAdvisor's; see ``canaryflow.analysis.query``). The same template is rendered once per
track, so canary and stable are measured alike.

Ratios put ``or vector(0)`` under their numerator: a service that has never failed has no 5xx
series at all, and a missing numerator must read as 0 %, not as "no data".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Flavour = Literal["go", "istio"]
FLAVOURS: tuple[str, ...] = ("go", "istio")
PLACEHOLDERS: frozenset[str] = frozenset(
    {"selector", "pods", "window", "service", "namespace", "track", "workload"}
)

_ISTIO = (
    'reporter="destination",destination_workload="{{ workload }}",'
    'destination_workload_namespace="{{ namespace }}"'
)


@dataclass(frozen=True)
class CatalogueMetric:
    """One built-in metric: what it measures, its PromQL per flavour, its default limit."""

    name: str
    description: str
    unit: str
    default_limit: Mapping[str, Any]
    queries: Mapping[str, str] = field(default_factory=dict)

    def query(self, flavour: str) -> str | None:
        """The template for ``flavour``; flavours fall back to ``go``'s application metrics."""
        return self.queries.get(flavour, self.queries.get("go"))


def _ratio(part: str, whole: str) -> str:
    return f"(sum({part}) or vector(0)) / sum({whole})"


def _per_pod(series: str) -> str:
    """``sum(rate(series))`` of a track: by its pod labels where the series has them (the app
    exports it, or a local run), else by its pods' names (cAdvisor via the kubelet)."""
    return " or ".join(
        f"sum(rate({series}{{ {{{{ {matcher} }}}} }}[{{{{ window }}}}]))"
        for matcher in ("selector", "pods")
    )


def _quantile(q: float, bucket: str, scale: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({bucket}[{{{{ window }}}}]))){scale}"


_GO_LATENCY = "http_request_duration_seconds_bucket{ {{ selector }} }"
_ISTIO_LATENCY = f"istio_request_duration_milliseconds_bucket{{ {_ISTIO} }}"

REQUEST_COUNT: Mapping[str, str] = {
    "go": "sum(increase(http_requests_total{ {{ selector }} }[{{ window }}]))",
    "istio": f"sum(increase(istio_requests_total{{ {_ISTIO} }}[{{{{ window }}}}]))",
}
"""How many requests a track served in the window; fewer than minCanaryRequests → inconclusive."""

DEFAULT_LOG_PATTERNS: tuple[str, ...] = ("context deadline exceeded", "connection refused")

METRICS: Mapping[str, CatalogueMetric] = {
    m.name: m
    for m in (
        CatalogueMetric(
            name="error-rate",
            description="Share of requests answered 5xx.",
            unit="ratio",
            default_limit={"threshold": {"max": 0.01}},
            queries={
                "go": _ratio(
                    'rate(http_requests_total{ {{ selector }},code=~"5.." }[{{ window }}])',
                    "rate(http_requests_total{ {{ selector }} }[{{ window }}])",
                ),
                "istio": _ratio(
                    f'rate(istio_requests_total{{ {_ISTIO},response_code=~"5.." }}'
                    "[{{ window }}])",
                    f"rate(istio_requests_total{{ {_ISTIO} }}[{{{{ window }}}}])",
                ),
            },
        ),
        CatalogueMetric(
            name="latency-p95",
            description="95th percentile of request latency, in seconds.",
            unit="seconds",
            default_limit={"relative": {"maxRatio": 1.2, "floor": 0.05}},
            queries={
                "go": _quantile(0.95, _GO_LATENCY),
                "istio": _quantile(0.95, _ISTIO_LATENCY, " / 1000"),
            },
        ),
        CatalogueMetric(
            name="latency-p99",
            description="99th percentile of request latency, in seconds.",
            unit="seconds",
            default_limit={
                "statistical": {"direction": "increase", "confidence": 0.98, "tolerance": 0.25}
            },
            queries={
                "go": _quantile(0.99, _GO_LATENCY),
                "istio": _quantile(0.99, _ISTIO_LATENCY, " / 1000"),
            },
        ),
        CatalogueMetric(
            name="cpu-throttling",
            description="Share of CFS periods in which the CPU quota was exhausted.",
            unit="ratio",
            default_limit={"threshold": {"max": 0.25}},
            queries={
                "go": f"({_per_pod('container_cpu_cfs_throttled_periods_total')} or vector(0))"
                f" / ({_per_pod('container_cpu_cfs_periods_total')})"
            },
        ),
        CatalogueMetric(
            name="outbound-error-rate",
            description="Share of outbound HTTP calls that failed (5xx or no response).",
            unit="ratio",
            default_limit={"threshold": {"max": 0.02}},
            queries={
                "go": _ratio(
                    'rate(http_client_requests_total{ {{ selector }},code=~"5..|error" }'
                    "[{{ window }}])",
                    "rate(http_client_requests_total{ {{ selector }} }[{{ window }}])",
                ),
                "istio": _ratio(
                    'rate(istio_requests_total{ reporter="source",'
                    'source_workload="{{ workload }}",'
                    'source_workload_namespace="{{ namespace }}",response_code=~"5..|0" }'
                    "[{{ window }}])",
                    'rate(istio_requests_total{ reporter="source",'
                    'source_workload="{{ workload }}",'
                    'source_workload_namespace="{{ namespace }}" }[{{ window }}])',
                ),
            },
        ),
        CatalogueMetric(
            name="db-query-p99",
            description="99th percentile of database query time, in seconds.",
            unit="seconds",
            default_limit={"relative": {"maxRatio": 1.3, "floor": 0.02}},
            queries={"go": _quantile(0.99, "db_query_duration_seconds_bucket{ {{ selector }} }")},
        ),
        CatalogueMetric(
            name="cache-miss-rate",
            description="Share of cache lookups that missed.",
            unit="ratio",
            default_limit={"relative": {"maxRatio": 1.5, "floor": 0.1}},
            queries={
                "go": _ratio(
                    'rate(cache_requests_total{ {{ selector }},result="miss" }[{{ window }}])',
                    "rate(cache_requests_total{ {{ selector }} }[{{ window }}])",
                )
            },
        ),
        CatalogueMetric(
            name="goroutines",
            description="Most goroutines alive in any instance (a leak grows without bound).",
            unit="count",
            default_limit={"relative": {"maxRatio": 2.0, "floor": 200}},
            queries={"go": "max(go_goroutines{ {{ selector }} })"},
        ),
        CatalogueMetric(
            name="gc-pause",
            description="Longest recent garbage-collection pause of any instance, in seconds.",
            unit="seconds",
            default_limit={"relative": {"maxRatio": 2.0, "floor": 0.01}},
            queries={"go": 'max(go_gc_duration_seconds{ {{ selector }},quantile="1" })'},
        ),
        CatalogueMetric(
            name="log-errors",
            description="Canary log lines matching any of the patterns.",
            unit="lines",
            default_limit={"logs": {"patterns": list(DEFAULT_LOG_PATTERNS), "max": 0}},
        ),
    )
}

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)

DEFAULT_GATES: tuple[str, ...] = ("error-rate", "latency-p95", "latency-p99")
"""The gates of a plan that lists none: errors, tail latency against stable, and its trend."""
