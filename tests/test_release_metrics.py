"""Release pods report ``canaryflow_release_*`` to a real Prometheus Pushgateway.

The gateway is Debian's ``prometheus-pushgateway`` (the upstream binary): it parses every push
with Prometheus' own text parser and answers 400 to anything malformed, so a push it accepts
and shows again under ``/metrics`` is text Prometheus reads. ``promtool check metrics`` lints
the same text. The verbs run as the task pods run them, against the fake API server.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kube.fixtures import CANARY_IMAGE, NAMESPACE, SERVICE, write_kubeconfig

from canaryflow.cli import main
from canaryflow.commands.release_metrics import ENV
from canaryflow.local.process import LOOPBACK, ProcessGroup, free_port, wait_http_ok
from canaryflow.telemetry import exposition as metrics
from canaryflow.telemetry.pushgateway import group_path

PUSHGATEWAY = shutil.which("prometheus-pushgateway")
needs_gateway = pytest.mark.skipif(
    PUSHGATEWAY is None, reason="Debian's prometheus-pushgateway is not installed (make setup)"
)
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, prefix: str = "canaryflow_release_") -> dict[tuple, float]:
    """``{(name, ((label, value), ...)): value}`` of the gateway's /metrics, our families only."""
    found = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None or not match["name"].startswith(prefix):
            continue
        labels = tuple(sorted(LABEL.findall(match["labels"] or "")))
        found[(match["name"], labels)] = float(match["value"])
    return found


def value(found: dict, name: str, **labels: str) -> float | None:
    # The gateway adds instance="" to every pushed series (its grouping key has none).
    wanted = {"job": "canaryflow", "instance": "", "namespace": NAMESPACE, "service": SERVICE}
    wanted.update(labels)
    for (found_name, found_labels), number in found.items():
        if found_name == name and dict(found_labels) == wanted:
            return number
    return None


@pytest.fixture
def gateway(tmp_path):
    """A Pushgateway on 127.0.0.1, stopped by PID when the test ends."""
    port = free_port()
    with ProcessGroup(tmp_path) as group:
        process = group.start(
            "pushgateway",
            [
                PUSHGATEWAY,
                f"--web.listen-address={LOOPBACK}:{port}",
                f"--persistence.file={tmp_path / 'pushgateway.data'}",
            ],
        )
        url = f"http://{LOOPBACK}:{port}"
        wait_http_ok(f"{url}/-/ready", 20, process)
        yield url


