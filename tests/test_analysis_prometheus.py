"""The analysis against a real Prometheus scraping simulated Go services (see prom_fixtures).

Each scenario's canary and stable have been scraped every second since the session began, so
a window of a few seconds judges real PromQL over real samples.
"""

from __future__ import annotations

import re
import time

import pytest
from prom_fixtures import NAMESPACE, fleet, prometheus  # noqa: F401 (fixtures)

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import MeasurementError, PrometheusSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.analysis_round import full_catalogue_spec, time_rounds
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import PrometheusServer

pytestmark = pytest.mark.slow

FAST = {"interval": "1s", "queryWindow": "4s", "minCanaryRequests": 20}
ERROR_RATE_MAX_1 = {"metric": "error-rate", "threshold": {"max": 0.01}}


def window(server: PrometheusServer, app: str, gates: list[dict], seconds: float = 2, **extra):
    spec = AnalysisSpec.model_validate({**FAST, **extra, "gates": gates})
    source = PrometheusSource(server.url, timeout=2)
    return AnalysisRun(spec, source, app, NAMESPACE).window(seconds)


def test_a_canary_with_5_percent_errors_fails_the_error_rate_gate_at_the_first_round(
    prometheus,  # noqa: F811
):
    result = window(prometheus, "erroring", [ERROR_RATE_MAX_1], seconds=3)
    assert result.verdict.outcome is Outcome.FAIL
    assert result.verdict.decided_in_round == 1
    [measurement] = result.measurements
    assert measurement.evidence.canary == pytest.approx(0.05, abs=0.01)
    assert re.fullmatch(r"canary error-rate [45](\.\d+)?% > 1%", measurement.reason)


def test_a_canary_with_a_tenth_of_a_percent_errors_passes(prometheus):  # noqa: F811
    result = window(prometheus, "healthy", [ERROR_RATE_MAX_1])
    assert result.verdict.outcome is Outcome.PASS
    assert all(m.evidence.canary < 0.01 for m in result.measurements)


def test_a_canary_without_traffic_is_inconclusive_not_passed(prometheus):  # noqa: F811
    # No extension: waiting longer for traffic is maxExtension's own test (test_analysis_run).
    result = window(prometheus, "idle", [ERROR_RATE_MAX_1], seconds=1, maxExtension="0s")
    assert result.verdict.outcome is Outcome.INCONCLUSIVE
    assert "canary served 0 requests" in result.measurements[0].reason


def test_a_latency_regression_fails_the_relative_and_the_statistical_gates(
    prometheus,  # noqa: F811
):
    gates = [
        {"metric": "latency-p95", "relative": {"maxRatio": 1.2, "floor": 0.05}},
        {"metric": "latency-p99", "statistical": {"minSamples": 4, "step": "1s"}},
    ]
    slow = window(prometheus, "slow", gates, seconds=1)
    assert slow.verdict.outcome is Outcome.FAIL
    assert {m.gate: m.outcome for m in slow.measurements} == {
        "latency-p95": Outcome.FAIL,
        "latency-p99": Outcome.FAIL,
    }
    healthy = window(prometheus, "healthy", gates, seconds=1)
    assert healthy.verdict.outcome is Outcome.PASS, healthy.reason


def test_prometheus_going_down_ends_the_window_in_error(tmp_path):
    with ProcessGroup(tmp_path) as group:
        server = PrometheusServer(group, tmp_path / "prom").start()
        spec = AnalysisSpec.model_validate({**FAST, "consecutiveErrorLimit": 1})
        run = AnalysisRun(spec, PrometheusSource(server.url, timeout=1), "healthy", NAMESPACE)
        server.kill()
        result = run.window(10)
    assert result.verdict.outcome is Outcome.ERROR
    assert result.verdict.decided_in_round == 2
    measured = [m for m in result.measurements if m.gate != "log-errors"]
    assert {m.outcome for m in measured} == {Outcome.ERROR}
    assert "connection refused" in measured[0].reason
    [logs] = {m.reason for m in result.measurements if m.gate == "log-errors"}
    assert logs == "this platform provides no logs", "the default log gate, without a log source"


