"""The chart's own monitoring: the PrometheusRule's alerts in real promtool, the dashboard's
queries evaluated by promtool's PromQL engine on synthetic series, and the Pushgateway URL
reaching every task pod.

``promtool test rules`` runs Prometheus' own rule evaluation over series written in its
``input_series`` notation; ``time()`` is the evaluation time from the test's start (0).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_validation import objects, of_kind

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool")
RULES_ON = {"monitoring": {"prometheusRule": {"enabled": True}}}
SHOP = 'job="canaryflow",instance="",namespace="shop",service="checkout"'
CART = 'job="canaryflow",instance="",namespace="shop",service="cart"'


def rule_groups(values: dict) -> dict:
    (rule,) = of_kind(objects(values), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    return {"groups": rule["spec"]["groups"]}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_no_prometheus_rule_unless_enabled():
    assert of_kind(objects(), "PrometheusRule") == []


@needs_promtool
def test_the_rendered_rules_load_in_promtool(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups(RULES_ON)))
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout


def _alert_test(tmp_path: Path, values: dict, series: list, alerts: list) -> str:
    """promtool's own rule test: fails unless exactly ``alerts`` fire; returns its report."""
    groups = rule_groups(values)
    annotations = {r["alert"]: r["annotations"] for g in groups["groups"] for r in g["rules"]}
    for alert in alerts:
        for expected in alert["exp_alerts"]:
            labels, value = expected["exp_labels"], expected.pop("value", "")
            expected["exp_annotations"] = {
                key: text.replace("{{ $labels.namespace }}", labels["namespace"])
                .replace("{{ $labels.service }}", labels["service"])
                .replace("{{ $value }}", str(value))
                for key, text in annotations[alert["alertname"]].items()
            }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": alerts}],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _fired(
    name: str, at: str, *services: str, severity: str = "warning", value: float | str = ""
) -> dict:
    """The alerts expected at ``at``; their annotations are the rule's, filled in."""
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [
            {
                "exp_labels": {"namespace": "shop", "service": s, "severity": severity},
                "value": value,
            }
            for s in services
        ],
    }


@needs_promtool
def test_a_release_that_stops_reporting_is_stuck_and_one_that_reports_is_not(tmp_path):
    values = {"monitoring": {"prometheusRule": {"enabled": True, "stuckAfterSeconds": 1800}}}
    series = [
        # checkout: progressing, last report at t=0 and never again.
        {"series": f'canaryflow_release_phase{{{SHOP},phase="progressing"}}', "values": "1x90"},
        {"series": f"canaryflow_release_last_update_timestamp_seconds{{{SHOP}}}", "values": "0x90"},
        # cart: progressing too, but a pod reports every minute.
        {"series": f'canaryflow_release_phase{{{CART},phase="progressing"}}', "values": "1x90"},
        {
            "series": f"canaryflow_release_last_update_timestamp_seconds{{{CART}}}",
            "values": "0+60x90",
        },
    ]
    _alert_test(
        tmp_path,
        values,
        series,
        [
            _fired("CanaryflowReleaseStuck", "20m"),
            _fired("CanaryflowReleaseStuck", "40m", "checkout"),
        ],
    )


@needs_promtool
def test_an_incomplete_rollback_alerts_three_ways(tmp_path):
    three = 'job="canaryflow",instance="",namespace="shop",service="search"'
    series = [
        # checkout: rolling back since t=0, no pod reported after.
        {"series": f'canaryflow_release_phase{{{SHOP},phase="rolling-back"}}', "values": "1x30"},
        {"series": f"canaryflow_release_last_update_timestamp_seconds{{{SHOP}}}", "values": "0x30"},
        # cart: says rolled back, yet 10 % of traffic still on the canary.
        {"series": f'canaryflow_release_phase{{{CART},phase="rolled-back"}}', "values": "1x30"},
        {
            "series": f"canaryflow_release_last_update_timestamp_seconds{{{CART}}}",
            "values": "0+60x30",
        },
        {"series": f"canaryflow_release_weight{{{CART}}}", "values": "10x30"},
        # search: a failing window detected at t=60, no rollback finished since (last at t=0).
        {"series": f"canaryflow_release_detection_timestamp_seconds{{{three}}}", "values": "60x30"},
        {"series": f"canaryflow_release_rollback_timestamp_seconds{{{three}}}", "values": "0x30"},
    ]
    _alert_test(
        tmp_path,
        RULES_ON,
        series,
        [
            _fired("CanaryflowRollbackIncomplete", "5m", "cart", severity="critical"),
            _fired(
                "CanaryflowRollbackIncomplete",
                "15m",
                "cart",
                "checkout",
                "search",
                severity="critical",
            ),
        ],
    )


@needs_promtool
def test_a_rollback_that_finished_after_the_detection_clears_it(tmp_path):
    series = [
        {"series": f"canaryflow_release_detection_timestamp_seconds{{{SHOP}}}", "values": "60x30"},
        {"series": f"canaryflow_release_rollback_timestamp_seconds{{{SHOP}}}", "values": "90x30"},
        {"series": f'canaryflow_release_phase{{{SHOP},phase="rolled-back"}}', "values": "1x30"},
        {"series": f"canaryflow_release_weight{{{SHOP}}}", "values": "0x30"},
    ]
    # no label set given: promtool checks that CanaryflowRollbackIncomplete is NOT firing
    report = _alert_test(
        tmp_path, RULES_ON, series, [_fired("CanaryflowRollbackIncomplete", "20m")]
    )
    assert "SUCCESS" in report


