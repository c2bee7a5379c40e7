"""Prometheus as deployed: behind TLS with a company CA, a bearer token or basic auth, and a
tenant header, through the same client the analysis uses; credentials never in an error.

The gateway is a stand-in for what fronts Prometheus in production (kube-rbac-proxy, Mimir's or
Cortex's gateway, an authenticating ingress): it checks ``Authorization`` and ``X-Scope-OrgID``
and forwards the request to a real Prometheus (``prom_fixtures``).
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from http_stub import LoopbackServer, QuietHandler, self_signed_certificate
from prom_fixtures import fleet, prometheus  # noqa: F401 (fixtures)

from canaryflow.analysis.prometheus_auth import PrometheusAccess, SecretRef
from canaryflow.analysis.source import MeasurementError, PrometheusSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.errors import InputError
from canaryflow.plan.load import load_plan

pytestmark = pytest.mark.slow

TOKEN = "eyJhbGciOi.rotating-token-1"
TENANT = "team-checkout"
JSON = "application/json"


class Gateway:
    """HTTPS in front of Prometheus, admitting one credential and one tenant."""

    def __init__(self, upstream: str, workdir, authorization: str, delay_s: float = 0.0):
        self.upstream, self.authorization, self.delay_s = upstream, authorization, delay_s
        self.seen: list[dict[str, str]] = []
        self.ca, key = self_signed_certificate(workdir, "ca")
        self.server = LoopbackServer(self._handler(), (self.ca, key), quiet_errors=True)

    @property
    def url(self) -> str:
        return self.server.url

    def _handler(self):
        gateway = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                gateway.seen.append(dict(self.headers))
                time.sleep(gateway.delay_s)
                if self.headers.get("Authorization") != gateway.authorization:
                    return self.reply(401, b'{"status":"error","error":"unauthorized"}', JSON)
                if self.headers.get("X-Scope-OrgID") != TENANT:
                    return self.reply(400, b'{"status":"error","error":"no org id"}', JSON)
                try:
                    with urllib.request.urlopen(gateway.upstream + self.path, timeout=5) as r:
                        return self.reply(r.status, r.read(), JSON)
                except urllib.error.HTTPError as error:
                    return self.reply(error.code, error.read(), JSON)

        return Handler

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def bearer_gateway(prometheus, tmp_path):  # noqa: F811
    gateway = Gateway(prometheus.url, tmp_path, f"Bearer {TOKEN}")
    yield gateway
    gateway.stop()


def spec(**prometheus_settings) -> AnalysisSpec:
    return AnalysisSpec.model_validate({"prometheus": prometheus_settings})


def token_file(tmp_path, token: str = TOKEN, name: str = "token"):
    path = tmp_path / "secret" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(token + "\n")
    return path


def test_a_bearer_token_file_a_tenant_header_and_a_ca_reach_prometheus(bearer_gateway, tmp_path):
    settings = spec(
        url=bearer_gateway.url,
        bearerToken={"file": str(token_file(tmp_path))},
        headers={"X-Scope-OrgID": TENANT},
        caFile=str(bearer_gateway.ca),
    )
    source = PrometheusSource.for_spec(settings.prometheus)

    assert source.instant("vector(1)") == [1.0]
    assert source.validate_query("sum(rate(http_requests_total[1m]))") is None
    assert source.validate_query("sum(rate(") is not None
    assert {h["Authorization"] for h in bearer_gateway.seen} == {f"Bearer {TOKEN}"}


def test_a_rotated_token_file_is_read_again(bearer_gateway, tmp_path):
    path = token_file(tmp_path, "expired")
    access = PrometheusAccess(
        bearer_token=SecretRef(file=str(path)),
        headers={"X-Scope-OrgID": TENANT},
        ca_file=str(bearer_gateway.ca),
    )
    source = PrometheusSource(bearer_gateway.url, access=access)
    with pytest.raises(MeasurementError, match="HTTP 401"):
        source.instant("vector(1)")

    path.write_text(TOKEN)  # kubelet refreshed the projected token

    assert source.instant("vector(1)") == [1.0]


def test_a_token_from_the_environment(bearer_gateway, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_TOKEN", TOKEN)
    settings = spec(
        bearerToken={"env": "PROMETHEUS_TOKEN"},
        headers={"X-Scope-OrgID": TENANT},
        caFile=str(bearer_gateway.ca),
    )
    assert PrometheusSource.for_spec(settings.prometheus, bearer_gateway.url).instant(
        "vector(2)"
    ) == [2.0]


def test_basic_auth_with_a_password_file(prometheus, tmp_path):  # noqa: F811
    gateway = Gateway(
        prometheus.url, tmp_path, "Basic Y2FuYXJ5ZmxvdzpzM2NyZXQ="
    )  # canaryflow:s3cret
    try:
        password = tmp_path / "password"
        password.write_text("s3cret")
        settings = spec(
            basicAuth={"username": "canaryflow", "passwordFile": str(password)},
            headers={"X-Scope-OrgID": TENANT},
            caFile=str(gateway.ca),
        )
        assert PrometheusSource.for_spec(settings.prometheus, gateway.url).instant("vector(3)") == [
            3.0
        ]
    finally:
        gateway.stop()


def test_failures_say_what_to_fix_and_never_show_the_credential(bearer_gateway, tmp_path):
    wrong = token_file(tmp_path, "not-the-token-" + "x" * 20, name="wrong")
    base = {"headers": {"X-Scope-OrgID": TENANT}}
    cases = {
        "HTTP 401": spec(bearerToken={"file": str(wrong)}, caFile=str(bearer_gateway.ca), **base),
        "caFile": spec(bearerToken={"file": str(token_file(tmp_path))}, **base),
        f"cannot read the credential file {tmp_path}/missing": spec(
            bearerToken={"file": str(tmp_path / "missing")}, caFile=str(bearer_gateway.ca)
        ),
    }
    for expected, settings in cases.items():
        source = PrometheusSource.for_spec(settings.prometheus, bearer_gateway.url)
        with pytest.raises(MeasurementError) as error:
            source.instant("vector(1)")
        message = str(error.value)
        assert expected in message
        assert TOKEN not in message and "not-the-token" not in message
        assert TOKEN not in repr(source.access) and "not-the-token" not in repr(source.access)


def test_the_timeout_bounds_each_query(prometheus, tmp_path):  # noqa: F811
    gateway = Gateway(prometheus.url, tmp_path, f"Bearer {TOKEN}", delay_s=2)
    try:
        settings = spec(timeout="0.3s", caFile=str(gateway.ca))
        started = time.monotonic()
        with pytest.raises(MeasurementError, match=r"did not answer within 0\.3s"):
            PrometheusSource.for_spec(settings.prometheus, gateway.url).instant("vector(1)")
        assert time.monotonic() - started < 2, "it waited for the gateway's 2 s answer"
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("prometheus_yaml", "message"),
    [
        ("{bearerToken: {file: /t}, basicAuth: {username: u, passwordEnv: P}}", "keep one"),
        ("{bearerToken: {file: /t, env: TOKEN}}", "exactly one of file or env"),
        ("{bearerToken: {env: 'A B'}}", "bearerToken.env"),
        ("{basicAuth: {username: u}}", "exactly one of passwordFile or passwordEnv"),
        ("{headers: {Authorization: 'Bearer abc'}}", "put credentials in bearerToken"),
        ('{headers: {X-Scope-OrgID: "a\\nInjected: 1"}}', "control characters"),
        ("{headers: {'bad header': x}}", "not an HTTP header name"),
        ("{timeout: 10m}", "timeout"),
    ],
)
def test_bad_prometheus_settings_are_refused_at_validate(prometheus_yaml, message):
    with pytest.raises(InputError) as error:
        load_plan(f"service: {{name: checkout}}\nanalysis:\n  prometheus: {prometheus_yaml}\n")
    text = str(error.value)
    assert text.startswith("analysis.prometheus") and message in text
    assert "abc" not in text or "Authorization" in message
