"""``validate`` warns when a plan's windows cannot give its gates the data they need."""

from __future__ import annotations

from canaryflow.cli import main
from canaryflow.plan.load import plan_from_dict
from canaryflow.plan.maturity import maturity_warnings, required_requests


def plan(**analysis):
    return plan_from_dict(
        {
            "service": {"name": "checkout"},
            "steps": [{"weight": 10, "duration": "5s"}, {"weight": 100, "duration": "10s"}],
            "analysis": {"interval": "1s", **analysis},
            "local": {"load": {"rate": 50}},
        }
    )


def test_a_p99_gate_needs_a_hundred_canary_requests():
    assert required_requests(plan(gates=[{"metric": "latency-p99"}])) == (100, "latency-p99")
    assert required_requests(plan(gates=[{"metric": "error-rate"}])) == (20, "minCanaryRequests")


def test_a_short_low_weight_window_under_little_load_is_warned_about():
    [short, *_] = maturity_warnings(plan(gates=[{"metric": "latency-p99"}]))
    assert short.startswith("steps[0]: at 10% of 50 requests/s the canary serves about 25")
    assert "latency-p99 needs 100 before it can pass" in short


def test_a_100_percent_step_only_comparisons_could_judge_is_warned_about():
    warnings = maturity_warnings(plan(gates=[{"metric": "error-rate"}]))
    assert any(w.startswith("steps[1]: at 100% stable serves nothing") for w in warnings)
    with_logs = plan(gates=[{"metric": "error-rate"}, {"metric": "log-errors"}])
    assert not any(w.startswith("steps[1]") for w in maturity_warnings(with_logs))


def test_the_default_plan_gets_no_warning():
    assert maturity_warnings(plan_from_dict({"service": {"name": "checkout"}})) == []


def test_validate_prints_the_warnings_and_still_exits_0(tmp_path, capsys):
    path = tmp_path / "plan.yaml"
    path.write_text(
        "service: {name: checkout}\n"
        "steps: [{weight: 10, duration: 5s}]\n"
        "analysis: {interval: 10s}\n"
    )
    assert main(["validate", str(path), "--offline"]) == 0
    err = capsys.readouterr().err
    assert "warning: steps[0]: its 5s window is shorter than analysis.interval 10s" in err
