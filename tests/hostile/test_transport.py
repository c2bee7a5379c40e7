"""Outbound HTTP under ``canaryflow.transport``: credentials stay with their host, every call
is bounded in time and size, and a hanging webhook never delays a rollback."""

from __future__ import annotations

import pytest
from test_release_engine import ARTIFACT, InMemoryPlatform, ScriptedAnalyzer, plan

from canaryflow.cli import main
from canaryflow.commands.run import _notifications
from canaryflow.image.auth import Credentials
from canaryflow.image.registry import RegistryClient
from canaryflow.notify.webhook import post_json
from canaryflow.release.engine import ReleaseEngine
from canaryflow.release.record import ReleaseRecord
from canaryflow.transport import guard_session, redirect_allowed
from hostile.servers import Held, huge, ok, redirect_to, serve

TOKEN = "ghp_secret-token"


def test_redirects_are_followed_only_within_one_origin():
    assert redirect_allowed("https://a.example/x", "/y")
    assert redirect_allowed("https://a.example/x", "https://a.example:443/y")
    assert not redirect_allowed("https://a.example/x", "https://b.example/y")
    assert not redirect_allowed("https://a.example/x", "http://a.example/y")
    assert not redirect_allowed("http://127.0.0.1:1/x", "http://127.0.0.1:2/y")


def test_a_commit_status_redirected_to_another_host_does_not_carry_the_token(
    tmp_path, monkeypatch, capsys
):
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("service: {name: checkout}\n")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with serve(ok) as (elsewhere, stolen), serve(redirect_to(f"{elsewhere}/steal")) as (api, _):
        code = main(
            ["notify", "--plan", str(plan_file), "--status", "Failed",
             "--commit-status-url", f"{api}/repos/o/r/statuses/abc"]
        )  # fmt: skip
    assert code == 0
    assert stolen.requests == [], "nothing, let alone the token, reached the other host"
    assert "redirect to http://127.0.0.1 not followed" in capsys.readouterr().err


def test_a_same_origin_redirect_is_followed_with_its_credentials():
    def moved(handler, seen):
        if handler.path == "/first":
            redirect_to("/moved")(handler, seen)
        else:
            ok(handler, seen)

    with serve(moved) as (url, seen):
        assert post_json(f"{url}/first", {"a": 1}, {"Authorization": "Bearer x"}) is None
    assert [path for _, path, _ in seen.requests] == ["/first", "/moved"]
    assert seen.headers_named("Authorization") == ["Bearer x", "Bearer x"]


def test_another_port_is_another_origin():
    with serve(ok) as (target, seen), serve(redirect_to(f"{target}/moved")) as (first, _):
        assert post_json(first, {"a": 1}, {"Authorization": "Bearer x"}) is not None
    assert seen.requests == []


def test_a_hanging_webhook_is_given_up_within_the_deadline():
    held = Held()
    with serve(held) as (url, _):
        try:
            problem = post_json(url, {"text": "x"}, timeout_s=0.5, deadline_s=1.5)
            answered = held.answered
        finally:
            held.release()
    assert problem is not None
    assert held.arrived >= 1 and answered == 0, "it waited for the hanging webhook to answer"


def test_a_huge_answer_is_not_read_whole():
    with serve(huge) as (url, _):
        problem = post_json(url, {"text": "x"}, attempts=1)
    assert problem is not None and "larger than" in problem


def test_registry_credentials_never_go_to_an_upload_location_on_another_host():
    def registry(handler, seen):
        if "Authorization" not in handler.headers:
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="r"')
        else:
            handler.send_response(202)
            handler.send_header("Location", f"{elsewhere}/upload/1")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def accept(handler, seen):
        handler.send_response(201)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with serve(accept) as (elsewhere, other), serve(registry) as (reg, own):
        client = RegistryClient(reg.removeprefix("http://"), Credentials("u", "p"), insecure=True)
        client.upload_blob("team/app", b"layer")
    assert own.headers_named("Authorization"), "the registry itself got the credentials"
    assert other.requests and other.headers_named("Authorization") == []


def test_prometheus_sessions_do_not_follow_a_redirect_to_another_host():
    import requests

    session = guard_session(requests.Session())
    with (
        serve(ok) as (elsewhere, stolen),
        serve(redirect_to(f"{elsewhere}/x")) as (prom, _),
        pytest.raises(requests.RequestException, match="another origin"),
    ):
        session.get(f"{prom}/api/v1/query", headers={"Authorization": "Bearer t"}, timeout=2)
    assert stolen.requests == []


