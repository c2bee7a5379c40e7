"""The analysis loop with an in-memory metric source and a clock that never waits.

The source answers each rendered query from a table a test writes, so every round's numbers
are known; the clock records the sleeps, so the measurement schedule is checked exactly.
"""

from __future__ import annotations

import json
import threading

import pytest

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import MeasurementError
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.errors import InputError


class SteppingClock:
    """Unix time that moves only when the loop sleeps."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.start = self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds

    @property
    def elapsed(self) -> float:
        return self.time - self.start


class TableSource:
    """Answers a query from the first (substring, answer) row it contains; answers may be
    values, an exception to raise, or a function of the call count."""

    def __init__(self, rows: dict[str, object]):
        self.rows = rows
        self.calls: list[str] = []

    def _answer(self, query: str) -> list[float]:
        self.calls.append(query)
        for needle, answer in self.rows.items():
            if needle in query:
                if callable(answer):
                    answer = answer(self.calls.count(query))
                if isinstance(answer, Exception):
                    raise answer
                return list(answer)
        return []

    def instant(self, query: str) -> list[float]:
        return self._answer(query)

    def range(self, query: str, start: float, end: float, step: float) -> list[float]:
        return self._answer(query)


# Fixed limits: these tests are about the loop; sequential gates have their own tests.
ERROR_RATE = {"metric": "error-rate", "threshold": {"max": 0.01}}
LATENCY_P95 = {"metric": "latency-p95", "relative": {"maxRatio": 1.2, "floor": 0.05}}


def spec(**overrides) -> AnalysisSpec:
    data = {
        "interval": "10s",
        "queryWindow": "30s",
        "gates": [ERROR_RATE, LATENCY_P95],
        **overrides,
    }
    return AnalysisSpec.model_validate(data)


def healthy(**changes: object) -> dict[str, object]:
    """Rows for a healthy canary: enough traffic, 0.1 % errors, p95 like stable's."""
    rows: dict[str, object] = {
        "increase(http_requests_total": [600.0],
        'track="canary",code': [0.001],
        "0.95": [0.1],
    }
    rows.update(changes)
    return rows


def analysis(rows: dict[str, object], **kwargs) -> tuple[AnalysisRun, TableSource, SteppingClock]:
    source, clock = TableSource(rows), SteppingClock()
    run = AnalysisRun(kwargs.pop("spec", spec()), source, "shop", "prod", clock=clock, **kwargs)
    return run, source, clock


def test_a_healthy_window_measures_every_interval_and_passes():
    run, _, clock = analysis(healthy())
    result = run.window(60)
    assert result.verdict.outcome is Outcome.PASS
    assert clock.sleeps == [10.0] * 6
    assert {m.round for m in result.measurements} == {1, 2, 3, 4, 5, 6}
    assert result.verdict.reason == "all 2 gates passed"


def test_canary_and_stable_are_queried_with_the_same_template():
    run, _, _ = analysis(healthy())
    [_, p95] = run.measure(1, window_started=0)
    canary, stable = p95.evidence.queries["canary"], p95.evidence.queries["stable"]
    assert 'app="shop",namespace="prod",track="canary"' in canary
    assert canary.replace('track="canary"', 'track!="canary"') == stable
    assert "[30s]" in canary
    assert p95.evidence.limit == "≤ max(stable x 1.2, 0.05)"


def test_a_failure_ends_the_window_in_that_round():
    errors = {1: [0.001], 2: [0.08]}
    run, _, clock = analysis(healthy(**{'track="canary",code': lambda n: errors.get(n, [0.5])}))
    result = run.window(60)
    assert result.verdict.outcome is Outcome.FAIL
    assert result.verdict.decided_in_round == 2
    assert clock.elapsed == 20  # not 60: the window ended at the breach
    failing = [m for m in result.measurements if m.outcome is Outcome.FAIL]
    assert [m.reason for m in failing] == ["canary error-rate 8% > 1%"]


def test_a_last_partial_interval_is_measured_at_the_window_end():
    run, _, clock = analysis(healthy())
    run.window(25)
    assert clock.sleeps == [10.0, 10.0, 5.0]


