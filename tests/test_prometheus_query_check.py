"""The query syntax check (``validate``, and ``analyze`` before its window) against a stub
Prometheus on 127.0.0.1: only Prometheus' own parse error (HTTP 400, ``errorType``
``bad_data``) is the plan's mistake (exit 2, naming the gate's field); credentials refused,
a 5xx, a proxy's HTML page or no API at the URL are not (exit 1, saying what to fix); a
Prometheus older than 2.38 (no ``format_query``, 404) is checked by evaluating the query at
time 0, as before that endpoint existed. No credential is ever shown.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from http_stub import LoopbackServer, QuietHandler

from canaryflow.analysis import prometheus_auth as auth
from canaryflow.cli import main
from canaryflow.errors import EXIT_INPUT, EXIT_OK, EXIT_RELEASE_FAILED, EXIT_UNREACHABLE

TOKEN = "s3cr3t-bearer-token-4f9a"
JSON = "application/json"
PARSE_ERROR = "1:14: parse error: unclosed left parenthesis"
BAD_DATA = json.dumps({"status": "error", "errorType": "bad_data", "error": PARSE_ERROR})
OK = json.dumps({"status": "success", "data": "sum(up)"})
EMPTY_VECTOR = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
PROXY_PAGE = b"<html><body><h1>502 Bad Gateway</h1>Authorization: Bearer " + TOKEN.encode()


class StubPrometheus:
    """Answers ``format_query`` and ``query`` as a test says; records what it was sent.

    ``answers`` maps a path to (status, body, content type), or to a function of the query
    returning that (so one gate's query can be bad and the others fine)."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.seen: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query).get("query", [""])[0]
                with stub.lock:
                    stub.seen.append((parts.path, self.headers.get("Authorization")))
                answer = stub.answers.get(parts.path, (404, b"404 page not found", "text/plain"))
                if callable(answer):
                    answer = answer(query)
                status, body, content_type = answer
                self.reply(status, body if isinstance(body, bytes) else body.encode(), content_type)

            do_POST = do_GET

        self.server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return self.server.url

    def paths(self) -> set[str]:
        return {path for path, _ in self.seen}

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def stub():
    started: list[StubPrometheus] = []

    def start(answers: dict) -> StubPrometheus:
        server = StubPrometheus(answers)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def token_env(tmp_path, monkeypatch):
    """The operator's Prometheus with a bearer token file, as the chart hands it over."""

    def configure(url: str) -> Path:
        path = tmp_path / "secret" / "token"
        path.parent.mkdir(exist_ok=True)
        path.write_text(TOKEN + "\n")
        monkeypatch.setenv(auth.ENV_URL, url)
        monkeypatch.setenv(auth.ENV_BEARER_TOKEN_FILE, str(path))
        return path

    return configure


@pytest.fixture(autouse=True)
def no_operator_prometheus(monkeypatch):
    for name in (auth.ENV_URL, *auth.CREDENTIAL_VARIABLES):
        monkeypatch.delenv(name, raising=False)


def plan_file(tmp_path: Path, url: str | None = None) -> Path:
    """Three gates; ``analysis.gates[2]`` is the custom query a test may have refused."""
    analysis = {
        "interval": "1s",
        "warmup": "0s",
        "baseline": "stable",
        "gates": [
            {"metric": "error-rate", "threshold": {"max": 0.01}},
            {"metric": "latency-p95", "threshold": {"max": 0.5}},
            {
                "name": "queue-depth",
                "query": 'sum(queue_depth{app="{{ service }}", track="{{ track }}"})',
                "threshold": {"max": 100},
            },
        ],
    }
    if url is not None:
        analysis["prometheus"] = {"url": url}
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "service": {"name": "checkout", "namespace": "shop"},
                "router": {"kind": "istio"},
                "steps": [{"weight": 25, "duration": "2s"}],
                "analysis": analysis,
            }
        )
    )
    return plan


def run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def everywhere(text: str) -> None:
    assert TOKEN not in text
    assert "czNjcjN0" not in text  # nor any base64 of it


def refusing_the_queue_query(query: str):
    if "queue_depth" in query:
        return 400, BAD_DATA, JSON
    return 200, OK, JSON


# -- validate ---------------------------------------------------------------------------------


def test_a_parse_error_is_the_plans_mistake_naming_the_gate(stub, tmp_path, capsys):
    prometheus = stub({"/api/v1/format_query": refusing_the_queue_query})
    code, output = run(["validate", str(plan_file(tmp_path, prometheus.url))], capsys)
    assert code == EXIT_INPUT
    assert f"analysis.gates[2].query: Prometheus rejects the canary query: {PARSE_ERROR}" in output
    assert "analysis.gates[0]" not in output and "analysis.gates[1]" not in output


