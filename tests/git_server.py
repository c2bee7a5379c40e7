"""A real Git server on loopback: ``git daemon`` serving bare repositories, push enabled.

``git daemon`` cannot be asked for port 0, so a free port is found first (bind to 0, close)
and the daemon is started on it; if another process took it meanwhile, the next one is
tried. The test stops exactly the daemon it started, by its PID.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "platform team",
    "GIT_AUTHOR_EMAIL": "platform@example.com",
    "GIT_COMMITTER_NAME": "platform team",
    "GIT_COMMITTER_EMAIL": "platform@example.com",
    "PATH": "/usr/bin:/bin",
}


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class GitDaemon:
    base: Path
    port: int = 0
    process: subprocess.Popen | None = None
    repositories: list[str] = field(default_factory=list)

    def __enter__(self) -> GitDaemon:
        for _ in range(5):
            self.port = _free_port()
            self.process = subprocess.Popen(
                [
                    "git",
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--enable=receive-pack",
                    f"--base-path={self.base}",
                    "--listen=127.0.0.1",
                    f"--port={self.port}",
                    str(self.base),
                ],
                env=GIT_ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                if _accepts(self.port):
                    return self
                time.sleep(0.05)
            self._stop()
        raise RuntimeError("git daemon did not start")

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def create(self, name: str, files: dict[str, str], branch: str = "main") -> str:
        """A bare repository ``name`` whose ``branch`` holds ``files``; returns its URL."""
        bare = self.base / name
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare), cwd=self.base)
        seed = self.base / f"{name}.seed"
        git("init", "--quiet", f"--initial-branch={branch}", str(seed), cwd=self.base)
        for path, text in files.items():
            (seed / path).parent.mkdir(parents=True, exist_ok=True)
            (seed / path).write_text(text)
        git("add", "--all", cwd=seed)
        git("commit", "--quiet", "--message=the service as the platform team runs it", cwd=seed)
        git("push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}", cwd=seed)
        return self.url(name)

    def show(self, name: str, path: str, ref: str = "main") -> str:
        """``path`` as the bare repository's ``ref`` holds it."""
        return git("show", f"{ref}:{path}", cwd=self.base / name)

    def log(self, name: str, ref: str = "main") -> list[str]:
        return git("log", "--format=%an|%s", ref, cwd=self.base / name).splitlines()
