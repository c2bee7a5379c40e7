"""Per-request evidence: counters read look by look, and what a sequential gate says of them."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.catalogue import METRICS, Buckets
from canaryflow.analysis.evidence import (
    CounterDeltas,
    SequentialGate,
    cumulative_by_le,
    quantile_boundary,
    slow_and_all,
)
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.source import Sample


def counter(value: float, **labels: str) -> Sample:
    return Sample(labels, value)


def test_counter_increments_are_per_series_and_a_smaller_value_is_a_restart():
    deltas = CounterDeltas()
    deltas.start([counter(100, pod="a"), counter(50, pod="b")])
    step = deltas.advance([counter(110, pod="a"), counter(3, pod="b"), counter(2, pod="c")])
    assert [s.value for s in step] == [10, 3, 2]  # b restarted; c was born since
    assert [s.value for s in deltas.advance([counter(110, pod="a")])] == [0]


def test_the_boundary_is_the_bucket_where_stables_quantile_falls():
    buckets = {0.05: 80.0, 0.1: 96.0, 0.25: 99.5, math.inf: 100.0}
    assert quantile_boundary(buckets, 0.95) == 0.1
    assert quantile_boundary(buckets, 0.99) == 0.25
    assert quantile_boundary({0.05: 10.0, math.inf: 100.0}, 0.99) == 0.05  # overflow: last bound
    assert quantile_boundary({}, 0.99) is None
    assert slow_and_all(buckets, 0.1) == (4.0, 100.0)


def test_histogram_samples_are_summed_by_le():
    samples = [
        Sample({"le": "0.1", "path": "/"}, 5),
        Sample({"le": "0.1", "path": "/x"}, 2),
        Sample({"le": "+Inf", "path": "/"}, 9),
    ]
    assert cumulative_by_le(samples) == {0.1: 7, math.inf: 9}


def error_gate(min_exposure: float = 20) -> SequentialGate:
    return SequentialGate(
        "error-rate", METRICS["error-rate"].evidence["go"], 0.2, 0.01, min_exposure
    )


def look(canary: tuple[float, float], stable: tuple[float, float]) -> dict:
    def track(errors: float, requests: float) -> dict:
        return {
            "events": [counter(errors, code="500")] if errors else [],
            "exposure": [counter(requests - errors, code="200"), counter(errors, code="500")],
        }

    return {"canary": track(*canary), "stable": track(*stable)}


def test_a_young_canary_is_collecting_then_passes_once_it_served_enough():
    gate = error_gate(min_exposure=50)
    start = look((0, 0), (0, 0))
    assert gate.observe(look((0, 10), (0, 100)), baseline=start).outcome is Outcome.COLLECTING
    judgement = gate.observe(look((0, 60), (0, 600)))
    assert judgement.outcome is Outcome.PASS
    assert judgement.reason.startswith("error-rate: canary 0 of 60 vs stable 0 of 600")


def test_a_canary_failing_far_more_than_stable_fails_as_soon_as_the_evidence_allows():
    gate = error_gate()
    gate.observe(look((0, 0), (0, 0)), baseline=look((0, 0), (0, 0)))
    outcomes = []
    for second in range(1, 11):
        outcomes.append(gate.observe(look((second, 20 * second), (0, 180 * second))).outcome)
        if outcomes[-1] is Outcome.FAIL:
            break
    assert outcomes[-1] is Outcome.FAIL
    assert len(outcomes) <= 4, "a few failed requests at a 10 % split are enough"


def test_without_stable_traffic_a_comparison_is_inconclusive_by_rule_not_a_failure():
    gate = error_gate()
    gate.observe(look((0, 0), (0, 0)), baseline=look((0, 0), (0, 0)))
    judgement = gate.observe(look((30, 1000), (0, 0)))
    assert judgement.outcome is Outcome.NOT_APPLICABLE
    assert "inconclusive by rule" in judgement.reason


def test_a_metric_no_track_exports_is_not_applicable_once_named():
    gate = SequentialGate(
        "db-query-p99", Buckets("db_query_duration_seconds_bucket{x}", 0.99), 0.25, 0.01, 20
    )
    judgement = gate.observe({"canary": {"buckets": []}, "stable": {"buckets": []}})
    assert judgement.outcome is Outcome.NOT_APPLICABLE
    assert judgement.reason == "no series db_query_duration_seconds_bucket"


def test_a_p99_gate_needs_a_hundred_canary_requests_before_it_can_pass():
    gate = SequentialGate("p99", Buckets("h_bucket{x}", 0.99), 0.25, 0.01, 20)
    assert gate.required_exposure == 100


def test_a_histogram_gate_cuts_at_stables_quantile_from_before_the_window():
    gate = SequentialGate("latency-p95", METRICS["latency-p95"].evidence["go"], 0.25, 0.01, 20)

    def hist(fast: float, slow: float) -> list[Sample]:
        return [Sample({"le": "0.1"}, fast), Sample({"le": "+Inf"}, fast + slow)]

    reference = [Sample({"le": "0.1"}, 990), Sample({"le": "+Inf"}, 1000)]
    zero = {"canary": {"buckets": hist(0, 0)}, "stable": {"buckets": hist(0, 0)}}
    now = {"canary": {"buckets": hist(60, 40)}, "stable": {"buckets": hist(891, 9)}}
    judgement = gate.observe(now, baseline=zero, reference=reference)
    assert gate.boundary == 0.1
    assert judgement.outcome is Outcome.FAIL
    assert judgement.reason.startswith("latency-p95: canary 40 of 100 above 0.1 vs stable 9 of 900")


def test_a_cut_the_canarys_layout_lacks_moves_to_the_next_bound_both_have():
    gate = SequentialGate("latency-p95", METRICS["latency-p95"].evidence["go"], 0.25, 0.01, 20)

    def hist(counts: dict[str, float]) -> list[Sample]:
        return [Sample({"le": le}, n) for le, n in counts.items()]

    reference = hist({"0.05": 500, "0.1": 960, "0.25": 995, "+Inf": 1000})
    zero = {"canary": {"buckets": []}, "stable": {"buckets": []}}
    same = {"0.25": 99, "+Inf": 100}  # the canary's layout has no 0.05 and no 0.1
    now = {
        "canary": {"buckets": hist(same)},
        "stable": {"buckets": hist({"0.05": 450, "0.1": 860, "0.25": 891, "+Inf": 900})},
    }
    judgement = gate.observe(now, baseline=zero, reference=reference)
    assert judgement.outcome is not Outcome.FAIL, judgement.reason  # never "100 of 100 above"
    assert sorted(gate.tests) == [0.25], "both missing cuts move to the next common bound"
    assert judgement.reason.startswith("latency-p95: canary 1 of 100 above 0.25 vs stable 9 of 900")


def test_layouts_that_share_no_bound_are_not_comparable():
    gate = SequentialGate("latency-p95", METRICS["latency-p95"].evidence["go"], 0.25, 0.01, 20)
    reference = [Sample({"le": "0.1"}, 960), Sample({"le": "+Inf"}, 1000)]
    zero = {"canary": {"buckets": []}, "stable": {"buckets": []}}
    now = {
        "canary": {"buckets": [Sample({"le": "0.3"}, 90), Sample({"le": "+Inf"}, 100)]},
        "stable": {"buckets": [Sample({"le": "0.1"}, 860), Sample({"le": "+Inf"}, 900)]},
    }
    judgement = gate.observe(now, baseline=zero, reference=reference)
    assert judgement.outcome is Outcome.NOT_APPLICABLE
    assert "share no bucket bound" in judgement.reason


# Error control of a whole histogram gate: cuts chosen from stable's history, looked at often -----

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def _histogram(latencies: list[float]) -> list[Sample]:
    samples = [Sample({"le": f"{b:g}"}, float(sum(v <= b for v in latencies))) for b in BOUNDS]
    return [*samples, Sample({"le": "+Inf"}, float(len(latencies)))]


def _latency_stream(rng: random.Random, canary_factor: float, looks: int, alpha: float) -> bool:
    """True if a latency-p99 gate ever fails a canary whose latencies are stable's times factor."""
    gate = SequentialGate("latency-p99", METRICS["latency-p99"].evidence["go"], 0.25, alpha, 20)
    draw = lambda factor: 0.015 * factor * math.exp(0.5 * rng.gauss(0, 1))  # noqa: E731
    reference = _histogram([draw(1.0) for _ in range(2000)])
    seen = {"canary": [], "stable": []}
    empty = {"canary": {"buckets": _histogram([])}, "stable": {"buckets": _histogram([])}}
    gate.observe(empty, baseline=empty, reference=reference)
    for _ in range(looks):
        seen["canary"] += [draw(canary_factor) for _ in range(rng.randint(5, 25))]
        seen["stable"] += [draw(1.0) for _ in range(rng.randint(50, 150))]
        now = {t: {"buckets": _histogram(v)} for t, v in seen.items()}
        if gate.observe(now).outcome is Outcome.FAIL:
            return True
    return False


