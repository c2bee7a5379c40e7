"""Notifications reach a real HTTP endpoint in the shape the plan asks for."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from canaryflow.cli import main


class Inbox:
    def __init__(self, fail_first: int = 0):
        self.received: list[tuple[str, dict, dict]] = []
        self.fail_first = fail_first


@pytest.fixture
def inbox():
    box = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if box.fail_first > 0:
                box.fail_first -= 1
                self.send_response(503)
            else:
                box.received.append((self.path, body, dict(self.headers)))
                self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    box.url = f"http://127.0.0.1:{server.server_port}"
    yield box
    server.shutdown()
    server.server_close()


def plan_file(tmp_path, url, fmt="slack", events="[rolled-back, failed]"):
    path = tmp_path / "plan.yaml"
    path.write_text(
        f"service: {{name: checkout, namespace: shop}}\n"
        f"notifications:\n  - {{webhook: '{url}/hook', format: {fmt}, events: {events}}}\n"
    )
    return path


def test_a_rollback_is_posted_to_the_plan_webhook_as_slack_text(tmp_path, inbox):
    failures = '[{"displayName": "analyze-1", "message": "error-rate 5.1% > 1%"}]'
    args = ["notify", "--plan", str(plan_file(tmp_path, inbox.url)), "--status", "Failed"]
    assert main([*args, "--rolled-back", "--version", "abc123", "--failures", failures]) == 0
    ((path, body, _),) = inbox.received
    assert path == "/hook"
    assert "checkout abc123 in shop: rolled-back" in body["text"]
    assert "analyze-1: error-rate 5.1% > 1%" in body["text"]


def test_events_the_plan_did_not_ask_for_are_not_sent(tmp_path, inbox):
    args = ["notify", "--plan", str(plan_file(tmp_path, inbox.url)), "--status", "Succeeded"]
    assert main(args) == 0
    assert inbox.received == []


def test_json_format_and_commit_status_with_retries(tmp_path, inbox, monkeypatch):
    inbox.fail_first = 1  # the first POST gets a 503 and is retried
    monkeypatch.setenv("GITHUB_TOKEN", "t0k")
    plan = plan_file(tmp_path, inbox.url, fmt="json", events="[promoted]")
    status_url = f"{inbox.url}/repos/o/r/statuses/abc"
    args = ["notify", "--plan", str(plan), "--status", "Succeeded", "--commit-status-url"]
    assert main([*args, status_url]) == 0
    bodies = {path: (body, headers) for path, body, headers in inbox.received}
    assert bodies["/hook"][0]["event"] == "promoted"
    status, headers = bodies["/repos/o/r/statuses/abc"]
    assert status["state"] == "success" and status["context"] == "canaryflow/checkout"
    assert headers["Authorization"] == "Bearer t0k"


def test_an_unreachable_webhook_warns_but_does_not_fail_the_exit_handler(tmp_path, capsys):
    plan = plan_file(tmp_path, "http://127.0.0.1:9")
    assert main(["notify", "--plan", str(plan), "--status", "Failed"]) == 0
    assert "notification not delivered" in capsys.readouterr().err


def test_garbled_failures_json_is_an_input_error(tmp_path, capsys):
    plan = plan_file(tmp_path, "http://127.0.0.1:9")
    assert main(["notify", "--plan", str(plan), "--status", "Failed", "--failures", "{x"]) == 2
    assert "--failures: not JSON" in capsys.readouterr().err
