"""``canaryflow analyze`` against the real Prometheus of prom_fixtures, and the log file source."""

from __future__ import annotations

import json
import re

import pytest
from prom_fixtures import NAMESPACE, fleet, prometheus  # noqa: F401 (fixtures)

from canaryflow.analysis.logfile import LogFileSource
from canaryflow.cli import main

pytestmark = pytest.mark.slow

PLAN = """
service: {{name: {service}, namespace: {namespace}}}
analysis:
  prometheus: {{url: "{url}"}}
  interval: 1s
  queryWindow: 4s
  gates:
    - metric: error-rate
      threshold: {{max: 0.01}}
{extra}
"""


def write_plan(tmp_path, url: str, service: str, extra: str = ""):
    path = tmp_path / "canaryflow.yaml"
    path.write_text(PLAN.format(service=service, namespace=NAMESPACE, url=url, extra=extra))
    return path


def test_a_failing_canary_prints_the_measurement_and_exits_1(tmp_path, prometheus, capsys):  # noqa: F811
    plan = write_plan(tmp_path, prometheus.url, "erroring")
    verdict = tmp_path / "outputs" / "verdict"
    argv = ["analyze", "--plan", str(plan), "--duration", "3s", "--verdict-file", str(verdict)]
    assert main(argv) == 1
    assert verdict.read_text() == "fail", "the workflow's verdict output parameter"
    out = capsys.readouterr().out
    assert "round 1   error-rate  FAIL" in out
    assert re.search(
        r"verdict: FAIL: error-rate: 1 failed \(failureLimit 0\): "
        r"canary error-rate [45](\.\d+)?% > 1%",
        out,
    )


def test_a_healthy_canary_exits_0_with_json_evidence(tmp_path, prometheus, capsys):  # noqa: F811
    plan = write_plan(tmp_path, prometheus.url, "erroring")
    argv = ["analyze", "--plan", str(plan), "--duration", "1s", "--service", "healthy", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "pass"
    [measurement] = result["measurements"]
    assert 'app="healthy"' in measurement["evidence"]["queries"]["canary"]


@pytest.mark.parametrize(("on_inconclusive", "code"), [("rollback", 1), ("hold", 0)])
def test_an_inconclusive_window_exits_as_the_plan_decides(
    tmp_path,
    prometheus,  # noqa: F811
    on_inconclusive,
    code,
):
    extra = f"rollback: {{onInconclusive: {on_inconclusive}}}"
    plan = write_plan(tmp_path, prometheus.url, "nobody-serves-this", "\n" + extra)
    verdict = tmp_path / "verdict"
    argv = ["analyze", "--plan", str(plan), "--duration", "1s", "--verdict-file", str(verdict)]

    assert main(argv) == code
    assert verdict.read_text() == "inconclusive", "held or not, the verdict is the same"


def test_promql_that_prometheus_rejects_is_an_input_error(tmp_path, prometheus, capsys):  # noqa: F811
    broken = (
        "    - name: broken\n      query: 'sum(rate(x[{{ window }}])'\n      threshold: {max: 1}"
    )
    plan = write_plan(tmp_path, prometheus.url, "healthy", extra=broken)
    assert main(["analyze", "--plan", str(plan), "--duration", "1s"]) == 2
    err = capsys.readouterr().err
    assert "analysis.gates[1].query: Prometheus rejects the canary query" in err
    assert "unclosed left parenthesis" in err


def test_bad_flags_exit_2_naming_the_flag(tmp_path, capsys):
    plan = write_plan(tmp_path, "http://127.0.0.1:9", "healthy")
    assert main(["analyze", "--plan", str(plan), "--duration", "soon"]) == 2
    assert "--duration: 'soon' is not a duration" in capsys.readouterr().err
    plan.write_text("service: {name: shop}\n")
    assert main(["analyze", "--plan", str(plan)]) == 2
    assert "--prometheus: no Prometheus to ask" in capsys.readouterr().err


def test_a_logs_gate_reads_the_canary_log_file(tmp_path, prometheus, capsys):  # noqa: F811
    log = tmp_path / "canary.log"
    log.write_text("old: connection refused\n")  # before the window: not counted
    logs = "    - metric: log-errors"
    plan = write_plan(tmp_path, prometheus.url, "healthy", extra=logs)
    argv = ["analyze", "--plan", str(plan), "--duration", "2s", "--canary-log", str(log)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "log-errors  NOT-APPLICABLE this platform provides no stable logs" in out, out
    stable = tmp_path / "stable.log"
    stable.write_text("old: connection refused\n")
    assert main([*argv, "--stable-log", str(stable)]) == 0
    assert "log-errors: canary 0 of " in capsys.readouterr().out


def test_the_log_file_source_returns_each_complete_line_once(tmp_path):
    log = tmp_path / "canary.log"
    log.write_text("before\n")
    source = LogFileSource(log)
    assert source.lines_since(0) == []
    with log.open("a") as out:
        out.write("one\ntwo\npart")
    assert source.lines_since(0) == ["one", "two"]
    with log.open("a") as out:
        out.write("ial\n")
    assert source.lines_since(0) == ["partial"]
    log.write_text("rotated\n")
    assert source.lines_since(0) == ["rotated"]
