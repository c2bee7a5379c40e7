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
from pydantic_core import PydanticCustomError

from canaryflow.analysis.catalogue import (
    DEFAULT_GATES,
    FLAVOURS,
    METRIC_NAMES,
    METRICS,
    PLACEHOLDERS,
)
from canaryflow.duration import Duration
from canaryflow.spec_model import SpecModel

LIMIT_KINDS: tuple[str, ...] = ("threshold", "relative", "statistical", "sequential", "logs")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


def _invalid(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


class AnalysisModel(SpecModel):
    """camelCase keys in YAML, unknown keys rejected, immutable once loaded, no NaN limits."""


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,1024}")
_RESERVED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "host", "content-length", "content-type"}
)


class SecretSource(AnalysisModel):
    """Where a secret is read from: exactly one of a file or an environment variable."""

    file: str | None = Field(
        None, min_length=1, max_length=4096, description="Path of a file holding it."
    )
    env: str | None = Field(None, pattern=_ENV_NAME, description="Environment variable name.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.file is None) == (self.env is None):
            raise _invalid("secret", "give exactly one of file or env")
        return self


class BasicAuthSpec(AnalysisModel):
    username: str = Field(
        min_length=1, max_length=256, pattern=r"^[^:\x00-\x1f\x7f]+$", description="User name."
    )
    password_file: str | None = Field(
        None, min_length=1, max_length=4096, description="File holding the password."
    )
    password_env: str | None = Field(
        None, pattern=_ENV_NAME, description="Environment variable holding the password."
    )

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuthSpec:
        if (self.password_file is None) == (self.password_env is None):
            raise _invalid("basicAuth", "give exactly one of passwordFile or passwordEnv")
        return self


class PrometheusSpec(AnalysisModel):
    url: str | None = Field(
        None,
        pattern=r"^https?://[^\s\x00-\x1f\x7f]+$",
        max_length=2048,
        description="Prometheus base URL. Omit it to use the platform's "
        "(the local engine starts its own).",
    )
    timeout: Duration = Field(5.0, gt=0, le=300, description="Longest wait for one query.")
    bearer_token: SecretSource | None = Field(
        None,
        description="Send Authorization: Bearer with the token from this file (a mounted "
        "Secret, the pod's service-account token) or environment variable.",
    )
    basic_auth: BasicAuthSpec | None = Field(None, description="HTTP basic auth.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers, e.g. X-Scope-OrgID for Mimir, Cortex or Thanos "
        "tenants. Credentials go in bearerToken or basicAuth, never here.",
    )
    ca_file: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="PEM CA bundle to verify Prometheus' certificate (default: system CAs).",
    )

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name: use letters, digits, '-'")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(
                    f"{name} is set by canaryflow: put credentials in bearerToken or basicAuth"
                )
            if not _HEADER_VALUE.fullmatch(value):
                raise ValueError(
                    f"the value of {name} has control characters or is too long: one line, "
                    "printable characters"
                )
        return headers

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusSpec:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise _invalid("prometheus", "both bearerToken and basicAuth are set: keep one")
        return self


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
    """The canary's log lines matching any pattern are counted; more than ``max`` fails."""

    patterns: list[str] = Field(
        min_length=1, description="Regular expressions (plain text matches itself)."
    )
    max: int = Field(0, ge=0, description="Matching lines tolerated per measurement.")

    @model_validator(mode="after")
    def _compiles(self) -> LogsLimit:
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise _invalid(
                    "logs",
                    f"log pattern {pattern!r} is not a regular expression ({error}): "
                    "escape special characters with a backslash",
                ) from error
        return self

    def text(self) -> str:
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
            data = {**data, **METRICS[metric].default_limit}
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
        30.0, gt=0, description="The {{ window }} of rate() and increase() in queries."
    )
    min_canary_requests: int = Field(
        20,
        ge=0,
        description="Fewer canary requests than this in the query window: every gate is still "
        "collecting (a sequential gate: fewer in its window so far). Never a pass.",
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

    @property
    def sequential_gates(self) -> list[GateSpec]:
        return [gate for gate in self.deciding_gates if gate.sequential is not None]


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