def test_a_webhook_hanging_does_not_delay_the_rollback():
    """The rollback is over while the webhook that was told of its start still hangs: the
    events are posted in the background, and closing the notifier gives up on them."""
    held = Held()
    with serve(held) as (url, _):
        try:
            the_plan = plan(notifications=[{"webhook": url, "format": "json"}])
            record = ReleaseRecord("svc", "v2", "memory")
            notifier = _notifications(the_plan, record)
            engine = ReleaseEngine(
                the_plan, InMemoryPlatform(), ScriptedAnalyzer(["fail"]), record, sleep=lambda s: 0
            )
            result = engine.run(ARTIFACT)
            # The sender posts in the background: the rollback may be over before it connects.
            reached = held.wait_arrived(1)
            unsent = notifier.close(drain_s=0.2)
            answered_before_close_returned = held.answered
        finally:
            held.release()
    assert result.phase == "rolled-back"
    assert record.first("rolled-back").at >= record.first("rollback-started").at
    assert reached, "the webhook was called (and hung)"
    assert answered_before_close_returned == 0, "the rollback or close waited for the webhook"
    assert unsent >= 1, "closing said every event was delivered, yet the webhook never answered"


@pytest.mark.slow
def test_a_real_local_rollback_is_not_delayed_by_a_hanging_webhook(tmp_path):
    """On the local platform: a canary answering 50 % errors, every event posted to a webhook
    that never answers; the release is rolled back while the webhook still hangs."""
    from canaryflow.local.programs import sample_service
    from canaryflow.local.stack import LocalStack
    from canaryflow.plan.load import plan_from_dict

    held = Held()
    with serve(held) as (url, _):
        plan = plan_from_dict(
            {
                "service": {"name": "checkout", "namespace": "e2e", "healthTimeout": "15s"},
                "steps": [{"weight": 50, "duration": "20s"}],
                "analysis": {
                    "interval": "1s",
                    "queryWindow": "4s",
                    "minCanaryRequests": 5,
                    "warmup": "2s",  # CI-sized (default: a scrape + 30 s)
                    "gates": [{"metric": "error-rate", "threshold": {"max": 0.05}}],
                },
                "notifications": [{"webhook": url, "format": "json"}],
                "local": {"load": {"rate": 60, "clients": 4}},
            }
        )
        build = tmp_path / "build"
        try:
            with LocalStack(plan, sample_service("v1", build), tmp_path / "stack") as stack:
                record = ReleaseRecord("checkout", "v2", "local")
                notifier = _notifications(plan, record)
                faulty = sample_service("v2", build, ("-error-rate", "0.5"))
                result = stack.release(faulty, record=record)
                answered_when_rolled_back = held.answered
            unsent = notifier.close(drain_s=0.5)
        finally:
            held.release()
    rollback_s = record.first("rolled-back").at - record.first("rollback-started").at
    print(f"rollback with a hanging webhook: {rollback_s:.3f}s; {unsent} not delivered")
    assert result.phase == "rolled-back"
    assert held.arrived >= 1, "the webhook was called"
    assert answered_when_rolled_back == 0, "the rollback waited for the hanging webhook"


@pytest.fixture
def self_signed_https(tmp_path):
    """An https server on 127.0.0.1 with a certificate nobody trusts."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serve(ok) as (url, seen):
        from hostile import servers

        server = servers.last_server
        server.socket = context.wrap_socket(server.socket, server_side=True)
        yield url.replace("http://", "https://"), seen


def test_tls_is_verified_by_default(self_signed_https):
    url, seen = self_signed_https
    problem = post_json(url, {"text": "x"}, {"Authorization": "Bearer t"}, attempts=1)
    assert problem is not None and "CERTIFICATE_VERIFY_FAILED" in problem
    assert seen.requests == [], "nothing, credentials least of all, went to an unverified host"


def test_a_prometheus_answer_without_a_length_is_still_read_up_to_the_limit():
    import requests

    session = guard_session(requests.Session(), limit=1 << 20)
    with serve(huge) as (prom, _), pytest.raises(OSError, match="larger than"):
        session.get(f"{prom}/api/v1/query", timeout=5)
    with serve(ok) as (prom, _):
        assert session.get(f"{prom}/api/v1/query", timeout=5).text == "ok"
