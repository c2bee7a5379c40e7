"""The sample service, as a release sees it: real binaries on 127.0.0.1, real HTTP."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from canaryflow.build import build_sample_service
from canaryflow.flags.bucketing import fractional_bucket, murmur3_32
from canaryflow.local.process import LOOPBACK, ManagedProcess, ProcessGroup, free_port, wait_http_ok

pytestmark = pytest.mark.slow

BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
GC_QUANTILES = {"0", "0.25", "0.5", "0.75", "1"}


# The same users and buckets are checked in Go (examples/sample-service/flags_test.go).
FRACTIONAL_CASES = {"user-0": 28, "user-1": 90, "user-4": 2, "user-5": 24, "user-22": 25}


def flag_document(targeting: dict | None, state: str = "ENABLED") -> dict:
    return {
        "flags": {
            "new-checkout": {
                "state": state,
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": targeting or {},
            }
        }
    }


FRACTIONAL_25 = {
    "fractional": [
        {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]},
        ["on", 25],
        ["off", 75],
    ]
}


def users_in(*names: str) -> dict:
    return {"if": [{"in": [{"var": "targetingKey"}, list(names)]}, "on", "off"]}


# --- Prometheus text format ------------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_exposition(text: str) -> tuple[dict[str, str], list[Sample]]:
    """Family types and samples; fails on any line that is not valid text format 0.0.4."""
    types, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line.startswith("# HELP ") or not line:
            continue
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            pairs = LABEL.findall(labels or "")
            assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or ""), line
            samples.append(Sample(name, dict(pairs), float(value)))
    return types, samples


def series(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in series(samples, name, **labels))


# --- a running service -----------------------------------------------------------------------


@dataclass
class Service:
    port: int
    process: ManagedProcess

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            conn.close()

    def get(self, path: str = "/", user: str | None = None) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, headers={"X-User-Id": user} if user else None)

    def codes(self, count: int, path: str = "/", user: str | None = None) -> list[int]:
        """Status codes of `count` requests over one keep-alive connection."""
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
        try:
            codes = []
            for _ in range(count):
                conn.request("GET", path, headers={"X-User-Id": user} if user else {})
                response = conn.getresponse()
                response.read()
                codes.append(response.status)
            return codes
        finally:
            conn.close()

    def variant(self, user: str) -> str:
        status, _, body = self.get("/", user=user)
        assert status == 200, body
        return json.loads(body)["variant"]

    def put_faults(self, **faults) -> dict:
        status, _, body = self.request("PUT", "/admin/faults", faults)
        assert status == 200, body
        return json.loads(body)

    def faults(self) -> dict:
        return json.loads(self.get("/admin/faults")[2])

    def metrics(self) -> tuple[dict[str, str], list[Sample]]:
        status, headers, body = self.get("/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse_exposition(body)


@pytest.fixture(scope="session")
def binaries(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sample-service")
    return {version: build_sample_service(out, version) for version in ("v1", "v2")}


@pytest.fixture
def processes(tmp_path) -> Iterator[ProcessGroup]:
    with ProcessGroup(tmp_path / "logs") as group:
        yield group


@pytest.fixture
def start(binaries, processes):
    def start(*args: str, version: str = "v2", env: dict | None = None) -> Service:
        port = free_port()
        process = processes.start(
            f"sample-{version}-{port}",
            [str(binaries[version]), "-listen", f"{LOOPBACK}:{port}", *args],
            env=env,
        )
        wait_http_ok(f"http://{LOOPBACK}:{port}/healthz", timeout_s=10, process=process)
        return Service(port, process)

    return start


def write_flags(path: Path, document: dict) -> None:
    """Replaces the file atomically, as a config-map update or an editor's save would."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document))
    partial.replace(path)


def eventually(predicate, what: str, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s}s: {what}")
        time.sleep(0.1)


# --- specifications --------------------------------------------------------------------------


def test_health_version_header_and_build_info(start):
    service = start()
    status, _, body = service.get("/healthz")
    assert (status, body.strip()) == (200, "ok")
    status, headers, body = service.get("/")
    assert status == 200
    assert headers["X-Version"] == "v2"
    assert json.loads(body)["version"] == "v2"
    _, samples = service.metrics()
    (info,) = series(samples, "sample_build_info")
    assert info.labels["version"] == "v2" and info.labels["goversion"].startswith("go")
    assert info.value == 1


def test_each_binary_carries_its_own_version(start):
    assert start(version="v1").get("/")[1]["X-Version"] == "v1"


