"""Opt-in CPU accounting per test file: where `make test`'s CPU goes, not its wall time.

Set ``CANARYFLOW_CPU_REPORT=path.tsv`` and run pytest as usual (xdist or not): each test's setup,
call and teardown are charged with the worker's own CPU (``RUSAGE_SELF``: its threads too, such
as in-process HTTP servers) and the CPU of the child processes reaped meanwhile
(``RUSAGE_CHILDREN``: Prometheus, nginx, Go builds, CLI subprocesses, counted once waited for,
with what they themselves waited for). A module fixture's start-up is charged to the file's first
test and its teardown to the last, so the sum per file is the file's cost. What no test is
charged with is a line of its own: the session fixtures' end (the last test's teardown, when a
Prometheus or cluster bed that served several files is reaped) and collection and xdist. The
report is a tab-separated table, the most expensive file first.

A child's CPU counts when it is reaped: a process a test leaves to be reaped later (a Popen
never waited for, reaped by the next one) lands on a later test of the same worker, so
``children_s`` of a single file is approximate, and so is ``own_s`` where a fixture's threads
go on working behind later tests (a simulated fleet); run the file alone to check it.

The figures are a budget's ledger, not a test: nothing asserts on them (CPU time depends on the
machine and its load).
"""

import json
import os
import resource
from collections import defaultdict
from pathlib import Path

import pytest

ENV = "CANARYFLOW_CPU_REPORT"
_UNCHARGED = "(collection, xdist)"
_SESSION_TEARDOWN = "(the last test's teardown: session fixtures end)"


def _cpu() -> tuple[float, float]:
    """(own, reaped children) CPU seconds, user + system, of this process so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


class CpuLedger:
    """Charges each test's CPU to its file, in one pytest process (a worker or the only one)."""

    def __init__(self) -> None:
        self.files: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
        self.workers: list[dict] = []  # (controller) the workers' ledgers
        self._last: tuple[str, tuple[float, float]] | None = None  # the last test, CPU before it

    def _charge(self, name: str, before: tuple[float, float], tests: int) -> None:
        own, kids = _cpu()
        row = self.files[name]
        row[0] += own - before[0]
        row[1] += kids - before[1]
        row[2] += tests

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        before = _cpu()
        if nextitem is not None:
            yield
            self._charge(item.nodeid.split("::", 1)[0], before, 1)
            return
        # The process's last test: its teardown ends the session fixtures too (a Prometheus or
        # a cluster bed that ran all along is reaped then), which is not that file's cost.
        self._last = (item.nodeid.split("::", 1)[0], before)
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None):
        if nextitem is not None or self._last is None:
            yield
            return
        self._charge(*self._last, 1)
        before = _cpu()
        yield
        self._charge(_SESSION_TEARDOWN, before, 0)
        self._last = None

    def totals(self) -> dict:
        own, kids = _cpu()
        return {"files": dict(self.files), "own": own, "children": kids}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """(controller) a worker's ledger, sent back through xdist's workeroutput."""
        output = getattr(node, "workeroutput", {}).get("canaryflow_cpu")
        if output:
            self.workers.append(json.loads(output))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        if hasattr(config, "workeroutput"):  # an xdist worker: hand the ledger to the controller
            config.workeroutput["canaryflow_cpu"] = json.dumps(self.totals())
            return
        mine = self.totals()
        if self.workers:  # the workers are this process's children: count them once, as theirs
            mine["children"] = 0.0
        ledgers = [*self.workers, mine]
        write_report(Path(os.environ[ENV]), ledgers)


def write_report(path: Path, ledgers: list[dict]) -> None:
    """Sums the ledgers per file and writes the table, the most CPU first."""
    files: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    total = 0.0
    for ledger in ledgers:
        if not ledger:
            continue
        total += ledger["own"] + ledger["children"]
        for name, (own, kids, count) in ledger["files"].items():
            row = files[name]
            row[0] += own
            row[1] += kids
            row[2] += count
    charged = sum(own + kids for own, kids, _ in files.values())
    lines = ["cpu_s\town_s\tchildren_s\ttests\tfile"]
    for name, (own, kids, count) in sorted(files.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        lines.append(f"{own + kids:.1f}\t{own:.1f}\t{kids:.1f}\t{count}\t{name}")
    lines.append(f"{total - charged:.1f}\t\t\t\t{_UNCHARGED}")
    lines.append(f"{total:.1f}\t\t\t{sum(r[2] for r in files.values())}\t(total)")
    path.write_text("\n".join(lines) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(ENV):
        config.pluginmanager.register(CpuLedger(), "canaryflow-cpu-ledger")
