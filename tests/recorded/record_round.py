"""Record what a real Prometheus answered to one release's analysis rounds, and the judgements.

Run from the repository root (``.venv/bin/python tests/recorded/record_round.py``, about a
minute): it backfills a small fleet (the cost benchmark's series, ``bench.cost.openmetrics``,
with the canary's 5xx twice stable's and one stable series restarting on its own mid-window),
serves it with Prometheus on 127.0.0.1, puts a recording proxy in front of it, runs ``ROUNDS``
rounds of the error-rate and latency-p99 gates, and writes every HTTP exchange and every
round's measurements to ``round_answers.json``. ``tests/test_round_answers.py`` replays the
answers to the current code and requires the same judgements: what the fixture holds was
judged by the code of the commit that wrote it (named in the file).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.source import PrometheusSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.cost import (
    NAMESPACE,
    PROMTOOL,
    SCRAPE_S,
    SPEC,
    BatchingSource,
    Shape,
    openmetrics,
)
from canaryflow.bench.replay import ReplayClock
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import PrometheusServer

HERE = Path(__file__).resolve().parent
SHAPE = Shape(1, 6, 3)
ROUNDS = 10
END = 1_765_000_000.0
"""A fixed end of the data, so the queries (their ``@`` instants) are the same every run."""
FAULT = 2.0
"""The canary's 5xx, as a multiple of stable's."""
RESTARTED = 'pod="svc0-stable-1",path="/p0",code="200"'


def fleet_lines() -> list[str]:
    """The cost benchmark's fleet with a worse canary and one series restarting alone."""
    lines = []
    restart_value = None
    for line in openmetrics(SHAPE, END):
        if 'track="canary"' in line and 'code="500"' in line:
            name, value, stamp = line.rsplit(" ", 2)
            line = f"{name} {float(value) * FAULT:.0f} {stamp}"
        if RESTARTED in line:
            name, value, stamp = line.rsplit(" ", 2)
            if float(stamp) > END - 280 and restart_value is None:
                restart_value = float(value)
            if restart_value is not None:
                line = f"{name} {float(value) - restart_value:.0f} {stamp}"
        lines.append(line)
    return lines


def exchange_key(method: str, path: str, body: bytes) -> tuple[str, tuple]:
    """A request as the replay looks it up: its path and parameters, from the URL or a form."""
    parts = urlsplit(path)
    params = parse_qsl(parts.query, keep_blank_values=True)
    if method == "POST":
        params += parse_qsl(body.decode(), keep_blank_values=True)
    return parts.path, tuple(sorted(params))


def recording_proxy(upstream: str, exchanges: list[dict]) -> ThreadingHTTPServer:
    class Proxy(BaseHTTPRequestHandler):
        def _forward(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = urllib.request.Request(upstream + self.path, data=body or None)
            if body:
                request.add_header("Content-Type", self.headers["Content-Type"])
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    status, data = answer.status, answer.read()
            except urllib.error.HTTPError as error:
                status, data = error.code, error.read()
            path, params = exchange_key(method, self.path, body)
            exchanges.append(
                {
                    "path": path,
                    "params": [list(p) for p in params],
                    "status": status,
                    "body": data.decode(),
                }
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def judgements(batch) -> list[dict]:
    return [
        {
            "gate": m.gate,
            "round": m.round,
            "outcome": m.outcome.value,
            "reason": m.reason,
            "canary": m.evidence.canary,
            "stable": m.evidence.stable,
            "detail": m.evidence.detail,
        }
        for m in batch
    ]


def main() -> int:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="canaryflow-record-") as tmp:
        work = Path(tmp)
        data = work / "fleet.txt"
        data.write_text("\n".join(fleet_lines()) + "\n")
        blocks = work / "prometheus" / "data"
        subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(data), str(blocks)],
            check=True,
            capture_output=True,
        )
        exchanges: list[dict] = []
        rounds = []
        with ProcessGroup(work / "processes") as group:
            server = PrometheusServer(group, work / "prometheus", scrape_interval=SCRAPE_S)
            server.start()
            proxy = recording_proxy(server.url, exchanges)
            url = f"http://127.0.0.1:{proxy.server_address[1]}"
            start = END - SHAPE.minutes * 60 + 300
            clock = ReplayClock(start)
            window_started = start - 60
            source = BatchingSource(PrometheusSource(url, timeout=30), clock)  # as a live round
            spec = AnalysisSpec.model_validate(SPEC)
            run = AnalysisRun(spec, source, "svc0", NAMESPACE, clock=clock)
            run.concurrent = False  # one exchange at a time: the file's order is the calls'
            for round_no in range(1, ROUNDS + 1):
                clock.sleep(10.0)
                rounds.append(judgements(run.measure(round_no, window_started)))
            proxy.shutdown()
            server.stop()
    fixture = {
        "recorded_by": f"tests/recorded/record_round.py at commit {commit}",
        "shape": {"stable_pods": SHAPE.stable_pods, "labels": SHAPE.labels},
        "clock_start": start,
        "window_started": window_started,
        "spec": SPEC,
        "rounds": rounds,
        "exchanges": exchanges,
    }
    out = HERE / "round_answers.json"
    out.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
    outcomes = [[(j["gate"], j["outcome"]) for j in batch] for batch in rounds]
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(exchanges)} exchanges): {outcomes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
