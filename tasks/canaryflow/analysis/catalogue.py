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

Besides its PromQL value (what threshold and relative limits read, and what reports show), a
metric may name its per-request *evidence* for the sequential test: ``Counts`` (events out of an
exposure: 5xx out of requests, misses out of lookups) or ``Buckets`` (a histogram, compared at
stable's quantile ``q``). Evidence templates are plain series selectors; the analysis reads the
counters themselves and takes differences between looks, so no ``rate()`` extrapolation and no
autocorrelated time series of quantiles enter the test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Flavour = Literal["go", "otel", "grpc", "istio"]
FLAVOURS: tuple[str, ...] = ("go", "otel", "grpc", "istio")
"""How a service's request metrics are named (``analysis.metrics``). ``otel`` and ``grpc``
replace ``go``'s request, error and latency series; every other metric falls back to ``go``'s
(the Go runtime's and the application's own series keep their names)."""
PLACEHOLDERS: frozenset[str] = frozenset(
    {"selector", "pods", "window", "service", "namespace", "track", "workload"}
)

_ISTIO = (
    'reporter="destination",destination_workload="{{ workload }}",'
    'destination_workload_namespace="{{ namespace }}"'
)


@dataclass(frozen=True)
class Counts:
    """Events out of an exposure, both counters: each event is one request's (or call's) fate."""

    events: str
    exposure: str
    required: str = "exposure"
    """The role whose series must exist: ``events`` when the events counter is always exported
    (GC cycles), ``exposure`` when a service that never failed may lack the events (5xx)."""

    @property
    def series(self) -> str:
        """The metric whose absence makes the gate not applicable."""
        return _metric_name(getattr(self, self.required))


@dataclass(frozen=True)
class Buckets:
    """A histogram's ``_bucket`` counters, compared at stable's ``quantile``."""

    buckets: str
    quantile: float

    @property
    def series(self) -> str:
        return _metric_name(self.buckets)


Evidence = Counts | Buckets


def _metric_name(selector: str) -> str:
    return selector.split("{", 1)[0].strip()


@dataclass(frozen=True)
class CatalogueMetric:
    """One built-in metric: what it measures, its PromQL per flavour, its default limit."""

    name: str
    description: str
    unit: str
    default_limit: Mapping[str, Any]
    queries: Mapping[str, str] = field(default_factory=dict)
    evidence: Mapping[str, Evidence] = field(default_factory=dict)

    def query(self, flavour: str) -> str | None:
        """The template for ``flavour``; flavours fall back to ``go``'s application metrics."""
        return self.queries.get(flavour, self.queries.get("go"))

    def evidence_for(self, flavour: str) -> Evidence | None:
        """The per-request evidence for ``flavour``, falling back to ``go``'s."""
        return self.evidence.get(flavour, self.evidence.get("go"))


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

_GO_REQUESTS = "http_requests_total{ {{ selector }} }"
_ISTIO_REQUESTS = f"istio_requests_total{{ {_ISTIO} }}"

# OpenTelemetry's HTTP server metric ``http.server.request.duration`` (histogram, unit ``s``;
# attributes ``http.request.method``, ``http.response.status_code``: semantic conventions
# v1.20+, stable since v1.23, https://opentelemetry.io/docs/specs/semconv/http/http-metrics/)
# as OTel's Prometheus exporter names it: dots become underscores and the unit is appended
# (the OTLP-to-Prometheus compatibility spec), so ``http_server_request_duration_seconds``
# with ``http_response_status_code`` and ``http_request_method``. Its ``_count`` is the request
# counter: the conventions define no separate one.
_OTEL_LATENCY = "http_server_request_duration_seconds_bucket{ {{ selector }} }"
_OTEL_REQUESTS = "http_server_request_duration_seconds_count{ {{ selector }} }"
_OTEL_ERRORS = (
    'http_server_request_duration_seconds_count{ {{ selector }},http_response_status_code=~"5.." }'
)

# go-grpc-prometheus (grpc-ecosystem, server interceptors): ``grpc_server_handled_total``
# {grpc_type, grpc_service, grpc_method, grpc_code} and, once EnableHandlingTimeHistogram is
# called, the histogram ``grpc_server_handling_seconds``; ``grpc_code`` is Go's
# ``codes.Code.String()`` ("OK", "Unavailable", ...). A server's errors are the codes
# OpenTelemetry's gRPC conventions mark a SERVER span Error for (semantic-conventions
# rpc/grpc.md, "gRPC Status", since PR #3333): Unknown, DeadlineExceeded, Unimplemented,
# Internal, Unavailable, DataLoss, the ones grpc's HTTP mapping (googleapis rpc/code.proto)
# puts at 5xx. The others (Canceled, InvalidArgument, NotFound, AlreadyExists,
# PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
# Unauthenticated) are the caller's doing and never fail a canary.
GRPC_SERVER_ERROR_CODES: tuple[str, ...] = (
    "Unknown",
    "DeadlineExceeded",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
)
_GRPC_REQUESTS = "grpc_server_handled_total{ {{ selector }} }"
_GRPC_ERRORS = (
    "grpc_server_handled_total{ {{ selector }},"
    f'grpc_code=~"{"|".join(GRPC_SERVER_ERROR_CODES)}" }}'
)
_GRPC_LATENCY = "grpc_server_handling_seconds_bucket{ {{ selector }} }"


def _increase(series: str) -> str:
    return f"sum(increase({series}[{{{{ window }}}}]))"


REQUEST_SERIES: Mapping[str, str] = {
    "go": _GO_REQUESTS,
    "otel": _OTEL_REQUESTS,
    "grpc": _GRPC_REQUESTS,
    "istio": _ISTIO_REQUESTS,
}
"""Each flavour's request counter: what ``analysis.metrics: auto`` looks for."""

REQUEST_COUNT: Mapping[str, str] = {
    flavour: _increase(series) for flavour, series in REQUEST_SERIES.items()
}
"""How many requests a track served in the window; fewer than minCanaryRequests → inconclusive."""
REQUESTS: Mapping[str, str] = REQUEST_SERIES
"""A track's request counters (every series): the exposure a logs gate that compares the
tracks divides their matching lines by."""


def _latency_evidence(quantile: float) -> dict[str, Evidence]:
    return {
        "go": Buckets(_GO_LATENCY, quantile),
        "otel": Buckets(_OTEL_LATENCY, quantile),
        "grpc": Buckets(_GRPC_LATENCY, quantile),
        "istio": Buckets(_ISTIO_LATENCY, quantile),
    }


def _sequential(tolerance: float) -> dict[str, Any]:
    return {"sequential": {"tolerance": tolerance}}


DEFAULT_LOG_PATTERNS: tuple[str, ...] = ("context deadline exceeded", "connection refused")

METRICS: Mapping[str, CatalogueMetric] = {
    m.name: m
    for m in (
        CatalogueMetric(
            name="error-rate",
            description="Share of requests answered 5xx.",
            unit="ratio",
            default_limit=_sequential(0.2),
            evidence={
                "go": Counts('http_requests_total{ {{ selector }},code=~"5.." }', _GO_REQUESTS),
                "otel": Counts(_OTEL_ERRORS, _OTEL_REQUESTS),
                "grpc": Counts(_GRPC_ERRORS, _GRPC_REQUESTS),
                "istio": Counts(
                    f'istio_requests_total{{ {_ISTIO},response_code=~"5.." }}', _ISTIO_REQUESTS
                ),
            },
            queries={
                "go": _ratio(
                    'rate(http_requests_total{ {{ selector }},code=~"5.." }[{{ window }}])',
                    "rate(http_requests_total{ {{ selector }} }[{{ window }}])",
                ),
                "otel": _ratio(
                    f"rate({_OTEL_ERRORS}[{{{{ window }}}}])",
                    f"rate({_OTEL_REQUESTS}[{{{{ window }}}}])",
                ),
                "grpc": _ratio(
                    f"rate({_GRPC_ERRORS}[{{{{ window }}}}])",
                    f"rate({_GRPC_REQUESTS}[{{{{ window }}}}])",
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
            default_limit=_sequential(0.25),
            evidence=_latency_evidence(0.95),
            queries={
                "go": _quantile(0.95, _GO_LATENCY),
                "otel": _quantile(0.95, _OTEL_LATENCY),
                "grpc": _quantile(0.95, _GRPC_LATENCY),
                "istio": _quantile(0.95, _ISTIO_LATENCY, " / 1000"),
            },
        ),
        CatalogueMetric(
            name="latency-p99",
            description="99th percentile of request latency, in seconds.",
            unit="seconds",
            default_limit=_sequential(0.25),
            evidence=_latency_evidence(0.99),
            queries={
                "go": _quantile(0.99, _GO_LATENCY),
                "otel": _quantile(0.99, _OTEL_LATENCY),
                "grpc": _quantile(0.99, _GRPC_LATENCY),
                "istio": _quantile(0.99, _ISTIO_LATENCY, " / 1000"),
            },
        ),
        CatalogueMetric(
            name="cpu-throttling",
            description="Share of CFS periods in which the CPU quota was exhausted, compared "
            "with the reference track's (a service already throttled is not a regression).",
            unit="ratio",
            # Counts: throttled periods out of periods, the same sequential test inside the
            # release's alpha as the 5xx share. Every 100 ms CFS period is a trial; the pods'
            # over-dispersion (a burst of throttling) is estimated from the reference's pods.
            default_limit=_sequential(0.5),
            evidence={
                "go": Counts(
                    "container_cpu_cfs_throttled_periods_total{ {{ pods }} }",
                    "container_cpu_cfs_periods_total{ {{ pods }} }",
                )
            },
            queries={
                "go": f"({_per_pod('container_cpu_cfs_throttled_periods_total')} or vector(0))"
                f" / ({_per_pod('container_cpu_cfs_periods_total')})"
            },
        ),
        CatalogueMetric(
            name="outbound-error-rate",
            description="Share of outbound HTTP calls that failed (5xx or no response).",
            unit="ratio",
            default_limit=_sequential(0.2),
            evidence={
                "go": Counts(
                    'http_client_requests_total{ {{ selector }},code=~"5..|error" }',
                    "http_client_requests_total{ {{ selector }} }",
                ),
                "istio": Counts(
                    'istio_requests_total{ reporter="source",source_workload="{{ workload }}",'
                    'source_workload_namespace="{{ namespace }}",response_code=~"5..|0" }',
                    'istio_requests_total{ reporter="source",source_workload="{{ workload }}",'
                    'source_workload_namespace="{{ namespace }}" }',
                ),
            },
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
            default_limit=_sequential(0.25),
            evidence={"go": Buckets("db_query_duration_seconds_bucket{ {{ selector }} }", 0.99)},
            queries={"go": _quantile(0.99, "db_query_duration_seconds_bucket{ {{ selector }} }")},
        ),
        CatalogueMetric(
            name="cache-miss-rate",
            description="Share of cache lookups that missed.",
            unit="ratio",
            default_limit=_sequential(0.1),
            evidence={
                "go": Counts(
                    'cache_requests_total{ {{ selector }},result="miss" }',
                    "cache_requests_total{ {{ selector }} }",
                )
            },
            queries={
                "go": _ratio(
                    'rate(cache_requests_total{ {{ selector }},result="miss" }[{{ window }}])',
                    "rate(cache_requests_total{ {{ selector }} }[{{ window }}])",
                )
            },
        ),
        CatalogueMetric(
            name="goroutines",
            description="Fastest growth of live goroutines in any instance, per second (a leak "
            "is a trend: it is caught while still small, not once the count is large).",
            unit="per second",
            # Advisory by default (measured, reported, never decides): a gauge's trend has no
            # per-request evidence, so no rule on it can sit inside the release's alpha, and a
            # fixed rate cut either fails a pool filling up (150 new connections) or misses a
            # slow leak. A leak's cost (stacks on the heap, slower requests) is judged inside
            # alpha by gc-frequency and the latency gates; ``dryRun: false`` makes it decide.
            default_limit={"relative": {"maxRatio": 2.0, "floor": 10}, "dryRun": True},
            queries={"go": "max(deriv(go_goroutines{ {{ selector }} }[{{ window }}]))"},
        ),
        CatalogueMetric(
            name="gc-frequency",
            description="Garbage collections per second per instance; judged per request "
            "served, so the canary's smaller share of traffic does not hide or fake it.",
            unit="per second",
            default_limit=_sequential(0.5),
            evidence={
                flavour: Counts(
                    "go_gc_duration_seconds_count{ {{ selector }} }", requests, "events"
                )
                for flavour, requests in (
                    ("go", _GO_REQUESTS),
                    ("otel", _OTEL_REQUESTS),
                    ("grpc", _GRPC_REQUESTS),
                )
            },
            queries={
                "go": "sum(rate(go_gc_duration_seconds_count{ {{ selector }} }[{{ window }}])) "
                "/ count(go_gc_duration_seconds_count{ {{ selector }} })"
            },
        ),
        CatalogueMetric(
            name="gc-pause",
            description="Typical garbage-collection pause (third quartile) of the slowest "
            "instance, in seconds: the runtime-metrics histogram go_gc_pauses_seconds where "
            "exported, else client_golang's go_gc_duration_seconds summary.",
            unit="seconds",
            default_limit={"relative": {"maxRatio": 2.0, "floor": 0.001}},
            queries={
                "go": "(histogram_quantile(0.75, sum by (le) (rate(go_gc_pauses_seconds_bucket"
                "{ {{ selector }} }[{{ window }}]))) >= 0) or "
                'max(go_gc_duration_seconds{ {{ selector }},quantile="0.75" })'
            },
        ),
        CatalogueMetric(
            name="log-errors",
            description="Log lines matching any of the patterns per request served, canary "
            "against stable.",
            unit="lines",
            default_limit={"logs": {"patterns": list(DEFAULT_LOG_PATTERNS), "tolerance": 1.0}},
        ),
    )
}

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)

NOT_DEFAULT: frozenset[str] = frozenset({"gc-pause"})
"""Catalogue metrics a plan must name to get: ``gc-pause`` is a per-cycle quantile with no
per-request evidence (no rule on it fits inside alpha) and what a slower GC costs users is
judged per request by the latency gates, what more GC costs by gc-frequency."""

DEFAULT_GATES: tuple[str, ...] = tuple(name for name in METRIC_NAMES if name not in NOT_DEFAULT)
"""The gates of a plan that lists none: the catalogue but ``NOT_DEFAULT``, each at its default
limit; every one that decides by default spends the release's alpha (``goroutines`` is
advisory). A gate whose metric the service does not export is reported once as not applicable
and never counts."""
