"""``canaryflow checkout``: the exact revision of the service's repository, for the build.

Everything here comes from a push payload, so nothing is trusted: git runs with argv only (no
shell), the revision must look like a commit, branch or tag (``check_revision``), the clone URL
like a URL or a path (``check_repo``), and every user-supplied operand follows ``--`` or
``--end-of-options`` so git never reads it as an option. Transports that run programs
(``ext::``, ``fd::``) are switched off for this invocation, and git never prompts.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path

from canaryflow.errors import FieldError, InputError, PlatformError

GIT_TIMEOUT_S = 600
# Transports a release may clone over; ``ext`` and ``fd`` (which run programs) stay off.
_GIT_CONFIG = (
    "-c",
    "protocol.allow=never",
    *(
        f
        for p in ("https", "http", "ssh", "git", "file")
        for f in ("-c", f"protocol.{p}.allow=always")
    ),
)
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_PROTOCOL_FROM_USER": "0", "GIT_ASKPASS": "true"}
# A commit SHA, branch or tag: git's check-ref-format rules, and never an option.
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}")
_URL = re.compile(r"(https?|ssh|git|file)://[^\s\x00-\x1f\x7f]+")
_SCP = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s\x00-\x1f\x7f:][^\s\x00-\x1f\x7f]*")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, help="clone URL (https, ssh or a local path)")
    parser.add_argument("--revision", required=True, help="commit SHA, branch or tag")
    parser.add_argument("--dest", type=Path, required=True, help="where the work tree goes")


def check_revision(revision: str) -> str:
    bad = (
        not _REVISION.fullmatch(revision)
        or ".." in revision
        or "//" in revision
        or revision.endswith(("/", ".", ".lock"))
        or "/." in revision
    )
    if bad:
        raise InputError(
            FieldError(
                "--revision",
                f"{revision[:80]!r} is not a commit, branch or tag: use a SHA such as "
                "3f2c1e0 or a name of letters, digits and ._/+- (not starting with '-')",
            )
        )
    return revision


def check_repo(repo: str) -> str:
    local = (
        not repo.startswith("-")
        and "::" not in repo
        and not re.search(r"[\x00-\x1f\x7f]", repo)
        and ("://" not in repo)
        and not _SCP.fullmatch(repo)
    )
    if _URL.fullmatch(repo) or _SCP.fullmatch(repo) or (local and repo and Path(repo).is_dir()):
        return repo
    raise InputError(
        FieldError(
            "--repo",
            f"{repo[:80]!r} is not a clone URL: use https://host/org/repo.git, "
            "git@host:org/repo.git or an existing local folder",
        )
    )


def run(args: argparse.Namespace) -> int:
    revision, repo = check_revision(args.revision), check_repo(args.repo)
    dest = args.dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        if not (dest / ".git").exists():
            raise InputError(FieldError("--dest", f"{args.dest} is not empty: use a new folder"))
    else:
        _git("clone", "--no-checkout", "--", repo, str(dest))
    _git("-C", str(dest), "fetch", "--quiet", "origin", "--", revision, check=False)
    commit = _git(
        "-C",
        str(dest),
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{revision}^{{commit}}",
        check=False,
    ).strip()
    if not commit:
        raise PlatformError(f"git checkout: fatal: invalid reference: {revision}")
    _git("-C", str(dest), "checkout", "--quiet", "--detach", commit, "--")
    print(commit)
    return 0


def _git(*argv: str, check: bool = True) -> str:
    try:
        done = subprocess.run(
            ["git", *_GIT_CONFIG, *argv],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **_GIT_ENV},
        )
    except FileNotFoundError:
        raise PlatformError("git is not installed in this image") from None
    except subprocess.TimeoutExpired:
        raise PlatformError(f"git {argv[0]} took longer than {GIT_TIMEOUT_S}s") from None
    if check and done.returncode != 0:
        command = argv[2] if argv[0] == "-C" else argv[0]
        raise PlatformError(f"git {command}: {done.stderr.strip()[-500:]}")
    return done.stdout
