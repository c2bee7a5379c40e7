"""Pods labelled only ``app.kubernetes.io/name`` (Deployment ``checkout-api``) are measured
through a real Prometheus relabelled by ``canaryflow.kubernetes.scrape``: the recommended label
becomes ``app``, a pod carrying both keeps its ``app``, and cAdvisor's series are found by the
stable Deployment's own pod names (``service.deployment``)."""

from __future__ import annotations

import time

import pytest
from prom_fixtures import SimulatedService, Traffic
from test_metric_selectors import CadvisorLike, KubernetesLikePrometheus, pod_target

from canaryflow.analysis.catalogue import METRICS, REQUEST_COUNT
from canaryflow.analysis.query import Subject, render
from canaryflow.analysis.source import PrometheusSource
from canaryflow.local.process import ProcessGroup

pytestmark = pytest.mark.slow

SUBJECT = Subject("checkout", "shop", app="checkout", deployment="checkout-api")
NAME = "app.kubernetes.io/name"
STABLE_POD, CANARY_POD = "checkout-api-7d4b9c6f8-x2v9k", "checkout-canary-5f6d7c8b9-q8m4z"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    stable = SimulatedService(Traffic(error_share=0.0)).start()
    canary = SimulatedService(Traffic(error_share=0.2)).start()
    other = SimulatedService(Traffic(error_share=0.9)).start()  # app: basket wins over the name
    cadvisor = CadvisorLike({STABLE_POD: 0.1, CANARY_POD: 0.5})
    workdir = tmp_path_factory.mktemp("contract-prometheus")
    try:
        with ProcessGroup(workdir) as group:
            server = KubernetesLikePrometheus(group, workdir, scrape_interval=1.0)
            server.cadvisor = cadvisor.address
            server.start(
                [
                    pod_target(stable.address, STABLE_POD, {NAME: "checkout", "version": "v1"}),
                    pod_target(
                        canary.address,
                        CANARY_POD,
                        {NAME: "checkout", "version": "v2", "canaryflow.dev/track": "canary"},
                    ),
                    pod_target(
                        other.address, "basket-6c9f7d5b4-h7k2p", {"app": "basket", NAME: "checkout"}
                    ),
                ]
            )
            server.wait_targets_up(4, timeout_s=15)
            time.sleep(4.5)
            yield server
    finally:
        for service in (stable, canary, other, cadvisor):
            service.stop()


def measure(server, template: str, track: str) -> list[float]:
    return PrometheusSource(server.url, timeout=2).instant(render(template, SUBJECT, track, 4))


def test_the_recommended_name_label_selects_both_tracks_and_app_wins_over_it(prometheus):
    [canary] = measure(prometheus, METRICS["error-rate"].query("go"), "canary")
    [stable] = measure(prometheus, METRICS["error-rate"].query("go"), "stable")
    assert canary == pytest.approx(0.2, abs=0.05)
    assert stable == pytest.approx(0.0, abs=0.01), "the pod labelled app: basket is not stable's"
    assert measure(prometheus, REQUEST_COUNT["go"], "stable")[0] > 0


def test_cadvisor_finds_stable_by_the_deployments_pod_names(prometheus):
    template = METRICS["cpu-throttling"].query("go")
    [canary] = measure(prometheus, template, "canary")
    [stable] = measure(prometheus, template, "stable")
    assert canary == pytest.approx(0.5, abs=0.1)
    assert stable == pytest.approx(0.1, abs=0.1)


def test_cpu_throttling_is_a_sequential_comparison_inside_alpha(prometheus):
    """Throttled CFS periods out of periods, canary (50 %) against the reference's pods (10 %),
    read from cAdvisor by pod name: the same count test and the same alpha as the 5xx share."""
    from canaryflow.analysis.measurement import Outcome
    from canaryflow.analysis.run import AnalysisRun
    from canaryflow.analysis.spec import AnalysisSpec

    spec = AnalysisSpec.model_validate(
        {
            "interval": "1s",
            "queryWindow": "4s",
            "scrapeInterval": "1s",
            "alpha": 0.01,
            "gates": [{"metric": "cpu-throttling"}],
        }
    )
    assert spec.sequential_gates == spec.gates, "a default of the catalogue, inside alpha"
    source = PrometheusSource(prometheus.url, timeout=2)
    run = AnalysisRun(spec, source, "checkout", "shop", subject=SUBJECT)
    result = run.window(20)
    assert result.verdict.outcome is Outcome.FAIL, result.reason
    assert "canary credibly worse than stable +50%" in result.reason
    detail = next(m for m in result.measurements if m.outcome is Outcome.FAIL).evidence.detail
    assert detail["canary_events"] / detail["canary_exposure"] == pytest.approx(0.5, abs=0.1)
    assert detail["stable_events"] / detail["stable_exposure"] == pytest.approx(0.1, abs=0.1)
    assert detail["log_threshold"] == pytest.approx(4.605, abs=0.001)  # log(1/0.01): all of it
