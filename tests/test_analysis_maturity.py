"""``validate`` warns when a plan's windows cannot give its gates the data they need."""

from __future__ import annotations

from canaryflow.cli import main
from canaryflow.plan.load import plan_from_dict
from canaryflow.plan.maturity import maturity_warnings, required_requests, traffic_needed


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
    """Comparisons judge a 100 % step only on the evidence carried from a step below 100 %."""
    first = plan_from_dict(
        {
            "service": {"name": "checkout"},
            "steps": [{"weight": 100, "duration": "10s"}],
            "analysis": {"gates": [{"metric": "error-rate"}, {"metric": "log-errors"}]},
        }
    )
    [warning] = maturity_warnings(first)
    assert warning.startswith("steps[0]: at 100% stable serves nothing")
    assert "no step below 100% before it has carried evidence to it" in warning
    carried = maturity_warnings(plan(gates=[{"metric": "error-rate"}]))
    assert not any(w.startswith("steps[1]") for w in carried)
    only_relative = plan(gates=[{"metric": "goroutines", "dryRun": False}])
    assert not any(w.startswith("steps[1]") for w in maturity_warnings(only_relative))


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


# The scrape interval and the traffic a plan needs ----------------------------------------------


def test_a_query_window_shorter_than_four_scrapes_is_warned_about_with_what_is_used():
    warnings = maturity_warnings(plan(queryWindow="30s", interval="15s"), scrape_interval=15)
    assert (
        "analysis.queryWindow: 30s spans fewer than 4 scrapes (every 15s), so queries use 60s"
        in warnings[0]
    )


def test_a_window_that_cannot_see_the_canary_scraped_twice_is_warned_about():
    short = plan(interval="30s", scrapeInterval="30s", maxExtension="0s", queryWindow="2m")
    warnings = maturity_warnings(short)
    assert any(w.startswith("steps[0]: its 5s window (+ maxExtension 0s) sees") for w in warnings)
    assert any(w.startswith("steps[1]: its 10s window") for w in warnings)
    assert not any("scraped fewer" in w for w in maturity_warnings(plan(scrapeInterval="1s")))


def test_an_interval_shorter_than_the_scrape_interval_is_warned_about():
    [warning, *_] = maturity_warnings(plan(interval="1s", queryWindow="1m"), scrape_interval=15)
    assert warning.startswith("analysis.interval: 1s is shorter than the scrape interval 15s")


def test_without_a_known_scrape_interval_nothing_is_assumed():
    assert not any("scrape" in w for w in maturity_warnings(plan()))


def test_validate_says_what_traffic_the_first_step_needs():
    # 20 requests at 10 % within 5 s + the default 60 s maxExtension: 20 / 65 / 0.1 = 3.1/s;
    # each 30 s query range needs 20 at 10 %: 6.7/s, the larger.
    needed = traffic_needed(plan(gates=[{"metric": "error-rate", "threshold": {"max": 0.01}}]))
    assert needed.startswith("steps[0] needs about 6.7 requests/s to the service: at 10%")
    assert "minCanaryRequests 20 in each 30s query range" in needed
    sequential = traffic_needed(plan(gates=[{"metric": "latency-p99"}]))
    assert sequential.startswith("steps[0] needs about 15 requests/s")  # 100 / 65 s / 0.1
    assert "latency-p99 needs 100 canary requests within 65s" in sequential


def test_validate_prints_the_traffic_a_plan_needs(tmp_path, capsys):
    path = tmp_path / "plan.yaml"
    path.write_text("service: {name: checkout}\n")
    assert main(["validate", str(path), "--offline"]) == 0
    err = capsys.readouterr().err
    assert "note: steps[0] needs about" in err
