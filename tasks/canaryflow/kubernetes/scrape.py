"""How Prometheus must label the pods' series for the catalogue's selectors: one place.

The catalogue selects a track by ``app``, ``namespace`` and the plan's ``trackLabel``
(``canaryflow.analysis.query``). Kubernetes service discovery exposes pod labels as
``__meta_kubernetes_pod_label_<name>`` (every character outside ``[a-zA-Z0-9_]`` becomes
``_``: ``canaryflow.dev/track`` is ``__meta_kubernetes_pod_label_canaryflow_dev_track``), and no
stock setup copies them onto the series. These rules do, for the chart's PodMonitor (Prometheus
Operator, camelCase), for a plain ``scrape_configs`` job (snake_case), and for the test bed.

Only canary pods carry ``canaryflow.dev/track``; stable pods get no track label at all, which
the stable selector (``track!="canary"``) expects: stable is never restarted to be measured.
"""

from __future__ import annotations

import re

from canaryflow.kubernetes.canary_objects import TRACK_LABEL, VERSION_LABEL


def meta_label(pod_label: str) -> str:
    """The discovery meta label of a pod label (Prometheus' ``strutil.SanitizeLabelName``)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)


def pod_relabelings(track_label: str = "track") -> list[dict[str, object]]:
    """Prometheus Operator ``relabelings`` (PodMonitor/ServiceMonitor endpoints)."""
    # app.kubernetes.io/name first, then app: a pod with both keeps app (regex (.+) skips an
    # absent label), one with only the recommended label is selected by it (the contract).
    copies = [
        ("app.kubernetes.io/name", "app"),
        ("app", "app"),
        (TRACK_LABEL, track_label),
        (VERSION_LABEL, VERSION_LABEL),
    ]
    rules: list[dict[str, object]] = [
        {
            "action": "replace",
            "sourceLabels": [meta_label(pod_label)],
            "targetLabel": target,
            "regex": "(.+)",
            "replacement": "$1",
        }
        for pod_label, target in copies
    ]
    rules += [
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_namespace"],
            "targetLabel": "namespace",
        },
        {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"},
    ]
    return rules


def relabel_configs(track_label: str = "track") -> list[dict[str, object]]:
    """The same rules as a plain Prometheus ``scrape_configs[].relabel_configs``."""
    snake = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return [{snake.get(k, k): v for k, v in rule.items()} for rule in pod_relabelings(track_label)]
