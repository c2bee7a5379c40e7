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
  A git:// connect that times out is told from a read that does (``transport.ConnectTimeout``:
  the server accepted and then said nothing is an answer, exit 1); over ssh the ``ssh`` program
  connects, bounded by ``ConnectTimeout`` (the connection and the SSH greeting), and what it
  prints when it could not reach the host is read as the same "never answered".
"""

from __future__ import annotations

import contextlib
import math
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

    ssh = _ssh_command(timeout_s)
    if SCP.fullmatch(repo):
        user_host, path = repo.split(":", 1)
        user, host = user_host.rsplit("@", 1)
        client = SSHGitClient(host, username=user, vendor=SubprocessSSHVendor(), ssh_command=ssh)
        return client, path
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
        return _tcp_client(TCPGitClient)(parsed.hostname or "", port=parsed.port), parsed.path
    if parsed.scheme == "ssh":
        client = SSHGitClient(
            parsed.hostname or "",
            port=parsed.port,
            username=parsed.username,
            vendor=SubprocessSSHVendor(),
            ssh_command=ssh,
        )
        return client, parsed.path
    if parsed.scheme == "file":
        return LocalGitClient(), parsed.path
    raise ValueError(f"{parsed.scheme!r} is not a git transport canaryflow speaks")


def _ssh_command(timeout_s: float) -> str:
    """``ssh``, its connection and the server's greeting bounded as a socket's connect is (it
    would wait for a silent server forever); nothing from the URL reaches this string."""
    return f"ssh -o ConnectTimeout={max(1, math.ceil(timeout_s))}"


def _tcp_client(base: type) -> type:
    """dulwich's git:// client, with a connect that times out raising ``ConnectTimeout``:
    ``_connect`` connects and sends the request (a few bytes on a fresh socket), and reads
    nothing, so a timeout there is no connection, not a server that went silent."""

    class ConnectTimingTCPGitClient(base):
        def _connect(self, *args, **kwargs):
            try:
                return super()._connect(*args, **kwargs)
            except TimeoutError as error:
                if isinstance(error, transport.ConnectTimeout):
                    raise
                raise transport.ConnectTimeout("no connection within the timeout") from error

    return ConnectTimingTCPGitClient


# What the ssh program prints when it never reached the server (OpenSSH's messages, one line
# of its stderr each), and the reason said for it.
_SSH_NEVER_ANSWERED = (
    (re.compile(r"^ssh: Could not resolve hostname "), "the host name does not resolve"),
    (
        re.compile(r"^ssh: connect to host \S+ port \d+: Connection refused$"),
        "connection refused",
    ),
    (
        re.compile(r"^ssh: connect to host \S+ port \d+: (Connection|Operation) timed out$"),
        "no connection within the timeout",
    ),
    (
        re.compile(
            r"^ssh: connect to host \S+ port \d+: (No route to host|Network is unreachable)$"
        ),
        "no route to the host",
    ),
    (
        re.compile(r"^Connection timed out during banner exchange$"),
        "no SSH greeting within the timeout",
    ),
    (
        re.compile(
            r"^kex_exchange_identification: "
            r"(read: Connection reset by peer|Connection closed by remote host)$"
        ),
        "the SSH handshake was cut off",
    ),
)


def _ssh_never_answered(error: BaseException) -> str | None:
    """Why ``ssh`` could not reach the server, from the lines it printed (dulwich's
    ``HangupException`` carries them); None when it got through (the remote's own errors)."""
    lines = getattr(error, "stderr_lines", None) or []
    for raw in lines:
        line = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else str(raw)
        for pattern, reason in _SSH_NEVER_ANSWERED:
            if pattern.search(line):
                return reason
    return None


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
    ``ssh`` program reports instead: a hang-up carrying its message, read here."""
    reason = transport.never_answered(error)
    if reason is None and scheme_of(repo) == "ssh":
        reason = _ssh_never_answered(error)
    if reason is None:
        return None
    where = _host_port(repo) or transport.without_userinfo(repo)[:80]
    return PlatformUnreachable(
        f"git remote {where} did not answer ({reason}): check the URL's host and "
        "port and that this pod may reach it, then run again",
        field,
    )


def _host_port(repo: str) -> str:
    """The remote's host (and port) as the message names it: never a user or a password."""
    if "://" not in repo:
        return repo.split(":", 1)[0].rsplit("@", 1)[-1]
    parsed = urlparse(repo)
    try:
        port = parsed.port
    except ValueError:
        port = None
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host