def scrape(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        return samples(response.read().decode())


@pytest.fixture
def kubeconfig(tmp_path, cluster):
    return write_kubeconfig(tmp_path / "kubeconfig", cluster.url)


def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    plan = {
        "service": {"name": SERVICE, "namespace": NAMESPACE, "healthTimeout": "5s"},
        "router": {"kind": "istio", "drain": "0s"},
    }
    path.write_text(yaml.safe_dump(plan))
    return path


def verb(name, plan, kubeconfig, *extra):
    return main([name, "--plan", str(plan), "--kubeconfig", str(kubeconfig), *extra])


@needs_gateway
def test_each_verb_reports_the_phase_and_the_weight_it_left(
    tmp_path, cluster, kubeconfig, gateway, monkeypatch
):
    monkeypatch.setenv(ENV, gateway)
    plan = plan_file(tmp_path)
    artifact = ["--image", CANARY_IMAGE, "--version", "v2"]
    assert verb("deploy-canary", plan, kubeconfig, *artifact) == 0
    assert value(scrape(gateway), "canaryflow_release_phase", phase="deploying") == 1
    assert verb("health-gate", plan, kubeconfig) == 0
    assert verb("set-weight", plan, kubeconfig, "--weight", "25") == 0
    found = scrape(gateway)
    assert value(found, "canaryflow_release_weight") == 25
    assert value(found, "canaryflow_release_phase", phase="progressing") == 1
    assert value(found, "canaryflow_release_phase", phase="deploying") == 0, "one-hot"
    assert verb("rollback", plan, kubeconfig, "--reason", "error-rate") == 0
    found = scrape(gateway)
    assert value(found, "canaryflow_release_phase", phase="rolled-back") == 1
    assert value(found, "canaryflow_release_weight") == 0
    rolled_back_at = value(found, "canaryflow_release_rollback_timestamp_seconds")
    updated_at = value(found, "canaryflow_release_last_update_timestamp_seconds")
    assert rolled_back_at is not None and updated_at is not None
    assert updated_at >= rolled_back_at


@needs_gateway
def test_pushes_of_different_verbs_keep_each_others_families(gateway, monkeypatch):
    """POST, not PUT: the gate verdicts analyze pushed survive set-weight's later push."""
    from canaryflow.commands.release_metrics import report
    from canaryflow.plan.load import plan_from_dict

    monkeypatch.setenv(ENV, gateway)
    plan = plan_from_dict({"service": {"name": SERVICE, "namespace": NAMESPACE}})
    assert report(plan, metrics.gate_verdicts({"error-rate": "fail", "latency-p95": "pass"}))
    assert report(plan, metrics.phase("progressing"), metrics.weight(10))
    found = scrape(gateway)
    assert value(found, "canaryflow_release_gate_verdict", gate="error-rate", verdict="fail") == 1
    assert value(found, "canaryflow_release_gate_verdict", gate="latency-p95", verdict="pass") == 1
    assert value(found, "canaryflow_release_weight") == 10
    other = plan_from_dict({"service": {"name": "payments", "namespace": NAMESPACE}})
    assert report(other, metrics.weight(50))
    assert value(scrape(gateway), "canaryflow_release_weight") == 10, "groups are per service"


@needs_gateway
def test_analyze_reports_verdicts_detection_and_detection_to_safe(gateway, monkeypatch):
    from canaryflow.analysis.measurement import Outcome
    from canaryflow.analysis.verdict import GateVerdict, WindowVerdict
    from canaryflow.commands import analyze
    from canaryflow.plan.load import plan_from_dict

    monkeypatch.setenv(ENV, gateway)
    plan = plan_from_dict({"service": {"name": SERVICE, "namespace": NAMESPACE}})
    gates = (
        GateVerdict("error-rate", Outcome.FAIL, "5% > 1%", True),
        GateVerdict("latency-p95", Outcome.PASS, "", False),
    )

    class Result:
        verdict = WindowVerdict(Outcome.FAIL, True, "error-rate failed", gates)

    analyze._report_metrics(plan, Result(), True, {"verified": True, "seconds": 1.5})
    found = scrape(gateway)
    assert value(found, "canaryflow_release_gate_verdict", gate="error-rate", verdict="fail") == 1
    assert value(found, "canaryflow_release_detection_to_safe_seconds") == 1.5
    assert value(found, "canaryflow_release_detection_timestamp_seconds") is not None
    assert value(found, "canaryflow_release_weight") == 0


def test_an_unreachable_gateway_is_a_warning_and_the_step_still_succeeds(
    tmp_path, cluster, kubeconfig, monkeypatch, capsys
):
    monkeypatch.setenv(ENV, f"http://{LOOPBACK}:{free_port()}")
    assert verb("rollback", plan_file(tmp_path), kubeconfig) == 0
    err = capsys.readouterr().err
    assert "warning: release metrics not pushed: monitoring.pushgateway.url: Pushgateway" in err
    assert "Connection refused" in err


def test_without_a_gateway_configured_nothing_is_pushed(monkeypatch):
    from canaryflow.commands.release_metrics import report
    from canaryflow.plan.load import plan_from_dict

    monkeypatch.delenv(ENV, raising=False)
    plan = plan_from_dict({"service": {"name": SERVICE, "namespace": NAMESPACE}})
    assert report(plan, metrics.weight(5)) is False


def test_only_http_urls_are_pushed_to(monkeypatch, capsys):
    from canaryflow.commands.release_metrics import report
    from canaryflow.plan.load import plan_from_dict

    monkeypatch.setenv(ENV, "file:///etc/passwd")
    plan = plan_from_dict({"service": {"name": SERVICE, "namespace": NAMESPACE}})
    assert report(plan, metrics.weight(5)) is False
    assert "not an http(s) URL" in capsys.readouterr().err


def test_grouping_values_with_a_slash_or_empty_are_base64url_as_the_gateway_documents():
    assert group_path({"namespace": "shop", "service": "checkout"}) == (
        "/metrics/job/canaryflow/namespace/shop/service/checkout"
    )
    assert group_path({"service": "a/b"}) == "/metrics/job/canaryflow/service@base64/YS9i"
    assert group_path({"service": ""}) == "/metrics/job/canaryflow/service@base64/="


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_exposition_passes_promtools_metric_lint():
    text = metrics.exposition(
        [
            metrics.phase("progressing"),
            metrics.weight(5),
            metrics.gate_verdicts({"error-rate": 'we"ird\\gate\n'}),
            metrics.detection_to_safe(0.75),
            metrics.rollback_timestamp(1.7e9),
            metrics.last_update(1.7e9),
        ]
    )
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout.strip() == "" and lint.stderr.strip() == ""


def test_an_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="unknown release phase"):
        metrics.phase("halfway")


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory):
    """One gateway for the property below (hypothesis runs many examples in one test)."""
    workdir = tmp_path_factory.mktemp("pushgateway")
    port = free_port()
    with ProcessGroup(workdir) as group:
        process = group.start(
            "pushgateway",
            [
                PUSHGATEWAY,
                f"--web.listen-address={LOOPBACK}:{port}",
                f"--persistence.file={workdir / 'pushgateway.data'}",
            ],
        )
        url = f"http://{LOOPBACK}:{port}"
        wait_http_ok(f"{url}/-/ready", 20, process)
        yield url


@needs_gateway
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    verdicts=st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.sampled_from(["pass", "fail", 'in"con\\clusive']),
        min_size=1,
        max_size=4,
    )
)
def test_any_gate_name_reaches_the_gateway_exactly_as_it_was(shared_gateway, verdicts, monkeypatch):
    """Label values with quotes, backslashes, newlines or any Unicode survive the escaping:
    the gateway's own parser reads back exactly the names that were pushed."""
    import json

    from canaryflow.commands.release_metrics import report
    from canaryflow.plan.load import plan_from_dict

    monkeypatch.setenv(ENV, shared_gateway)
    plan = plan_from_dict({"service": {"name": SERVICE, "namespace": NAMESPACE}})
    assert report(plan, metrics.gate_verdicts(verdicts))
    with urllib.request.urlopen(f"{shared_gateway}/api/v1/metrics", timeout=5) as response:
        groups = json.load(response)["data"]
    (group,) = [g for g in groups if g["labels"].get("service") == SERVICE]
    family = group["canaryflow_release_gate_verdict"]
    got = {m["labels"]["gate"]: m["labels"]["verdict"] for m in family["metrics"]}
    assert got == verdicts
