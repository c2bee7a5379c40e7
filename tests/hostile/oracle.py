"""What every hostile case must satisfy, shared by the CI property tests and ``make fuzz``.

A verb that reads a plan answers it either with success or with exit 2 and
``error: path: what is wrong and how to fix it`` lines: never a traceback or an internal error,
never an unbounded message, no process started, no file written outside the output folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from canaryflow.cli import main

MAX_STDERR = 64 * 1024
PROCESS_ATTEMPTED = -1  # the verb went as far as starting a process (recorded, not run)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    processes: list[list[str]]


class ProcessStarted(BaseException):
    """Raised where a process would start; a BaseException, so no ``except Exception`` in the
    product can turn it into an ordinary error: the attempt is recorded and the verb stops."""


def run_cli(argv: list[str], cwd: Path) -> Outcome:
    """``canaryflow argv`` in this process, in ``cwd``, refusing to start any process."""
    started: list[list[str]] = []

    def no_process(self, args, *rest, **kwargs):
        started.append(list(args) if not isinstance(args, str) else [args])
        raise ProcessStarted(f"a process was started: {args!r}")

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        with (
            mock.patch.object(subprocess.Popen, "__init__", no_process),
            contextlib.redirect_stdout(_OwnThreads(out, sys.stdout)),
            contextlib.redirect_stderr(_OwnThreads(err, sys.stderr)),
        ):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse
                code = int(exit_.code or 0)
            except ProcessStarted:
                code = PROCESS_ATTEMPTED
    finally:
        os.chdir(previous)
    return Outcome(code, out.getvalue(), err.getvalue(), started)


class _OwnThreads(io.TextIOBase):
    """What the verb (its thread and the threads it starts) writes goes to ``mine``; what a
    thread already running before it writes (another test's server reporting a dropped
    connection, ``socketserver``'s dashes) goes on to ``others``: ``redirect_stderr`` swaps
    the one ``sys.stderr`` of the process, so without this the verb's first line could be
    another test's."""

    def __init__(self, mine: io.StringIO, others):
        self.mine, self.others = mine, others
        self.earlier = {t for t in threading.enumerate() if t is not threading.current_thread()}

    def write(self, text: str) -> int:
        if threading.current_thread() in self.earlier:
            return self.others.write(text)
        return self.mine.write(text)

    def flush(self) -> None:
        self.others.flush()


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    files = {}
    for path in folder.rglob("*"):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        if path.is_file():
            stat = path.stat()
            files[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return files


def assert_refused_well(outcome: Outcome, field: str | None = None) -> None:
    """Exit 2, one ``error: path: message`` line per mistake, bounded, nothing started."""
    assert outcome.code == 2, (outcome.code, outcome.stderr[-2000:])
    assert_no_crash(outcome)
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert lines, "a refusal says why"
    for line in lines:
        if line.startswith(("usage:", " ")) or re.match(r"canaryflow[ \w-]*: error: ", line):
            continue  # argparse's own refusal
        assert line.startswith("error: "), line[:300]
        assert ": " in line.removeprefix("error: "), line[:300]
    if field is not None:
        assert field in outcome.stderr, (field, outcome.stderr[:2000])


def assert_no_crash(outcome: Outcome) -> None:
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert "internal error" not in outcome.stderr, outcome.stderr[-3000:]
    assert len(outcome.stderr) <= MAX_STDERR, f"{len(outcome.stderr)} bytes of stderr"
    assert outcome.code in (0, 1, 2, PROCESS_ATTEMPTED), outcome.code


# Every verb that reads a plan, with what else it needs; PLAN and OUT are filled in.
_IMAGE = ["--image", "r/a@sha256:00", "--version", "v"]
PLAN_VERBS: dict[str, list[str]] = {
    "validate": ["validate", "PLAN", "--offline"],
    "runbook": ["runbook", "PLAN"],
    # The workflow's validate-plan task: the plan as the pushed repository has it.
    "validate-plan": [
        "validate",
        "PLAN",
        "--offline",
        "--resolved-out",
        "OUT/plan.yaml",
        "--workflow-outputs",
        "OUT/outputs",
    ],
    "compile-tekton": ["compile", "--engine", "tekton", "--plan", "PLAN", "--out", "OUT"],
    "analyze": ["analyze", "--plan", "PLAN"],
    "run": ["run", "--plan", "PLAN", "--out", "OUT"],
    "demo": ["demo", "--plan", "PLAN", "--out", "OUT"],
    "notify": ["notify", "--plan", "PLAN", "--status", "Failed"],
    "flag-rollout": ["flag-rollout", "--plan", "PLAN"],
    "flag-off": ["flag-off", "--plan", "PLAN"],
    "deploy-canary": [
        "deploy-canary",
        "--plan",
        "PLAN",
        "--image",
        "r/a@sha256:00",
        "--version",
        "v",
    ],
    "health-gate": ["health-gate", "--plan", "PLAN"],
    "set-weight": ["set-weight", "--plan", "PLAN", "--weight", "5"],
    "promote": ["promote", "--plan", "PLAN", *_IMAGE],
    "rollback": ["rollback", "--plan", "PLAN"],
}


def plan_argv(verb: str, plan: Path, out: Path) -> list[str]:
    def fill(arg: str) -> str:
        if arg == "PLAN":
            return str(plan)
        return str(out) + arg[3:] if arg == "OUT" or arg.startswith("OUT/") else arg

    return [fill(a) for a in PLAN_VERBS[verb]]
