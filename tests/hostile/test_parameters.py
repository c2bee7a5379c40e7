"""Every verb's parameters fed the hostile strings: nothing reaches a shell or is read as a flag.

Each case runs the real CLI in-process, in a scratch folder, with process creation refused (a
verb that validates its input must refuse before any process starts) and checks: no traceback,
no injected command ran (no marker file), no file written outside the output folder, and for
validated parameters exit 2 naming the parameter.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hostile.oracle import assert_no_crash, assert_refused_well, run_cli, snapshot
from hostile.strings import HOSTILE, MARKER

PLAN = "service: {name: checkout, namespace: shop}\n"
CASES = range(len(HOSTILE))

# verb argv (PLAN, OUT filled in) and the parameter under attack; every hostile value refused.
VALIDATED = {
    "run --version": (["run", "--plan", "PLAN", "--out", "OUT"], "--version"),
    "checkout --revision": (
        ["checkout", "--repo", "https://example.invalid/r.git", "--dest", "OUT/src"],
        "--revision",
    ),
    "runbook --workflow-namespace": (["runbook", "PLAN"], "--workflow-namespace"),
    "validate --router-kind": (["validate", "PLAN", "--offline"], "--router-kind"),
    "image-push --tag": (
        ["image-push", "--binary", "PLAN", "--repository", "localhost:1/a"],
        "--tag",
    ),
}
# Free text (labels, reasons, statuses) or URLs: accepted or refused, never executed.
FREE = {
    "validate --service": (["validate", "PLAN", "--offline"], "--service"),
    "validate --namespace": (["validate", "PLAN", "--offline"], "--namespace"),
    "notify --status": (["notify", "--plan", "PLAN"], "--status"),
    "notify --workflow": (["notify", "--plan", "PLAN", "--status", "Failed"], "--workflow"),
    "notify --version": (["notify", "--plan", "PLAN", "--status", "Failed"], "--version"),
    "notify --event": (["notify", "--plan", "PLAN"], "--event"),
    "notify --step": (["notify", "--plan", "PLAN", "--event", "step"], "--step"),
    "notify --webhook": (["notify", "--plan", "PLAN", "--status", "Failed"], "--webhook"),
    "notify --failures": (["notify", "--plan", "PLAN", "--status", "Failed"], "--failures"),
    "runbook --scrape-interval": (["runbook", "PLAN"], "--scrape-interval"),
    "analyze --duration": (["analyze", "--plan", "PLAN", "--offline"], "--duration"),
    "run --rate": (["run", "--plan", "PLAN", "--out", "OUT"], "--rate"),
    "checkout --repo": (["checkout", "--revision", "main", "--dest", "OUT/src"], "--repo"),
}


def attack(argv: list[str], param: str, value: str, tmp_path: Path):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "out"
    filled = [
        str(plan) if a == "PLAN" else (str(out) + a[3:] if a.startswith("OUT") else a) for a in argv
    ]
    before = snapshot(tmp_path, skip=out)
    outcome = run_cli([*filled, f"{param}={value}"], tmp_path)
    assert_no_crash(outcome)
    assert not (tmp_path / MARKER).exists() and not Path(MARKER).exists()
    assert snapshot(tmp_path, skip=out) == before, "nothing written outside the output folder"
    return outcome


@pytest.mark.parametrize("case", sorted(VALIDATED))
@pytest.mark.parametrize("index", CASES)
def test_a_validated_parameter_refuses_every_hostile_value(case, index, tmp_path):
    argv, param = VALIDATED[case]
    value = HOSTILE[index]
    if case == "validate --router-kind" and value == "":
        pytest.skip("an empty --router-kind means: keep the plan's")
    outcome = attack(argv, param, value, tmp_path)
    assert_refused_well(outcome, param.lstrip("-"))
    assert outcome.processes == [], "refused before any process started"


@pytest.mark.parametrize("case", sorted(FREE))
@pytest.mark.parametrize("index", CASES)
def test_a_free_text_parameter_is_never_executed_nor_read_as_a_flag(case, index, tmp_path):
    argv, param = FREE[case]
    outcome = attack(argv, param, HOSTILE[index], tmp_path)
    for started in outcome.processes:  # only checkout may start git, with operands after --
        assert started[0] == "git", started
        if HOSTILE[index] in started:
            assert started.index("--") < started.index(HOSTILE[index]), started


@pytest.fixture(scope="module")
def go_module(tmp_path_factory) -> Path:
    module = tmp_path_factory.mktemp("mod")
    (module / "go.mod").write_text("module example.com/m\n\ngo 1.21\n")
    (module / "main.go").write_text("package main\n\nfunc main() {}\n")
    (module / "main_test.go").write_text(
        'package main\n\nimport "testing"\n\nfunc TestOK(t *testing.T) {}\n'
    )
    return module


def marker_script(folder: Path) -> Path:
    script = folder / "evil.sh"
    script.write_text(f'#!/bin/sh\ntouch {folder / MARKER}\nexec "$@"\n')
    script.chmod(0o755)
    return script


@pytest.mark.slow
@pytest.mark.parametrize(
    ("verb", "param", "flag"),
    [
        ("go-test", "--packages", "-exec"),
        ("go-build", "--package", "-toolexec"),
        ("go-build", "--package", "-exec"),
    ],
)
def test_go_never_reads_a_parameter_as_a_flag(verb, param, flag, go_module, tmp_path):
    """Issue 14 item 3: a package pattern is validated before go sees it; real go, GOPROXY=off."""
    script = marker_script(tmp_path)
    argv = ["canaryflow", verb, "--dir", str(go_module), f"{param}={flag}={script}"]
    if verb == "go-build":
        argv += ["--out", str(tmp_path / "bin"), "--version", "v1"]
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    done = subprocess.run(
        [str(Path(os.sys.executable).parent / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert not (tmp_path / MARKER).exists(), f"{flag} ran the program: {done.stderr[-500:]}"
    assert done.returncode == 2, done.stderr[-1000:]
    assert done.stderr.startswith(f"error: {param}: "), done.stderr[-1000:]


NON_FINITE = ("nan", "inf", "-inf", "1e999", "-1", "NaN", ".nan")
NUMERIC = {
    "run --rate": (["run", "--plan", "PLAN", "--out", "OUT"], "--rate", "rate"),
    "analyze --duration": (["analyze", "--plan", "PLAN"], "--duration", "--duration"),
    "runbook --scrape-interval": (["runbook", "PLAN"], "--scrape-interval", "--scrape-interval"),
    "runbook --fail-safe": (["runbook", "PLAN"], "--fail-safe", "--fail-safe"),
    "go-test --timeout": (["go-test", "--dir", "OUT"], "--timeout", "--timeout"),
    "health-gate --timeout": (["health-gate", "--plan", "PLAN"], "--timeout", "--timeout"),
    "image-push --timeout": (
        ["image-push", "--binary", "OUT/b", "--repository", "r/a", "--tag", "v"],
        "--timeout",
        "--timeout",
    ),
}


@pytest.mark.parametrize("case", sorted(NUMERIC))
@pytest.mark.parametrize("value", NON_FINITE)
def test_a_number_parameter_refuses_what_is_not_finite_and_in_range(case, value, tmp_path):
    argv, param, field = NUMERIC[case]
    outcome = attack(argv, param, value, tmp_path)
    assert_refused_well(outcome, field)
    assert outcome.processes == []
