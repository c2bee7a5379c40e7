"""The catalogue's selectors find canary and stable in series labelled as a stock cluster labels
them: a real Prometheus, the relabeling rules of ``canaryflow.kubernetes.scrape`` over
Kubernetes-discovery meta labels, and cAdvisor-shaped CPU series that carry only pod names.

The targets come from ``file_sd`` with the ``__meta_kubernetes_*`` labels that Prometheus'
Kubernetes discovery sets for a pod (``discovery/kubernetes/pod.go``: ``podLabels``); stable's
pod has no ``canaryflow.dev/track`` label, as in a cluster where stable was never restarted.
The cAdvisor job mirrors kube-prometheus-stack's kubelet ServiceMonitor (``honorLabels: true``,
series labelled ``namespace``/``pod``/``container`` by cAdvisor itself).
"""

from __future__ import annotations

import time

import pytest
from http_stub import LoopbackServer, QuietHandler
from prom_fixtures import EXPOSITION, SimulatedService, Traffic

from canaryflow.analysis.catalogue import METRICS, REQUEST_COUNT
from canaryflow.analysis.query import Subject, render
from canaryflow.analysis.source import PrometheusSource
from canaryflow.kubernetes.scrape import meta_label, relabel_configs
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import PrometheusServer

pytestmark = pytest.mark.slow

SUBJECT = Subject("checkout", "shop")
STABLE_POD, CANARY_POD = "checkout-7d4b9c6f8-x2v9k", "checkout-canary-5f6d7c8b9-q8m4z"
OTHER_POD = "checkout-worker-6c9f7d5b4-h7k2p"  # another Deployment whose name starts alike


class KubernetesLikePrometheus(PrometheusServer):
    """Our Prometheus with the pod job relabelled as the chart's PodMonitor does, plus cAdvisor."""

    cadvisor = ""

    def _config(self) -> dict:
        config = super()._config()
        pods = config["scrape_configs"][0]
        pods["relabel_configs"] = relabel_configs("track")
        # A real service exports no CFS counters (the simulated one does, for local runs).
        pods["metric_relabel_configs"] = [
            {"source_labels": ["__name__"], "regex": "container_cpu_cfs_.*", "action": "drop"}
        ]
        config["scrape_configs"].append(
            {
                "job_name": "kubelet",
                "honor_labels": True,
                "static_configs": [{"targets": [self.cadvisor]}],
            }
        )
        return config


def pod_target(address: str, pod: str, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
    meta = {meta_label(k): v for k, v in labels.items()}
    return address, {
        **meta,
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": pod,
    }


class CadvisorLike:
    """/metrics/cadvisor as the kubelet serves it: CFS counters per pod and container."""

    def __init__(self, throttled_share: dict[str, float]):
        self.throttled_share = throttled_share
        self.started = time.monotonic()
        self.server = LoopbackServer(self._handler())

    @property
    def address(self) -> str:
        return self.server.address

    def exposition(self) -> str:
        periods = int((time.monotonic() - self.started) * 10) + 1
        lines = ["# TYPE container_cpu_cfs_periods_total counter"]
        series = []
        for pod, share in self.throttled_share.items():
            labels = f'namespace="shop",pod="{pod}",container="app"'
            series.append((labels, periods, int(periods * share)))
        lines += [f"container_cpu_cfs_periods_total{{{s}}} {p}" for s, p, _ in series]
        lines.append("# TYPE container_cpu_cfs_throttled_periods_total counter")
        lines += [f"container_cpu_cfs_throttled_periods_total{{{s}}} {t}" for s, _, t in series]
        return "\n".join(lines) + "\n"

    def _handler(self) -> type[QuietHandler]:
        source = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self.reply(200, source.exposition().encode(), EXPOSITION)

        return Handler

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def cluster_prometheus(tmp_path_factory):
    stable = SimulatedService(Traffic(error_share=0.0)).start()
    canary = SimulatedService(Traffic(error_share=0.2)).start()
    cadvisor = CadvisorLike({STABLE_POD: 0.0, CANARY_POD: 0.5, OTHER_POD: 1.0})
    workdir = tmp_path_factory.mktemp("k8s-prometheus")
    try:
        with ProcessGroup(workdir) as group:
            server = KubernetesLikePrometheus(group, workdir, scrape_interval=1.0)
            server.cadvisor = cadvisor.address
            targets = [
                pod_target(stable.address, STABLE_POD, {"app": "checkout", "version": "v1"}),
                pod_target(
                    canary.address,
                    CANARY_POD,
                    {"app": "checkout", "version": "v2", "canaryflow.dev/track": "canary"},
                ),
            ]
            server.start(targets)
            server.wait_targets_up(3, timeout_s=15)
            time.sleep(4.5)
            yield server
    finally:
        for service in (stable, canary, cadvisor):
            service.stop()


def measure(server: PrometheusServer, template: str, track: str) -> list[float]:
    return PrometheusSource(server.url, timeout=2).instant(render(template, SUBJECT, track, 4))


def test_stable_is_every_pod_of_the_service_without_the_canary_track_label(cluster_prometheus):
    source = PrometheusSource(cluster_prometheus.url, timeout=2)
    assert source.instant('count(up{track="stable"})') == []  # stable pods carry no track label
    [canary] = measure(cluster_prometheus, REQUEST_COUNT["go"], "canary")
    [stable] = measure(cluster_prometheus, REQUEST_COUNT["go"], "stable")
    assert canary > 0 and stable > 0
    [canary_errors] = measure(cluster_prometheus, METRICS["error-rate"].query("go"), "canary")
    [stable_errors] = measure(cluster_prometheus, METRICS["error-rate"].query("go"), "stable")
    assert canary_errors == pytest.approx(0.2, abs=0.05)
    assert stable_errors == 0


def test_cpu_throttling_finds_each_tracks_pods_by_name_in_cadvisor_series(cluster_prometheus):
    template = METRICS["cpu-throttling"].query("go")
    [canary] = measure(cluster_prometheus, template, "canary")
    [stable] = measure(cluster_prometheus, template, "stable")
    assert canary == pytest.approx(0.5, abs=0.1)
    assert stable == 0  # neither the canary's pod nor checkout-worker's counts as stable


def test_the_relabeling_puts_app_track_version_namespace_and_pod_on_the_series(
    cluster_prometheus,
):
    source = PrometheusSource(cluster_prometheus.url, timeout=2)
    canary = 'up{app="checkout",namespace="shop",track="canary",version="v2",pod="%s"}'
    assert source.instant(canary % CANARY_POD) == [1.0]
    stable = 'up{app="checkout",namespace="shop",track="",version="v1",pod="%s"}'
    assert source.instant(stable % STABLE_POD) == [1.0]


def test_the_stable_selector_excludes_the_canary_rather_than_naming_a_label_stable_lacks():
    assert SUBJECT.selector("canary") == 'app="checkout",namespace="shop",track="canary"'
    assert SUBJECT.selector("stable") == 'app="checkout",namespace="shop",track!="canary"'
    flags = Subject("checkout", "shop", "variant", {"canary": "on", "stable": "off"})
    assert flags.selector("stable") == 'app="checkout",namespace="shop",variant="off"'
