"""Whole local releases of the sample service exporting each metric flavour (``-metrics``),
judged through a real Prometheus with the plan's matching ``analysis.metrics``: a 5xx (gRPC:
Unavailable) fault is caught by error-rate and a latency fault by latency-p95, in every
flavour; ``auto`` finds the flavour from the series and says which it chose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.load import plan_from_dict

pytestmark = pytest.mark.slow

FAULTS = {
    "error-rate": ("-error-rate", "0.3"),
    "latency-p95": ("-latency-ms", "200", "-latency-share", "1"),
}


def plan(metrics: str) -> dict:
    return {
        "service": {"name": "checkout", "namespace": "e2e", "healthTimeout": "15s"},
        "steps": [{"weight": 30, "duration": "8s"}, {"weight": 60, "duration": "6s"}],
        "analysis": {
            "metrics": metrics,
            "warmup": "2s",  # CI-sized (default: a scrape + 30 s); judged against a baseline
            "interval": "1s",
            "queryWindow": "4s",
            "minCanaryRequests": 10,
            "inconclusiveLimit": 5,
            "gates": [
                {"metric": "error-rate", "threshold": {"max": 0.05}},
                {"metric": "latency-p95", "relative": {"maxRatio": 1.5, "floor": 0.05}},
            ],
        },
        "local": {"load": {"rate": 100, "clients": 6}},
    }


@pytest.fixture(scope="session")
def build_dir(sample_builds) -> Path:
    """The run's sample-service builds (tests/conftest.py): each version is built once."""
    return sample_builds


def release(tmp_path: Path, build_dir: Path, metrics: str, exported: str, faults=()):
    flavour = ("-metrics", exported)
    stable = sample_service("v1", build_dir, flavour)
    with LocalStack(plan_from_dict(plan(metrics)), stable, tmp_path) as stack:
        result = stack.release(sample_service("v2", build_dir, (*flavour, *faults)))
    assert [p.pid for p in stack.group.processes] == [], "every process started is stopped"
    return result


# Each fault in each flavour, two of them released elsewhere: client_golang's ("go", the
# default) latency fault by test_local_release.py's latency regression, gRPC's errors by
# test_auto_detects_grpc_and_reports_it below (the same release, the flavour detected).
@pytest.mark.parametrize(
    ("flavour", "fault"),
    [
        ("go", "error-rate"),
        ("otel", "error-rate"),
        ("otel", "latency-p95"),
        ("grpc", "latency-p95"),
    ],
)
def test_a_fault_is_caught_by_its_gate_in_every_flavour(tmp_path, build_dir, flavour, fault):
    result = release(tmp_path, build_dir, flavour, flavour, FAULTS[fault])
    assert result.phase == "rolled-back", result.reason
    assert fault in result.reason


def test_a_healthy_otel_canary_is_promoted(tmp_path, build_dir):
    result = release(tmp_path, build_dir, "otel", "otel")
    assert result.phase == "promoted", result.reason


def test_auto_detects_grpc_and_reports_it(tmp_path, build_dir):
    result = release(tmp_path, build_dir, "auto", "grpc", FAULTS["error-rate"])
    assert result.phase == "rolled-back", result.reason
    assert "error-rate" in result.reason
    assert "metrics: grpc, detected from grpc_server_handled_total" in result.reason
