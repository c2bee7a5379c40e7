"""A look's instant reads as one PromQL query: each pinned at its own instant, told apart by a
label, and split back; a Prometheus that refuses ``@`` is read one query at a time instead."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

import pytest
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

    def do_POST(self) -> None:  # a form: the same parameters as a GET's URL
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(parse_qs(self.rfile.read(length).decode())["query"][0])

    def do_GET(self) -> None:
        self._answer(parse_qs(urlparse(self.path).query)["query"][0])

    def _answer(self, query: str) -> None:
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


class Answers(QuietHandler):
    """A Prometheus that takes POST forms (or refuses the method with ``refuse_post``) and
    answers every query with one series; each request noted as (method, URL query, form)."""

    requests: list[tuple[str, dict, dict]] = []
    refuse_post: int | None = None

    def _answer(self, method: str, form: dict) -> None:
        Answers.requests.append((method, parse_qs(urlparse(self.path).query), form))
        if method == "POST" and Answers.refuse_post is not None:
            self.reply(Answers.refuse_post, b"method not allowed", "text/plain")
            return
        query = {**parse_qs(urlparse(self.path).query), **form}["query"][0]
        keys = re.findall(rf'"{BATCH_LABEL}", "([^"]+)"', query) or [None]
        result = [
            {"metric": {"pod": "p", **({BATCH_LABEL: key} if key else {})}, "value": [1, "7"]}
            for key in keys
        ]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        self.reply(200, json.dumps(body).encode(), "application/json")

    def do_GET(self) -> None:
        self._answer("GET", {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer("POST", parse_qs(self.rfile.read(length).decode()))


def _read_twice(refuse_post: int | None) -> tuple[list, list]:
    Answers.requests, Answers.refuse_post = [], refuse_post
    server = LoopbackServer(Answers)
    try:
        source = PrometheusSource(server.url)
        reads = {"v0": Pinned(f"sum({SELECTOR})", SELECTOR, 1), "v1": Pinned("up", "up", 2)}
        answers = [source.vectors(reads), source.vectors(reads)]
    finally:
        server.stop()
    return answers, Answers.requests


def test_a_batch_is_sent_as_a_form_not_in_the_url():
    """A look's batch is a long query: as a POST form it is neither escaped character by
    character on its way out nor cut by a proxy's URL length limit."""
    answers, requests = _read_twice(refuse_post=None)
    assert answers[0] == answers[1] == {key: [Sample({"pod": "p"}, 7.0)] for key in ("v0", "v1")}
    assert [method for method, _, _ in requests] == ["POST", "POST"]
    _, url_params, form = requests[0]
    assert url_params == {}
    assert form["time"] == ["2.000"] and form["query"][0].startswith("label_replace(")


@pytest.mark.parametrize("status", [405, 501])
def test_a_server_that_refuses_post_is_asked_by_get_from_then_on(status):
    answers, requests = _read_twice(refuse_post=status)
    assert answers[0] == answers[1] == {key: [Sample({"pod": "p"}, 7.0)] for key in ("v0", "v1")}
    assert [method for method, _, _ in requests] == ["POST", "GET", "GET"], "asked once"
