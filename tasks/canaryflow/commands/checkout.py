"""``canaryflow checkout``: the exact revision of the service's repository, for the build.

Why a Python git client (dulwich) and not the ``git`` binary: the runtime image (Debian
packages, or python:3.11-slim) has no git, and one implementation that runs the same on a
laptop and in the image beats two. Everything here comes from a push payload, so nothing is
trusted:

- the revision must look like a commit, branch or tag (``check_revision``), the clone URL like
  an https/http/git/ssh/file URL or an existing local folder (``check_repo``);
- the transport is chosen from the URL's scheme by ``canaryflow.gitclient`` (shared with GitOps
  promotion), never by a lookup that also knows ``ext::``/``fd::`` helpers, bundle files,
  ``core.gitProxy`` or ``url.insteadOf`` from a config file; no git configuration is read;
- no operand ever reaches a command line: the one program run is ``ssh`` for ssh URLs, with
  dulwich refusing a host that starts with ``-`` and quoting the remote path;
- nothing prompts: no credentials are asked for (a private repository fails, saying so);
- one revision is fetched, shallow (depth 1): a full commit id, or the branch or tag the server
  lists under that name. Only an abbreviated id, which a server cannot be asked for, fetches the
  branches and tags with their history and is then resolved among them.
"""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from canaryflow.commands.arguments import add_json_option, emit
from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.gitclient import SCP, URL, client_for, is_ref_name, never_answered, read_timeout

GIT_TIMEOUT_S = 600
"""How long the server may stay silent (per read) before the checkout fails."""
_FULL_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ABBREVIATED_ID = re.compile(r"[0-9a-f]{4,63}")
_PEELED = b"^{}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, help="clone URL (https, ssh or a local path)")
    parser.add_argument("--revision", required=True, help="commit SHA, branch or tag")
    parser.add_argument("--dest", type=Path, required=True, help="where the work tree goes")
    add_json_option(parser)  # {"commit": ..., "revision": ..., "dest": ...}


def check_revision(revision: str) -> str:
    if not is_ref_name(revision):
        raise InputError(
            FieldError(
                "--revision",
                f"{revision[:80]!r} is not a commit, branch or tag: use a SHA such as "
                "3f2c1e0 or a name of letters, digits and ._/+- (not starting with '-')",
            )
        )
    return revision


def check_repo(repo: str) -> str:
    """A URL or scp-like address whose host cannot be read as an ssh option, or a folder."""
    host = urlparse(repo).netloc if URL.fullmatch(repo) else repo.split(":", 1)[0]
    local = (
        not repo.startswith("-")
        and "::" not in repo
        and not re.search(r"[\x00-\x1f\x7f]", repo)
        and ("://" not in repo)
        and not SCP.fullmatch(repo)
    )
    remote = (URL.fullmatch(repo) or SCP.fullmatch(repo)) and not host.startswith("-")
    if remote or (local and repo and Path(repo).is_dir()):
        return repo
    raise InputError(
        FieldError(
            "--repo",
            f"{repo[:80]!r} is not a clone URL: use https://host/org/repo.git, "
            "git@host:org/repo.git or an existing local folder",
        )
    )


@dataclass(frozen=True)
class Want:
    """What to ask the server for: ``objects`` (ids) at ``depth`` (None: whole history)."""

    objects: tuple[bytes, ...]
    depth: int | None


def is_abbreviated(revision: str) -> bool:
    return bool(_ABBREVIATED_ID.fullmatch(revision)) and not _FULL_ID.fullmatch(revision)


def choose_want(revision: str, refs: Mapping[bytes, bytes]) -> Want:
    """The objects that hold ``revision``, from the refs the server lists.

    Names resolve in gitrevisions(7)'s order (``<name>``, ``refs/<name>``, ``refs/tags/<name>``,
    ``refs/heads/<name>``), then a full id is asked for as it is (servers speaking protocol v2
    hand out any commit they have), then an abbreviated id takes every branch and tag with
    history. Anything else is a name the repository does not have."""
    name = revision.encode()
    for candidate in (name, b"refs/" + name, b"refs/tags/" + name, b"refs/heads/" + name):
        if candidate in refs:
            return Want((refs[candidate],), 1)
    if _FULL_ID.fullmatch(revision):
        return Want((name,), 1)
    if is_abbreviated(revision):
        tips = {
            sha
            for ref, sha in refs.items()
            if ref.startswith((b"refs/heads/", b"refs/tags/")) and not ref.endswith(_PEELED)
        }
        if tips:
            return Want(tuple(sorted(tips)), None)
    raise PlatformError(
        f"git checkout: fatal: invalid reference: {revision} "
        "(no branch, tag or commit of that name in the repository)"
    )


