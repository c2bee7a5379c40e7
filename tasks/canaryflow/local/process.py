"""Processes canaryflow starts, and stops again: by PID, on failure and on Ctrl-C too.

Every server binds 127.0.0.1. A ``ProcessGroup`` owns the processes it started and stops
exactly those (never by name), in reverse order, when its ``with`` block ends for any reason.
SIGTERM is turned into ``KeyboardInterrupt`` while a group is open, so a terminated demo or test
unwinds through the same clean-up as Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from canaryflow.errors import PlatformError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@dataclass
class ManagedProcess:
    """One started process, its log file, and how to stop it."""

    name: str
    argv: Sequence[str]
    log_path: Path
    popen: subprocess.Popen = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace_s: float = 5.0) -> int | None:
        """SIGTERM its process group, SIGKILL after ``grace_s``; returns the exit code.

        The group is SIGKILLed at the end whatever happened to the leader: when an nginx
        master was killed (or is stopped), its workers are still in the group and would keep
        serving the port after canaryflow exits.
        """
        if self.alive():
            self._signal(signal.SIGCONT)  # a stopped (SIGSTOP) process cannot act on SIGTERM
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(grace_s)
        if group_members(self.pid):  # orphans of the group (workers of a dead master)
            self._signal(signal.SIGKILL)
        return self.popen.returncode

    def stopped(self) -> bool:
        """True while the process is stopped (SIGSTOP): alive, but answering nothing."""
        return process_state(self.pid) in ("T", "t")

    def kill(self) -> None:
        """SIGKILL, as a crash would: for fault-injection tests."""
        self._signal(signal.SIGKILL)
        self.popen.wait(5)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _signal(self, sig: int) -> None:
        # Each process leads its own group (start_new_session); signal that group only.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def process_state(pid: int) -> str | None:
    """The one-letter state in /proc/PID/stat (R, S, T, Z...), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def group_members(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid`` (a master's workers, even orphaned ones)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class ProcessGroup:
    """Starts processes and guarantees they are all stopped when the block ends."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._processes: list[ManagedProcess] = []
        self._previous_sigterm = None

    def __enter__(self) -> ProcessGroup:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()
        if self._previous_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._previous_sigterm)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        except OSError as error:
            raise PlatformError(f"cannot start {name} ({argv[0]}): {error}") from error
        finally:
            log.close()
        process = ManagedProcess(name=name, argv=list(argv), log_path=log_path, popen=popen)
        self._processes.append(process)
        return process

    def stop(self, process: ManagedProcess) -> None:
        process.stop()
        if process in self._processes:
            self._processes.remove(process)

    def stop_all(self) -> None:
        while self._processes:
            self._processes.pop().stop()

    @property
    def processes(self) -> list[ManagedProcess]:
        return list(self._processes)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def wait_http_ok(url: str, timeout_s: float, process: ManagedProcess | None = None) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``process`` has died."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise PlatformError(
                f"{process.name} exited with {process.popen.returncode} before {url} was ready:\n"
                f"{process.log_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if 200 <= response.status < 300:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(0.05)
    raise PlatformError(f"{url} not ready after {timeout_s:.0f}s: {last_error}")
