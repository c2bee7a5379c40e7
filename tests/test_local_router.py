"""The nginx router splits by weight, honours the header override, refuses bad configs without
interrupting service, and changes weights under keep-alive load without failing a request."""

from __future__ import annotations

import http.client
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from backends import start_backend, start_static_backend

from canaryflow.errors import InputError, PlatformError
from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.nginx_config import (
    TRACK_HEADER,
    NginxFiles,
    RouteState,
    render_splitter,
)
from canaryflow.local.process import ProcessGroup
from canaryflow.local.router import NginxRouter
from canaryflow.platform.protocol import HeaderRoute, TrafficRouter

pytestmark = pytest.mark.slow


@pytest.fixture
def group(tmp_path: Path):
    with ProcessGroup(tmp_path / "processes") as processes:
        yield processes


@pytest.fixture
def fast_router(group: ProcessGroup, tmp_path: Path):
    """Router over two nginx backends, quick enough for thousands of requests per test."""
    stable = start_static_backend(group, tmp_path, "v1")
    canary = start_static_backend(group, tmp_path, "v2")
    with NginxRouter(tmp_path / "router", group, stable, verify_timeout_s=3.0) as router:
        router.set_canary_upstream(canary)
        assert router.verify_weight(0)
        yield router


def tracks(router: NginxRouter, count: int, headers: dict[str, str] | None = None) -> Counter:
    """Which track served each of ``count`` keep-alive requests (all must succeed)."""
    seen: Counter = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=5)
    try:
        for _ in range(count):
            conn.request("GET", "/", headers=headers or {})
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, body
            track = response.getheader(TRACK_HEADER)
            assert body == {"stable": b"version=v1\n", "canary": b"version=v2\n"}[track]
            seen[track] += 1
    finally:
        conn.close()
    return seen


def splitter_config(state: RouteState) -> str:
    files = NginxFiles(Path("/run/cf"), "splitter")
    return render_splitter(state, files, "unix:/run/cf/s.sock", Path("/run/cf/a.sock"))


def test_without_a_canary_upstream_the_weight_and_header_route_send_nothing_to_it():
    config = splitter_config(RouteState("127.0.0.1:1", None, 50, HeaderRoute(), generation=4))

    assert "canaryflow_canary" not in config
    assert "x_release_channel" not in config
    assert "generation=4 weight=0 stable=127.0.0.1:1 canary=- header=-" in config


def test_the_weight_is_a_split_on_the_request_id_and_the_header_maps_to_canary():
    config = splitter_config(RouteState("127.0.0.1:1", "127.0.0.1:2", 25, HeaderRoute()))

    assert 'split_clients "${request_id}" $canaryflow_split {\n        25% canary;' in config
    assert 'map $http_x_release_channel $canaryflow_track {\n        "canary" canary;' in config
    assert "upstream canaryflow_canary { server 127.0.0.1:2; }" in config


def test_it_is_a_traffic_router(fast_router: NginxRouter):
    assert isinstance(fast_router, TrafficRouter)


@pytest.mark.parametrize("percent", [10, 50, 90])
def test_weight_splits_requests_within_two_points(fast_router: NginxRouter, percent: int):
    fast_router.set_weight(percent)
    assert fast_router.verify_weight(percent)

    seen = tracks(fast_router, 6000)

    assert abs(100 * seen["canary"] / 6000 - percent) <= 2, seen


def test_weight_zero_sends_everything_to_stable_and_100_everything_to_canary(
    fast_router: NginxRouter,
):
    assert tracks(fast_router, 300) == Counter(stable=300)
    fast_router.set_weight(100)
    assert fast_router.verify_weight(100)
    assert tracks(fast_router, 300) == Counter(canary=300)


@pytest.mark.parametrize("percent", [0, 50])
def test_header_override_reaches_only_the_canary(fast_router: NginxRouter, percent: int):
    fast_router.set_weight(percent)
    fast_router.set_header_route(HeaderRoute())
    assert fast_router.verify_weight(percent)

    assert tracks(fast_router, 500, {"X-Release-Channel": "canary"}) == Counter(canary=500)
    assert tracks(fast_router, 500, {"X-Release-Channel": "beta"})["stable"] >= 1


def test_header_name_and_value_are_configurable(fast_router: NginxRouter):
    fast_router.set_header_route(HeaderRoute(name="x-canary", value="always"))
    assert fast_router.verify_weight(0)

    assert tracks(fast_router, 200, {"X-Canary": "always"}) == Counter(canary=200)
    assert tracks(fast_router, 200, {"X-Release-Channel": "canary"}) == Counter(stable=200)


def test_verify_weight_is_true_only_once_the_change_serves(fast_router: NginxRouter):
    fast_router.verify_timeout_s = 0.5
    assert not fast_router.verify_weight(30)

    fast_router.set_weight(30)

    assert fast_router.verify_weight(30)
    assert fast_router.served().weight == 30
    assert not fast_router.verify_weight(0)


