"""The one policy for outbound HTTP: webhooks, commit status, the registry, Prometheus.

canaryflow runs with credentials that can move production traffic, and talks to endpoints named
in plans and payloads. So, for every client:

- **Credentials stay with their host.** A redirect is followed only within the same origin
  (scheme, host, port) and never from https to http; anything else is reported as the
  redirect it is, so an ``Authorization`` header is never replayed to another host.
- **TLS is verified** with the system's trust store (``tls_context``); plain http only where a
  URL or ``--insecure`` says so.
- **Every call has a timeout**, and **every response is read up to a limit**: a hostile server
  cannot hold a release or fill its memory.

Clients are small (``urllib`` for webhooks, ``http.client`` for the registry, ``requests`` for
Prometheus); they share this policy rather than four copies of it.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

DEFAULT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1 << 20  # webhooks, tokens, manifests, API errors
MAX_REDIRECTS = 3


class ResponseTooLarge(OSError):
    """A response body beyond the caller's limit: never read whole."""


class RedirectRefused(urllib.error.HTTPError):
    """A redirect to another origin (or to plain http): credentials would follow it."""


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def without_userinfo(url: str) -> str:
    """``url`` as a message may show it: any ``user:password@`` taken out."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def same_origin(a: str, b: str) -> bool:
    return origin(a) == origin(b)


def redirect_allowed(from_url: str, to_url: str) -> bool:
    """Only within one origin: same scheme (so never https -> http), host and port."""
    return same_origin(from_url, urllib.parse.urljoin(from_url, to_url))


def tls_context() -> ssl.SSLContext:
    """Certificate and host name verification on, from the system's trust store."""
    return ssl.create_default_context()