def test_too_few_canary_requests_keep_every_gate_collecting_and_the_window_inconclusive():
    run, _, _ = analysis(healthy(**{"increase(http_requests_total": [3.0]}))
    result = run.window(30)
    assert result.verdict.outcome is Outcome.INCONCLUSIVE
    assert result.verdict.decided_in_round is None  # collecting never breaches a limit
    assert "window ended while still collecting data" in result.verdict.reason
    assert {m.outcome for m in result.measurements} == {Outcome.COLLECTING}
    assert result.measurements[0].reason == (
        "canary served 3 requests in the query window, need 20"
    )


def test_a_window_still_collecting_extends_itself_until_the_canary_has_enough_requests():
    traffic = {"increase(http_requests_total": lambda n: [5.0] if n <= 4 else [600.0]}
    run, _, clock = analysis(healthy(**traffic), spec=spec(maxExtension="60s"))
    result = run.window(30)
    assert result.verdict.outcome is Outcome.PASS, result.reason
    assert (clock.elapsed, result.extended_s) == (50, 20)
    assert result.to_dict()["extended_s"] == 20
    assert result.reason.endswith("(window extended by 20s while gates were still collecting)")


def test_a_window_still_collecting_after_its_extension_is_inconclusive():
    run, _, clock = analysis(healthy(**{"increase(http_requests_total": [3.0]}))
    result = run.window(30)
    assert result.verdict.outcome is Outcome.INCONCLUSIVE
    assert clock.elapsed == 30 + 60, "the default maxExtension, then no longer"
    assert result.extended_s == 60


def test_without_an_extension_a_window_ends_on_time():
    run, _, clock = analysis(
        healthy(**{"increase(http_requests_total": [3.0]}), spec=spec(maxExtension="0s")
    )
    assert run.window(30).verdict.outcome is Outcome.INCONCLUSIVE
    assert clock.elapsed == 30


def test_a_failing_or_missing_gate_is_never_extended():
    nan = {'track="canary",code': [float("nan")]}
    run, _, clock = analysis(healthy(**nan))
    assert run.window(30).verdict.outcome is Outcome.INCONCLUSIVE
    assert clock.elapsed == 30, "NaN is missing data: waiting longer does not make it a pass"


class ScrapedEvery(TableSource):
    """A source that knows how often the service is scraped (Prometheus' targets API)."""

    def __init__(self, rows, seconds):
        super().__init__(rows)
        self.seconds, self.asked = seconds, []

    def scrape_interval(self, labels):
        self.asked.append(dict(labels))
        return self.seconds


def test_every_range_spans_four_scrapes_of_the_discovered_interval():
    source, clock = ScrapedEvery(healthy(), 15.0), SteppingClock()
    run = AnalysisRun(spec(), source, "shop", "prod", clock=clock)
    [_, p95] = run.measure(1, window_started=clock.now())
    assert "[60s]" in p95.evidence.queries["canary"]
    assert source.asked == [{"app": "shop", "namespace": "prod"}]
    run.measure(2, window_started=clock.now())
    assert len(source.asked) == 1, "asked until known, then remembered"


def test_a_configured_scrape_interval_is_used_without_asking():
    source = ScrapedEvery(healthy(), 15.0)
    run = AnalysisRun(spec(scrapeInterval="5s"), source, "shop", "prod", clock=SteppingClock())
    [_, p95] = run.measure(1, window_started=0)
    assert "[30s]" in p95.evidence.queries["canary"]  # 4 x 5 s is below queryWindow
    assert source.asked == []


def test_an_unknown_scrape_interval_keeps_the_query_window():
    source = ScrapedEvery(healthy(), None)
    run = AnalysisRun(spec(), source, "shop", "prod", clock=SteppingClock())
    [_, p95] = run.measure(1, window_started=0)
    assert "[30s]" in p95.evidence.queries["canary"]


def test_a_metric_only_one_track_has_is_not_comparable_never_inconclusive():
    canary_p95 = 'bucket{ app="shop",namespace="prod",track="canary"'
    rows = {**healthy(), "0.95": []}
    run, _, _ = analysis({canary_p95: [0.1], **rows})
    result = run.window(60)
    p95 = [m for m in result.measurements if m.gate == "latency-p95"]
    assert {m.outcome for m in p95} == {Outcome.NOT_APPLICABLE}
    assert p95[0].reason.startswith("only the canary has series http_request_duration_seconds")
    assert result.verdict.outcome is Outcome.PASS, result.reason


