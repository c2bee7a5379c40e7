"""The analysis round judges a recorded Prometheus answer exactly as the code that recorded it.

``recorded/round_answers.json`` holds every HTTP exchange of ten rounds of the error-rate and
latency-p99 gates against a real Prometheus (a small backfilled fleet: 6 stable pods x 3 paths,
the canary's 5xx twice stable's, one stable series restarting on its own mid-window; see
``recorded/record_round.py``), and what each round judged then. Served back from 127.0.0.1, the
same queries must be asked and the same outcomes, reasons and evidence numbers come out: the
faster parsing, batching and interpolation of a round change its cost, never a verdict. (First
recorded at commit 1bfd933, before that work, and matched by it; recorded again when main's
lag of one scrape + 3 s changed the instants a look reads, and again when a count gate's events
were read inside its exposure's read (``alignment.Marker``) and a look's reads went in one query
per instant (the canary's with stable's), and again when the gates of a round shared those
requests (one per instant for all gates, 60 exchanges to 37), and again when the canary's
request count joined the later instant's request (37 exchanges to 27): each recording's ten
rounds judged exactly as the one before it, outcome, reason and number.)
"""

from __future__ import annotations

import json
from pathlib import Path

from http_stub import LoopbackServer, QuietHandler
from recorded.record_round import exchange_key, judgements

from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import PrometheusSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.cost import NAMESPACE, BatchingSource
from canaryflow.bench.replay import ReplayClock

RECORDED = json.loads((Path(__file__).parent / "recorded" / "round_answers.json").read_text())


class Recorded(QuietHandler):
    """Answers a request the recording holds (by path and parameters, GET or POST alike)
    with what Prometheus answered; anything else is a 404 and noted."""

    answers: dict = {}
    unknown: list = []

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        key = exchange_key(method, self.path, body)
        found = Recorded.answers.get(key)
        if found is None:
            Recorded.unknown.append(key)
            self.reply(404, b"not recorded", "text/plain")
            return
        self.reply(found["status"], found["body"].encode(), "application/json")

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")


def replayed_judgements() -> tuple[list, list]:
    Recorded.answers = {
        (e["path"], tuple(tuple(p) for p in e["params"])): e for e in RECORDED["exchanges"]
    }
    Recorded.unknown = []
    server = LoopbackServer(Recorded)
    try:
        clock = ReplayClock(RECORDED["clock_start"])
        source = BatchingSource(PrometheusSource(server.url, timeout=30), clock)
        spec = AnalysisSpec.model_validate(RECORDED["spec"])
        run = AnalysisRun(spec, source, "svc0", NAMESPACE, clock=clock)
        run.concurrent = False
        rounds = []
        for round_no in range(1, len(RECORDED["rounds"]) + 1):
            clock.sleep(10.0)
            rounds.append(judgements(run.measure(round_no, RECORDED["window_started"])))
    finally:
        server.stop()
    return json.loads(json.dumps(rounds)), list(Recorded.unknown)


def test_a_recorded_answer_is_judged_as_it_was_when_recorded():
    rounds, unknown = replayed_judgements()
    assert unknown == [], (
        "the round asked what the recording does not hold: a change of what a look reads (a "
        "query, an instant) is deliberate only with the recording made again by "
        "tests/recorded/record_round.py, and the judgements' change explained in the commit"
    )
    assert rounds == RECORDED["rounds"]


def test_the_recording_holds_a_pass_a_fail_and_a_restart():
    """What the equivalence above covers: both outcomes and the restart correction."""
    outcomes = {j["outcome"] for batch in RECORDED["rounds"] for j in batch}
    assert {"pass", "fail"} <= outcomes
    restarts = [
        series
        for exchange in RECORDED["exchanges"]
        for series in json.loads(exchange["body"]).get("data", {}).get("result", [])
        if isinstance(series, dict)
        and series.get("metric", {}).get("canaryflow_read", "").endswith("/r0")
        and float(series["value"][1]) > 0
    ]
    assert restarts, "a series that restarted alone was read and added back"
