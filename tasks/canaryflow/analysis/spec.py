"""What a plan's ``analysis`` section says: where the metrics are, the gates, and the limits.

Argo Rollouts' vocabulary (interval, failureLimit, consecutiveErrorLimit, inconclusiveLimit,
dryRun) and Kayenta's statistical judgement (direction, confidence, tolerance), in one section.
Every gate has exactly one kind of limit; a catalogue metric without one takes its default.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from canaryflow.analysis.catalogue import (
    DEFAULT_GATES,
    FLAVOURS,
    METRIC_NAMES,
    METRICS,
    PLACEHOLDERS,
)
from canaryflow.analysis.log_pattern import LogPatternError, compile_pattern
from canaryflow.duration import Duration
from canaryflow.spec_model import SpecModel

SCRAPES_PER_RANGE = 4
"""Scrapes a query's range must span: rate() needs two samples, and a range of two scrapes
holds two only when its start happens to fall just before one."""
WARMUP_AFTER_SCRAPE_S = 30.0
"""The default warm-up: one scrape interval (the first samples of the new pods) plus this."""
UNKNOWN_SCRAPE_S = 15.0
"""The scrape interval assumed for the default warm-up when it is neither configured nor
discovered: the chart's PodMonitor default."""
LIMIT_KINDS: tuple[str, ...] = ("threshold", "relative", "statistical", "sequential", "logs")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


