"""The one way canaryflow speaks git: dulwich (pure Python), with the transport chosen here.

Why not the ``git`` binary: the runtime image (Debian packages, or python:3.11-slim) has no
git, and one implementation that runs the same on a laptop and in the image beats two.
``checkout`` (the service's source) and GitOps promotion (the configuration repository) both go
through this module, so both follow one policy:

- the client is chosen from the URL's scheme (``client_for``), among the schemes the caller
  allows, never by a lookup that also knows ``ext::``/``fd::`` helpers, bundle files,
  ``core.gitProxy`` or ``url.insteadOf`` from a config file: no git configuration is read;
- no operand reaches a command line: the one program ever run is ``ssh`` for ssh URLs, with
  dulwich refusing a host that starts with ``-`` and quoting the remote path;
- credentials (http/https only) are given to the client for that URL and dulwich attaches them
  only to requests for the URL's own origin (scheme, host, port), so a redirect elsewhere does
  not carry them; they are never part of a URL;
- every network read has a timeout (``read_timeout`` for the sockets dulwich opens itself);
- a remote that never answered (refused, a name that does not resolve, no connection) is
  ``PlatformUnreachable`` (``never_answered``): exit 3, try again, not "the repository is wrong".
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from canaryflow import transport
from canaryflow.errors import PlatformUnreachable

URL = re.compile(r"(https?|ssh|git|file)://[^\s\x00-\x1f\x7f]+")
"""A clone URL of a scheme dulwich speaks without a helper program."""
SCP = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s\x00-\x1f\x7f:][^\s\x00-\x1f\x7f]*")
"""The scp-like ssh address ``user@host:path``."""
# A commit id, branch or tag: git's check-ref-format rules, and never an option.
_REF_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}")
NETWORK_SCHEMES = frozenset({"http", "https", "git"})
"""What a configuration repository may use (as ``GIT_ALLOW_PROTOCOL=https:http:git`` did)."""


def is_ref_name(name: str) -> bool:
    """A name git accepts for a branch or tag (check-ref-format) that cannot be an option."""
    return not (
        not _REF_NAME.fullmatch(name)
        or ".." in name
        or "//" in name
        or name.endswith(("/", ".", ".lock"))
        or "/." in name
    )


def scheme_of(repo: str) -> str:
    """``ssh`` for an scp-like address, ``file`` for a local path, else the URL's scheme."""
    if SCP.fullmatch(repo):
        return "ssh"
    if "://" not in repo:
        return "file"
    return urlparse(repo).scheme


def client_for(
    repo: str,
    timeout_s: float,
    *,
    username: str | None = None,
    password: str | None = None,
):
    """The dulwich client for ``repo``'s scheme, and the path to ask it for. ``username`` and
    ``password`` are used by the http(s) client only (the other transports carry none)."""
    from dulwich.client import (
        HttpGitClient,
        LocalGitClient,
        SSHGitClient,
        SubprocessSSHVendor,
        TCPGitClient,
        default_urllib3_manager,
    )

    if SCP.fullmatch(repo):
        user_host, path = repo.split(":", 1)
        user, host = user_host.rsplit("@", 1)
        return SSHGitClient(host, username=user, vendor=SubprocessSSHVendor()), path
    if "://" not in repo:
        return LocalGitClient(), str(Path(repo).resolve())
    parsed = urlparse(repo)
    if parsed.scheme in ("http", "https"):
        manager = default_urllib3_manager(None, base_url=repo, timeout=timeout_s)
        if username is None:
            return HttpGitClient.from_parsedurl(parsed, pool_manager=manager), parsed.path
        if parsed.username or parsed.password:
            raise ValueError("a URL used with credentials must not carry others")
        client = HttpGitClient(
            repo, pool_manager=manager, username=username, password=password, timeout=timeout_s
        )
        return client, parsed.path
    if parsed.scheme == "git":
        return TCPGitClient(parsed.hostname or "", port=parsed.port), parsed.path
    if parsed.scheme == "ssh":
        client = SSHGitClient(
            parsed.hostname or "",
            port=parsed.port,
            username=parsed.username,
            vendor=SubprocessSSHVendor(),
        )
        return client, parsed.path
    if parsed.scheme == "file":
        return LocalGitClient(), parsed.path
    raise ValueError(f"{parsed.scheme!r} is not a git transport canaryflow speaks")


@contextlib.contextmanager
def read_timeout(seconds: float) -> Iterator[None]:
    """git:// sockets are dulwich's own, without a timeout: bound every read on them."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def never_answered(repo: str, error: BaseException, field: str) -> PlatformUnreachable | None:
    """``PlatformUnreachable`` naming ``field`` when ``error`` (from a fetch or push to
    ``repo``) means the remote never answered; None for an answer (a missing repository,
    a refused credential, a protocol error) or a connection dropped later. Over ssh the
    ``ssh`` program reports instead (a hang-up with its message): not told apart here."""
    reason = transport.never_answered(error)
    if reason is None:
        return None
    where = urlparse(repo).netloc if "://" in repo else repo.split(":", 1)[0]
    return PlatformUnreachable(
        f"git remote {where or repo[:80]} did not answer ({reason}): check the URL's host and "
        "port and that this pod may reach it, then run again",
        field,
    )
