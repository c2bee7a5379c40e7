"""Every command the runbook prints is quoted for a POSIX shell: pasting it runs only it.

Plan validation already refuses these values in names, namespaces and routes; these tests build
plans around validation (``model_copy``) to show that quoting alone would still hold, and then
paste each printed command into a real ``sh``: ``sh -n`` must parse it, and run against stub
``kubectl``/``argo``/``jq``/``canaryflow`` programs that record their argv, every hostile value
arrives as one whole argument and nothing else runs.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from canaryflow.errors import InputError
from canaryflow.plan.load import load_plan, plan_from_dict
from canaryflow.plan.model import ApproveSpec, StepSpec
from canaryflow.runbook import RunbookContext, render_runbook
from hostile.strings import HOSTILE, MARKER

PLAN = """
service: {name: checkout, namespace: shop}
owners: {team: payments}
flag: {key: new-checkout, steps: [{percent: 10, duration: 1m}]}
"""
STUBS = ("kubectl", "argo", "jq", "canaryflow")
ROUTERS = ("nginx-ingress", "istio", "gateway-api", "smi")
SHELL_SAFE = [h for h in HOSTILE if "\x00" not in h and h.strip() and len(h) < 200]


def hostile_plan(value: str, kind: str, rollback: str = "delete"):
    plan = load_plan(PLAN)
    return plan.model_copy(
        update={
            "service": plan.service.model_copy(update={"name": value, "namespace": value}),
            "router": plan.router.model_copy(update={"kind": kind, "route": value}),
            "rollback": plan.rollback.model_copy(update={"canary": rollback}),
        }
    )


def printed_commands(markdown: str) -> list[str]:
    """Each fenced ``sh`` block, as a person pastes it (a quoted value may hold a newline)."""
    return re.findall(r"```sh\n(.*?)\n```", markdown, flags=re.S)


@pytest.fixture
def stubs(tmp_path) -> tuple[Path, Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "argv.log"
    bin_dir.mkdir()
    for name in STUBS:
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\nprintf \'%s\\0\' "$0" "$@" >> {log}\ncat >/dev/null\n')
        stub.chmod(0o755)
    return bin_dir, log


@pytest.mark.parametrize("kind", ROUTERS)
@pytest.mark.parametrize("value", SHELL_SAFE, ids=range(len(SHELL_SAFE)))
def test_each_printed_command_parses_and_passes_hostile_values_as_one_argument(
    kind, value, stubs, tmp_path
):
    bin_dir, log = stubs
    context = RunbookContext(workflow_namespace=value)
    commands = printed_commands(render_runbook(hostile_plan(value, kind), context))
    assert len(commands) >= 7
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    for command in commands:
        check = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
        assert check.returncode == 0, (command, check.stderr)
        log.unlink(missing_ok=True)
        subprocess.run(["sh", "-c", command], cwd=tmp_path, env=env, check=True, timeout=10)
        calls = log.read_bytes().split(b"\0")[:-1]
        programs = {Path(arg.decode()).name for arg in calls if arg.startswith(bytes(bin_dir))}
        assert programs <= set(STUBS), command
        if value in command or f"{value}-canary" in command:
            words = [arg.decode() for arg in calls]
            assert any(value in word for word in words), (command, words)
    assert not (tmp_path / MARKER).exists(), "a printed command ran an injected one"
    assert not list(tmp_path.glob("*pwned*"))


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_namespaces_and_routes_never_reach_a_runbook(value):
    cases = {
        "service.name": {"service": {"name": value}},
        "service.namespace": {"service": {"name": "checkout", "namespace": value}},
        "router.route": {"service": {"name": "checkout"}, "router": {"route": value}},
    }
    for field, document in cases.items():
        with pytest.raises(InputError) as refused:
            plan_from_dict(document)
        assert [e.path for e in refused.value.errors] == [field]


def test_scale_to_zero_commands_are_quoted_too(stubs, tmp_path):
    value = f"$(touch {MARKER})"
    commands = printed_commands(render_runbook(hostile_plan(value, "istio", "scale-to-zero")))
    for command in commands:
        assert subprocess.run(["sh", "-n", "-c", command]).returncode == 0
        subprocess.run(["sh", "-c", command], cwd=tmp_path, env={"PATH": f"{stubs[0]}:/bin"})
    assert not (tmp_path / MARKER).exists()
    assert os.listdir(tmp_path) == sorted(os.listdir(tmp_path))  # nothing but what we made


def test_free_text_cannot_smuggle_a_command_block_into_the_runbook():
    fence = f"\n```sh\ntouch {MARKER}\n```\n"
    plan = load_plan(PLAN)
    approval = StepSpec(approve=ApproveSpec(message=fence))
    plan = plan.model_copy(
        update={
            "owners": plan.owners.model_copy(update={"team": fence, "contacts": [fence]}),
            "steps": [approval, *plan.steps],
        }
    )
    markdown = render_runbook(plan)
    assert all(MARKER not in block for block in printed_commands(markdown))
    assert markdown.count("```sh") == markdown.count("```") // 2, "no extra fences"
