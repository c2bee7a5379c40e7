"""CLI conventions a CI system relies on: JSON errors, exit codes by cause, grouped help,
and a completion script a real bash runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from canaryflow.cli import TASK_VERBS, VERBS, main
from canaryflow.errors import EXIT_INPUT, EXIT_UNREACHABLE

ROOT = Path(__file__).parent.parent
PLAN = sorted((ROOT / "examples" / "plans").glob("*.yaml"))[0]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: connection refused


def test_validate_json_lists_each_mistake_as_path_and_message(tmp_path, capsys):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: Checkout}\nsteps: [{weight: 0, duration: 1m}]\n")
    assert main(["validate", str(plan), "--json"]) == EXIT_INPUT
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["kind"] == "input"
    paths = {error["path"] for error in document["errors"]}
    assert {"service.name", "steps[0].weight"} <= paths
    assert all(error["message"] for error in document["errors"])


def test_validate_json_of_a_good_plan_describes_it(capsys):
    assert main(["validate", str(PLAN), "--offline", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert document["steps"] and document["gates"] > 0
    assert document["queriesCheckedAgainst"] is None


def test_an_unreachable_prometheus_exits_3_not_2_like_a_broken_plan(capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    assert main(["validate", str(PLAN), "--prometheus", url]) == EXIT_UNREACHABLE
    assert "analysis.prometheus.url: cannot check queries" in capsys.readouterr().err
    assert main(["validate", str(PLAN), "--prometheus", url, "--json"]) == EXIT_UNREACHABLE
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "unreachable"
    assert document["errors"][0]["path"] == "analysis.prometheus.url"


def test_help_groups_user_verbs_apart_from_task_verbs_and_lists_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    users, tasks = out.split("task verbs")
    assert "  validate " in users and "  set-weight " not in users
    for verb in TASK_VERBS:
        assert f"  {verb} " in tasks
    assert set(TASK_VERBS) < set(VERBS)
    assert "  3    infrastructure unreachable" in out


def test_set_weight_help_prints_a_percent_sign_not_two(capsys):
    with pytest.raises(SystemExit):
        main(["set-weight", "--help"])
    out = capsys.readouterr().out
    assert "N% of traffic" in out and "%%" not in out


def test_compile_reports_progress_on_stderr_before_the_slow_part(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "canaryflow", "compile", "--engine", "argo", "--out", str(tmp_path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = process.stderr.readline()
        assert first.startswith("compiling the argo bundle")
        assert process.wait(timeout=300) == 0
        assert "compiled " in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_chart_generate_says_what_it_does_before_it_does_it(tmp_path, capsys):
    """The chart's generation compiles the workflows (seconds): a line comes first. Run on a
    copy, so the repository's chart is never rewritten by a test."""
    chart = tmp_path / "chart"
    shutil.copytree(ROOT / "charts" / "canaryflow", chart)
    assert main(["chart", "--generate", "--chart", str(chart)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"generating {chart} from the workflow code ..."
    assert any(line.startswith("generated ") for line in err[1:])


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(
    ("words", "expected", "absent"),
    [
        (["canaryflow", "set-"], {"set-weight"}, {"validate"}),
        (["canaryflow", "set-weight", "--we"], {"--weight"}, {"--offline"}),
        (["canaryflow", "validate", "--js"], {"--json"}, set()),
    ],
)
def test_bash_completion_completes_verbs_and_each_verbs_options(words, expected, absent, capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    quoted = " ".join(f"'{w}'" for w in words)
    driver = (
        f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        '_canaryflow; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", driver],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert expected <= set(out)
    assert not absent & set(out)


def test_zsh_completion_loads_the_bash_function_through_bashcompinit(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef canaryflow\n")
    assert "bashcompinit" in script and "complete -F _canaryflow canaryflow" in script