def test_queries_that_parse_are_valid(stub, tmp_path, capsys):
    prometheus = stub({"/api/v1/format_query": (200, OK, JSON)})
    code, output = run(["validate", str(plan_file(tmp_path, prometheus.url))], capsys)
    assert code == EXIT_OK, output
    assert f"queries checked against {prometheus.url}" in output


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_not_the_plans_mistake(stub, tmp_path, token_env, capsys, status):
    prometheus = stub(
        {"/api/v1/format_query": (status, b'{"status":"error","error":"denied"}', JSON)}
    )
    token_env(prometheus.url)
    for json_flag in ([], ["--json"]):
        code, output = run(["validate", str(plan_file(tmp_path)), *json_flag], capsys)
        assert code == EXIT_RELEASE_FAILED, output
        assert f"HTTP {status}" in output
        assert auth.ENV_BEARER_TOKEN_FILE in output and "bearerTokenSecret" in output
        assert "fix it" not in output and "analysis.gates" not in output
        everywhere(output)
    assert {authorization for _, authorization in prometheus.seen} == {f"Bearer {TOKEN}"}


def test_a_401_without_credentials_says_which_settings_send_them(stub, tmp_path, capsys):
    prometheus = stub({"/api/v1/format_query": (401, b"Unauthorized", "text/plain")})
    code, output = run(["validate", str(plan_file(tmp_path, prometheus.url))], capsys)
    assert code == EXIT_RELEASE_FAILED
    assert "no credentials were sent" in output
    assert auth.ENV_BEARER_TOKEN_FILE in output and auth.ENV_USERNAME in output
    assert auth.ENV_URL in output


def test_basic_auth_refused_names_the_username_and_password_settings(
    stub, tmp_path, monkeypatch, capsys
):
    prometheus = stub({"/api/v1/format_query": (401, b"", "text/plain")})
    monkeypatch.setenv(auth.ENV_URL, prometheus.url)
    monkeypatch.setenv(auth.ENV_USERNAME, "canaryflow")
    monkeypatch.setenv(auth.ENV_PASSWORD, TOKEN)
    code, output = run(["validate", str(plan_file(tmp_path))], capsys)
    assert code == EXIT_RELEASE_FAILED
    assert auth.ENV_USERNAME in output and f"${auth.ENV_PASSWORD}" in output
    assert "basicAuth" in output
    everywhere(output)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ((503, b'{"status":"error","errorType":"unavailable","error":"shutting down"}', JSON),
         "HTTP 503 (unavailable: shutting down)"),
        ((500, b"internal", "text/plain"), "HTTP 500, a server error that is not Prometheus'"),
        ((502, PROXY_PAGE, "text/html"), "HTTP 502, a server error that is not Prometheus'"),
        ((400, b"<html>400 Bad Request</html>", "text/html"), "HTTP 400, not Prometheus' JSON"),
        ((400, b'{"status":"error","error":"no org id"}', JSON), "HTTP 400, not Prometheus'"),
    ],
)  # fmt: skip
def test_a_server_or_proxy_error_is_not_the_plans_mistake(
    stub, tmp_path, token_env, capsys, answer, said
):
    prometheus = stub({"/api/v1/format_query": answer})
    token_env(prometheus.url)
    code, output = run(["validate", str(plan_file(tmp_path))], capsys)
    assert code == EXIT_RELEASE_FAILED, output
    assert said in output
    assert f"Prometheus at {prometheus.url} answered" in output
    assert "Bad Gateway" not in output, "a proxy's page is not repeated"
    everywhere(output)


def test_the_url_is_shown_without_its_userinfo(stub, tmp_path, capsys):
    prometheus = stub({"/api/v1/format_query": (500, b"", "text/plain")})
    url = prometheus.url.replace("://", f"://checker:{TOKEN}@")
    code, output = run(["validate", str(plan_file(tmp_path, url))], capsys)
    assert code == EXIT_RELEASE_FAILED
    assert f"Prometheus at {prometheus.url} answered HTTP 500" in output
    everywhere(output)


def test_a_secret_echoed_in_prometheus_error_text_is_blotted_out(stub, tmp_path, token_env, capsys):
    echoed = json.dumps({"status": "error", "errorType": "bad_data", "error": f"got {TOKEN}"})
    prometheus = stub({"/api/v1/format_query": (400, echoed, JSON)})
    token_env(prometheus.url)
    code, output = run(["validate", str(plan_file(tmp_path))], capsys)
    assert code == EXIT_INPUT
    assert "got ***" in output
    everywhere(output)


