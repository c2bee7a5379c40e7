"""Notifications reach a real HTTP endpoint in the shape the plan asks for."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


GO_TEST_FAILED = '[{"displayName": "go-test", "message": "exit code 1", "phase": "Failed"}]'
GATE_FAILED = (
    '[{"displayName": "analyze", "message": "error-rate 5% > 1%", "phase": "Failed"},'
    ' {"displayName": "canary-steps", "message": "child failed", "phase": "Failed"}]'
)
TRAFFIC_TASKS = "canary-steps,approve-promotion,promote"


def secret_plan(tmp_path, events="[started, step, promoted, rolled-back, failed]"):
    path = tmp_path / "plan.yaml"
    path.write_text(
        "service: {name: checkout, namespace: shop}\n"
        "steps: [{weight: 10, duration: 1m}, {weight: 100, duration: 1m}]\n"
        f"notifications:\n  - {{secretKey: team-hook, format: json, events: {events}}}\n"
    )
    return path


def secrets(tmp_path, **keys: str):
    directory = tmp_path / "secrets"
    directory.mkdir(exist_ok=True)
    for key, value in keys.items():
        (directory / key.replace("_", "-")).write_text(value + "\n")
    return directory


def exit_handler(plan, secrets_dir, failures: str, status="Failed"):
    return main(
        [
            "notify",
            "--plan",
            str(plan),
            "--status",
            status,
            "--failures",
            failures,
            "--traffic-tasks",
            TRAFFIC_TASKS,
            "--secrets-dir",
            str(secrets_dir),
        ]
    )


def test_a_gate_failure_arrives_as_rolled_back_and_an_early_failure_as_failed(tmp_path, inbox):
    directory = secrets(tmp_path, team_hook=f"{inbox.url}/team")
    plan = secret_plan(tmp_path)

    assert exit_handler(plan, directory, GATE_FAILED) == 0
    assert exit_handler(plan, directory, GO_TEST_FAILED) == 0
    assert exit_handler(plan, directory, "[]", status="Succeeded") == 0

    events = [body["event"] for _, body, _ in inbox.received]
    assert events == ["rolled-back", "failed", "promoted"]
    assert inbox.received[0][1]["failures"][0]["displayName"] == "analyze"


def test_started_and_step_events_say_where_the_release_is(tmp_path, inbox):
    directory = secrets(tmp_path, team_hook=f"{inbox.url}/team")
    plan = secret_plan(tmp_path)
    base = ["notify", "--plan", str(plan), "--secrets-dir", str(directory), "--version", "abc"]

    assert main([*base, "--event", "started"]) == 0
    assert main([*base, "--event", "step", "--step", "0"]) == 0

    (_, started, _), (_, step, _) = inbox.received
    assert (started["event"], started["reason"]) == ("started", "release started: 2 steps")
    assert step["reason"] == "step 1 of 2: 10% passed its analysis window"


def test_webhook_urls_come_from_the_secret_and_are_never_printed(tmp_path, capsys):
    hook = "http://127.0.0.1:9/services/T000/SECRET-TOKEN"  # nothing listens on port 9
    directory = secrets(tmp_path, team_hook=hook, webhook_url=hook + "-chart")
    plan = secret_plan(tmp_path)

    assert exit_handler(plan, directory, GATE_FAILED) == 0

    captured = capsys.readouterr()
    assert "SECRET-TOKEN" not in captured.out + captured.err
    assert "secret key team-hook" in captured.err and "secret key webhook-url" in captured.err


def test_a_missing_secret_key_is_a_warning_naming_the_key(tmp_path, capsys):
    assert exit_handler(secret_plan(tmp_path), secrets(tmp_path), GATE_FAILED) == 0
    assert "secret key 'team-hook' is not in the notifications Secret" in capsys.readouterr().err


def test_the_chart_wide_webhook_gets_every_event(tmp_path, inbox):
    plan = secret_plan(tmp_path, events="[failed]")
    directory = secrets(tmp_path, webhook_url=f"{inbox.url}/chart")
    base = ["notify", "--plan", str(plan), "--secrets-dir", str(directory)]

    assert main([*base, "--event", "started"]) == 0

    ((path, body, _),) = inbox.received
    assert path == "/chart" and "checkout in shop: started" in body["text"]


def test_gitlab_commit_status_with_its_token_and_states(tmp_path, inbox, monkeypatch):
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-x")
    url = f"{inbox.url}/api/v4/projects/shop%2Fcheckout/statuses/abc"
    plan = secret_plan(tmp_path, events="[]")
    base = ["notify", "--plan", str(plan), "--commit-status-url", url, "--git-provider", "gitlab"]

    assert main([*base, "--event", "started"]) == 0
    assert (
        main(
            [
                *base,
                "--status",
                "Failed",
                "--failures",
                GATE_FAILED,
                "--traffic-tasks",
                TRAFFIC_TASKS,
            ]
        )
        == 0
    )

    states = [(body["state"], body["name"]) for _, body, _ in inbox.received]
    assert states == [("running", "canaryflow/checkout"), ("failed", "canaryflow/checkout")]
    tokens = [{k.lower(): v for k, v in h.items()}["private-token"] for _, _, h in inbox.received]
    assert tokens == ["glpat-x", "glpat-x"]


def test_without_a_token_no_commit_status_is_sent(tmp_path, inbox, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    url = f"{inbox.url}/repos/o/r/statuses/abc"
    plan = secret_plan(tmp_path, events="[]")

    assert (
        main(["notify", "--plan", str(plan), "--status", "Succeeded", "--commit-status-url", url])
        == 0
    )
    assert inbox.received == []


def test_a_hung_webhook_cannot_hold_the_release_up(tmp_path, monkeypatch, capsys):
    """The endpoint accepts the connection and never answers: notify gives up and exits 0."""
    from canaryflow.commands import notify

    monkeypatch.setattr(notify, "TIMEOUT_S", 0.3)
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        directory = secrets(tmp_path, team_hook=f"http://127.0.0.1:{port}/hang")
        assert exit_handler(secret_plan(tmp_path), directory, GATE_FAILED) == 0
    finally:
        listener.close()
    assert "notification not delivered: secret key team-hook" in capsys.readouterr().err


def test_a_release_that_failed_before_its_plan_still_sets_the_commit_status(
    tmp_path, inbox, monkeypatch
):
    monkeypatch.setenv("GITHUB_TOKEN", "t0k")
    directory = secrets(tmp_path, webhook_url=f"{inbox.url}/chart")
    url = f"{inbox.url}/repos/o/r/statuses/abc"
    argv = ["notify", "--plan", str(tmp_path / "never-written.yaml"), "--status", "Failed"]
    argv += ["--service", "checkout", "--namespace", "shop", "--commit-status-url", url]

    assert main([*argv, "--secrets-dir", str(directory), "--failures", GO_TEST_FAILED]) == 0

    bodies = {path: body for path, body, _ in inbox.received}
    assert bodies["/repos/o/r/statuses/abc"]["state"] == "error"
    assert "checkout in shop: failed" in bodies["/chart"]["text"]


def test_a_rollback_that_did_not_complete_is_reported_as_failed_with_the_way_out(tmp_path, inbox):
    directory = secrets(tmp_path, team_hook=f"{inbox.url}/team")
    argv = ["notify", "--plan", str(secret_plan(tmp_path)), "--status", "Failed"]
    argv += ["--failures", GATE_FAILED, "--traffic-tasks", TRAFFIC_TASKS]

    assert main([*argv, "--secrets-dir", str(directory), "--safety-net", "Failed"]) == 0
    assert main([*argv, "--secrets-dir", str(directory), "--safety-net", "Succeeded"]) == 0

    (_, unsafe, _), (_, safe, _) = inbox.received
    assert unsafe["event"] == "failed" and "roll back by hand" in unsafe["reason"]
    assert safe["event"] == "rolled-back"


# {{workflow.failures}} as Argo passes it: strconv.Quote of the JSON (operator.go v3.6.19:422;
# the escaped form of hooks_test.go TestWfHookHasFailures), Steps/DAG nodes included.
GATE_FAILED_AS_ARGO_PASSES_IT = (
    r'"[{\"displayName\":\"canary-steps\",\"message\":\"child '
    r"'rel-1234' failed\",\"templateName\":\"plan-step\",\"phase\":\"Failed\","
    r"\"podName\":\"rel-plan-step-1\",\"finishedAt\":\"2026-01-02T03:04:05Z\"},"
    r"{\"displayName\":\"analyze\",\"message\":\"error-rate 5% \u003e 1%\","
    r"\"templateName\":\"analyze\",\"phase\":\"Failed\",\"podName\":\"rel-analyze-2\","
    r'\"finishedAt\":\"2026-01-02T03:04:05Z\"}]"'
)


def test_argos_quoted_failures_of_a_failed_gate_arrive_as_rolled_back(tmp_path, inbox):
    directory = secrets(tmp_path, team_hook=f"{inbox.url}/team")
    plan = secret_plan(tmp_path)

    assert exit_handler(plan, directory, GATE_FAILED_AS_ARGO_PASSES_IT) == 0

    (received,) = [body for _, body, _ in inbox.received]
    assert received["event"] == "rolled-back"
    assert {f["displayName"] for f in received["failures"]} == {"canary-steps", "analyze"}
    assert "error-rate 5% > 1%" in {f["message"] for f in received["failures"]}


@pytest.mark.parametrize("nothing", ['"null"', "null", "", '"[]"'])
def test_no_failed_node_is_no_failures(nothing):
    from canaryflow.notify.failures import parse_failures

    assert parse_failures(nothing) == []


def test_a_quoted_value_that_is_not_a_go_string_is_an_input_error(tmp_path, capsys):
    plan = secret_plan(tmp_path)
    argv = ["notify", "--plan", str(plan), "--status", "Failed", "--failures", '"[{\\q}]"']
    assert main(argv) == 2
    assert "--failures: not a Go-quoted string" in capsys.readouterr().err


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@given(
    st.lists(
        st.fixed_dictionaries(
            {"displayName": _TEXT, "message": _TEXT, "phase": st.sampled_from(["Failed", "Error"])}
        ),
        max_size=4,
    )
)
def test_every_failure_list_survives_argos_marshal_and_quote(nodes):
    """Go's json.Marshal (HTML-safe escapes) then strconv.Quote, as the bed's controller
    writes them, read back exactly."""
    from cluster.argo.failures import go_json, go_quote

    from canaryflow.notify.failures import parse_failures

    assert parse_failures(go_quote(go_json(nodes or None))) == nodes
    assert parse_failures(json.dumps(nodes)) == nodes
