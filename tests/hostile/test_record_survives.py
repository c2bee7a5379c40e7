"""The record always survives: an append-only journal, flushed per event, inside ``--out``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from canaryflow.errors import InputError
from canaryflow.release.record import ReleaseRecord, path_inside, read_journal


def test_every_event_is_on_disk_as_soon_as_it_is_recorded(tmp_path):
    record = ReleaseRecord("svc", "v2", "memory")
    journal = record.open_journal(tmp_path / "release-v2.events.jsonl")
    record.add("started", version="v2")
    record.add("weight-set", step=0, weight=5)
    document = read_journal(journal)  # read while still open, as after a SIGKILL
    assert document["service"] == "svc"
    assert [e["kind"] for e in document["events"]] == ["started", "weight-set"]


@pytest.fixture
def temp_folder(tmp_path, monkeypatch) -> Path:
    """The process's temp folder (``tempfile.gettempdir()``, where a journal moves), this
    test's own rather than the machine's /tmp."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def test_a_read_only_output_folder_moves_the_journal_to_the_temp_folder(tmp_path, temp_folder):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        record = ReleaseRecord("svc", "v2", "memory")
        record.add("started")
        journal = record.open_journal(out / "release-v2.events.jsonl")
        record.add("rolled-back", phase="rolled-back")
        if os.geteuid() != 0:  # root writes anyway; then the journal simply stays in out
            assert journal is not None and journal.parent == temp_folder
        assert [e["kind"] for e in read_journal(journal)["events"]] == ["started", "rolled-back"]
        with pytest.raises(OSError) if os.geteuid() != 0 else _nothing():
            record.write_json(out / "release-v2.json")
    finally:
        out.chmod(0o700)


def test_a_journal_that_cannot_be_written_mid_release_carries_on_elsewhere(tmp_path, temp_folder):
    record = ReleaseRecord("svc", "v2", "memory")
    record.open_journal(tmp_path / "j.events.jsonl")
    record.add("started")
    record.journal._handle.close()  # as if the disk were gone
    record.add("window-started", step=0)
    record.add("rolled-back")
    assert record.journal_path is not None and record.journal_path.parent == temp_folder
    assert record.journal_error
    events = read_journal(record.journal_path)["events"]
    assert [e["kind"] for e in events] == ["started", "window-started", "rolled-back"]


@pytest.mark.parametrize("name", ["../x", "../../../etc/passwd", "/tmp/x", "a/../../b", ".."])
def test_record_paths_never_leave_the_output_folder(tmp_path, name):
    with pytest.raises(InputError):
        path_inside(tmp_path / "out", name)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


PLAN = """
service: {name: checkout, namespace: e2e, healthTimeout: 15s}
steps: [{weight: 30, duration: 20s}, {weight: 60, duration: 20s}]
analysis:
  interval: 1s
  queryWindow: 4s
  minCanaryRequests: 5
  inconclusiveLimit: 30
  warmup: 2s  # CI-sized (default: a scrape + 30 s); the run is stopped in its first window
  gates: [{metric: error-rate, threshold: {max: 0.5}}]
local: {load: {rate: 40, clients: 4}}
"""


def our_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_terminated_run_rolls_back_and_leaves_its_record(tmp_path, sig):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "out"
    journal = out / "release-v2.events.jsonl"
    temp = tmp_path / "tmp"  # the run's temp dir (nginx's sockets when --out is deep, ...)
    temp.mkdir()
    command = [sys.executable, "-m", "canaryflow", "run", "--plan", str(plan), "--out", str(out)]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    try:
        deadline = time.monotonic() + 90
        while not (journal.exists() and '"window-started"' in journal.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    kinds = [e["kind"] for e in read_journal(journal)["events"]]
    assert kinds[0] == "started" and "rollback-started" in kinds and kinds[-1] == "rolled-back"
    assert "promoted" not in kinds
    report = json.loads((out / "release-v2.json").read_text())
    assert [e["kind"] for e in report["events"]] == kinds
    assert "record so far:" in stderr and str(out / "release-v2.json") in stderr
    assert our_processes(str(out)) == [], "every process of the run is gone"
    assert list(temp.iterdir()) == [], "and nothing of it is left in its temp dir"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "journal_name"),
    [
        (["demo", "--no-live"], "healthy-v2.events.jsonl"),
        (["demo", "--flags", "--json"], "flags/flag-good.events.jsonl"),
    ],
    ids=["demo", "flag-demo"],
)
def test_an_interrupted_demo_leaves_its_record(tmp_path, argv, journal_name):
    out = tmp_path / "out"
    journal = out / journal_name
    command = [sys.executable, "-m", "canaryflow", *argv, "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (journal.exists() and "window-started" in journal.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    kinds = [e["kind"] for e in read_journal(journal)["events"]]
    assert kinds[0] == "started" and "window-started" in kinds
    assert "promoted" not in kinds and "rollback-started" in kinds
    assert our_processes(str(out)) == [], "every process of the demo is gone"