def test_prometheus_rejects_bad_promql_and_accepts_every_catalogue_query(
    prometheus,  # noqa: F811
):
    source = PrometheusSource(prometheus.url)
    problem = source.validate_query("sum(rate(http_requests_total[30s])")
    assert problem is not None
    assert "unclosed left parenthesis" in problem
    for flavour in ("go", "istio"):
        run = AnalysisRun(full_catalogue_spec(metrics=flavour), source, "healthy", NAMESPACE)
        for measurement in run.measure(1, window_started=0):
            for query in measurement.evidence.queries.values():
                assert source.validate_query(query) is None, query


def test_a_query_prometheus_rejects_is_an_error_measurement(prometheus):  # noqa: F811
    gates = [{"name": "broken", "query": "sum(rate(up[{{ window }}])", "threshold": {"max": 1}}]
    result = window(prometheus, "healthy", gates, seconds=1)
    [measurement] = result.measurements
    assert measurement.outcome is Outcome.ERROR
    assert measurement.reason.startswith("Prometheus rejected the query (HTTP 400)")
    with pytest.raises(MeasurementError, match="refused"):
        PrometheusSource("http://127.0.0.1:9", timeout=1).instant("up")


def test_rounds_of_the_full_catalogue_measure_every_gate_without_an_error(prometheus):  # noqa: F811
    """What a round costs is ``make bench``'s business (BENCHMARKS.md, "One analysis round"):
    here 20 rounds of every gate of the catalogue run against a real Prometheus, and none of
    them errs."""
    spec = full_catalogue_spec(interval="1s", queryWindow="8s")  # 8 samples for latency-p99
    run = AnalysisRun(spec, PrometheusSource(prometheus.url), "healthy", NAMESPACE)
    timing = time_rounds(run, rounds=20)
    print(timing)
    assert timing.gates == 10
    measurements = run.measure(1, window_started=time.time() - 2)
    judged = {Outcome.PASS, Outcome.COLLECTING, Outcome.NOT_APPLICABLE}
    assert [m.reason for m in measurements if m.outcome not in judged] == []


@pytest.mark.parametrize("query_window", [1.0, 3.0, 7.5, 10.0, 30.0, 60.0, 90.0, 125.0, 3601.0])
def test_every_statistical_range_step_is_one_prometheus_accepts(
    prometheus,  # noqa: F811
    query_window,
):
    """queryWindow / minSamples was sent as e.g. ``3.75s``, which Prometheus answers with 400."""
    source = PrometheusSource(prometheus.url, timeout=2)
    now = time.time()
    for min_samples in (3, 7, 8, 11):
        step = query_window / min_samples
        # vector(1) has a value at every evaluation point, so a 400 cannot hide as "no data".
        samples = source.range("vector(1)", now - query_window, now, step)
        assert samples, f"no samples for step {step!r}"


def test_the_smallest_plans_latency_p99_gate_measures_with_a_one_minute_query_window(
    prometheus,  # noqa: F811
):
    gates = [{"metric": "latency-p99"}]
    result = window(prometheus, "healthy", gates, seconds=2, queryWindow="1m")
    assert all(m.outcome is not Outcome.ERROR for m in result.measurements), [
        m.reason for m in result.measurements
    ]


# Sequential gates on per-request evidence -----------------------------------------------------


def test_the_sequential_error_rate_gate_catches_5_percent_errors_against_stables_tenth_of_one(
    prometheus,  # noqa: F811
):
    result = window(prometheus, "erroring", [{"metric": "error-rate"}], seconds=6)
    assert result.verdict.outcome is Outcome.FAIL, result.reason
    failing = next(m for m in result.measurements if m.outcome is Outcome.FAIL)
    assert "canary credibly worse than stable +20%" in failing.reason
    detail = failing.evidence.detail
    assert detail["canary_events"] / detail["canary_exposure"] == pytest.approx(0.05, abs=0.02)
    assert detail["log_evidence"] >= detail["log_threshold"]


@pytest.mark.parametrize(
    ("metric", "boundary"),
    [("latency-p95", 0.1), ("latency-p99", 0.25), ("db-query-p99", 0.05)],
)
def test_sequential_latency_gates_compare_request_histograms_at_stables_quantile(
    prometheus,  # noqa: F811
    metric,
    boundary,
):
    """Stable: lognormal, median 50 ms (DB: a quarter of it, its p99 well inside the 25-50 ms
    bucket); the slow canary's median is 150 ms. Its requests beyond stable's quantile bucket
    are counted against stable's."""
    slow = window(prometheus, "slow", [{"metric": metric}], seconds=6)
    assert slow.verdict.outcome is Outcome.FAIL, slow.reason
    failing = slow.measurements[-1]
    assert f"{boundary:g}" in failing.evidence.detail["cuts"].split(", "), "cut at its quantile"
    assert "canary credibly worse than stable +25%" in failing.reason
    # 4 s: the first two seconds of a window are read two 1 s scrapes later
    healthy = window(prometheus, "healthy", [{"metric": metric}], seconds=4)
    assert healthy.verdict.outcome is Outcome.PASS, healthy.reason