@pytest.mark.judgement
def test_a_histogram_gate_on_a_a_streams_rarely_fails_however_often_it_looks():
    rng = random.Random(5)
    alpha, runs = 0.05, 150
    alarms = sum(_latency_stream(rng, 1.0, 30, alpha) for _ in range(runs))
    assert alarms / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs), alarms


def test_a_histogram_gate_catches_everything_30_percent_slower():
    rng = random.Random(6)
    caught = sum(_latency_stream(rng, 1.3, 60, 0.01) for _ in range(20))
    assert caught >= 18


def test_a_histogram_gate_without_any_stable_traffic_is_inconclusive_by_rule():
    gate = SequentialGate("latency-p99", METRICS["latency-p99"].evidence["go"], 0.25, 0.01, 20)
    empty = {"canary": {"buckets": _histogram([])}, "stable": {"buckets": _histogram([])}}
    gate.observe(empty, baseline=empty, reference=[])
    served = {"canary": {"buckets": _histogram([0.02] * 50)}, "stable": {"buckets": _histogram([])}}
    judgement = gate.observe(served)
    assert judgement.outcome is Outcome.NOT_APPLICABLE
    assert "inconclusive by rule" in judgement.reason


def test_a_series_only_stable_has_is_collecting_early_in_a_window_then_not_comparable():
    gate = SequentialGate(
        "error-rate", METRICS["error-rate"].evidence["go"], 0.2, 0.01, 20, grace_s=5
    )
    stable_only = {"canary": {"exposure": []}, "stable": {"exposure": [counter(500)]}}
    assert gate.observe(stable_only, elapsed=2).outcome is Outcome.COLLECTING
    late = gate.observe(stable_only, elapsed=6)
    assert late.outcome is Outcome.NOT_APPLICABLE, "reported, never a rollback by itself"
    assert late.reason == "no canary data: http_requests_total has series for stable only"