def test_metrics_have_every_series_the_analysis_catalogue_queries(start):
    service = start("-outbound-error-rate", "1", "-cache-miss-rate", "0.5")
    assert set(service.codes(20)) == {200}
    service.codes(5, path="/checkout")
    service.codes(5, path="/no/such/page")
    service.get("/healthz")
    time.sleep(0.25)  # at least two CFS periods
    types, samples = service.metrics()

    assert types == {
        "http_requests_total": "counter",
        "http_request_duration_seconds": "histogram",
        "http_client_requests_total": "counter",
        "db_query_duration_seconds": "histogram",
        "cache_requests_total": "counter",
        "go_goroutines": "gauge",
        "go_gc_duration_seconds": "summary",
        "process_cpu_seconds_total": "counter",
        "container_cpu_cfs_periods_total": "counter",
        "container_cpu_cfs_throttled_periods_total": "counter",
        "sample_build_info": "gauge",
    }
    requests = series(samples, "http_requests_total")
    assert {tuple(sorted(s.labels)) for s in requests} == {("code", "method", "path", "variant")}
    assert {s.labels["path"] for s in requests} == {"/", "/checkout", "other"}
    assert total(samples, "http_requests_total") == 30, "only user traffic is counted"
    assert all(s.labels["variant"] == "" for s in requests), "no flag file, no variant"
    for label in ("app", "namespace", "track"):
        assert all(label not in s.labels for s in samples), f"{label} is Prometheus' to add"

    for histogram, labels, count in [
        ("http_request_duration_seconds", {"path": "/", "variant": ""}, 20),
        ("db_query_duration_seconds", {"operation": "select"}, 30),
    ]:
        buckets = series(samples, f"{histogram}_bucket", **labels)
        assert [b.labels["le"] for b in buckets] == BUCKETS
        counts = [b.value for b in buckets]
        assert counts == sorted(counts), "buckets are cumulative"
        (count_sample,) = series(samples, f"{histogram}_count", **labels)
        assert counts[-1] == count_sample.value == count
        assert series(samples, f"{histogram}_sum", **labels)[0].value > 0

    outbound = series(samples, "http_client_requests_total")
    assert {s.labels["code"] for s in outbound} <= {"503", "error"}
    assert total(samples, "http_client_requests_total") == 30
    assert (
        total(samples, "cache_requests_total", result="hit")
        + total(samples, "cache_requests_total", result="miss")
        == 30
    )
    assert {s.labels["quantile"] for s in series(samples, "go_gc_duration_seconds")} == GC_QUANTILES
    assert series(samples, "go_gc_duration_seconds_count")
    assert total(samples, "go_goroutines") >= 3
    assert total(samples, "process_cpu_seconds_total") > 0
    assert total(samples, "container_cpu_cfs_periods_total") >= 2


def test_error_rate_fault_answers_that_share_with_500_and_logs_each_failure(start):
    service = start()
    before = time.time()
    view = service.put_faults(error_rate=0.5)
    after = time.time()
    assert view["error_rate"] == 0.5
    assert before - 0.01 <= view["since"] <= after + 0.01  # when it was set, on the wall clock
    codes = service.codes(400)
    failures = codes.count(500)
    assert set(codes) == {200, 500}
    assert 0.4 <= failures / 400 <= 0.6
    _, samples = service.metrics()
    assert total(samples, "http_requests_total", code="500") == failures

    lines = [line for line in service.process.log_text().splitlines() if " ERROR " in line]
    assert len(lines) == failures
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"
    assert all(re.match(stamp + " ERROR ", line) for line in lines)
    assert any("upstream call failed: context deadline exceeded" in line for line in lines)
    assert any("connect: connection refused" in line for line in lines)


def test_faults_are_merged_and_bad_ones_refused_naming_the_field(start):
    service = start()
    service.put_faults(latency_ms=5)
    merged = service.put_faults(unhealthy=True)
    assert merged["latency_ms"] == 5 and merged["unhealthy"] is True
    assert service.get("/healthz")[0] == 503

    status, _, body = service.request("PUT", "/admin/faults", {"error_rate": 2})
    assert status == 400 and "error_rate" in json.loads(body)["error"]
    status, _, body = service.request("PUT", "/admin/faults", {"error_rat": 0.1})
    assert status == 400 and "error_rat" in json.loads(body)["error"]
    assert service.faults()["error_rate"] == 0


def test_start_faults_switch_on_after_the_delay(start):
    service = start("-error-rate", "1", "-after", "1")
    assert service.codes(5) == [200] * 5
    pending = service.faults()["pending"]
    assert pending["error_rate"] == 1
    eventually(lambda: service.codes(1) == [500], "the start faults switched on")
    view = service.faults()
    assert view["pending"] is None and view["error_rate"] == 1
    assert view["since"] == pytest.approx(pending["at"], abs=1e-3)


