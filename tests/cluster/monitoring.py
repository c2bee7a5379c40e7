"""A real Prometheus scraping the bed's pods through the chart's PodMonitor relabeling.

Upstream followed:

- Prometheus ``kubernetes_sd_configs`` role ``pod`` (prometheus.io/docs/prometheus/latest/
  configuration/configuration/#pod): one target per container port, with meta labels
  ``__meta_kubernetes_namespace``, ``__meta_kubernetes_pod_name``,
  ``__meta_kubernetes_pod_label_<name>`` / ``..._labelpresent_<name>`` (name sanitized: every
  character outside ``[A-Za-z0-9_]`` becomes ``_``), ``__meta_kubernetes_pod_container_name``,
  ``__meta_kubernetes_pod_container_port_name``, ``__meta_kubernetes_pod_ready``. Here they come
  from the kubelet stand-in through ``file_sd_configs`` (Prometheus treats them alike: target
  labels before relabeling).
- prometheus-operator's PodMonitor translation (pkg/prometheus/promcfg.go,
  ``generatePodMonitorConfig``): keep the pods the selector matches and the named port, set
  ``namespace``, ``pod``, ``container``, ``endpoint`` and ``job`` (``<namespace>/<name>``), then
  the PodMonitor's own ``relabelings`` (``sourceLabels``, ``separator``, ``targetLabel``,
  ``regex``, ``replacement``, ``action``).

The PodMonitor is the one the rendered chart ships (``monitoring.podMonitor.enabled``, interval
1 s); ``DOCUMENTED`` (pod label ``canaryflow.dev/track`` → ``track``, and ``app``, ``version``;
``namespace`` from the operator) is used only when a chart renders none.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from canaryflow.duration import format_duration
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import JOB, PrometheusServer

from .kubelet import Kubelet

Obj = dict[str, Any]

DOCUMENTED: Obj = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PodMonitor",
    "metadata": {"name": "canaryflow-services"},
    "spec": {
        "namespaceSelector": {"any": True},
        "selector": {"matchExpressions": [{"key": "canaryflow.dev/track", "operator": "Exists"}]},
        "podMetricsEndpoints": [
            {
                "port": "http",
                "path": "/metrics",
                "relabelings": [
                    {
                        "sourceLabels": ["__meta_kubernetes_pod_label_canaryflow_dev_track"],
                        "targetLabel": "track",
                    },
                    {"sourceLabels": ["__meta_kubernetes_pod_label_app"], "targetLabel": "app"},
                    {
                        "sourceLabels": ["__meta_kubernetes_pod_label_version"],
                        "targetLabel": "version",
                    },
                ],
            }
        ],
    },
}


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def pod_monitor(rendered: Sequence[Obj]) -> Obj:
    """The chart's PodMonitor, else the documented one."""
    found = [obj for obj in rendered if obj.get("kind") == "PodMonitor"]
    return found[0] if found else DOCUMENTED


def scrape_config(monitor: Obj, interval_s: float, targets_file: Path) -> Obj:
    """The scrape job prometheus-operator generates for the PodMonitor's first endpoint."""
    spec = monitor["spec"]
    endpoint = spec["podMetricsEndpoints"][0]
    namespace = monitor["metadata"].get("namespace", "default")
    relabel: list[Obj] = []
    names = spec.get("namespaceSelector", {}).get("matchNames")
    if names and not spec.get("namespaceSelector", {}).get("any"):
        # The operator limits kubernetes_sd to these namespaces; a keep rule is the same filter.
        relabel.append(
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_namespace"],
                "regex": "|".join(re.escape(n) for n in names),
            }
        )
    selector = spec.get("selector", {})
    for key, value in sorted(selector.get("matchLabels", {}).items()):
        relabel.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_pod_label_{sanitize(key)}",
                    f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}",
                ],
                "regex": f"({re.escape(value)});true",
            }
        )
    for expression in selector.get("matchExpressions", []):
        label = sanitize(expression["key"])
        operator = expression["operator"]
        if operator in ("Exists", "DoesNotExist"):
            relabel.append(
                {
                    "action": "keep" if operator == "Exists" else "drop",
                    "source_labels": [f"__meta_kubernetes_pod_labelpresent_{label}"],
                    "regex": "true",
                }
            )
        else:
            values = "|".join(re.escape(v) for v in expression["values"])
            relabel.append(
                {
                    "action": "keep" if operator == "In" else "drop",
                    "source_labels": [f"__meta_kubernetes_pod_label_{label}"],
                    "regex": f"({values})",
                }
            )
    relabel.append(
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": endpoint["port"],
        }
    )
    for target, source in (
        ("namespace", "__meta_kubernetes_namespace"),
        ("container", "__meta_kubernetes_pod_container_name"),
        ("pod", "__meta_kubernetes_pod_name"),
    ):
        relabel.append({"source_labels": [source], "target_label": target})
    relabel.append(
        {"target_label": "job", "replacement": f"{namespace}/{monitor['metadata']['name']}"}
    )
    relabel.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    for rule in endpoint.get("relabelings", []):
        relabel.append(_snake(rule))
    interval = endpoint.get("interval") or format_duration(interval_s)
    return {
        "job_name": JOB,
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": interval}],
        "relabel_configs": relabel,
    }


def _snake(rule: Obj) -> Obj:
    names = {
        "sourceLabels": "source_labels",
        "targetLabel": "target_label",
        "separator": "separator",
        "regex": "regex",
        "replacement": "replacement",
        "action": "action",
        "modulus": "modulus",
    }
    out = {names[k]: v for k, v in rule.items() if k in names}
    if "action" in out:
        out["action"] = out["action"].lower()
    return out


class PodMonitorPrometheus(PrometheusServer):
    """Debian's Prometheus with the PodMonitor's scrape job; targets follow the kubelet."""

    def __init__(self, group: ProcessGroup, workdir: Path, monitor: Obj, interval_s: float = 1.0):
        super().__init__(group, workdir, scrape_interval=interval_s)
        self.monitor = monitor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: list = []

    def _config(self) -> dict:
        config = super()._config()
        config["scrape_configs"] = [
            scrape_config(self.monitor, self.scrape_interval, self.targets_file)
        ]
        return config

    def follow(self, kubelet: Kubelet, period_s: float = 0.2) -> None:
        """Keep the target list equal to the kubelet's running pods."""

        def loop() -> None:
            while not self._stop.wait(period_s):
                targets = pod_targets(kubelet)
                if targets != self._last:
                    self.set_targets(targets)
                    self._last = targets

        self._thread = threading.Thread(target=loop, name="prometheus-sd", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        super().stop()


def pod_targets(kubelet: Kubelet) -> list[tuple[str, dict[str, str]]]:
    targets = []
    for pod in sorted(kubelet.running_pods(), key=lambda p: p.name):
        labels = {
            "__meta_kubernetes_namespace": pod.namespace,
            "__meta_kubernetes_pod_name": pod.name,
            "__meta_kubernetes_pod_container_name": pod.container["name"],
            "__meta_kubernetes_pod_ready": "true" if pod.ready else "false",
        }
        for key, value in pod.labels.items():
            labels[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
            labels[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
        for port in pod.container.get("ports", []):
            port_labels = labels | {
                "__meta_kubernetes_pod_container_port_name": port.get("name", "")
            }
            targets.append((pod.address, port_labels))
    return targets
