"""``canaryflow analyze`` against the real Prometheus of prom_fixtures, and the log file source."""

from __future__ import annotations

import json
import math
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
    # No extension (maxExtension's own tests are in test_analysis_run): inconclusive at once.
    plan.write_text(
        plan.read_text().replace("  interval: 1s", "  interval: 1s\n  maxExtension: 0s")
    )
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


def carried_plan(tmp_path, url: str) -> object:
    """Three steps (the last at 100 %), two sequential gates: one the service exports."""
    path = tmp_path / "carried.yaml"
    path.write_text(
        f"""
service: {{name: cacheless, namespace: {NAMESPACE}}}
steps:
  - {{weight: 10, duration: 5s}}
  - {{weight: 50, duration: 5s}}
  - {{weight: 100, duration: 2s}}
analysis:
  prometheus: {{url: "{url}"}}
  interval: 1s
  queryWindow: 4s
  scrapeInterval: 1s
  warmup: 1s  # one scrape, not the default one scrape + 30 s: these tests are about evidence
  # Judged against stable, as they would be anyway: this Prometheus scrapes no fresh baseline,
  # and step 0's pod would first wait a scrape + 30 s for one.
  baseline: stable
  alpha: 0.01
  gates:
    - metric: error-rate
    - metric: cache-miss-rate
"""
    )
    return path


def analyze_step(plan, step: int, evidence, capsys) -> tuple[int, dict]:
    argv = ["analyze", "--plan", str(plan), "--step", str(step), "--json"]
    code = main([*argv, "--evidence-file", str(evidence)])
    return code, json.loads(capsys.readouterr().out)


def last_detail(report: dict, gate: str) -> dict:
    judged = [m for m in report["measurements"] if m["gate"] == gate and m["evidence"]["detail"]]
    return judged[-1]["evidence"]["detail"]


def test_analyze_pods_go_on_with_one_test_per_gate_across_steps(tmp_path, prometheus, capsys):  # noqa: F811
    plan, evidence = carried_plan(tmp_path, prometheus.url), tmp_path / "evidence.json"

    code, first = analyze_step(plan, 0, evidence, capsys)
    assert code == 0, first["reason"]
    assert first["evidence"]["resumedFrom"] is None and first["evidence"]["written"]
    written = json.loads(evidence.read_text())
    assert written["step"] == 0 and written["exported"] == ["error-rate"]

    code, second = analyze_step(plan, 1, evidence, capsys)
    assert code == 0, second["reason"]
    assert second["evidence"]["resumedFrom"] == 0
    before, after = last_detail(first, "error-rate"), last_detail(second, "error-rate")
    # One test: the second window's counts start where the first's ended ...
    assert after["canary_exposure"] > before["canary_exposure"] > 0
    assert after["stable_exposure"] > before["stable_exposure"] > 0
    # ... and it is judged at the gate's whole alpha: cache-miss-rate (not exported) takes
    # none, and alpha is not split over the steps.
    assert after["log_threshold"] == before["log_threshold"] == round(math.log(1 / 0.01), 3)
    assert json.loads(evidence.read_text())["step"] == 1


def test_a_tampered_evidence_state_ends_the_window_as_an_error_before_measuring(
    tmp_path,
    prometheus,  # noqa: F811
    capsys,
):
    plan, evidence = carried_plan(tmp_path, prometheus.url), tmp_path / "evidence.json"
    assert analyze_step(plan, 0, evidence, capsys)[0] == 0
    state = json.loads(evidence.read_text())
    state["gates"]["error-rate"]["tests"][0]["log_ratios"] = [-50.0] * 8  # "looks good"
    evidence.write_text(json.dumps(state))

    code, report = analyze_step(plan, 1, evidence, capsys)
    assert code == 1
    assert report["outcome"] == "error" and report["measurements"] == []
    assert "checksum does not match" in report["reason"]
    assert json.loads(evidence.read_text()) == state, "a refused state is left for inspection"


def test_a_missing_evidence_state_after_the_first_step_starts_afresh_and_says_so(
    tmp_path,
    prometheus,  # noqa: F811
    capsys,
):
    plan, evidence = carried_plan(tmp_path, prometheus.url), tmp_path / "evidence.json"
    code, report = analyze_step(plan, 1, evidence, capsys)
    assert code == 0, report["reason"]
    assert "no evidence carried from the earlier steps was found" in report["reason"]
    # Two steps can judge (10 %, 50 %; not the 100 % step): each fresh test gets half.
    assert report["evidence"]["alphaSplit"] == 2
    assert last_detail(report, "error-rate")["log_threshold"] == round(math.log(2 / 0.01), 3)
    assert json.loads(evidence.read_text())["restarted_at"] == 1


def test_carrying_evidence_needs_the_step(tmp_path, capsys):
    plan = carried_plan(tmp_path, "http://127.0.0.1:9")
    argv = ["analyze", "--plan", str(plan), "--evidence-file", str(tmp_path / "e.json")]
    assert main(argv) == 2
    assert "--evidence-file: needs --step" in capsys.readouterr().err