def test_a_metric_the_young_canary_lacks_is_collecting_then_not_comparable():
    only_stable = {'track!="canary"': [0.1]}
    rows = {**{k: v for k, v in healthy().items() if k != "0.95"}, **only_stable}
    run, _, _ = analysis(rows)
    result = run.window(60)
    p95 = [m.outcome for m in result.measurements if m.gate == "latency-p95"]
    assert p95 == [Outcome.COLLECTING] * 2 + [Outcome.NOT_APPLICABLE] * 4  # 30 s queryWindow
    assert result.verdict.outcome is Outcome.PASS, result.reason


def test_a_source_outage_errors_until_the_limit_and_never_passes():
    down = MeasurementError("Prometheus at http://127.0.0.1:9: connection refused")
    run, _, clock = analysis({"": down})
    result = run.window(120)
    assert result.verdict.outcome is Outcome.ERROR
    assert result.verdict.decided_in_round == 3  # consecutiveErrorLimit 2: the third ends it
    assert clock.elapsed == 30
    assert "connection refused" in result.measurements[0].reason


def test_a_hanging_source_is_an_error_not_a_stuck_release():
    release = threading.Event()
    answered = threading.Event()

    def hang(_: int) -> list[float]:
        release.wait(10)
        answered.set()
        return [0.0]

    rows = healthy(**{"0.95": hang})
    run, _, _ = analysis(rows, call_timeout=0.2)
    try:
        [error_rate, p95] = run.measure(1, window_started=0)
        assert not answered.is_set(), "the round waited for the hanging source"
    finally:
        release.set()
    assert error_rate.outcome is Outcome.PASS
    assert p95.outcome is Outcome.ERROR
    assert p95.reason == "no answer within 0.2s (source hangs?)"


def test_each_round_is_reported_to_the_callback_with_the_verdict_so_far():
    seen = []
    run, _, _ = analysis(healthy(), on_round=lambda batch, verdict: seen.append((batch, verdict)))
    run.window(30)
    assert [len(batch) for batch, _ in seen] == [2, 2, 2]
    assert [verdict.decided for _, verdict in seen] == [False, False, True]


def test_statistical_gates_read_samples_over_the_window_so_far():
    ranges = []

    class RangeRecorder(TableSource):
        def range(self, query, start, end, step):
            ranges.append((end - start, step))
            return [0.1 + i / 1000 for i in range(10)]

    statistical = spec(gates=[{"metric": "latency-p99", "statistical": {"tolerance": 0.25}}])
    clock = SteppingClock()
    run = AnalysisRun(statistical, RangeRecorder(healthy()), "shop", "prod", clock=clock)
    result = run.window(60)
    assert result.verdict.outcome is Outcome.PASS
    assert ranges[0] == (30.0, 3.75)  # the query window, 8 samples
    assert ranges[-1] == (60.0, 3.75)  # later: all the window so far
    run.measure(7, window_started=0)  # a window as old as the epoch
    assert ranges[-1] == (37_500.0, 3.75)  # the latest 10,000 samples, within Prometheus' cap


def test_statistical_samples_are_never_closer_than_one_scrape():
    ranges = []

    class RangeRecorder(ScrapedEvery):
        def range(self, query, start, end, step):
            ranges.append((end - start, step))
            return [0.1 + i / 1000 for i in range(10)]

    statistical = spec(gates=[{"metric": "latency-p99", "statistical": {"tolerance": 0.25}}])
    run = AnalysisRun(statistical, RangeRecorder(healthy(), 15.0), "shop", "prod")
    run.measure(1, window_started=run.clock.now())
    assert ranges[0] == (60.0, 15.0), "4 scrapes of range, one sample a scrape"


def test_a_logs_gate_reads_the_canary_logs_since_the_last_round():
    class Logs:
        def __init__(self):
            self.since: list[float] = []

        def lines_since(self, since: float) -> list[str]:
            self.since.append(since)
            return ["dial tcp: connection refused"] if len(self.since) == 2 else ["ok"]

    logs = Logs()
    max_0 = {"metric": "log-errors", "logs": {"patterns": ["connection refused"], "max": 0}}
    run, _, clock = analysis(healthy(), spec=spec(gates=[ERROR_RATE, max_0]), logs=logs)
    result = run.window(60)
    assert result.verdict.outcome is Outcome.FAIL
    assert result.verdict.decided_in_round == 2
    assert logs.since == [clock.start, clock.start + 10]