def _invalid(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


class AnalysisModel(SpecModel):
    """camelCase keys in YAML, unknown keys rejected, immutable once loaded, no NaN limits."""


_MOVED_TO_OPERATOR = {
    "bearerToken": "CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE",
    "basicAuth": "CANARYFLOW_PROMETHEUS_USERNAME and CANARYFLOW_PROMETHEUS_PASSWORD_FILE",
    "headers": "CANARYFLOW_PROMETHEUS_HEADERS",
    "caFile": "CANARYFLOW_PROMETHEUS_CA_FILE",
}


class PrometheusSpec(AnalysisModel):
    """Which Prometheus a plan's queries go to; credentials are the operator's, not the plan's.

    See ``canaryflow.analysis.prometheus_auth``: a plan that could name a host and a credential
    file or variable could send the release's service-account token anywhere.
    """

    url: str | None = Field(
        None,
        pattern=r"^https?://[\x21-\x7e]+$",
        max_length=2048,
        description="Prometheus base URL. Omit it to use the installation's (the chart's "
        "analysis.prometheus.url, or CANARYFLOW_PROMETHEUS_URL; the local engine starts its "
        "own); where the installation sets one, a plan's URL must equal it.",
    )
    timeout: Duration = Field(5.0, gt=0, le=300, description="Longest wait for one query.")

    # Refused keys, kept out of the schema, so that the error names the key itself.
    bearer_token: SkipJsonSchema[Any] = Field(None, exclude=True)
    basic_auth: SkipJsonSchema[Any] = Field(None, exclude=True)
    headers: SkipJsonSchema[Any] = Field(None, exclude=True)
    ca_file: SkipJsonSchema[Any] = Field(None, exclude=True)

    @field_validator("bearer_token", "basic_auth", "headers", "ca_file", mode="before")
    @classmethod
    def _operator_only(cls, value: Any, info: Any) -> Any:
        """Credentials, CA and headers are the operator's: say where they go now."""
        variable = _MOVED_TO_OPERATOR[to_camel(info.field_name)]
        raise ValueError(
            "a plan cannot name Prometheus credentials, a CA or headers (they would follow the "
            "plan's choice of host): remove it; the operator sets them in the chart "
            f"(analysis.prometheus) or, for the local CLI, {variable}"
        )


class ThresholdLimit(AnalysisModel):
    """The canary's value must stay within fixed bounds."""

    max: float | None = Field(None, description="Fail when the canary's value is above this.")
    min: float | None = Field(None, description="Fail when the canary's value is below this.")

    @model_validator(mode="after")
    def _bounded(self) -> ThresholdLimit:
        if self.max is None and self.min is None:
            raise _invalid("threshold", "threshold has no bound: add max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise _invalid("threshold", "threshold min is above max: swap them")
        return self

    def text(self) -> str:
        bounds = [f"≥ {self.min:g}" if self.min is not None else "", _le(self.max)]
        return " and ".join(b for b in bounds if b)


class RelativeLimit(AnalysisModel):
    """The canary's value compared with stable's, as a ratio, with an absolute floor."""

    max_ratio: float | None = Field(
        None, gt=0, description="Fail when canary > max(stable x maxRatio, floor)."
    )
    min_ratio: float | None = Field(
        None, gt=0, description="Fail when canary < stable x minRatio (e.g. throughput)."
    )
    floor: float = Field(
        0.0,
        ge=0,
        description="Values up to this always pass maxRatio: near-zero stable values make "
        "ratios meaningless.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> RelativeLimit:
        if self.max_ratio is None and self.min_ratio is None:
            raise _invalid("relative", "relative has no ratio: add maxRatio, minRatio or both")
        if (
            self.max_ratio is not None
            and self.min_ratio is not None
            and self.min_ratio > self.max_ratio
        ):
            raise _invalid("relative", "relative minRatio is above maxRatio: swap them")
        return self

    def text(self) -> str:
        parts = []
        if self.max_ratio is not None:
            floor = f", {self.floor:g})" if self.floor else ")"
            parts.append(f"≤ max(stable x {self.max_ratio:g}{floor}")
        if self.min_ratio is not None:
            parts.append(f"≥ stable x {self.min_ratio:g}")
        return " and ".join(parts)


class StatisticalLimit(AnalysisModel):
    """Kayenta's judgement: Mann-Whitney U over the window's samples, canary against stable."""

    direction: Literal["increase", "decrease", "either"] = Field(
        "increase", description="Which change is a regression (latency: increase)."
    )
    confidence: float = Field(
        0.98, ge=0.5, le=0.999, description="How sure the test must be that the canary differs."
    )
    tolerance: float = Field(
        0.25,
        ge=0,
        description="Smallest shift that matters, as a fraction of stable's median "
        "(0.25: the canary must be at least 25 % worse to fail).",
    )
    min_samples: int = Field(
        8, ge=3, le=10_000, description="Fewer samples per track than this → inconclusive."
    )
    step: Duration | None = Field(
        None,
        gt=0,
        description="Time between samples; default: queryWindow / minSamples, at least 1s.",
    )

    def text(self) -> str:
        return (
            f"no significant {self.direction} > {self.tolerance:.0%} "
            f"(confidence {self.confidence:g})"
        )


class SequentialLimit(AnalysisModel):
    """An anytime-valid test on per-request evidence: the canary fails only once the evidence
    that its rate of bad events (errors, misses, requests slower than stable's quantile) is
    more than ``1 + tolerance`` times stable's reaches 1/alpha. Looked at every interval, the chance
    of a false rollback over the whole release stays below the plan's ``alpha``."""

    tolerance: float = Field(
        0.2,
        ge=0,
        le=10,
        description="Largest increase that does not matter, relative to stable's rate "
        "(0.2: a canary with up to 20 % more bad events is not a regression).",
    )

    def text(self) -> str:
        return f"no credible increase over stable beyond {self.tolerance:.0%}"


class LogsLimit(AnalysisModel):
    """Log lines matching any pattern, judged one of two ways. With ``tolerance``: the
    canary's matching lines per request served against stable's, a sequential count test
    inside the release's alpha (a service that logs "connection refused" on both versions is
    not a regression). With ``max``: the canary's matching lines per measurement, a fixed rule
    outside alpha. Neither given: ``max: 0``."""

    patterns: list[str] = Field(
        min_length=1,
        max_length=32,
        description="Regular expressions in RE2 syntax (no backreferences or lookaround; plain "
        "text matches itself).",
    )
    max: int | None = Field(
        None, ge=0, description="Matching canary lines tolerated per measurement (no stable)."
    )
    tolerance: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Compare with stable: fail once the canary's matching lines per request "
        "are credibly more than 1 + tolerance times stable's.",
    )

    @model_validator(mode="after")
    def _one_rule(self) -> LogsLimit:
        if self.max is not None and self.tolerance is not None:
            raise _invalid("logs", "logs has both max and tolerance: keep one")
        if self.max is None and self.tolerance is None:
            object.__setattr__(self, "max", 0)
        return self

    @property
    def compares(self) -> bool:
        """True when judged against stable's lines (sequential), not a fixed maximum."""
        return self.tolerance is not None

    @model_validator(mode="after")
    def _compiles(self) -> LogsLimit:
        """In RE2 semantics (``log_pattern``): linear time per line, or refused here."""
        for pattern in self.patterns:
            try:
                compile_pattern(pattern)
            except LogPatternError as error:
                raise _invalid("logs", str(error)) from None
        return self

    def text(self) -> str:
        if self.tolerance is not None:
            return (
                f"matching lines per request no credibly more than stable's +{self.tolerance:.0%}"
            )
        return f"≤ {self.max} matching lines"


def _le(value: float | None) -> str:
    return f"≤ {value:g}" if value is not None else ""


class GateSpec(AnalysisModel):
    """One check the canary must pass: a metric (or query) and exactly one kind of limit."""

    name: str = Field(
        "",  # filled from the metric before validation; required when there is no metric
        pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
        description="Shown in reports and decisions; defaults to the metric's name.",
    )
    metric: str | None = Field(None, description=f"A built-in metric: {', '.join(METRIC_NAMES)}.")
    query: str | None = Field(
        None,
        description="PromQL template overriding the metric's; required without a metric. "
        "Placeholders: " + ", ".join(f"{{{{ {p} }}}}" for p in sorted(PLACEHOLDERS)) + ".",
    )
    threshold: ThresholdLimit | None = Field(None, description="Fixed bounds on the canary.")
    relative: RelativeLimit | None = Field(None, description="Canary compared with stable.")
    statistical: StatisticalLimit | None = Field(
        None, description="Mann-Whitney U test of canary against stable samples."
    )
    sequential: SequentialLimit | None = Field(
        None, description="Sequential test of the canary's per-request evidence against stable."
    )
    logs: LogsLimit | None = Field(None, description="Count of matching canary log lines.")
    dry_run: bool = Field(False, description="Measured and reported, but never decides.")

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_catalogue(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        metric = data.get("metric")
        if metric is not None and (not isinstance(metric, str) or metric not in METRICS):
            close = difflib.get_close_matches(str(metric)[:64], METRIC_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _invalid(
                "metric",
                f"unknown metric {repr(metric)[:64]}{hint}: "
                f"choose one of {', '.join(METRIC_NAMES)}, "
                "or give the gate a name and a query",
            )
        if data.get("name") is None:
            if metric is None:
                raise _invalid(
                    "gate",
                    "a gate needs a metric (one of " + ", ".join(METRIC_NAMES) + ") "
                    "or a name and a query",
                )
            data = {**data, "name": metric}
        has_limit = any(data.get(kind) is not None for kind in LIMIT_KINDS)
        if metric is not None and not has_limit:
            data = {**METRICS[metric].default_limit, **data}  # the plan's own dryRun wins
        return data

    @model_validator(mode="after")
    def _consistent(self) -> GateSpec:
        limits = [kind for kind in LIMIT_KINDS if getattr(self, kind) is not None]
        if not limits:
            raise _invalid(
                "gate",
                f"gate {self.name!r} has no limit: "
                "add threshold, relative, statistical, sequential or logs",
            )
        if len(limits) > 1:
            raise _invalid(
                "gate",
                f"gate {self.name!r} has {' and '.join(limits)}: keep exactly one limit",
            )
        if self.sequential is not None:
            if self.metric is None or not METRICS[self.metric].evidence:
                with_evidence = [m.name for m in METRICS.values() if m.evidence]
                raise _invalid(
                    "gate",
                    f"gate {self.name!r}: sequential needs per-request evidence, which only "
                    f"these metrics have: {', '.join(with_evidence)}; use threshold or relative",
                )
            if self.query is not None:
                raise _invalid(
                    "gate",
                    f"gate {self.name!r}: sequential reads the metric's own counters, "
                    "not a query: remove its query",
                )
        elif self.logs is not None:
            if self.query is not None:
                raise _invalid(
                    "gate",
                    f"gate {self.name!r} reads logs, not PromQL: remove its query",
                )
        elif self.query is None and (self.metric is None or METRICS[self.metric].unit == "lines"):
            raise _invalid(
                "gate",
                f"gate {self.name!r} has no query: add a query, or use logs for log-errors",
            )
        if self.query is not None:
            unknown = sorted(set(_PLACEHOLDER.findall(self.query)) - PLACEHOLDERS)
            if unknown:
                raise _invalid(
                    "query",
                    f"gate {self.name!r} uses unknown placeholder {{{{ {unknown[0]} }}}}: "
                    f"use {', '.join(sorted(PLACEHOLDERS))}",
                )
        return self

    @property
    def kind(self) -> str:
        """``threshold``, ``relative``, ``statistical`` or ``logs``."""
        return next(kind for kind in LIMIT_KINDS if getattr(self, kind) is not None)

    @property
    def limit(
        self,
    ) -> ThresholdLimit | RelativeLimit | StatisticalLimit | SequentialLimit | LogsLimit:
        return getattr(self, self.kind)

    def template(self, flavour: str) -> str | None:
        """The PromQL template to render: the gate's own query, else the catalogue's."""
        if self.query is not None:
            return self.query
        return METRICS[self.metric].query(flavour) if self.metric else None


def default_gates() -> list[GateSpec]:
    """The gate set of a plan that lists none."""
    return [GateSpec(metric=name) for name in DEFAULT_GATES]


class AnalysisSpec(AnalysisModel):
    """How a canary is judged during each analysis window of a release."""

    prometheus: PrometheusSpec = Field(
        default_factory=PrometheusSpec, description="Where the metrics are."
    )
    metrics: Literal["go", "otel", "grpc", "istio", "auto"] = Field(
        "go",
        description="Catalogue flavour of the request, error and latency metrics: go "
        "(client_golang: http_requests_total), otel (OpenTelemetry's Prometheus exporter: "
        "http_server_request_duration_seconds), grpc (go-grpc-prometheus: "
        "grpc_server_handled_total), istio (the mesh's), or auto (the one whose request "
        "series the service has, asked of Prometheus at the first round and reported).",
    )
    track_label: str = Field(
        "track",
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Label whose value (canary or stable) tells the tracks' series apart.",
    )
    interval: Duration = Field(10.0, gt=0, description="Time between measurements.")
    alpha: float = Field(
        0.01,
        gt=0,
        le=0.2,
        description="Largest chance that sequential gates roll back a good canary, over a "
        "whole release however often they look (split among gates and windows).",
    )
    query_window: Duration = Field(
        30.0,
        gt=0,
        description="The {{ window }} of rate() and increase() in queries; widened to "
        f"{SCRAPES_PER_RANGE} scrape intervals where that is longer.",
    )
    scrape_interval: Duration | None = Field(
        None,
        gt=0,
        description="How often Prometheus scrapes the service; omitted → read from "
        "Prometheus (its targets, else the spacing of the targets' up samples). Every range "
        f"in a query spans at least {SCRAPES_PER_RANGE} scrapes.",
    )
    baseline: Literal["fresh", "stable"] = Field(
        "fresh",
        description="What the canary is judged against. fresh: a baseline of stable's version, "
        "as many instances as the canary, started with it and given the same small share of "
        "traffic (Kayenta/Netflix ACA), so a cold canary meets a cold baseline, not a warm "
        "fleet; stable keeps serving the rest. stable: the long-running stable fleet. A "
        "router that cannot split three ways (nginx-ingress) uses stable.",
    )
    warmup: Duration | None = Field(
        None,
        ge=0,
        le=3600,
        description="Time after the canary (and baseline) first take traffic that is left out "
        "of the evidence: the first window starts after it and keeps its full duration. "
        "Omitted: none against a fresh baseline (it starts cold with the canary, from the same "
        "first request), one scrape interval (configured or discovered; 15s when unknown) + "
        "30s against stable; 0: none.",
    )
    max_extension: Duration = Field(
        60.0,
        ge=0,
        description="How long a window that ends still collecting data (too little traffic "
        "yet, nothing failed) may go on measuring before it is inconclusive; 0: never.",
    )
    min_canary_requests: int = Field(
        20,
        ge=0,
        description="Fewer canary requests than this in the query window: every gate is still "
        "collecting (a sequential gate: fewer in its test so far, or in this window: each step "
        "passes on requests of its own). Never a pass.",
    )
    failure_limit: int = Field(
        0, ge=0, description="Failed measurements tolerated per gate; one more ends the window."
    )
    consecutive_error_limit: int = Field(
        2, ge=0, description="Measurements in a row without data (source down) tolerated."
    )
    inconclusive_limit: int = Field(
        3, ge=0, description="Inconclusive measurements tolerated per gate per window."
    )
    gates: list[GateSpec] = Field(
        default_factory=default_gates,
        max_length=64,
        description="The checks; omitted → " + ", ".join(DEFAULT_GATES) + ".",
    )

    @model_validator(mode="after")
    def _gates_usable(self) -> AnalysisSpec:
        if not self.gates:
            raise _invalid(
                "gates", "gates is empty: list at least one gate, or omit gates for the defaults"
            )
        seen: set[str] = set()
        for gate in self.gates:
            if gate.name in seen:
                raise _invalid(
                    "gates",
                    f"two gates are named {gate.name!r}: give one of them another name",
                )
            seen.add(gate.name)
        if all(gate.dry_run for gate in self.gates):
            raise _invalid(
                "gates",
                "every gate is dryRun, so nothing can decide: set dryRun false on one",
            )
        return self

    @property
    def deciding_gates(self) -> list[GateSpec]:
        return [gate for gate in self.gates if not gate.dry_run]

    @property
    def default_gates(self) -> bool:
        """True when the plan lists no gates and the whole catalogue applies."""
        return "gates" not in self.model_fields_set

    def range_for(self, scrape_interval: float | None) -> float:
        """The {{ window }} actually queried: queryWindow, or more to span enough scrapes."""
        scrape = self.scrape_interval or scrape_interval or 0.0
        return max(self.query_window, SCRAPES_PER_RANGE * scrape)

    def warmup_for(self, scrape_interval: float | None, fresh_baseline: bool = False) -> float:
        """The warm-up actually waited: the plan's; else none when the canary is judged
        against a fresh baseline, and one scrape interval + 30 s against stable.

        A fresh baseline takes its first request with the canary's: its caches, heap and
        pool are as cold as the canary's, so their comparison needs no warm-up, and one
        spent waiting is time a canary broken from its first request serves unjudged (the
        offline replay: 5xx x3 caught a median 40 s into the release without it, 105 s
        with 45 s of it; 33 instead of 71 of 1,000 A/A releases rolled back, with the shorter
        lag too; BENCHMARKS.md). Against the warm stable fleet the cold start is a
        difference, so its first seconds are left out."""
        if self.warmup is not None:
            return self.warmup
        if fresh_baseline:
            return 0.0
        scrape = self.scrape_interval or scrape_interval or UNKNOWN_SCRAPE_S
        return scrape + WARMUP_AFTER_SCRAPE_S

    @property
    def sequential_gates(self) -> list[GateSpec]:
        """The gates that spend the release's alpha: sequential ones, and logs compared with
        stable's."""
        return [
            gate
            for gate in self.deciding_gates
            if gate.sequential is not None or (gate.logs is not None and gate.logs.compares)
        ]


__all__ = [
    "FLAVOURS",
    "LIMIT_KINDS",
    "METRIC_NAMES",
    "AnalysisSpec",
    "GateSpec",
    "LogsLimit",
    "PrometheusSpec",
    "RelativeLimit",
    "SequentialLimit",
    "StatisticalLimit",
    "ThresholdLimit",
    "default_gates",
]