# Promotion needs positive evidence ------------------------------------------------------------

looks = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 300), st.integers(0, 300)),
    min_size=1,
    max_size=8,
)


def counts_gate(minimum: int) -> SequentialGate:
    return SequentialGate("error-rate", METRICS["error-rate"].evidence["go"], 0.2, 0.01, minimum)


def feed(gate: SequentialGate, steps) -> list:
    """Feed cumulative counters built from per-look (canary events, exposure, stable ...)."""
    totals = [0, 0, 0, 0]
    start = {
        track: {"events": [counter(0, code="500")], "exposure": [counter(0, code="200")]}
        for track in ("canary", "stable")
    }
    outcomes = []
    for ce, cx, se, sx in steps:
        totals = [totals[0] + min(ce, cx), totals[1] + cx, totals[2] + min(se, sx), totals[3] + sx]
        now = {
            "canary": {
                "events": [counter(totals[0], code="500")],
                "exposure": [counter(totals[1], code="200")],
            },
            "stable": {
                "events": [counter(totals[2], code="500")],
                "exposure": [counter(totals[3], code="200")],
            },
        }
        outcomes.append((gate.observe(now, start).outcome, totals[1]))
    return outcomes


@given(looks, st.integers(0, 200))
def test_a_sequential_gate_passes_only_with_the_minimum_of_canary_requests(steps, minimum):
    for outcome, canary_requests in feed(counts_gate(minimum), steps):
        if outcome is Outcome.PASS:
            assert canary_requests >= max(1, minimum), "not merely 'not yet shown bad'"


def test_no_canary_request_at_all_is_never_a_pass_even_without_a_minimum():
    [(outcome, _)] = feed(counts_gate(0), [(0, 0, 0, 500)])
    assert outcome is Outcome.COLLECTING


@given(
    scrape=st.floats(1.0, 120.0),
    phase=st.floats(0.0, 0.999),
    look=st.floats(1_700_000_000.0, 1_700_001_000.0),
)
def test_every_pod_has_a_stored_sample_after_the_common_instant_at_the_look(scrape, phase, look):
    """A look reads every pod at ``T = look - lag`` and ``T + scrape``. A pod scraped every
    ``scrape`` at any phase has its first sample after ``T`` by ``T + scrape``; the lag leaves
    ``INGESTION_MARGIN_S`` (at most a scrape) more for it to be stored before the look, so the
    interpolation has a sample on both sides of ``T`` -- with one scrape of lag, not two."""
    from canaryflow.analysis.catalogue import Counts
    from canaryflow.analysis.evidence import INGESTION_MARGIN_S, SequentialGate

    gate = SequentialGate("g", Counts("e{}", "n{}"), 0.2, 0.01, 1, scrape_s=scrape)
    gate.start_at(look - 2000.0)
    selectors = {(t, r): f"{r}{{}}" for t in ("canary", "stable") for r in ("events", "exposure")}
    reads = gate.plan(selectors, look)
    instant = gate.planned_at
    margin = min(scrape, INGESTION_MARGIN_S)
    assert gate.lag_s == scrape + margin
    assert max(read.at for read in reads.values() if not read.series) <= look - margin + 1e-6
    offset = phase * scrape
    after = offset + scrape * (math.floor((instant - offset) / scrape) + 1)
    assert instant < after <= instant + scrape + 1e-6
    assert after + margin <= look + 1e-6, "stored by the look"