def test_a_rejected_config_raises_and_the_old_one_keeps_serving(fast_router: NginxRouter):
    fast_router.set_weight(50)
    assert fast_router.verify_weight(50)
    before = fast_router.served()

    with pytest.raises(PlatformError, match="invalid port"):
        fast_router.set_canary_upstream("127.0.0.1:99999")

    assert fast_router.served() == before
    assert fast_router.state.generation == before.generation
    seen = tracks(fast_router, 400)
    assert seen["stable"] > 100 and seen["canary"] > 100


def test_values_that_would_change_the_config_structure_are_input_errors(
    fast_router: NginxRouter,
):
    with pytest.raises(InputError, match=r"header_route.name"):
        fast_router.set_header_route(HeaderRoute(name="x-a; return 500", value="canary"))
    with pytest.raises(InputError, match=r"canary: .* HOST:PORT"):
        fast_router.set_canary_upstream("127.0.0.1:1; }")
    with pytest.raises(InputError, match=r"canary_percent: 101"):
        fast_router.set_weight(101)
    assert fast_router.verify_weight(0)


def test_remove_managed_routes_leaves_only_stable(fast_router: NginxRouter):
    fast_router.set_weight(60)
    fast_router.set_header_route(HeaderRoute())

    fast_router.remove_managed_routes()

    assert fast_router.verify_weight(0)
    served = fast_router.served()
    assert (served.canary, served.header) == (None, None)
    assert tracks(fast_router, 200, {"X-Release-Channel": "canary"}) == Counter(stable=200)


def test_promotion_swaps_the_stable_upstream(fast_router: NginxRouter):
    canary = fast_router.state.canary
    fast_router.set_weight(100)

    fast_router.replace_stable(canary)

    assert fast_router.verify_weight(0)
    conn = http.client.HTTPConnection("127.0.0.1", fast_router.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert (response.getheader(TRACK_HEADER), response.read()) == ("stable", b"version=v2\n")
    conn.close()


def test_twenty_weight_changes_under_keep_alive_load_fail_no_request(
    group: ProcessGroup, tmp_path: Path
):
    stable, canary = start_backend(group, "v1"), start_backend(group, "v2")
    with NginxRouter(tmp_path / "router", group, stable) as router:
        router.set_canary_upstream(canary)
        load = LoadGenerator(LoadConfig(router.url, rate=150, clients=8, max_duration_s=30))
        with load:
            for change in range(20):
                percent = (change * 37) % 101
                router.set_weight(percent)
                assert router.verify_weight(percent)
                time.sleep(0.1)
        counters = load.counters()

    assert counters.total > 300
    assert counters.failed == 0, load.failures()[:5]
    assert counters.by_track["canary"] > 50


def test_a_relative_workdir_works_as_an_absolute_one(group, tmp_path, monkeypatch):
    """``canaryflow demo --out out/demo``: nginx would read relative paths from its prefix."""
    stable = start_static_backend(group, tmp_path, "v1")
    canary = start_static_backend(group, tmp_path, "v2")
    monkeypatch.chdir(tmp_path)
    with NginxRouter(Path("relative/router"), group, stable, verify_timeout_s=3.0) as router:
        router.set_canary_upstream(canary)
        router.set_weight(100)
        assert router.verify_weight(100)
        assert tracks(router, 20) == Counter({"canary": 20})


@pytest.mark.parametrize("deep", ["out", "out-and-tmpdir"])
def test_unix_sockets_find_a_short_enough_folder_however_deep_the_run(
    group: ProcessGroup, tmp_path: Path, monkeypatch, deep: str
):
    """nginx refuses a ``listen unix:`` path over 108 bytes ("too long path in the unix domain
    socket"): a deep ``--out`` falls back to the temp dir, and a deep ``TMPDIR`` to /tmp."""
    deep_folder = tmp_path / ("d" * 60) / ("e" * 60)
    if deep == "out-and-tmpdir":
        deep_folder.mkdir(parents=True)
        monkeypatch.setattr("tempfile.tempdir", str(deep_folder))
    stable = start_static_backend(group, tmp_path, "v1")
    router = NginxRouter(deep_folder / "router", group, stable)
    with router:
        connection = http.client.HTTPConnection("127.0.0.1", router.port, timeout=5)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
        connection.close()
        socket_dir = router._splitter_socket.parent
        assert len(str(router._splitter_socket)) <= 108
        assert socket_dir.exists()
    assert not socket_dir.exists(), "the fallback folder is removed with the router"


@pytest.mark.parametrize("tier", ["edge", "splitter"])
def test_a_master_killed_while_health_looks_is_reported_never_raised(
    fast_router: NginxRouter, tier: str, monkeypatch
):
    """The liveness probe of every analysis round: a master SIGKILLed between its ``alive``
    check and the /proc scan of its workers (CI, at load 15-22, edge-master-kill-9: the
    window was cut by ``PlatformError: nginx edge is not running``, no window-ended) is a
    router problem the window fails on. The kill lands exactly there, every run."""
    instance = getattr(fast_router, tier)
    master = instance.process.popen.pid
    looked = instance._crashed_worker

    def killed_while_looking() -> str | None:
        os.kill(master, signal.SIGKILL)
        os.waitid(os.P_PID, master, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped
        return looked()

    monkeypatch.setattr(instance, "_crashed_worker", killed_while_looking)
    problem = fast_router.health()
    assert problem == f"nginx {tier} master exited (-9)"
