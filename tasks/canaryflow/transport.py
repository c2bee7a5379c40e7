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

import ssl
import urllib.error
import urllib.parse
import urllib.request
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
