"""The plan's analysis, pointed at flag variants: flag-on requests against flag-off requests.

Only the HTTP metrics carry a ``variant`` label (the sample service labels
``http_requests_total`` and ``http_request_duration_seconds``), so only the gates reading them
judge a flag: ``error-rate``, ``latency-p95`` and ``latency-p99``. CPU, goroutines, outbound,
database, cache and log gates measure whole processes shared by both variants and would compare
a process with itself; they are left out and the record says so.
"""

from __future__ import annotations

from canaryflow.analysis.query import Subject
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.flags.document import OFF, ON

VARIANT_METRICS = frozenset({"error-rate", "latency-p95", "latency-p99"})
VARIANT_LABEL = "variant"


def variant_subject(service: str, namespace: str) -> Subject:
    """``{{ selector }}`` for "canary" selects flag-on requests, for "stable" flag-off ones."""
    return Subject(service, namespace, VARIANT_LABEL, {"canary": ON, "stable": OFF})


def variant_gates(spec: AnalysisSpec) -> tuple[AnalysisSpec, list[str]]:
    """The spec with only per-variant gates, and the names of the gates left out."""
    kept = [gate for gate in spec.gates if gate.metric in VARIANT_METRICS and gate.logs is None]
    skipped = [gate.name for gate in spec.gates if gate not in kept]
    return spec.model_copy(update={"gates": kept}), skipped
