"""``git`` as a subprocess: clone the configuration repository, commit one file, push.

Every call is an argv list (no shell). Values from the plan are passed where git cannot read
them as options: after ``--``, or glued to their option (``--branch=main``,
``--message=...``); the plan model refuses a leading ``-`` anyway. git runs with no system or
global configuration, no terminal prompt, only the http(s)/git transports (no ``ext::`` or
``file::`` helpers), and credentials through ``GIT_ASKPASS`` (``askpass.py``) reading the
mounted Secret, so a token is never in an argv, a URL, the environment or a log line.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from canaryflow.errors import PlatformError
from canaryflow.kubernetes.gitops.askpass import CREDENTIALS_ENV

GIT_TIMEOUT_S = 120.0
AUTHOR = ("canaryflow", "canaryflow@users.noreply.localhost")
_ASKPASS = '#!/bin/sh\nexec "$CANARYFLOW_PYTHON" -m canaryflow.kubernetes.gitops.askpass "$@"\n'


class PushRejected(PlatformError):
    """The remote branch moved on since the clone (someone else pushed): fetch and redo."""


@dataclass
class GitCheckout:
    """A shallow clone of one branch in a private temporary directory."""

    url: str
    branch: str
    credentials: Path | None = None
    author: tuple[str, str] = AUTHOR
    timeout_s: float = GIT_TIMEOUT_S
    commands: list[list[str]] = field(default_factory=list)
    """Every argv run, for tests and for the error message (never holds a secret)."""

    def __post_init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="canaryflow-gitops-")
        root = Path(self._tmp.name)
        self.worktree = root / "checkout"
        self._home = root / "home"
        self._home.mkdir()
        self._askpass = root / "askpass"
        self._askpass.write_text(_ASKPASS)
        self._askpass.chmod(stat.S_IRWXU)

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> GitCheckout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the steps -----------------------------------------------------------------------------

    def clone(self) -> None:
        self._git(
            "clone",
            "--quiet",
            "--depth=1",
            "--single-branch",
            f"--branch={self.branch}",
            "--",
            self.url,
            str(self.worktree),
            cwd=self.worktree.parent,
        )

    def refresh(self) -> None:
        """The branch as the remote has it now (after a rejected push)."""
        self._git("fetch", "--quiet", "--depth=1", "origin", "--", self._remote_ref)
        self._git("reset", "--quiet", "--hard", "FETCH_HEAD")

    def read(self, path: str) -> str | None:
        file = self._file(path)
        return file.read_text() if file.is_file() else None

    def commit(self, path: str, text: str, message: str) -> bool:
        """Write and commit ``path``; False when it already held ``text`` (nothing to do)."""
        file = self._file(path)
        if file.is_file() and file.read_text() == text:
            return False
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        self._git("add", "--", path)
        name, email = self.author
        self._git(
            "-c",
            f"user.name={name}",
            "-c",
            f"user.email={email}",
            "commit",
            "--quiet",
            "--no-verify",
            f"--message={message}",
            "--",
            path,
        )
        return True

    def head(self) -> str:
        return self._git("rev-parse", "--verify", "HEAD").strip()

    def push(self, branch: str, force: bool = False) -> None:
        """HEAD to ``branch`` on the remote; PushRejected when the remote moved on."""
        refspec = f"{'+' if force else ''}HEAD:refs/heads/{branch}"
        try:
            self._git("push", "--quiet", "--porcelain", "origin", "--", refspec)
        except PlatformError as error:
            text = str(error)
            if "rejected" in text or "non-fast-forward" in text or "fetch first" in text:
                raise PushRejected(text) from None
            raise

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def _remote_ref(self) -> str:
        return f"refs/heads/{self.branch}"

    def _file(self, path: str) -> Path:
        file = (self.worktree / path).resolve()
        if self.worktree.resolve() not in file.parents:  # a symlink out of the checkout
            raise PlatformError(f"{path} resolves outside the checkout: refusing to write it")
        return file

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        argv = ["git", *args]
        self.commands.append(argv)
        try:
            done = subprocess.run(
                argv,
                cwd=cwd or self.worktree,
                env=self._environment(),
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise PlatformError(
                f"git {args[0]} did not finish within {self.timeout_s:g}s"
            ) from None
        except FileNotFoundError:
            raise PlatformError("git is not installed in the task image") from None
        if done.returncode != 0:
            detail = " ".join((done.stderr or done.stdout).split())[:800]
            raise PlatformError(f"git {args[0]} failed ({done.returncode}): {detail}")
        return done.stdout

    def _environment(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": "https:http:git",
            "GIT_ASKPASS": str(self._askpass),
            "CANARYFLOW_PYTHON": sys.executable,
        }
        if self.credentials is not None:
            env[CREDENTIALS_ENV] = str(self.credentials)
        if "PYTHONPATH" in os.environ:  # the askpass program imports canaryflow
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        return env