def test_a_healthy_canary_passes_the_whole_default_catalogue(prometheus):  # noqa: F811
    spec = AnalysisSpec.model_validate(FAST)  # no gates: every default one
    source = PrometheusSource(prometheus.url, timeout=2)
    result = AnalysisRun(spec, source, "healthy", NAMESPACE, logs=NoLogs()).window(4)
    assert result.verdict.outcome is Outcome.PASS, result.reason
    outcomes = {g.gate: g.outcome for g in result.verdict.gates}
    # This fleet's CFS counters carry app labels, not the pod names cAdvisor's series have
    # (cpu-throttling's evidence; judged in test_contract_scrape); goroutines is advisory.
    assert outcomes.pop("cpu-throttling") is Outcome.NOT_APPLICABLE
    assert set(outcomes.values()) == {Outcome.PASS}, result.reason


def test_a_default_gate_whose_metric_the_service_does_not_export_is_not_applicable(
    prometheus,  # noqa: F811
):
    spec = AnalysisSpec.model_validate(FAST)
    source = PrometheusSource(prometheus.url, timeout=2)
    result = AnalysisRun(spec, source, "cacheless", NAMESPACE, logs=NoLogs()).window(4)
    assert result.verdict.outcome is Outcome.PASS, result.reason
    outcomes = {g.gate: g.outcome for g in result.verdict.gates}
    assert outcomes.pop("cache-miss-rate") is Outcome.NOT_APPLICABLE
    assert outcomes.pop("cpu-throttling") is Outcome.NOT_APPLICABLE  # see above
    assert set(outcomes.values()) == {Outcome.PASS}
    assert "cache-miss-rate: not applicable: no series cache_requests_total" in result.reason
    assert result.reason.count("cache_requests_total") == 1, "reported once"


def test_a_gate_whose_series_only_stable_has_is_not_comparable(prometheus):  # noqa: F811
    from canaryflow.analysis.catalogue import METRICS
    from canaryflow.analysis.evidence import SequentialGate
    from canaryflow.analysis.source import Sample

    gate = SequentialGate(
        "cache-miss-rate", METRICS["cache-miss-rate"].evidence["go"], 0.1, 0.01, 20
    )
    stable = {"events": [Sample({"result": "miss"}, 5)], "exposure": [Sample({}, 50)]}
    judgement = gate.observe({"canary": {"events": [], "exposure": []}, "stable": stable})
    assert judgement.outcome is Outcome.NOT_APPLICABLE, "reported, never a rollback by itself"
    assert judgement.reason == "no canary data: cache_requests_total has series for stable only"


class NoLogs:
    """Both tracks log nothing: the default log gate compares 0 lines with 0 lines."""

    def lines_since(self, since: float) -> list[str]:
        return []

    def stable_lines_since(self, since: float) -> tuple[list[str], float]:
        return [], 1.0


def test_validate_reads_the_scrape_interval_from_prometheus_and_warns(
    prometheus,  # noqa: F811
    tmp_path,
    capsys,
):
    from canaryflow.cli import main

    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"service: {{name: healthy, namespace: {NAMESPACE}}}\n"
        "analysis: {interval: 500ms, queryWindow: 2s}\n"
    )
    assert main(["validate", str(plan), "--prometheus", prometheus.url]) == 0
    err = capsys.readouterr().err
    assert "warning: analysis.queryWindow: 2s spans fewer than 4 scrapes (every 1s)" in err
    assert "warning: analysis.interval: 0.5s is shorter than the scrape interval 1s" in err


def test_prometheus_says_how_often_it_scrapes_a_service(prometheus):  # noqa: F811
    source = PrometheusSource(prometheus.url)
    assert source.scrape_interval({"app": "healthy", "namespace": NAMESPACE}) == 1.0
    assert source.scrape_interval({"app": "nobody", "namespace": NAMESPACE}) is None
