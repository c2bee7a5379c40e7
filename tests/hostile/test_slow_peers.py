"""Slow peers and unbounded reads (issue 23, item 12).

A webhook that drips one byte every 2 s held ``notify`` for 150 s or more (the deadline did
not cover the body); ten hanging webhooks took 67 s (posted one after another); the webhook-url
secret was read whole from /dev/zero or hung on a FIFO.
"""

from __future__ import annotations

import os

from canaryflow.cli import main
from canaryflow.commands import notify
from canaryflow.notify.webhook import post_json
from hostile.servers import Held, drip, ok, serve


def test_one_deadline_covers_the_answers_body():
    dripping = drip(every_s=2.0)  # the whole body takes 120 s
    with serve(dripping) as (url, seen):
        problem = post_json(url, {"text": "x"}, attempts=1, timeout_s=3.0, deadline_s=3.0)
        body_sent_whole = dripping.finished
    assert seen.requests, "the webhook was reached"
    assert problem is not None and "within 3s" in problem
    assert body_sent_whole == 0, "it read the dripping body to its end instead of giving up"


def _notify(tmp_path, urls: list[str], capsys) -> None:
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: checkout}\n")
    argv = ["notify", "--plan", str(plan), "--status", "Failed"]
    for url in urls:
        argv += ["--webhook", url]
    assert main(argv) == 0
    capsys.readouterr()


def test_ten_hanging_webhooks_are_posted_at_once_and_given_up_together(tmp_path, capsys):
    """Posted one after another, a webhook would only be reached once the one before it had
    been given up (its timeout at least): all ten reached before any attempt could have timed
    out shows they were posted side by side. None ever answers, so notify returned without
    waiting for an answer."""
    held = Held()
    with serve(held) as (url, _):
        try:
            _notify(tmp_path, [f"{url}/{i}" for i in range(10)], capsys)
            answered, arrivals = held.answered, dict(held.first_arrival)
        finally:
            held.release()
    assert sorted(arrivals) == sorted(f"/{i}" for i in range(10))
    spread = max(arrivals.values()) - min(arrivals.values())
    assert spread < notify.TIMEOUT_S, f"the last webhook was reached {spread:.1f}s after the first"
    assert answered == 0, "notify waited for a hanging webhook to answer"


def test_a_dripping_webhook_is_given_up_before_its_body_ends(tmp_path, capsys):
    dripping = drip(every_s=2.0)  # 60 bytes: 120 s, far beyond notify's deadline
    with serve(dripping) as (url, seen):
        _notify(tmp_path, [url], capsys)
        body_sent_whole = dripping.finished
    assert seen.requests and body_sent_whole == 0
    assert dripping.length * dripping.every_s > notify.DEADLINE_S


def test_the_webhook_url_secret_is_read_bounded(tmp_path, capsys):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    os.symlink("/dev/zero", secrets / "webhook-url")
    os.mkfifo(secrets / "team-hook")
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: checkout}\nnotifications: [{secretKey: team-hook}]\n")
    with serve(ok) as (url, seen):
        code = main(
            ["notify", "--plan", str(plan), "--status", "Failed",
             "--secrets-dir", str(secrets), "--webhook", url]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert len(seen.requests) == 1  # the --webhook still heard about it
    assert err.count("is not a regular file") == 2


def test_kubeconfig_is_read_bounded(tmp_path, capsys):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: checkout}\n")
    fifo = tmp_path / "kubeconfig"
    os.mkfifo(fifo)
    for kubeconfig in ("/dev/zero", str(fifo)):
        code = main(
            ["set-weight", "--plan", str(plan), "--weight", "0", "--kubeconfig", kubeconfig]
        )
        assert code == 2
        assert "--kubeconfig: " in capsys.readouterr().err