def test_a_logs_gate_on_a_platform_without_logs_is_an_input_error():
    with_logs = spec(gates=[ERROR_RATE, {"metric": "log-errors"}])
    with pytest.raises(InputError, match=r"analysis.gates\[1\]: gate 'log-errors' reads logs"):
        AnalysisRun(with_logs, TableSource({}), "shop", "prod")


def test_the_window_result_is_plain_json():
    run, _, _ = analysis(healthy(**{"0.95": [float("nan")]}))
    data = json.loads(json.dumps(run.window(10).to_dict(), allow_nan=False))
    assert data["outcome"] == "inconclusive"
    assert data["measurements"][1]["reason"] == "canary value is nan (no traffic in the window?)"


# Sequential gates: counters read each round, from the window's start --------------------------


class CounterSource(TableSource):
    """One pod per track, scraped every 5 s since long before the window, its counters growing
    by ``per_round`` every 10 s; answers the aligned reading's queries (pods summed, their
    scrape times, stable's history, the sample count) as Prometheus would ``at`` a time."""

    SCRAPE_S = 5.0

    def __init__(self, clock: SteppingClock, per_round: dict[str, float]):
        super().__init__({})
        self.clock, self.per_round, self.vector_calls = clock, per_round, []

    def _growth(self, selector: str) -> float | None:
        if not selector.startswith("http_requests_total"):
            return None  # the only metric this service exports
        return next((g for needle, g in self.per_round.items() if needle in selector), None)

    def _last_scrape(self, at: float) -> float:
        first = self.clock.start - 1000.0
        return first + self.SCRAPE_S * ((at - first) // self.SCRAPE_S)

    def _value(self, growth: float, at: float) -> float:
        return growth * (self._last_scrape(at) - self.clock.start + 1000.0) / 10

    def vector(self, query, at=None):
        from canaryflow.analysis.source import Sample

        self.vector_calls.append((query, at))
        when = self.clock.now() if at is None else at
        if query.startswith("max(count_over_time("):
            selector, _, seconds = query.removeprefix("max(count_over_time(").rpartition("[")
            count = float(seconds.split("s]", 1)[0]) // self.SCRAPE_S
            return [] if self._growth(selector) is None else [Sample({}, count)]
        if not query.startswith(("sum by", "max by")):  # a plain selector: its value
            growth = self._growth(query)
            if growth is None:
                return []
            return [Sample({"code": "500" if "5.." in query else "200"}, self._value(growth, when))]
        inner = query[query.index("(", query.index(")")) + 1 : -1]
        if inner.startswith("label_replace("):  # requests with the 5xx marked among them
            return self._marked(inner.removeprefix("label_replace("), when)
        stamp = inner.startswith("timestamp(")
        growth = self._growth(inner.removeprefix("timestamp("))
        if growth is None:
            return []
        labels = {"instance": "10.0.0.1:8080", "pod": "shop-1"}
        value = self._last_scrape(when) if stamp else self._value(growth, when)
        return [Sample(labels, value)]

    def _marked(self, arguments: str, when: float) -> list:
        """``alignment.Marker``'s read: the pod's 5xx under the mark, its other requests not."""
        from canaryflow.analysis.alignment import EVENT_LABEL
        from canaryflow.analysis.source import Sample

        exposure = arguments[: arguments.index(f', "{EVENT_LABEL}"')]
        events = exposure.rstrip()[:-1].rstrip() + ',code=~"5.." }'
        everything, bad = self._growth(exposure), self._growth(events)
        if everything is None:
            return []
        labels = {"instance": "10.0.0.1:8080", "pod": "shop-1"}
        errors = self._value(bad, when) if bad is not None else 0.0
        found = [Sample(labels, self._value(everything, when) - errors)]
        if bad is not None:
            found.append(Sample({**labels, EVENT_LABEL: "1"}, errors))
        return found

    def series(self, query, at=None):
        return []  # no history before the window: the over-dispersion starts at 1


def test_a_sequential_gate_reads_every_counter_at_one_instant_a_scrape_and_a_margin_behind():
    clock = SteppingClock()
    growth = {
        'track="canary",code=~"5.."': 30,
        'track!="canary",code=~"5.."': 0,
        'track="canary"': 100,
        'track!="canary"': 900,
    }
    source = CounterSource(clock, growth)
    run = AnalysisRun(spec(gates=[{"metric": "error-rate"}]), source, "shop", "prod", clock=clock)
    result = run.window(60)
    assert result.verdict.outcome is Outcome.FAIL, result.reason
    first, second = result.measurements[0], result.measurements[1]
    assert first.outcome is Outcome.COLLECTING, "10 s in, the common instant is the start"
    assert "a scrape and its storing" in first.reason
    # Second look, 20 s in: every counter read at 12 s (a 5 s scrape and 3 s for storing it
    # back) against the start.
    assert second.reason.startswith("error-rate: canary 36 of 120 vs stable 0 of 1080")
    at_twelve = {q for q, at in source.vector_calls if at == clock.start + 12}
    summed = {q for q in at_twelve if q.startswith("sum by (instance, pod, canaryflow_event) (")}
    stamped = {q for q in at_twelve if q.startswith("max by (instance, pod) (timestamp(")}
    assert len(summed) == 2, "both tracks' pods summed, their 5xx marked among their requests"
    assert len(stamped) == 2, "each track's pods stamped once: their series are scraped at once"


def test_a_healthy_sequential_gate_passes_once_mature_and_spends_alpha_on_exported_gates():
    clock = SteppingClock()
    no_errors = {'code=~"5..': 0}
    source = CounterSource(clock, {**no_errors, 'track="canary"': 100, 'track!="canary"': 900})
    gates = [{"metric": "error-rate"}, {"metric": "outbound-error-rate"}]
    run = AnalysisRun(spec(gates=gates), source, "shop", "prod", clock=clock, windows=4)
    assert run.gate_alpha == pytest.approx(0.01 / 2 / 4), "before any data: every gate counted"
    # 50 s: the gate without series is past its grace (30 s after its 18 s lag: a scrape not
    # known from its own series is taken as 15 s), so its series would be there by now.
    result = run.window(50)
    outcomes = {m.gate: m.outcome for m in result.measurements}
    assert outcomes["error-rate"] is Outcome.PASS
    assert outcomes["outbound-error-rate"] is Outcome.NOT_APPLICABLE  # no such series at all
    assert result.verdict.outcome is Outcome.PASS
    # The service exports one of the two gates: it alone spends alpha (split over the four
    # windows, as each window of this run is a test of its own).
    assert run.gate_alpha == pytest.approx(0.01 / 4)


def test_alpha_is_not_shared_out_in_a_round_whose_queries_failed():
    clock = SteppingClock()
    no_errors = {'code=~"5..': 0}
    source = CounterSource(clock, {**no_errors, 'track="canary"': 100, 'track!="canary"': 900})
    healthy_vector = source.vector
    failing = {"on": True}

    def vector(query, at=None):
        if failing["on"] and "http_client_requests_total" in query:
            raise MeasurementError("Prometheus did not answer")
        return healthy_vector(query, at)

    source.vector = vector
    gates = [{"metric": "error-rate"}, {"metric": "outbound-error-rate"}]
    run = AnalysisRun(spec(gates=gates), source, "shop", "prod", clock=clock)
    run.measure(1, clock.start)
    assert run.budget.exported is None, "an error is not a gate the service lacks"
    failing["on"] = False
    clock.sleep(50)  # past the grace of a gate without series (18 s lag + 30 s)
    run.measure(2, clock.start)
    assert run.budget.exported == ("error-rate",)


def test_a_gate_without_series_yet_is_not_left_out_of_alpha_while_its_pods_are_young():
    """New pods (a canary's, a fresh baseline's) have no sample at the first looks, which
    read a scrape behind: taken as "not exported" there, the gate would get no alpha for the
    whole release and pass a bad canary as not applicable."""
    clock = SteppingClock()
    no_errors = {'code=~"5..': 0}
    source = CounterSource(clock, {**no_errors, 'track="canary"': 100, 'track!="canary"': 900})
    gates = [{"metric": "error-rate"}, {"metric": "outbound-error-rate"}]
    run = AnalysisRun(spec(gates=gates), source, "shop", "prod", clock=clock)
    run.measure(1, clock.start)
    assert run.budget.exported is None, "a young gate without series may still have them"
    assert run.gate_alpha == pytest.approx(0.01 / 2), "meanwhile the conservative share"


def test_carried_evidence_runs_one_test_per_gate_over_every_window_at_the_whole_alpha():
    clock = SteppingClock()
    no_errors = {'code=~"5..': 0}
    source = CounterSource(clock, {**no_errors, 'track="canary"': 100, 'track!="canary"': 900})
    gates = [{"metric": "error-rate"}]
    run = AnalysisRun(
        spec(gates=gates), source, "shop", "prod", clock=clock, windows=3, carry_evidence=True
    )
    run.window(30)
    seen = run._sequential["error-rate"].test.canary_exposure
    run.window(30)
    assert run._sequential["error-rate"].test.canary_exposure == pytest.approx(seen + 300)
    assert run.gate_alpha == pytest.approx(0.01), "one gate, one test: alpha is not split"


# Log lines compared with stable's, per request ------------------------------------------------


class LoggingService(CounterSource):
    """Requests counted in Prometheus and lines appended to each track's log file every round,
    as a service with a cache that reconnects writes "connection refused" now and then."""

    def __init__(self, clock, tmp_path, canary_lines: int, stable_lines: int):
        super().__init__(clock, {'code=~"5..': 0, 'track="canary"': 1000, 'track!="canary"': 9000})
        self.files = {"canary": tmp_path / "canary.log", "stable": tmp_path / "stable.log"}
        self.lines = {"canary": canary_lines, "stable": stable_lines}
        for path in self.files.values():
            path.write_text("")

    def write_round(self):
        for track, path in self.files.items():
            with path.open("a") as log:
                for n in range(self.lines[track]):
                    log.write(f"GET /cart {n}\ncache: dial tcp 10.0.0.7:6379: connection refused\n")


def logged_window(tmp_path, canary_lines, stable_lines):
    from canaryflow.analysis.logfile import TrackLogFiles

    clock = SteppingClock()
    service = LoggingService(clock, tmp_path, canary_lines, stable_lines)
    sleep = clock.sleep

    def sleep_and_log(seconds):
        sleep(seconds)
        service.write_round()

    clock.sleep = sleep_and_log
    logs = TrackLogFiles(service.files["canary"], service.files["stable"])
    gates = [{"metric": "error-rate"}, {"metric": "log-errors"}]
    run = AnalysisRun(spec(gates=gates), service, "shop", "prod", clock=clock, logs=logs)
    return run.window(60)


def test_a_service_logging_errors_on_both_versions_alike_is_promoted(tmp_path):
    # 0.2 % of requests on both tracks: canary 2 of 1000 a round, stable 18 of 9000.
    result = logged_window(tmp_path, canary_lines=2, stable_lines=18)
    assert result.verdict.outcome is Outcome.PASS, result.reason
    last = [m for m in result.measurements if m.gate == "log-errors"][-1]
    assert last.reason.startswith("log-errors: canary 12 of 6000 vs stable 108 of 54000")


def test_a_canary_logging_ten_times_stables_rate_is_rolled_back(tmp_path):
    result = logged_window(tmp_path, canary_lines=20, stable_lines=18)
    assert result.verdict.outcome is Outcome.FAIL, result.reason
    assert "log-errors" in result.reason and "credibly worse than stable" in result.reason


def test_a_comparing_log_gate_without_stable_logs_is_not_applicable():
    logs = type("CanaryOnly", (), {"lines_since": lambda self, since: ["connection refused"]})()
    gates = [ERROR_RATE, {"metric": "log-errors"}]
    run, _, _ = analysis(healthy(), spec=spec(gates=gates), logs=logs)
    [_, log_gate] = run.measure(1, window_started=0)
    assert log_gate.outcome is Outcome.NOT_APPLICABLE
    assert log_gate.reason == "this platform provides no stable logs to compare with"


def test_a_configured_scrape_interval_sets_the_lag_and_is_not_probed():
    clock = SteppingClock()
    no_errors = {'code=~"5..': 0}
    source = CounterSource(clock, {**no_errors, 'track="canary"': 100, 'track!="canary"': 900})
    plan = spec(gates=[{"metric": "error-rate"}], scrapeInterval="5s")
    run = AnalysisRun(plan, source, "shop", "prod", clock=clock)
    run.window(30)
    assert run._sequential["error-rate"].lag_s == 8.0, "a scrape and 3 s to store it"
    assert not [q for q, _ in source.vector_calls if "count_over_time" in q]
