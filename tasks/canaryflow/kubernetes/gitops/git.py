"""The configuration repository in Git: a shallow clone of one branch, one file edited, pushed.

No ``git`` binary (the runtime image has none): dulwich, through ``canaryflow.gitclient``, the
client ``checkout`` uses too. The clone is a bare repository in a private temporary folder and
the edit is made on Git's objects (blob, trees, commit) rather than in a work tree: no
checkout filters, hooks or config of the repository ever run, no symlink in the repository
can lead a write out of the folder, and nothing in its content is ever a path on disk. Only
http, https and git:// are spoken (the old ``GIT_ALLOW_PROTOCOL=https:http:git``), no git
configuration is read (``url.insteadOf``, ``core.gitProxy``, credential helpers), and every
network read has a timeout.

Credentials are the files of the mounted Secret (``credentials.py``), handed to the http
client of the repository's URL, which sends them to that origin only: they are never in an
argv, the environment, a URL, the clone's config or a message.

A push is checked against the branch as the server lists it when the push starts: when
someone else pushed since the clone, ``PushRejected`` (git's "fetch first"), and promotion
redoes the edit on the new tip (``refresh``). The server's own compare-and-swap on the ref
closes the window between that check and the update.
"""

from __future__ import annotations

import contextlib
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from dulwich.client import HTTPUnauthorized, SendPackError
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objects import ZERO_SHA, Blob, Commit, Tree
from dulwich.repo import Repo

from canaryflow.errors import PlatformError
from canaryflow.gitclient import (
    NETWORK_SCHEMES,
    URL,
    client_for,
    is_ref_name,
    never_answered,
    read_timeout,
    scheme_of,
)
from canaryflow.kubernetes.gitops.credentials import read_credentials

GIT_TIMEOUT_S = 120.0
"""How long the server may stay silent (per read) before the clone or push fails."""
AUTHOR = ("canaryflow", "canaryflow@users.noreply.localhost")
_FILE_MODES = (0o100644, 0o100755)
_TREE_MODE = 0o040000
# What receive-pack answers when the ref moved under us (refs.c, builtin/receive-pack.c).
_RACE_WORDS = (
    "non-fast-forward",
    "fetch first",
    "stale info",
    "cannot lock",
    "failed to update ref",
)


class PushRejected(PlatformError):
    """The remote branch moved on since the clone (someone else pushed): fetch and redo."""


