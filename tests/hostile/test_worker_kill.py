"""A killed nginx worker of the local router costs users (almost) nothing (issue 23, item 12).

Real nginx (both tiers) in front of two static nginx backends, about 3,000 keep-alive
requests, one worker SIGKILLed mid-load; nothing of the release engine, so every failed
request counted is the router's. The splitter's worker is behind the edge's retry
(``proxy_next_upstream``), so its death fails nothing; the edge's worker holds the users'
connections, and what it had in flight when it died is lost (as with any proxy), so at most
one request per client connection fails.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from canaryflow.bench.reload import start_static
from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.process import ProcessGroup
from canaryflow.local.router import NginxRouter

pytestmark = pytest.mark.slow

RATE, CLIENTS, SECONDS = 300.0, 8, 10.0


def _failed_with_a_worker_killed(tmp_path: Path, tier: str) -> tuple[int, int]:
    with ProcessGroup(tmp_path) as group:
        stable, canary = start_static(group, tmp_path, "v1"), start_static(group, tmp_path, "v2")
        with NginxRouter(tmp_path / "router", group, stable) as router:
            router.set_canary_upstream(canary)
            router.set_weight(30)
            assert router.wait_serving(5) is not None
            config = LoadConfig(router.url, rate=RATE, clients=CLIENTS, max_duration_s=60)
            with LoadGenerator(config) as load:
                started = time.time()
                time.sleep(SECONDS / 2)
                (worker,) = getattr(router, tier).accepting_workers()
                os.kill(worker, signal.SIGKILL)  # a worker of the nginx this test started
                time.sleep(SECONDS / 2)
                counters = load.counters(started)
            replacement = getattr(router, tier).accepting_workers()
            assert replacement and worker not in replacement, "the master replaced its worker"
    return counters.failed, counters.total


@pytest.mark.parametrize("tier", ["splitter", "edge"])
def test_a_killed_router_worker_fails_at_most_what_it_had_in_flight(tmp_path, tier):
    failed, total = _failed_with_a_worker_killed(tmp_path, tier)
    print(f"{tier} worker SIGKILL: {failed} of {total} requests failed")
    assert total > 1000
    assert failed <= (0 if tier == "splitter" else CLIENTS)
