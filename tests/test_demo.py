"""``canaryflow demo`` end to end: the healthy release is promoted, the faulty one rolled back,
both reports are written, and every process the demo started is gone when it exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canaryflow.commands.demo import demo_releases, fault_switched_on
from canaryflow.plan.load import load_plan

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CANARYFLOW = str(Path(sys.executable).parent / "canaryflow")

# The demo plan's shape with shorter windows, so the whole demo takes under a minute.
SHORT_PLAN = """\
apiVersion: canaryflow.dev/v1alpha1
kind: ReleasePlan
service: {name: checkout, namespace: demo-test, healthTimeout: 15s}
owners: {team: demo}
steps:
  - {weight: 10, duration: 5s}
  - {weight: 50, duration: 5s}
  - {weight: 100, duration: 3s}
analysis:
  warmup: 2s
  interval: 1s
  queryWindow: 4s
  minCanaryRequests: 10
  inconclusiveLimit: 4
  gates:
    - metric: error-rate
      threshold: {max: 0.02}
    - metric: log-errors
local:
  scrapeInterval: 1s
  load: {rate: 100, clients: 6}
"""


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live process below ``root``: a PID alone may be reused."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def alive(pid: int, started: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


def test_the_faulty_build_fails_during_the_second_step():
    plan = load_plan(Path(__file__).parents[1] / "examples" / "plans" / "demo.yaml")

    healthy, faulty = demo_releases(plan)

    after = float(faulty.faults[faulty.faults.index("-after") + 1])
    assert healthy.faults == () and healthy.expected == "promoted"
    assert faulty.expected == "rolled-back" and "-error-rate" in faulty.faults
    warmup = plan.analysis.warmup  # the first window starts after it
    assert warmup is not None
    # first window ends ~3-8 s after the process starts, plus the warm-up
    assert 8 + 3 + warmup < after < 8 + 8 + 3 + warmup


def test_the_fault_switch_on_time_is_read_from_the_service_log():
    lines = [
        'time=2026-01-01T00:00:00Z level=INFO msg="listening"',
        'time=2026-01-01T00:00:17Z level=INFO msg="start faults switched on" '
        'faults="{\\"error_rate\\":0.3}" since=1767225617.250',
    ]

    assert fault_switched_on(lines) == 1767225617.25
    assert fault_switched_on(lines[:1]) is None


@pytest.mark.slow
def test_demo_promotes_the_healthy_release_and_rolls_back_the_faulty_one(tmp_path: Path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(SHORT_PLAN)
    out = tmp_path / "out"
    argv = [CANARYFLOW, "demo", "--no-live", "--json", "--out", str(out), "--plan", str(plan)]
    started: set[tuple[int, str]] = set()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as demo:
        try:
            deadline = time.monotonic() + 150
            while demo.poll() is None and time.monotonic() < deadline:
                started |= descendants(demo.pid)
                time.sleep(0.3)
        finally:
            if demo.poll() is None:
                demo.kill()
        stdout, stderr = demo.communicate(timeout=30)
    leftovers = [pid for pid, at in started if alive(pid, at)]
    for pid in leftovers:
        os.kill(pid, 9)

    assert demo.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    healthy, faulty = summary["releases"]
    assert (healthy["version"], healthy["phase"], healthy["failed"]) == ("v2", "promoted", 0)
    assert (faulty["version"], faulty["phase"]) == ("v3", "rolled-back")
    assert faulty["detection_to_safe_s"] > 0, "safe after the fault was switched on"
    for name in ("healthy-v2", "faulty-v3"):
        assert json.loads((out / f"{name}.json").read_text())["summary"]["version"]
        assert (out / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
    # Safe within the window that saw the fault: the first failing window is the last window.
    events = json.loads((out / "faulty-v3.json").read_text())["events"]
    kinds = [e["kind"] for e in events]
    failing = next(
        i for i, e in enumerate(events) if e["kind"] == "window-ended" and e["verdict"] == "fail"
    )
    assert "traffic-safe" in kinds[failing:] and "window-started" not in kinds[failing:], kinds
    assert len(started) >= 5  # prometheus, the nginx masters and the Go services were seen
    assert leftovers == []