@dataclass
class GitCheckout:
    """A shallow clone of one branch in a private temporary directory."""

    url: str
    branch: str
    credentials: Path | None = None
    """The mounted Secret's folder (``username``, ``password`` or ``token``), or None."""
    author: tuple[str, str] = AUTHOR
    timeout_s: float = GIT_TIMEOUT_S

    def __post_init__(self) -> None:
        parsed = urlparse(self.url)
        if (
            not URL.fullmatch(self.url)
            or scheme_of(self.url) not in NETWORK_SCHEMES
            or parsed.username
            or parsed.password
            or (parsed.hostname or "").startswith("-")
        ):
            secret = parsed.username or parsed.password
            shown = "a URL with credentials in it" if secret else repr(self.url[:80])
            raise PlatformError(
                f"{shown} is not a configuration repository URL: use "
                "https://host/org/config.git (http and git:// too), without credentials"
            )
        if not is_ref_name(self.branch):
            raise PlatformError(f"{self.branch[:80]!r} is not a branch name")
        self._tmp = tempfile.TemporaryDirectory(prefix="canaryflow-gitops-")
        self.git_dir = Path(self._tmp.name) / "config.git"
        """The bare clone (objects, refs, shallow, its own config): no work tree."""
        self._repo: Repo | None = None
        self._base: bytes | None = None  # the branch's tip as fetched: what a push replaces
        self._head: bytes | None = None  # what we built on it

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
        self._tmp.cleanup()

    def __enter__(self) -> GitCheckout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the steps -----------------------------------------------------------------------------

    def clone(self) -> None:
        # default_branch given: init would otherwise read init.defaultBranch from ~/.gitconfig
        self._repo = Repo.init_bare(str(self.git_dir), mkdir=True, default_branch=self._ref)
        self._fetch("clone")

    def refresh(self) -> None:
        """The branch as the remote has it now (after a rejected push); the local commit is
        dropped and the edit is made again on the new tip."""
        self._fetch("fetch")

    def read(self, path: str) -> str | None:
        entry = self._entry(self._tree(), self._parts(path), path)
        if entry is None or not stat.S_ISREG(entry[0]):
            return None
        return self._store[entry[1]].data.decode()

    def commit(self, path: str, text: str, message: str) -> bool:
        """Write and commit ``path``; False when it already held ``text`` (nothing to do)."""
        parts = self._parts(path)
        entry = self._entry(self._tree(), parts, path)
        if entry is not None and stat.S_ISREG(entry[0]) and self.read(path) == text:
            return False
        mode = entry[0] if entry is not None and entry[0] in _FILE_MODES else _FILE_MODES[0]
        blob = Blob.from_string(text.encode())
        self._store.add_object(blob)
        commit = Commit()
        commit.tree = self._replace(self._tree(), parts, mode, blob.id, path)
        commit.parents = [self._head]
        name, email = self.author
        commit.author = commit.committer = f"{name} <{email}>".encode()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message.encode()
        self._store.add_object(commit)
        self._head = commit.id
        return True

    def head(self) -> str:
        if self._head is None:
            raise PlatformError("nothing cloned yet")
        return self._head.decode()

    def push(self, branch: str, force: bool = False) -> None:
        """HEAD to ``branch`` on the remote; PushRejected when the remote moved on. Without
        ``force`` the remote branch must still be the tip this commit was built on (or, for
        another branch, not exist yet)."""
        if not is_ref_name(branch):
            raise PlatformError(f"{branch[:80]!r} is not a branch name")
        ref = b"refs/heads/" + branch.encode()
        head, base = self._head, self._base

        def update_refs(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            remote = refs.get(ref)
            expected = base if ref == self._ref else None
            if not force and remote != expected:  # raised before anything is sent
                now = remote.decode()[:12] if remote else "deleted"
                raise PushRejected(
                    f"git push to {self.url} {branch} rejected (fetch first): the branch is "
                    f"now {now}, not the {(base or b'').decode()[:12]} this change was made on"
                )
            return {ref: head}  # the one ref to change; the others are not named

        def generate_pack_data(have, want, *, ofs_delta=False, progress=None):
            known = {sha for sha in have if sha in self._store} | {base}
            return self._repo.generate_pack_data(
                known, set(want), progress=progress, ofs_delta=ofs_delta
            )

        client, path = self._client()
        try:
            with self._network("push"):
                result = client.send_pack(path, update_refs, generate_pack_data)
        except SendPackError as error:
            raise self._refusal(branch, _text(error)) from None
        status = (result.ref_status or {}).get(ref)
        if status is not None:
            raise self._refusal(branch, status)
        if ref == self._ref:
            self._base = head

    def delete_branch(self, branch: str, pushed: str) -> bool:
        """Delete ``branch`` on the remote (a push of the null id, as ``git push --delete``;
        receive-pack's ``delete-refs``) while it still points at ``pushed``, the commit this
        promotion pushed there; False when it moved on or is gone: someone else's then, left
        as it is. Never the followed branch. Needs no clone."""
        if not is_ref_name(branch) or branch == self.branch:
            raise PlatformError(f"{branch[:80]!r} is not a branch canaryflow may delete")
        ref = b"refs/heads/" + branch.encode()
        deleting: list[bytes] = []

        def update_refs(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            if refs.get(ref) != pushed.encode():
                return {}  # nothing to change: nothing is sent
            deleting.append(ref)
            return {ref: ZERO_SHA}

        def no_pack(have, want, *, ofs_delta=False, progress=None):  # a delete sends no objects
            return 0, iter([])

        client, path = self._client()
        try:
            with self._network("push --delete"):
                result = client.send_pack(path, update_refs, no_pack)
        except SendPackError as error:
            raise self._refusal(branch, _text(error)) from None
        status = (result.ref_status or {}).get(ref)
        if status is not None:
            raise self._refusal(branch, status)
        return bool(deleting)

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def _ref(self) -> bytes:
        return b"refs/heads/" + self.branch.encode()

    @property
    def _store(self):
        if self._repo is None:
            raise PlatformError("nothing cloned yet")
        return self._repo.object_store

    def _fetch(self, action: str) -> None:
        branch, ref = self.branch, self._ref

        def determine_wants(refs, depth=None):
            if refs.get(ref) is None:
                raise PlatformError(
                    f"git {action} {self.url}: the repository has no branch {branch}: name the "
                    "branch Argo CD / Flux follow (promotion.gitops.branch or gitops.branch)"
                )
            return [refs[ref]]

        client, path = self._client()
        with self._network(action):
            result = client.fetch(path, self._repo, determine_wants=determine_wants, depth=1)
        tip = result.refs.get(ref)
        if tip is None or tip not in self._store or not isinstance(self._store[tip], Commit):
            raise PlatformError(f"git {action} {self.url}: {branch} is not a commit")
        self._repo.refs[ref] = tip
        self._base = self._head = tip

    def _client(self):
        secret = read_credentials(self.credentials) if scheme_of(self.url) != "git" else None
        return client_for(
            self.url,
            self.timeout_s,
            username=secret.username if secret else None,
            password=secret.password if secret else None,
        )

    @contextlib.contextmanager
    def _network(self, action: str) -> Iterator[None]:
        """dulwich's errors as one PlatformError that names the repository and the step."""
        where = f"git {action} {self.url}"
        try:
            with read_timeout(self.timeout_s):
                yield
        except PlatformError:
            raise
        except HTTPUnauthorized:
            given = "refused the credentials of" if self.credentials else "needs credentials: set"
            raise PlatformError(
                f"{where}: the server {given} the Secret gitops.credentialsSecret "
                "(keys username and password, or token)"
            ) from None
        except NotGitRepository:
            raise PlatformError(f"{where}: no git repository there") from None
        except (HangupException, GitProtocolError, OSError) as error:
            if unreachable := never_answered(self.url, error, "promotion.gitops.repository"):
                raise unreachable from None  # exit 3, and a PlatformError like the rest
            detail = _text(error) or type(error).__name__
            if isinstance(error, TimeoutError) or "timed out" in detail:  # dulwich wraps some
                detail = f"the server did not answer within {self.timeout_s:g}s"
            raise PlatformError(f"{where}: {detail}") from None

    def _refusal(self, branch: str, detail: str) -> PlatformError:
        message = f"git push to {self.url} {branch} rejected: {detail}"
        if any(word in detail for word in _RACE_WORDS):
            return PushRejected(message)
        return PlatformError(message)

    def _tree(self) -> bytes:
        return self._store[self._head].tree

    @staticmethod
    def _parts(path: str) -> list[str]:
        parts = path.split("/")
        if any(p in ("", ".", "..") or p.lower() == ".git" for p in parts):
            raise PlatformError(f"{path} is not a plain path inside the repository")
        return parts

    def _entry(self, tree_id: bytes, parts: list[str], path: str) -> tuple[int, bytes] | None:
        """(mode, id) of ``parts`` under ``tree_id``; None when absent. A symlink on the way,
        or as the file, is refused: the file Argo CD / Flux read is the one canaryflow writes."""
        tree = self._store[tree_id]
        name = parts[0].encode()
        if name not in tree:
            return None
        mode, sha = tree[name]
        if stat.S_ISLNK(mode):
            raise PlatformError(
                f"{path}: {parts[0]} is a symlink in the repository: name the file it points to"
            )
        if len(parts) == 1:
            return mode, sha
        return self._entry(sha, parts[1:], path) if mode == _TREE_MODE else None

    def _replace(
        self, tree_id: bytes | None, parts: list[str], mode: int, blob: bytes, path: str
    ) -> bytes:
        """A new tree: ``tree_id``'s with ``parts`` set to ``blob`` (folders made as needed)."""
        entries: dict[bytes, tuple[int, bytes]] = {}
        if tree_id is not None:
            entries = {i.path: (i.mode, i.sha) for i in self._store[tree_id].iteritems()}
        name = parts[0].encode()
        if len(parts) == 1:
            entries[name] = (mode, blob)
        else:
            existing = entries.get(name)
            if existing is not None and existing[0] != _TREE_MODE:
                raise PlatformError(f"{path}: {parts[0]} is a file in the repository, not a folder")
            sub = self._replace(existing[1] if existing else None, parts[1:], mode, blob, path)
            entries[name] = (_TREE_MODE, sub)
        tree = Tree()
        for entry_name, (entry_mode, sha) in entries.items():
            tree.add(entry_name, entry_mode, sha)
        self._store.add_object(tree)
        return tree.id


def _text(error: BaseException) -> str:
    first = error.args[0] if error.args else None
    text = first.decode(errors="replace") if isinstance(first, bytes) else str(error)
    return " ".join(text.split())[:800]
