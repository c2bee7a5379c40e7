"""Catalogue flavours: OpenTelemetry's and go-grpc-prometheus' names beside client_golang's
and Istio's, chosen in the plan or detected from what the service exports.

The names are the ones upstream exports (cited in ``canaryflow.analysis.catalogue``): OTel's
Prometheus exporter writes ``http.server.request.duration`` as
``http_server_request_duration_seconds`` with ``http_response_status_code``; go-grpc-prometheus
writes ``grpc_server_handled_total{grpc_code}`` and ``grpc_server_handling_seconds``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_analysis_run import SteppingClock, TableSource

from canaryflow.analysis.catalogue import GRPC_SERVER_ERROR_CODES, METRICS, REQUEST_COUNT
from canaryflow.analysis.flavour import DETECTION_ORDER, choose
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.query import Subject, render
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.errors import InputError
from canaryflow.plan.load import plan_from_dict

SUBJECT = Subject("checkout", "shop")


def rendered(template: str) -> str:
    return render(template, SUBJECT, "canary", 30)


def test_otel_reads_the_semantic_conventions_names_as_prometheus_exports_them():
    errors = rendered(METRICS["error-rate"].query("otel"))
    assert 'http_server_request_duration_seconds_count{ app="checkout"' in errors
    assert 'http_response_status_code=~"5.."' in errors
    assert "http_requests_total" not in errors
    p95 = rendered(METRICS["latency-p95"].query("otel"))
    assert p95.startswith("histogram_quantile(0.95, sum by (le) (rate(")
    assert "http_server_request_duration_seconds_bucket{" in p95
    assert "http_server_request_duration_seconds_count" in REQUEST_COUNT["otel"]


def test_grpc_counts_only_server_caused_codes_as_errors():
    evidence = METRICS["error-rate"].evidence_for("grpc")
    assert evidence.exposure.startswith("grpc_server_handled_total{")
    assert "grpc_code=~" in evidence.events
    counted = evidence.events.split('grpc_code=~"', 1)[1].split('"', 1)[0].split("|")
    assert set(counted) == {
        "Unknown",
        "DeadlineExceeded",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
    }
    for client_caused in ("OK", "Canceled", "InvalidArgument", "NotFound", "ResourceExhausted"):
        assert client_caused not in GRPC_SERVER_ERROR_CODES
    assert "grpc_server_handling_seconds_bucket" in METRICS["latency-p99"].query("grpc")


@pytest.mark.parametrize("flavour", ["otel", "grpc"])
def test_flavours_without_their_own_entry_fall_back_to_the_go_runtime_metrics(flavour):
    assert METRICS["goroutines"].query(flavour) == METRICS["goroutines"].query("go")
    gc = METRICS["gc-frequency"].evidence_for(flavour)
    assert gc.exposure == REQUEST_COUNT[flavour].split("increase(", 1)[1].rsplit("[", 1)[0]


@pytest.mark.parametrize("metrics", ["otel", "grpc", "auto"])
def test_a_plan_chooses_a_flavour(metrics):
    plan = plan_from_dict({"service": {"name": "checkout"}, "analysis": {"metrics": metrics}})
    assert plan.analysis.metrics == metrics


def test_an_unknown_flavour_is_refused_naming_the_choices():
    with pytest.raises(InputError) as refused:
        plan_from_dict({"service": {"name": "checkout"}, "analysis": {"metrics": "prom"}})
    assert "analysis.metrics" in str(refused.value)
    assert "otel" in str(refused.value) and "grpc" in str(refused.value)


def test_detection_takes_the_flavour_that_counted_the_most_requests():
    found = choose({"go": 12.0, "otel": None, "grpc": 900.0, "istio": None})
    assert found.flavour == "grpc"
    assert "grpc_server_handled_total" in found.reason and "also go 12" in found.reason


def test_detection_prefers_the_application_over_the_mesh_on_a_tie():
    assert choose({"go": None, "otel": 50.0, "grpc": None, "istio": 50.0}).flavour == "otel"


def test_detection_finds_nothing_when_no_request_series_exists():
    found = choose(dict.fromkeys(DETECTION_ORDER))
    assert found.flavour is None
    assert "http_requests_total" in found.reason and "istio_requests_total" in found.reason


@given(st.dictionaries(st.sampled_from(DETECTION_ORDER), st.none() | st.floats(0, 1e9)))
def test_detection_chooses_only_a_flavour_that_has_series(counts):
    found = choose(counts)
    present = {f for f, n in counts.items() if n is not None}
    assert (found.flavour is None) == (not present)
    if found.flavour is not None:
        assert found.flavour in present
        assert counts[found.flavour] == max(counts[f] for f in present)


def auto_run(rows: dict[str, object]) -> tuple[AnalysisRun, TableSource]:
    spec = AnalysisSpec.model_validate(
        {
            "metrics": "auto",
            "interval": "10s",
            "queryWindow": "30s",
            "gates": [{"metric": "error-rate", "threshold": {"max": 0.01}}],
        }
    )
    source = TableSource(rows)
    return AnalysisRun(spec, source, "checkout", "shop", clock=SteppingClock()), source


def test_auto_asks_once_then_judges_with_the_detected_flavour():
    run, source = auto_run(
        {
            "increase(grpc_server_handled_total": [300.0],
            'track="canary",grpc_code': [0.05],
        }
    )
    result = run.window(20)
    assert result.verdict.outcome is Outcome.FAIL
    assert result.metrics.startswith("metrics: grpc")
    assert result.to_dict()["metrics"] == result.metrics
    detections = [q for q in source.calls if "increase(istio_requests_total" in q]
    assert len(detections) == 2, "one query per track, at the first round only"
    judged = result.measurements[0].evidence.queries["canary"]
    assert "grpc_server_handled_total" in judged and "Unavailable" in judged


def test_auto_keeps_asking_while_nothing_is_exported_and_never_passes():
    run, source = auto_run({})
    result = run.window(30)
    assert result.verdict.outcome is not Outcome.PASS
    assert result.metrics.startswith("no request series")
    rounds = max(m.round for m in result.measurements)
    assert rounds >= 3
    asked = sum("increase(http_server_request_duration" in q for q in source.calls)
    assert asked == 2 * rounds, "every round asks again, one query per track"
