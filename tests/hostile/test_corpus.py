"""The reported cases of issue 14, kept: each is refused by every verb that reads a plan.

Each corpus file is asserted through the real CLI (in-process): exit code 2, the message names
the field (``expected.json``), no traceback, no process started, and no file written anywhere,
not even the output folder. Files that cannot live in git (a FIFO, /dev/zero, a directory, a
2 MB plan, a missing path) are made on the spot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hostile.oracle import PLAN_VERBS, assert_refused_well, plan_argv, run_cli, snapshot

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, str] = json.loads((CORPUS / "expected.json").read_text())


def test_every_corpus_file_has_an_expectation_and_every_expectation_a_file():
    files = {p.stem for p in CORPUS.glob("*.yaml")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("verb", sorted(PLAN_VERBS))
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_corpus_plan_is_refused_naming_the_field(case, verb, tmp_path):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_bytes((CORPUS / f"{case}.yaml").read_bytes())
    before = snapshot(tmp_path)
    outcome = run_cli(plan_argv(verb, plan, tmp_path / "out"), tmp_path)
    assert_refused_well(outcome, EXPECTED[case])
    assert outcome.processes == []
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "canaryflow-pwned").exists()


def special_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"service: {name: checkout}\n#" + b"x" * (2 << 20))
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    return {
        "fifo": (fifo, "not a regular file"),
        "directory": (folder, "is a directory"),
        "dev-zero": (Path("/dev/zero"), "not a regular file"),
        "link-to-dev-zero": (link, "not a regular file"),
        "huge": (huge, "larger than the 256 KiB"),
        "missing": (tmp_path / "nowhere.yaml", "No such file or directory"),
    }


@pytest.mark.parametrize("verb", sorted(PLAN_VERBS))
def test_files_that_are_not_plans_are_refused_at_once(verb, tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    for name, (path, message) in special_files(folder).items():
        outcome = run_cli(plan_argv(verb, path, tmp_path / "out"), tmp_path)
        assert_refused_well(outcome, message)
        assert str(path) in outcome.stderr, name
        assert outcome.processes == [] and not (tmp_path / "out").exists()
        assert len(outcome.stderr) < 2000, "never an echo of the input"


def test_a_flag_file_that_is_not_a_file_is_refused_before_the_rollout_starts(tmp_path):
    plan = Path(__file__).parents[2] / "examples" / "plans" / "checkout-flag.yaml"
    folder = tmp_path / "case"
    folder.mkdir()
    for name, (path, message) in special_files(folder).items():
        if name in ("missing", "huge"):
            continue  # a missing flag file is created by the rollout; a big one is a plan case
        argv = ["flag-rollout", "--plan", str(plan), "--flags-file", str(path)]
        outcome = run_cli([*argv, "--prometheus", "http://127.0.0.1:9"], tmp_path)
        assert_refused_well(outcome, message)
        assert "started" not in outcome.stdout, "refused before the rollout began"


def test_another_threads_writes_never_reach_the_verbs_captured_stderr(tmp_path):
    """The harness itself: a server thread of an earlier test in this worker printing
    ``socketserver``'s 40 dashes must not become the verb's first line (it once did)."""
    import sys
    import threading
    import time

    started, stop = threading.Event(), threading.Event()

    def noisy():
        started.set()
        while not stop.is_set():
            sys.stderr.write("-" * 40 + "\n")
            time.sleep(0.001)

    thread = threading.Thread(target=noisy, daemon=True)
    thread.start()
    started.wait()
    try:
        outcome = run_cli(
            plan_argv("validate", tmp_path / "nowhere.yaml", tmp_path / "out"), tmp_path
        )
    finally:
        stop.set()
        thread.join()
    assert outcome.code == 2
    assert_refused_well(outcome, "No such file or directory")
