"""The analysis section of a plan: defaults, catalogue gates, and errors that say how to fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from canaryflow.analysis.catalogue import DEFAULT_GATES, METRIC_NAMES, METRICS
from canaryflow.analysis.spec import AnalysisSpec, GateSpec

BRIEF_EXAMPLE = {
    "prometheus": {"url": "http://127.0.0.1:9090", "timeout": "5s"},
    "metrics": "go",
    "trackLabel": "track",
    "interval": "10s",
    "queryWindow": "30s",
    "minCanaryRequests": 20,
    "failureLimit": 0,
    "consecutiveErrorLimit": 2,
    "inconclusiveLimit": 3,
    "gates": [
        {"metric": "error-rate", "threshold": {"max": 0.01}},
        {"metric": "latency-p95", "relative": {"maxRatio": 1.2, "floor": 0.05}},
        {
            "metric": "latency-p99",
            "statistical": {"direction": "increase", "confidence": 0.98, "tolerance": 0.25},
        },
        {
            "name": "checkout-failures",
            "query": "sum(rate(checkout_failures_total{ {{ selector }} }[{{ window }}]))",
            "threshold": {"max": 0.5},
        },
        {"metric": "log-errors", "logs": {"patterns": ["connection refused"], "max": 0}},
    ],
}


def error_text(data: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        AnalysisSpec.model_validate(data)
    return str(caught.value)


def test_the_documented_example_loads_with_durations_in_seconds():
    spec = AnalysisSpec.model_validate(BRIEF_EXAMPLE)
    assert spec.interval == 10.0
    assert spec.query_window == 30.0
    assert spec.prometheus.timeout == 5.0
    assert [(g.name, g.kind) for g in spec.gates] == [
        ("error-rate", "threshold"),
        ("latency-p95", "relative"),
        ("latency-p99", "statistical"),
        ("checkout-failures", "threshold"),
        ("log-errors", "logs"),
    ]


def test_a_plan_without_gates_gets_the_default_gate_set():
    assert [g.name for g in AnalysisSpec().gates] == list(DEFAULT_GATES)


def test_a_catalogue_metric_without_a_limit_takes_its_default_limit():
    gate = GateSpec.model_validate({"metric": "goroutines"})
    assert gate.kind == "relative"
    assert gate.relative.max_ratio == METRICS["goroutines"].default_limit["relative"]["maxRatio"]


def test_every_catalogue_metric_is_usable_as_a_gate_in_both_flavours():
    for name in METRIC_NAMES:
        gate = GateSpec(metric=name)
        if gate.kind != "logs":
            assert gate.template("go") and gate.template("istio"), name


def test_istio_flavour_reads_mesh_metrics_for_requests_and_app_metrics_for_the_rest():
    assert "istio_requests_total" in GateSpec(metric="error-rate").template("istio")
    assert "/ 1000" in GateSpec(metric="latency-p95").template("istio")
    assert "go_goroutines" in GateSpec(metric="goroutines").template("istio")


def test_a_misspelt_metric_names_the_closest_and_all_choices():
    message = error_text({"gates": [{"metric": "latncy-p95"}]})
    assert "unknown metric 'latncy-p95' (did you mean 'latency-p95'?)" in message
    assert "error-rate, latency-p95" in message


def test_a_custom_query_without_a_limit_says_which_limits_exist():
    message = error_text({"gates": [{"name": "p95", "query": "up"}]})
    assert (
        "gate 'p95' has no limit: add threshold, relative, statistical, sequential or logs"
        in message
    )


def test_two_limits_on_one_gate_are_rejected():
    message = error_text(
        {"gates": [{"metric": "error-rate", "threshold": {"max": 1}, "relative": {"maxRatio": 2}}]}
    )
    assert "has threshold and relative: keep exactly one limit" in message


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        ({"name": "x", "threshold": {"max": 1}}, "gate 'x' has no query"),
        ({"query": "up", "threshold": {"max": 1}}, "a gate needs a metric"),
        ({"name": "x", "query": "up", "threshold": {}}, "threshold has no bound"),
        ({"name": "x", "query": "up", "threshold": {"min": 2, "max": 1}}, "swap them"),
        ({"name": "x", "query": "up", "relative": {"floor": 1}}, "relative has no ratio"),
        (
            {"name": "x", "query": "{{ windw }}", "threshold": {"max": 1}},
            "unknown placeholder {{ windw }}",
        ),
        (
            {"name": "x", "query": "up", "statistical": {"confidence": 0.9999}},
            "less than or equal to 0.999",
        ),
        ({"name": "x", "logs": {"patterns": ["(unclosed"]}}, "is not a regular expression"),
        (
            {"metric": "log-errors", "query": "up", "logs": {"patterns": ["x"]}},
            "reads logs, not PromQL",
        ),
    ],
)
def test_gate_mistakes_are_explained(gate: dict, expected: str):
    assert expected in error_text({"gates": [gate]})


def test_gate_names_must_be_unique_and_some_gate_must_decide():
    assert "two gates are named 'error-rate'" in error_text(
        {"gates": [{"metric": "error-rate"}, {"metric": "error-rate"}]}
    )
    assert "every gate is dryRun" in error_text(
        {"gates": [{"metric": "error-rate", "dryRun": True}]}
    )
    assert "gates is empty" in error_text({"gates": []})


def test_unknown_keys_are_rejected():
    assert "Extra inputs are not permitted" in error_text({"intervall": "10s"})


def test_the_spec_round_trips_through_its_camel_case_yaml_form():
    spec = AnalysisSpec.model_validate(BRIEF_EXAMPLE)
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["queryWindow"] == "30s"
    assert AnalysisSpec.model_validate(dumped) == spec


def test_the_json_schema_documents_every_gate_field():
    schema = AnalysisSpec.model_json_schema(by_alias=True)
    gate = schema["$defs"]["GateSpec"]["properties"]
    documented = {"name", "metric", "query", "threshold", "relative", "statistical", "logs"}
    assert {*documented, "dryRun"} <= set(gate)
    assert all(field.get("description") for field in gate.values())


def test_a_non_finite_limit_is_an_input_error_never_a_pass():
    for bad in ("nan", "inf", "-inf"):
        message = error_text(
            {"gates": [{"metric": "error-rate", "threshold": {"max": float(bad)}}]}
        )
        assert "finite number" in message, message
    message = error_text(
        {"gates": [{"metric": "cache-miss-rate", "sequential": {"tolerance": float("nan")}}]}
    )
    assert "finite number" in message


def test_sequential_limits_need_a_catalogue_metric_with_per_request_evidence():
    message = error_text({"gates": [{"metric": "goroutines", "sequential": {}}]})
    assert "sequential needs per-request evidence" in message
    message = error_text({"gates": [{"name": "mine", "query": "up", "sequential": {}}]})
    assert "sequential needs per-request evidence" in message


def test_every_default_gate_that_decides_spends_the_releases_alpha():
    """One error budget: no fixed rule outside alpha among the defaults. goroutines is
    advisory (a gauge has no per-request evidence); gc-pause is named by a plan or not at all."""
    spec = AnalysisSpec()
    deciding = {g.name for g in spec.deciding_gates}
    assert deciding == {g.name for g in spec.sequential_gates}
    assert {g.name for g in spec.gates} - deciding == {"goroutines"}
    assert "gc-pause" not in {g.name for g in spec.gates}
    assert GateSpec.model_validate({"metric": "gc-pause"}).relative is not None
    chosen = GateSpec.model_validate({"metric": "goroutines", "dryRun": False})
    assert not chosen.dry_run and chosen.relative is not None


def test_the_default_gates_are_the_catalogue_but_gc_pause():
    spec = AnalysisSpec()
    assert [g.name for g in spec.gates] == [n for n in METRIC_NAMES if n != "gc-pause"]
    assert spec.default_gates
    assert {g.name: g.kind for g in spec.gates}["error-rate"] == "sequential"
