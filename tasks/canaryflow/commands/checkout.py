"""``canaryflow checkout``: the exact revision of the service's repository, for the build.

git runs with argv only: a revision such as ``main; rm -rf /`` is one argument to git, which
rejects it as an unknown revision.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from canaryflow.errors import FieldError, InputError, PlatformError

GIT_TIMEOUT_S = 600


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, help="clone URL (https, ssh or a local path)")
    parser.add_argument("--revision", required=True, help="commit SHA, branch or tag")
    parser.add_argument("--dest", type=Path, required=True, help="where the work tree goes")


def run(args: argparse.Namespace) -> int:
    if args.revision.startswith("-"):
        raise InputError(FieldError("--revision", "must not start with '-': give a commit"))
    if args.repo.startswith("-"):
        raise InputError(FieldError("--repo", "must not start with '-': give a clone URL"))
    if args.dest.exists() and any(args.dest.iterdir()):
        if not (args.dest / ".git").exists():
            raise InputError(FieldError("--dest", f"{args.dest} is not empty: use a new folder"))
    else:
        _git("clone", "--no-checkout", "--", args.repo, str(args.dest))
    _git("-C", str(args.dest), "fetch", "--quiet", "origin", "--", args.revision, check=False)
    _git("-C", str(args.dest), "checkout", "--quiet", "--detach", args.revision, "--")
    commit = _git("-C", str(args.dest), "rev-parse", "HEAD").strip()
    print(commit)
    return 0


def _git(*argv: str, check: bool = True) -> str:
    try:
        done = subprocess.run(["git", *argv], capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise PlatformError("git is not installed in this image") from None
    except subprocess.TimeoutExpired:
        raise PlatformError(f"git {argv[0]} took longer than {GIT_TIMEOUT_S}s") from None
    if check and done.returncode != 0:
        command = argv[2] if argv[0] == "-C" else argv[0]
        raise PlatformError(f"git {command}: {done.stderr.strip()[-500:]}")
    return done.stdout