def test_env_configures_faults_and_flags_win(start):
    service = start("-error-rate", "0", env={"SAMPLE_ERROR_RATE": "1", "SAMPLE_LATENCY_MS": "7"})
    view = service.faults()
    assert (view["error_rate"], view["latency_ms"]) == (0, 7)


def test_cpu_burn_is_throttled_by_the_simulated_cfs_quota(start):
    """Throttled periods follow the process's real CPU use: the burn fault adds some, and the
    CPU it reports grows with them (no absolute CPU figure: a loaded machine gives the busy loop
    less CPU than its wall time)."""
    service = start("-cpu-quota-millicores", "100")  # 10 ms of CPU per 100 ms period
    _, before = service.metrics()
    service.put_faults(cpu_burn=40)
    service.codes(10)
    _, after = service.metrics()
    name = "container_cpu_cfs_throttled_periods_total"
    assert total(after, name) - total(before, name) >= 2
    cpu = "process_cpu_seconds_total"
    assert total(after, cpu) > total(before, cpu)


def test_goroutine_leak_fault_leaks_per_request(start):
    """Each request parks `goroutine_leak` goroutines for good. The count around them moves by
    a few (the harness's own connections come and go: CI once saw 99 for 10 x 10), so 20
    requests are told apart from 18 or 22 by a margin of 5 either way."""
    service = start()
    _, before = service.metrics()
    service.put_faults(goroutine_leak=10)
    service.codes(20)
    _, after = service.metrics()
    grown = total(after, "go_goroutines") - total(before, "go_goroutines")
    assert 195 <= grown <= 205


def test_sigterm_shuts_down_cleanly(start):
    service = start()
    assert service.process.stop(grace_s=5) == 0
    assert "stopped" in service.process.log_text()


def test_bad_start_configuration_exits_2_naming_it(binaries, processes):
    process = processes.start("bad", [str(binaries["v1"]), "-error-rate", "2"])
    assert process.popen.wait(5) == 2
    assert "error_rate" in process.log_text()


def test_flag_file_reload_switches_variants_and_a_bad_file_keeps_the_last(start, tmp_path):
    flags = tmp_path / "flags.json"
    write_flags(flags, flag_document(users_in("alice")))
    service = start("-flags-file", str(flags))
    assert (service.variant("alice"), service.variant("bob")) == ("on", "off")

    write_flags(flags, flag_document(users_in("alice", "bob")))
    eventually(lambda: service.variant("bob") == "on", "the new document served")

    flags.write_text('{"flags": {"new-checkout": {"state": "ON"}}}')
    eventually(lambda: "flag reload failed" in service.process.log_text(), "the bad file logged")
    assert service.variant("bob") == "on"

    write_flags(flags, flag_document(users_in("alice"), state="DISABLED"))
    eventually(lambda: service.variant("alice") == "off", "the disabled flag served")

    _, samples = service.metrics()
    assert {s.labels["variant"] for s in series(samples, "http_requests_total")} == {"on", "off"}


def test_python_bucketing_matches_the_fixed_cases_and_murmur3_vectors():
    assert murmur3_32(b"") == 0
    assert murmur3_32(b"hello") == 0x248BFA47
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723
    assert {u: fractional_bucket("new-checkout", u) for u in FRACTIONAL_CASES} == FRACTIONAL_CASES


def test_fractional_split_agrees_with_python(start, tmp_path):
    flags = tmp_path / "flags.json"
    write_flags(flags, flag_document(FRACTIONAL_25))
    service = start("-flags-file", str(flags))
    users = [f"user-{i}" for i in range(120)]
    served = {user: service.variant(user) for user in users}
    expected = {u: "on" if fractional_bucket("new-checkout", u) < 25 else "off" for u in users}
    assert served == expected
    assert 10 <= list(served.values()).count("on") <= 50


def test_flag_on_only_faults_fail_only_flag_on_requests(start, tmp_path):
    flags = tmp_path / "flags.json"
    write_flags(flags, flag_document(users_in("alice")))
    service = start("-flags-file", str(flags))
    service.put_faults(error_rate=1, flag_on_only=True)
    assert set(service.codes(10, user="alice")) == {500}
    assert set(service.codes(10, user="bob")) == {200}
    _, samples = service.metrics()
    assert total(samples, "http_requests_total", code="500", variant="on") == 10
    assert total(samples, "http_requests_total", code="500", variant="off") == 0
