"""Slow peers and unbounded reads (issue 23, item 12).

A webhook that drips one byte every 2 s held ``notify`` for 150 s or more (the deadline did
not cover the body); ten hanging webhooks took 67 s (posted one after another); the webhook-url
secret was read whole from /dev/zero or hung on a FIFO.
"""

from __future__ import annotations

import os
import time

from canaryflow.cli import main
from canaryflow.commands import notify
from canaryflow.notify.webhook import post_json
from hostile.servers import drip, hang, ok, serve


def test_one_deadline_covers_the_answers_body():
    with serve(drip(every_s=2.0)) as (url, seen):
        started = time.monotonic()
        problem = post_json(url, {"text": "x"}, attempts=1, timeout_s=3.0, deadline_s=3.0)
        took = time.monotonic() - started
    assert seen.requests, "the webhook was reached"
    assert problem is not None and "within 3s" in problem
    assert took < 2 * 3.0  # the deadline, not 60 bytes x 2 s


def _notify_seconds(tmp_path, urls: list[str], capsys) -> float:
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: checkout}\n")
    argv = ["notify", "--plan", str(plan), "--status", "Failed"]
    for url in urls:
        argv += ["--webhook", url]
    started = time.monotonic()
    assert main(argv) == 0
    capsys.readouterr()
    return time.monotonic() - started


def test_ten_hanging_webhooks_take_about_one_deadline(tmp_path, capsys):
    with serve(hang(60)) as (url, seen):
        one = _notify_seconds(tmp_path, [f"{url}/0"], capsys)
        ten = _notify_seconds(tmp_path, [f"{url}/{i}" for i in range(10)], capsys)
    assert len(seen.requests) >= 11
    assert one >= notify.DEADLINE_S * 0.9  # it did wait for the hanging one
    assert ten < 2 * one, f"one hanging webhook {one:.1f}s, ten {ten:.1f}s"


def test_a_dripping_webhook_costs_notify_one_deadline(tmp_path, capsys):
    with serve(drip(every_s=2.0)) as (url, _):
        took = _notify_seconds(tmp_path, [url], capsys)
    assert took < notify.DEADLINE_S + notify.TIMEOUT_S


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