def test_before_format_query_the_query_is_evaluated_at_time_0(stub, tmp_path, capsys):
    """Prometheus < 2.38 has no /api/v1/format_query (404): the check the code did before."""

    def query(text: str):
        return (400, BAD_DATA, JSON) if "queue_depth" in text else (200, EMPTY_VECTOR, JSON)

    prometheus = stub({"/api/v1/query": query})
    code, output = run(["validate", str(plan_file(tmp_path, prometheus.url))], capsys)
    assert code == EXIT_INPUT
    assert "analysis.gates[2].query: Prometheus rejects the canary query" in output
    assert prometheus.paths() >= {"/api/v1/format_query", "/api/v1/query"}

    fine = stub({"/api/v1/query": (200, EMPTY_VECTOR, JSON)})
    assert run(["validate", str(plan_file(tmp_path, fine.url))], capsys)[0] == EXIT_OK


def test_an_evaluation_error_at_time_0_means_the_query_parsed(stub, tmp_path, capsys):
    execution = json.dumps({"status": "error", "errorType": "execution", "error": "many-to-many"})
    prometheus = stub({"/api/v1/query": (422, execution, JSON)})
    code, output = run(["validate", str(plan_file(tmp_path, prometheus.url))], capsys)
    assert code == EXIT_OK, output


def test_no_api_at_the_url_is_not_the_plans_mistake(stub, tmp_path, capsys):
    prometheus = stub({})  # 404 everywhere: a wrong path prefix, not Prometheus
    code, output = run(["validate", str(plan_file(tmp_path, prometheus.url))], capsys)
    assert code == EXIT_RELEASE_FAILED
    assert "HTTP 404 to /api/v1/format_query and to /api/v1/query" in output
    assert "path prefix" in output and "analysis.gates" not in output


def test_json_says_failed_not_input(stub, tmp_path, token_env, capsys):
    prometheus = stub({"/api/v1/format_query": (401, b"", "text/plain")})
    token_env(prometheus.url)
    code, output = run(["validate", str(plan_file(tmp_path)), "--json"], capsys)
    assert code == EXIT_RELEASE_FAILED
    document = json.loads(output)
    assert document["ok"] is False and document["kind"] == "failed"


def test_an_unreadable_credential_file_is_1_not_unreachable(stub, tmp_path, monkeypatch, capsys):
    """Nothing was sent, and trying again will not help: not 3 ("never answered")."""
    prometheus = stub({"/api/v1/format_query": (200, OK, JSON)})
    monkeypatch.setenv(auth.ENV_URL, prometheus.url)
    monkeypatch.setenv(auth.ENV_BEARER_TOKEN_FILE, str(tmp_path / "missing"))
    code, output = run(["validate", str(plan_file(tmp_path))], capsys)
    assert code == EXIT_RELEASE_FAILED, output
    assert f"{tmp_path}/missing" in output and "credential file" in output
    assert not prometheus.seen


# -- analyze ----------------------------------------------------------------------------------


def test_analyze_with_a_parse_error_exits_2_naming_the_gate(stub, tmp_path, capsys):
    prometheus = stub({"/api/v1/format_query": refusing_the_queue_query})
    plan = plan_file(tmp_path, prometheus.url)
    code, output = run(["analyze", "--plan", str(plan), "--duration", "1s"], capsys)
    assert code == EXIT_INPUT
    assert "analysis.gates[2].query: Prometheus rejects the canary query" in output
    assert "/api/v1/query" not in prometheus.paths(), "nothing measured"


def test_analyze_with_refused_credentials_is_an_error_window_not_bad_input(
    stub, tmp_path, token_env, capsys
):
    """Not exit 2: the window runs as on any Prometheus error (every measurement ERROR, the
    rollback decision, the fail-safe where asked), and it says which credentials to fix."""
    refused = (401, b'{"status":"error","error":"unauthorized"}', JSON)
    prometheus = stub({"/api/v1/format_query": refused, "/api/v1/query": refused})
    token_env(prometheus.url)
    report = tmp_path / "report.json"
    argv = ["analyze", "--plan", str(plan_file(tmp_path)), "--duration", "1s"]
    code, output = run([*argv, "--report-file", str(report)], capsys)
    assert code == EXIT_RELEASE_FAILED, output
    assert "warning: queries not checked: Prometheus at" in output
    assert auth.ENV_BEARER_TOKEN_FILE in output
    document = json.loads(report.read_text())
    assert document["verdict"]["outcome"] == "error"
    reasons = {m["reason"] for m in document["measurements"]}
    assert reasons and all(auth.ENV_BEARER_TOKEN_FILE in reason for reason in reasons), reasons
    everywhere(output + report.read_text())


def test_analyze_never_shows_the_urls_userinfo_when_prometheus_is_down(tmp_path, capsys):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: connection refused
    plan = plan_file(tmp_path, f"http://checker:{TOKEN}@127.0.0.1:{port}")
    code, output = run(["analyze", "--plan", str(plan), "--duration", "1s"], capsys)
    assert code == EXIT_UNREACHABLE, output
    assert f"Prometheus at http://127.0.0.1:{port} did not answer" in output
    everywhere(output)
