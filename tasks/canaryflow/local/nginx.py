"""One nginx master we run: start it, swap its config only after ``nginx -t``, reload it.

The master runs in the foreground (``daemon off``) under a ``ProcessGroup``, so it is stopped by
its PID like every other process. A reload is SIGHUP to that PID; the master starts new workers
on the same listening sockets and tells the old ones to finish their requests and exit, which
``accepting_workers`` / ``draining_workers`` observe through /proc.

Every operand nginx gets (``-p``, ``-c``) is an absolute path the caller resolved: nginx has no
``--``, and an option's argument is never read as an option, so nothing from a plan or a
parameter is. ``problem`` says when the master or a worker died or was stopped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from canaryflow.errors import PlatformError
from canaryflow.local.nginx_config import NginxFiles
from canaryflow.local.process import ManagedProcess, ProcessGroup, process_state

NGINX = "/usr/sbin/nginx"
_DRAINING_TITLE = "nginx: worker process is shutting down"
_WORKER_TITLE = "nginx: worker process"
_WORKER_CRASH = re.compile(rb"worker process \d+ exited on signal \d+")


class NginxInstance:
    """An nginx master with its own prefix, config, pid file and logs."""

    def __init__(self, files: NginxFiles, group: ProcessGroup, binary: str = NGINX):
        self.files = files
        self.group = group
        self.binary = binary
        self.process: ManagedProcess | None = None
        self._candidates = 0
        self._log_offset = 0

    def start(self, config: str, timeout_s: float = 5.0) -> None:
        """Validate ``config``, start the master on it, wait until a worker accepts."""
        if not (self.files.prefix.is_absolute() and self.files.conf.is_absolute()):
            raise PlatformError(f"nginx {self.files.name}: prefix and config must be absolute")
        (self.files.prefix / "temp").mkdir(parents=True, exist_ok=True)
        self._install(config)
        self.process = self.group.start(
            f"nginx-{self.files.name}",
            [
                self.binary,
                "-p",
                str(self.files.prefix),
                "-c",
                str(self.files.conf),
                "-g",
                "daemon off;",
            ],
        )
        deadline = time.monotonic() + timeout_s
        while not self.accepting_workers():
            if not self.process.alive():
                raise PlatformError(
                    f"nginx {self.files.name} exited at start:\n{self.process.log_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise PlatformError(f"nginx {self.files.name} not listening after {timeout_s}s")
            time.sleep(0.02)

    def reload(self, config: str) -> None:
        """Install ``config`` if ``nginx -t`` accepts it, then SIGHUP; else keep the old one."""
        self._install(config)
        os.kill(self.master_pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None:
            self.group.stop(self.process)
            self.process = None

    @property
    def master_pid(self) -> int:
        if self.process is None or not self.process.alive():
            raise PlatformError(f"nginx {self.files.name} is not running")
        return self.process.pid

    def problem(self) -> str | None:
        """What keeps this nginx from serving, or None: the master or a worker dead or stopped.

        A killed worker is replaced by its master within milliseconds; a stopped one keeps its
        accepted connections hanging, and a dead or stopped master replaces nothing.
        """
        process = self.process
        if process is None:
            return f"nginx {self.files.name} is not running"
        if not process.alive():
            return f"nginx {self.files.name} master exited ({process.popen.returncode})"
        if process.stopped():
            return f"nginx {self.files.name} master {process.pid} is stopped"
        problem = self._worker_problem(process.pid)
        # A master killed while we looked (between ``alive`` and the /proc scan) is a problem
        # to report, never an exception: this is the liveness probe of every analysis round.
        if not process.alive():
            return f"nginx {self.files.name} master exited ({process.popen.returncode})"
        return problem

    def _worker_problem(self, master: int) -> str | None:
        crashed = self._crashed_worker()
        if crashed is not None:
            return f"nginx {self.files.name} {crashed}"
        workers = self._workers(master)
        stopped = [pid for pid, _ in workers if process_state(pid) in ("T", "t")]
        if stopped:
            return f"nginx {self.files.name} worker {stopped[0]} is stopped"
        accepting = any(title == _WORKER_TITLE for _, title in workers)
        if not accepting and not self._worker_appears(master):
            return f"nginx {self.files.name} has no worker accepting connections"
        return None

    def _worker_appears(self, master: int, within_s: float = 0.5) -> bool:
        """A reload forks new workers before the old ones start shutting down, but a freshly
        forked worker carries the master's title for a moment: under load a look can fall in
        that gap. A worker that appears within ``within_s`` means the reload went through."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if self.accepting_workers(master):
                return True
        return False

    def _crashed_worker(self) -> str | None:
        """A worker that died on a signal since the last look (its master replaced it, but
        the requests it held failed): nginx logs ``worker process N exited on signal S``."""
        try:
            with self.files.error_log.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read(1 << 20)
        except OSError:
            return None
        self._log_offset += len(text)
        match = _WORKER_CRASH.search(text)
        return match.group(0).decode(errors="replace") if match else None

    def accepting_workers(self, master: int | None = None) -> list[int]:
        return [pid for pid, title in self._workers(master) if title == _WORKER_TITLE]

    def draining_workers(self) -> list[int]:
        return [pid for pid, title in self._workers() if title.startswith(_DRAINING_TITLE)]

    def _install(self, config: str) -> None:
        self._candidates += 1
        candidate = self.files.prefix / f"{self.files.name}.candidate-{self._candidates}.conf"
        candidate.write_text(config)
        try:
            check = subprocess.run(
                [self.binary, "-t", "-q", "-p", str(self.files.prefix), "-c", str(candidate)],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except subprocess.TimeoutExpired as error:
            raise PlatformError(f"nginx -t on {candidate} did not finish in 10s") from error
        if check.returncode != 0:
            message = (check.stderr or check.stdout).strip()
            raise PlatformError(
                f"nginx {self.files.name}: new config rejected, the current one stays:\n{message}"
            )
        os.replace(candidate, self.files.conf)

    def _workers(self, master: int | None = None) -> list[tuple[int, str]]:
        """(pid, process title) of the master's children, read from /proc; ``master``: the
        pid to look under whether or not it still runs (else: raise if it does not)."""
        master = self.master_pid if master is None else master
        workers = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid != master:
                    continue
                title = Path(entry.path, "cmdline").read_bytes().split(b"\0")[0]
            except (OSError, IndexError, ValueError):
                continue
            workers.append((int(entry.name), title.decode(errors="replace").strip()))
        return workers