def run(args: argparse.Namespace) -> int:
    from dulwich.repo import Repo

    revision, repo = check_revision(args.revision), check_repo(args.repo)
    dest = args.dest.resolve()
    if dest.exists() and not dest.is_dir():
        raise InputError(FieldError("--dest", f"{args.dest} is a file: name a new folder"))
    existing = dest.exists() and any(dest.iterdir())
    if existing and not (dest / ".git").exists():
        raise InputError(FieldError("--dest", f"{args.dest} is not empty: use a new folder"))
    created = not dest.exists()
    try:
        if existing:
            target = Repo(str(dest))
        else:
            dest.mkdir(parents=True, exist_ok=True)
            target = Repo.init(str(dest))
        with target:
            commit = _fetch(repo, revision, target)
            _check_out(target, commit)
    except BaseException:
        if not existing:  # a failed first checkout leaves the folder as it found it
            for child in dest.iterdir() if dest.exists() else ():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            if created:
                dest.rmdir()
        raise
    sha = commit.id.decode()
    emit(args, {"commit": sha, "revision": revision, "dest": str(dest)}, sha)
    return 0


def _fetch(repo: str, revision: str, target):
    """Fetch what ``revision`` needs into ``target`` and return its commit."""
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

    client, path = client_for(repo, GIT_TIMEOUT_S)
    chosen: list[Want] = []

    def determine_wants(refs, depth=None):
        chosen.append(choose_want(revision, refs))
        return list(chosen[0].objects)

    depth = None if is_abbreviated(revision) else 1
    try:
        with read_timeout(GIT_TIMEOUT_S):
            client.fetch(path, target, determine_wants=determine_wants, depth=depth)
    except FileNotFoundError as error:
        if error.filename == "ssh" or "ssh" in str(error):
            raise PlatformError(
                f"{repo}: ssh is not installed in this image: use an https:// clone URL"
            ) from None
        raise PlatformError(f"git fetch from {repo}: {error}") from None
    except NotGitRepository:
        raise InputError(
            FieldError("--repo", f"{repo[:80]!r} is a folder but not a git repository")
        ) from None
    except (HangupException, GitProtocolError) as error:
        if (unreachable := never_answered(repo, error, "--repo")) is not None:
            raise unreachable from None  # over http(s): urllib3's error, wrapped
        detail = str(error) or type(error).__name__
        if chosen and _FULL_ID.fullmatch(revision):
            detail = f"the server has no commit {revision} ({detail})"
        raise PlatformError(f"git fetch from {repo}: {detail}") from None
    except Exception as error:
        unreachable = never_answered(repo, error, "--repo")
        if unreachable is not None:  # exit 3: the same checkout may work in a minute
            raise unreachable from None
        if isinstance(error, OSError | TimeoutError):
            raise PlatformError(f"git fetch from {repo}: {error}") from None
        raise
    return _resolve(target, revision, chosen[0])


def _resolve(target, revision: str, want: Want):
    """The commit ``want`` names (tags peeled), or the one commit an abbreviation names."""
    from dulwich.objects import Commit, Tag

    if want.depth is None and is_abbreviated(revision):
        ids = {
            sha
            for sha in target.object_store.iter_prefix(revision.encode())
            if isinstance(target.object_store[sha], Commit)
        }
        if len(ids) != 1:
            problem = "is ambiguous" if ids else "names no commit"
            raise PlatformError(f"git checkout: fatal: invalid reference: {revision} {problem}")
        return target.object_store[ids.pop()]
    if want.objects[0] not in target.object_store:
        raise PlatformError(f"git checkout: the server has no commit {revision}")
    obj = target.object_store[want.objects[0]]
    while isinstance(obj, Tag):
        obj = target.object_store[obj.object[1]]
    if not isinstance(obj, Commit):
        raise PlatformError(f"git checkout: fatal: {revision} is a {obj.type_name.decode()}")
    return obj


def _check_out(target, commit) -> None:
    """The work tree and index at ``commit``, HEAD detached there (local edits overwritten:
    a re-run into the same folder is a retry of the same release)."""
    from dulwich import porcelain

    porcelain.checkout(target, target=commit, force=True)