@needs_promtool
def test_repeated_rollbacks_count_those_inside_the_window(tmp_path):
    values = {
        "monitoring": {
            "prometheusRule": {
                "enabled": True,
                "repeatedRollbacks": 2,
                "repeatedRollbacksWindowSeconds": 3600,
            }
        }
    }
    # checkout: first rollback ever at t=10m (600 s), second at t=30m (1800 s).
    # cart: one rollback at t=10m only.
    series = [
        {
            "series": f"canaryflow_release_rollback_timestamp_seconds{{{SHOP}}}",
            "values": "_x10 600x19 1800x100",
        },
        {
            "series": f"canaryflow_release_rollback_timestamp_seconds{{{CART}}}",
            "values": "_x10 600x120",
        },
    ]
    _alert_test(
        tmp_path,
        values,
        series,
        [
            _fired("CanaryflowRepeatedRollbacks", "20m"),
            _fired("CanaryflowRepeatedRollbacks", "35m", "checkout", value=2),
            # 1 h after the first rollback it leaves the window: one left, no alert.
            _fired("CanaryflowRepeatedRollbacks", "75m"),
        ],
    )


def _board(values: dict | None = None) -> dict:
    (config,) = [
        c
        for c in of_kind(objects(values), "ConfigMap")
        if c["metadata"]["name"].endswith("-dashboard")
    ]
    return json.loads(config["data"]["canaryflow.json"])


def test_the_dashboard_takes_the_track_label_from_the_values():
    board = _board({"monitoring": {"podMonitor": {"trackLabel": "rollout_track"}}})
    (variable,) = [v for v in board["templating"]["list"] if v["name"] == "track_label"]
    assert variable["query"] == "rollout_track"
    assert "__canaryflow" not in json.dumps(board)


def test_the_dashboards_weight_is_the_pushed_value_not_an_annotation_metric():
    for flavour in ("go", "istio"):
        board = _board({"dashboard": {"metrics": flavour}})
        text = json.dumps(board)
        assert "kube_deployment_annotations" not in text
        (weight,) = [p for p in board["panels"] if p["title"] == "Canary weight (configured)"]
        assert "canaryflow_release_weight{" in weight["targets"][0]["expr"]


def test_cadvisor_series_are_selected_by_pod_name_never_by_app_or_track():
    board = _board()
    (panel,) = [p for p in board["panels"] if p["title"] == "cpu-throttling"]
    for target in panel["targets"]:
        for selector in target["expr"].split("container_")[1:]:
            matchers = selector.split("}")[0]
            assert "app=" not in matchers and "$track_label" not in matchers
            assert "pod=~" in matchers


def _grafana(expr: str) -> str:
    return (
        expr.replace("$namespace", "shop")
        .replace("$service", "checkout")
        .replace("$__rate_interval", "2m")
        .replace("$track_label", "track")
    )


@needs_promtool
def test_the_dashboards_queries_answer_from_cadvisor_and_pushed_series(tmp_path):
    board = _board()
    panels = {p["title"]: p for p in board["panels"]}
    canary, stable = (_grafana(t["expr"]) for t in panels["cpu-throttling"]["targets"])
    weight = _grafana(panels["Canary weight (configured)"]["targets"][0]["expr"])
    phase = _grafana(board["annotations"]["list"][0]["expr"])
    kubelet = 'job="kubelet",namespace="shop",container="app"'
    canary_pod, stable_pod = "checkout-canary-7d4b9c-x2x9z", "checkout-5f6d7c-abcde"
    series = [
        # cAdvisor: 10 periods/s each; the canary throttled in half of them, stable never.
        {
            "series": f'container_cpu_cfs_periods_total{{{kubelet},pod="{canary_pod}"}}',
            "values": "0+600x10",
        },
        {
            "series": f'container_cpu_cfs_throttled_periods_total{{{kubelet},pod="{canary_pod}"}}',
            "values": "0+300x10",
        },
        {
            "series": f'container_cpu_cfs_periods_total{{{kubelet},pod="{stable_pod}"}}',
            "values": "0+600x10",
        },
        {"series": f"canaryflow_release_weight{{{SHOP}}}", "values": "5x4 25x5"},
        {"series": f'canaryflow_release_phase{{{SHOP},phase="progressing"}}', "values": "0x4 1x5"},
        {"series": f'canaryflow_release_phase{{{SHOP},phase="deploying"}}', "values": "1x4 0x5"},
    ]
    tests = [
        {"expr": canary, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 0.5}]},
        {"expr": stable, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 0}]},
        {"expr": weight, "eval_time": "6m", "exp_samples": [{"labels": "{}", "value": 25}]},
        {
            "expr": phase,
            "eval_time": "5m",
            "exp_samples": [
                {
                    "labels": f'canaryflow_release_phase{{{SHOP},phase="progressing"}}',
                    "value": 1,
                }
            ],
        },
        {"expr": phase, "eval_time": "9m", "exp_samples": []},
    ]
    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("engine", ["argo", "tekton"])
def test_the_pushgateway_url_reaches_every_task_container(engine):
    url = "http://pushgateway.monitoring:9091"
    values = {"engine": engine, "monitoring": {"pushgateway": {"url": url}}}
    kinds = {"argo": "WorkflowTemplate", "tekton": "Task"}
    rendered = of_kind(objects(values), kinds[engine])
    containers = []
    for obj in rendered:
        if engine == "argo":
            containers += [t["container"] for t in obj["spec"]["templates"] if "container" in t]
        else:
            containers += obj["spec"]["steps"]
    assert containers
    for container in containers:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("CANARYFLOW_PUSHGATEWAY_URL") == url, container.get("name")
    plain = of_kind(objects({"engine": engine}), kinds[engine])
    assert "CANARYFLOW_PUSHGATEWAY_URL" not in json.dumps(plain)
