"""Inputs that were accepted but meant something else are refused (issue 23, item 13).

Each refusal is exit 2 with ``field.path: what is wrong and how to fix it``, and nothing quoted
in it is longer than a line.
"""

from __future__ import annotations

import os

import pytest

from canaryflow.cli import main

BIG = "x" * 100_000


@pytest.mark.parametrize(
    ("plan", "said"),
    [
        ("steps: [{weight: true, duration: 1m}]", "steps[0].weight: true/false is not a number"),
        (
            'steps: [{weight: 10, duration: "1\uff10s"}]',
            "steps[0].duration: '1\uff10s' is not a duration",
        ),
        ('steps: [{weight: 10, duration: "10s\\n"}]', "steps[0].duration: '10s\\n' is not a"),
        ("analysis: {gates: [{metric: error-rate, threshold: {max: false}}]}", "threshold.max"),
        ("owners: {team: x, runbookUrl: 'javascript:alert(1)'}", "owners.runbookUrl: only http"),
        ("owners: {team: x, runbookUrl: 'https://ex\u0430mple.com/'}", "owners.runbookUrl: has"),
        ("owners: {team: x, runbookUrl: 'https://a.example/\u202etxt.exe'}", "owners.runbookUrl"),
        ("notifications: [{webhook: 'https://h\u043eoks.example/x'}]", "notifications[0].webhook"),
        ('owners: {team: "payments\u202e"}', "owners.team: contains a right-to-left override"),
        (f"owners: {{team: x, channel: '{'y' * 100_000}'}}", "owners.channel: text of 100000"),
    ],
)
def test_accepted_but_wrong_values_are_refused(tmp_path, capsys, plan, said):
    path = tmp_path / "canaryflow.yaml"
    path.write_text(f"service: {{name: checkout}}\n{plan}\n")
    assert main(["validate", "--offline", str(path)]) == 2
    err = capsys.readouterr().err
    assert said in err
    assert len(err) < 2000


@pytest.mark.parametrize(
    ("service", "said"),
    [
        ("{name: checkout, port: 1:30}", "service.port: '1:30' is YAML 1.1 base-60"),
        ("{name: checkout, port: 1:00:00}", "service.port"),
        ("{name: checkout, healthPath: /../../admin}", "service.healthPath: has . or .."),
        ("{name: checkout, healthPath: /ok/./x}", "service.healthPath"),
        ("{name: checkout, healthPath: /%2e%2e/admin}", "service.healthPath: has an encoded"),
    ],
)
def test_service_values_a_server_would_read_differently_are_refused(
    tmp_path, capsys, service, said
):
    path = tmp_path / "canaryflow.yaml"
    path.write_text(f"service: {service}\n")
    assert main(["validate", "--offline", str(path)]) == 2
    assert said in capsys.readouterr().err


def test_the_plain_spellings_still_load(tmp_path, capsys):
    path = tmp_path / "canaryflow.yaml"
    path.write_text(
        "service: {name: checkout, port: 8080, healthPath: /healthz?probe=1}\n"
        "steps: [{weight: 10, duration: 1m30s}]\n"
        "owners: {team: payments, runbookUrl: 'https://xn--80ak6aa92e.example/run'}\n"
    )
    assert main(["validate", "--offline", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", BIG],
        ["validate", "PLAN", "--service", BIG],
        ["flag-rollout", "--plan", "PLAN", "--platform", BIG],
        ["analyze", "--plan", "PLAN", "--step", BIG],
        ["set-weight", "--plan", "PLAN", "--weight", BIG],
        [BIG],
    ],
)
def test_a_huge_argument_is_not_echoed_whole(tmp_path, capsys, argv):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: checkout}\n")
    argv = [str(plan) if a == "PLAN" else a for a in argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own refusal
        code = stop.code
    captured = capsys.readouterr()
    assert code == 2
    assert len(captured.err) + len(captured.out) < 5_000


def test_runbook_out_does_not_write_through_a_symlink(tmp_path, capsys):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: checkout}\n")
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "runbook.md"
    os.symlink(victim, link)

    assert main(["runbook", str(plan), "--out", str(link)]) == 2

    assert victim.read_text() == "keep me\n"
    err = capsys.readouterr().err
    assert "--out: " in err and "symbolic link" in err
    assert main(["runbook", str(plan), "--out", str(tmp_path / "ok.md")]) == 0
    assert (tmp_path / "ok.md").read_text().startswith("#")


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_validate_default_plan_is_read_bounded(tmp_path, capsys, device):
    if device == "fifo":
        device = str(tmp_path / "fifo")
        os.mkfifo(device)
    code = main(
        [
            "validate",
            "--offline",
            "--default-plan",
            device,
            "--service",
            "checkout",
            str(tmp_path / "missing.yaml"),
        ]
    )
    assert code == 2
    assert "--default-plan: " in capsys.readouterr().err
