"""A look's instant reads as one PromQL query: each pinned at its own instant, told apart by a
label, and split back; a Prometheus that refuses ``@`` is read one query at a time instead."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

from http_stub import LoopbackServer, QuietHandler

from canaryflow.analysis.alignment import AlignedCounters, key_of, lost_query, stamp_selector
from canaryflow.analysis.source import (
    BATCH_LABEL,
    Pinned,
    PrometheusSource,
    Sample,
    batch_query,
    pin,
    split_batch,
)

SELECTOR = 'http_requests_total{ app="shop",track!="canary" }'


def test_a_selector_is_pinned_after_its_range_where_it_has_one():
    read = Pinned(f"max(count_over_time({SELECTOR}[10s]))", SELECTOR, 1700000000.25)
    assert pin(read) == f"max(count_over_time({SELECTOR}[10s] @ 1700000000.250))"
    read = Pinned(f"sum by (pod) ({SELECTOR})", SELECTOR, 5)
    assert pin(read) == f"sum by (pod) ({SELECTOR} @ 5.000)"


def test_every_occurrence_of_the_selector_is_pinned_offsets_and_all():
    read = Pinned(lost_query(SELECTOR, False, 10), SELECTOR, 100)
    assert pin(read).count("@ 100.000") == 3
    assert pin(read).count("@ 100.000 offset 10000ms") == 2


def test_a_batch_labels_each_read_and_splits_back_without_the_label():
    reads = {"a/v0": Pinned(f"sum({SELECTOR})", SELECTOR, 1), "a/v1": Pinned("x", "x", 2)}
    query = batch_query(reads)
    assert query == (
        f'label_replace(sum({SELECTOR} @ 1.000), "{BATCH_LABEL}", "a/v0", "", "") or '
        f'label_replace(x @ 2.000, "{BATCH_LABEL}", "a/v1", "", "")'
    )
    answer = [Sample({BATCH_LABEL: "a/v1", "pod": "p"}, 3.0), Sample({BATCH_LABEL: "zz"}, 1.0)]
    assert split_batch(answer, list(reads)) == {"a/v0": [], "a/v1": [Sample({"pod": "p"}, 3.0)]}


def test_a_histograms_restarts_and_scrape_times_are_read_from_its_inf_bucket():
    buckets = 'latency_bucket{ app="shop" }'
    assert stamp_selector(buckets, by_le=True) == 'latency_bucket{ app="shop",le="+Inf"}'
    assert stamp_selector(buckets, by_le=False) == buckets
    assert 'le="+Inf"' in lost_query(buckets, True, 10) and "by (instance, pod)" in lost_query(
        buckets, True, 10
    )


def pod(name: str, **labels: str) -> dict[str, str]:
    return {"instance": name, "pod": name, **labels}


def test_what_restarted_series_held_is_added_back_and_a_skipped_pod_adds_nothing():
    counters = AlignedCounters()
    a, b = key_of(pod("a")), key_of(pod("b"))
    counters.start({a: 380.0, b: 100.0})
    # a's /y restarted (190 -> 0) while /x went 190 -> 200: the sum fell to 200, 190 lost.
    steps = counters.advance({a: 200.0, b: 110.0}, lost={a: 190.0}, skip={b})
    assert [(s.labels["pod"], s.value) for s in steps] == [("a", 10.0)]
    assert counters.advance({a: 210.0, b: 120.0}) == [
        Sample(dict(a), 10.0),
        Sample(dict(b), 10.0),
    ], "the skipped look's counts are dropped, not carried into the next"


class RefusesAt(QuietHandler):
    """A Prometheus before 2.33: ``@`` is disabled; other queries answer one series."""

    queries: list[str] = []

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)["query"][0]
        RefusesAt.queries.append(query)
        if "@" in query:
            error = {"status": "error", "errorType": "bad_data", "error": "@ modifier is disabled"}
            self.reply(400, json.dumps(error).encode(), "application/json")
            return
        value = {"metric": {"pod": "p"}, "value": [1, "7"]}
        body = {"status": "success", "data": {"resultType": "vector", "result": [value]}}
        self.reply(200, json.dumps(body).encode(), "application/json")


def test_a_prometheus_that_refuses_at_is_read_one_query_at_a_time_from_then_on():
    server = LoopbackServer(RefusesAt)
    try:
        source = PrometheusSource(server.url)
        reads = {"v0": Pinned(f"sum({SELECTOR})", SELECTOR, 1), "v1": Pinned("up", "up", 2)}
        first = source.vectors(reads)
        second = source.vectors(reads)
    finally:
        server.stop()
    assert first == second == {key: [Sample({"pod": "p"}, 7.0)] for key in reads}
    assert sum("@" in query for query in RefusesAt.queries) == 1, "asked once"
    assert len(RefusesAt.queries) == 1 + 2 * len(reads)