def read_bounded(stream: Any, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """At most ``limit`` bytes of a response; more is an error, not a truncation."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ResponseTooLarge(f"response larger than {limit} bytes")
    return data


class ConnectTimeout(TimeoutError):
    """No connection within the timeout, told apart from a read timeout where the socket does
    not (a plain socket's connect and recv both raise ``TimeoutError('timed out')``)."""


NO_CONNECTION = "no connection within the timeout"
"""``never_answered``'s reason for a connect that timed out (no SYN answered)."""


def never_answered(error: BaseException) -> str | None:
    """Why ``error`` means the service never answered, or None when it did (an HTTP status,
    a broken response) or the fault is configuration (a certificate that does not verify, a
    server that speaks plain http to TLS): those are not fixed by trying again.

    "Never answered" is: connection refused, a host name that does not resolve, a network or
    host unreachable, no connection within the timeout, a TLS handshake the other end cut
    off. Looks through the exceptions ``requests``, ``urllib3`` and ``dulwich`` wrap (the
    ``__cause__``/``__context__`` chain and urllib3's ``reason``). The exit code 3 rests on
    this: "infrastructure unreachable, the input may be fine, try again"."""
    import errno

    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        name = type(current).__name__
        if isinstance(current, ssl.SSLCertVerificationError):
            return None
        if isinstance(current, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return "the TLS handshake was cut off"
        if isinstance(current, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectTimeout) or name in ("ConnectTimeoutError", "ConnectTimeout"):
            return NO_CONNECTION
        if name == "NameResolutionError":
            return "the host name does not resolve"
        if isinstance(current, OSError) and current.errno in (
            errno.ECONNREFUSED,
            errno.ENETUNREACH,
            errno.EHOSTUNREACH,
            errno.EHOSTDOWN,
        ):
            return os_reason(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(getattr(current, "args", ()))
        pending += [e for e in linked if isinstance(e, BaseException)]
    return None


def os_reason(error: OSError) -> str:
    return (error.strerror or str(error) or type(error).__name__).lower()


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not redirect_allowed(req.full_url, newurl):
            target = origin(urllib.parse.urljoin(req.full_url, newurl))
            raise RedirectRefused(
                req.full_url,
                code,
                f"redirect to {target[0]}://{target[1]} not followed (another origin: "
                "credentials stay with the configured host)",
                headers,
                fp,
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener() -> urllib.request.OpenerDirector:
    """A ``urllib`` opener under this policy (pass ``timeout=`` to every ``open``)."""
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=tls_context()), _SameOriginRedirects()
    )


def guard_session(session: Any, limit: int = 64 * MAX_RESPONSE_BYTES) -> Any:
    """The same policy on a ``requests.Session``: same-origin redirects, bounded bodies.

    ``requests`` already drops ``Authorization`` on a cross-host redirect, but not other
    credential headers; refusing the redirect covers every header. ``verify`` stays on.
    """
    session.verify = True
    session.max_redirects = MAX_REDIRECTS

    def check(response, *args, **kwargs):
        if response.is_redirect:
            location = response.headers.get("location", "")
            if not redirect_allowed(response.url, location):
                import requests

                raise requests.exceptions.InvalidURL(
                    f"redirect from {response.url} to another origin not followed"
                )
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise ResponseTooLarge(f"response of {length} bytes is larger than {limit}")
        if not response.is_redirect and not response._content_consumed:
            # Read it here, bounded, before requests would read it whole (chunked: no length).
            data = response.raw.read(limit + 1, decode_content=True)
            if len(data) > limit:
                response.close()
                raise ResponseTooLarge(f"response larger than {limit} bytes")
            response._content, response._content_consumed = data, True
        return response

    session.hooks.setdefault("response", []).append(check)
    return session


# Hard deadlines for a requests Session ---------------------------------------------------------
#
# ``requests``' timeout bounds each wait for a byte, not a whole request: a server that sends one
# byte a second holds a call for as long as it likes. A call made within ``deadline(seconds)``
# through a session mounted with ``deadline_adapter()`` is cut off when the time is up: one
# watcher thread (only while some deadline is pending) shuts the call's socket down, which ends
# the blocked read at once, and the scope says it ``fired``.


class _Scope:
    def __init__(self, at: float):
        self.at = at
        self.connections: list[Any] = []
        self.open = True
        self.fired = False


_local = threading.local()
_pending = threading.Condition()
_deadlines: list[tuple[float, int, _Scope]] = []
_watching = False


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[_Scope]:
    """Every request this thread sends through a ``deadline_adapter`` within the block ends
    ``seconds`` from now at the latest (its socket is shut down: the call raises)."""
    global _watching
    scope = _Scope(time.monotonic() + seconds)
    outer = getattr(_local, "scope", None)
    _local.scope = scope
    with _pending:
        heapq.heappush(_deadlines, (scope.at, id(scope), scope))
        if not _watching:
            _watching = True
            threading.Thread(target=_watch_deadlines, daemon=True, name="http deadlines").start()
        _pending.notify()
    try:
        yield scope
    finally:
        _local.scope = outer
        with _pending:
            scope.open = False
            _pending.notify()


def _watched(connection: Any) -> None:
    scope = getattr(_local, "scope", None)
    if scope is not None:
        with _pending:
            scope.connections.append(connection)


def _watch_deadlines() -> None:
    """Shut down the sockets of every open scope whose time is up; exit when none is left."""
    global _watching
    with _pending:
        while True:
            while _deadlines and not _deadlines[0][2].open:
                heapq.heappop(_deadlines)
            if not _deadlines:
                _watching = False
                return
            at, _, scope = _deadlines[0]
            left = at - time.monotonic()
            if left > 0:
                _pending.wait(left)
                continue
            heapq.heappop(_deadlines)
            scope.fired = True
            for connection in scope.connections:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)


@functools.cache
def _deadline_adapter_class() -> type:
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTP(HTTPConnection):
        def request(self, *args: Any, **kwargs: Any) -> None:
            _watched(self)
            super().request(*args, **kwargs)

    class WatchedHTTPS(HTTPSConnection):
        def request(self, *args: Any, **kwargs: Any) -> None:
            _watched(self)
            super().request(*args, **kwargs)

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTP

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPS

    class DeadlineAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

    return DeadlineAdapter


def deadline_adapter(**kwargs: Any) -> Any:
    """A ``requests`` adapter whose requests ``deadline`` can cut off (``HTTPAdapter``'s
    arguments)."""
    return _deadline_adapter_class()(**kwargs)
