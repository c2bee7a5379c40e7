"""A Prometheus that accepts connections and never answers: every round reports the hang as an
error, and the threads waiting on it stay bounded however many rounds go by. One that trickles
its answer a byte at a time is cut off at the source's timeout.

The server is a socket on 127.0.0.1 that accepts and then holds each connection without a
byte of answer, as an overloaded or wedged Prometheus does. The source's own HTTP timeout is
set far beyond the test, so a call that misses its round's deadline stays blocked on its
socket for the whole test: if each round left its calls' threads behind, they would pile up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.run import CALL_WORKERS, AnalysisRun, CallPool
from canaryflow.analysis.source import MeasurementError, PrometheusSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.local.process import LOOPBACK

ROUNDS = 20


class HangingServer:
    """Accepts every connection and answers nothing until ``release``, on one thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0), backlog=512)
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="hanging")

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> HangingServer:
        self.listener.settimeout(0.05)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(connection)

    def release(self) -> None:
        """Close every held connection: the blocked reads end with an error."""
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        for connection in self.connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


class SteppingClock:
    def __init__(self) -> None:
        self.time = time.time()

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds


class CountingPool(CallPool):
    """Counts the calls the run asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted = 0

    def submit(self, function):
        self.submitted += 1
        return super().submit(function)


SPEC = {
    "interval": "10s",
    "queryWindow": "60s",
    "gates": [
        {"metric": "error-rate"},  # sequential: its counters, stamps, history, scrape probes
        {"metric": "latency-p99"},  # sequential, histogram: also the reference lookback
        {"metric": "error-rate", "name": "errors-max", "threshold": {"max": 0.05}},
    ],
}


def test_twenty_rounds_against_a_hanging_prometheus_hold_a_bounded_number_of_threads():
    server = HangingServer().start()
    before = set(threading.enumerate())
    source = PrometheusSource(server.url, timeout=600)  # the socket never times out here
    clock = SteppingClock()
    pool = CountingPool()
    spec = AnalysisSpec.model_validate(SPEC)
    run = AnalysisRun(spec, source, "shop", "prod", clock=clock, call_timeout=0.2, pool=pool)
    started = clock.now()
    peak = 0
    outcomes = set()
    try:
        for round_no in range(1, ROUNDS + 1):
            clock.sleep(10)
            for measurement in run.measure(round_no, started):
                outcomes.add((measurement.gate, measurement.outcome, measurement.reason))
            peak = max(peak, len(_ours(set(threading.enumerate()) - before)))
    finally:
        server.release()
    assert outcomes == {
        (gate, Outcome.ERROR, "no answer within 0.2s (source hangs?)")
        for gate in ("error-rate", "latency-p99", "errors-max")
    }
    # Many more calls went unanswered than threads ran: the pool's workers, and the one
    # thread that watches the HTTP calls' deadlines.
    assert pool.submitted > ROUNDS * CALL_WORKERS
    assert 0 < peak <= CALL_WORKERS + 1
    for _ in range(600):  # once the server lets go, every blocked call ends
        if not _ours(set(threading.enumerate()) - before):
            break
        time.sleep(0.05)
    assert _ours(set(threading.enumerate()) - before) == set()


def _ours(threads: set[threading.Thread]) -> set[threading.Thread]:
    """The run's call threads and the HTTP deadline watcher, by name (a thread per call was
    named ``measure <call>`` before the pool): other modules' tests in the same worker process
    may start threads of their own meanwhile."""
    return {t for t in threads if t.name.startswith("measure") or t.name == "http deadlines"}


class TricklingServer:
    """Answers every request with a status line and then one header byte every 20 ms, up to
    ``BYTES`` (20 s): each wait for a byte is short, the whole answer never arrives in time."""

    BYTES = 1000

    def __init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        host, port = self.listener.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.sent: list[int] = []
        """Bytes of header each connection got before the client hung up (or all of them)."""
        self._thread = threading.Thread(target=self._serve, daemon=True, name="trickling")

    def start(self) -> TricklingServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            sent = 0
            try:
                while sent < self.BYTES:
                    connection.sendall(b"a")
                    sent += 1
                    time.sleep(0.02)
            except OSError:
                pass  # the client hung up
            self.sent.append(sent)

    def stop(self) -> None:
        self._thread.join(60)
        self.listener.close()


def test_a_prometheus_trickling_its_answer_is_cut_off_at_the_sources_timeout():
    server = TricklingServer().start()
    source = PrometheusSource(server.url, timeout=0.5)  # each byte comes well within 0.5 s
    try:
        with pytest.raises(MeasurementError) as raised:
            source.vector("up")
    finally:
        server.stop()
    assert str(raised.value) == f"Prometheus at {server.url} did not answer within 0.5s"
    [sent] = server.sent
    assert sent < TricklingServer.BYTES, "the client hung up before the answer was complete"
