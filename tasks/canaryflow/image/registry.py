"""A client for the OCI distribution API over ``http.client``: blobs, manifests, auth.

Only what pushing an image needs: HEAD/GET blobs, cross-repository mounts, monolithic uploads,
GET/PUT manifests. Auth follows the registry's ``WWW-Authenticate`` challenge: HTTP Basic, or
the Bearer token flow (``realm``/``service``/``scope``) that hosted registries use, asking once
for every scope this push needs so a cross-repository mount is allowed too.

Transport follows ``canaryflow.transport``: the registry's credentials (or token) go only to the
registry's own origin, so an upload ``Location`` or a redirect to object storage on another host
gets none; TLS is verified; responses are read up to a limit (``MAX_BLOB_BYTES`` for blobs).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from canaryflow import __version__, transport
from canaryflow.errors import PlatformError, PlatformUnreachable
from canaryflow.image.auth import Challenge, Credentials
from canaryflow.image.oci import sha256_digest

_REDIRECTS = (301, 302, 303, 307, 308)
MAX_BLOB_BYTES = 4 << 30  # a base image layer; anything bigger is not a Go service image
_USER_AGENT = {"User-Agent": f"canaryflow/{__version__} image-push"}


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def error_text(self) -> str:
        """The registry's ``errors`` list as ``CODE: message``, else the raw body."""
        try:
            errors = json.loads(self.body)["errors"]
            return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, KeyError, TypeError, AttributeError):
            return self.body[:200].decode(errors="replace").strip() or "no details"


@dataclass(frozen=True)
class Manifest:
    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def document(self) -> dict:
        return json.loads(self.data)


class RegistryClient:
    """One registry host, with the credentials from the docker config (or none)."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | None = None,
        *,
        insecure: bool = False,
        timeout_s: float = 30.0,
        field: str = "repository",
    ):
        self.host = host
        self.field = field
        """The input that named this registry, for an unreachable one's message."""
        self.scheme = "http" if insecure else "https"
        self.credentials = credentials
        self.timeout_s = timeout_s
        self._scopes: set[str] = set()
        self._authorization: str | None = None

    def need_scope(self, repository: str, actions: str) -> None:
        """Declare a token scope (``pull`` or ``pull,push``) the coming requests need."""
        self._scopes.add(f"repository:{repository}:{actions}")

    # --- blobs ---

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", expect=(200, 404))
        return response.status == 200

    def get_blob(self, repository: str, digest: str) -> bytes:
        response = self.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            expect=(200, *_REDIRECTS),
            limit=MAX_BLOB_BYTES,
        )
        if response.status in _REDIRECTS:  # to object storage: a pre-signed URL, no auth
            location = urllib.parse.urljoin(
                f"{self.scheme}://{self.host}/", response.header("location")
            )
            response = self._send("GET", location, {}, None, limit=MAX_BLOB_BYTES)
            self._expect(response, (200,), f"GET blob {digest} (redirected)")
        if sha256_digest(response.body) != digest:
            raise PlatformError(f"registry {self.host} served blob {digest} with other content")
        return response.body

    def mount_blob(self, repository: str, digest: str, source: str) -> str | None:
        """Link a blob from ``source`` in this registry, without sending its bytes.

        Returns None when mounted, else the upload session the registry opened instead (it
        may refuse, e.g. when the token does not cover ``source``).
        """
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        response = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/?{query}", expect=(201, 202)
        )
        return None if response.status == 201 else response.header("location")

    def upload_blob(self, repository: str, data: bytes, session: str | None = None) -> str:
        """Monolithic upload: POST opens a session (unless given), PUT sends bytes and digest."""
        digest = sha256_digest(data)
        if session is None:
            opened = self.request("POST", f"/v2/{repository}/blobs/uploads/", expect=(202,))
            session = opened.header("location")
        if not session:
            raise PlatformError(f"registry {self.host} opened an upload without a Location")
        url = urllib.parse.urljoin(f"{self.scheme}://{self.host}/", session)
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        self.request(
            "PUT",
            f"{url}{separator}{urllib.parse.urlencode({'digest': digest})}",
            headers={"Content-Type": "application/octet-stream"},
            body=data,
            expect=(201,),
        )
        return digest

    # --- manifests ---

    def get_manifest(self, repository: str, version: str, accept: Iterable[str]) -> Manifest | None:
        """The manifest for a tag or digest, or None if the registry does not have it."""
        response = self.request(
            "GET",
            f"/v2/{repository}/manifests/{version}",
            headers={"Accept": ", ".join(accept)},
            expect=(200, 404),
        )
        if response.status == 404:
            return None
        media_type = response.header("content-type").split(";")[0].strip()
        return Manifest(media_type or json.loads(response.body).get("mediaType", ""), response.body)

    def put_manifest(self, repository: str, tag: str, manifest: Manifest) -> str:
        """PUT under ``tag``; returns the digest the registry says it stored ("" if it won't)."""
        response = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            headers={"Content-Type": manifest.media_type},
            body=manifest.data,
            expect=(201,),
        )
        stored = response.header("docker-content-digest")
        if not stored:  # not every registry says; ask for what the tag now points to
            stored = self.request(
                "HEAD",
                f"/v2/{repository}/manifests/{tag}",
                headers={"Accept": manifest.media_type},
            ).header("docker-content-digest")
        return stored

    # --- transport and auth ---

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        expect: tuple[int, ...] = (200,),
        limit: int = transport.MAX_RESPONSE_BYTES * 4,
    ) -> Response:
        """One API call, answering at most one auth challenge; PlatformError if unexpected.

        Credentials go only to the registry's own origin: an absolute ``path_or_url`` on
        another host (an upload ``Location`` the registry sent) is sent without them.
        """
        base = f"{self.scheme}://{self.host}/"
        url = urllib.parse.urljoin(base, path_or_url)
        own = transport.same_origin(url, base)
        headers = dict(headers or {})
        auth = self._with_auth if own else dict
        response = self._send(method, url, auth(headers), body, limit=limit)
        if response.status == 401 and own:
            self._answer(Challenge.parse(response.header("www-authenticate")), response)
            response = self._send(method, url, self._with_auth(headers), body, limit=limit)
            if response.status == 401:
                raise self._rejected(response)
        return self._expect(response, expect, f"{method} {urllib.parse.urlsplit(url).path}")

    def _with_auth(self, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Authorization": self._authorization} if self._authorization else headers

    def _answer(self, challenge: Challenge, response: Response) -> None:
        if challenge.scheme == "basic":
            if self.credentials is None or self._authorization:
                raise self._rejected(response)
            self._authorization = self.credentials.basic_header()
        elif challenge.scheme == "bearer":
            self._authorization = f"Bearer {self._token(challenge)}"
        else:
            raise PlatformError(
                f"registry {self.host} asks for unsupported auth scheme {challenge.scheme!r}"
            )

    def _token(self, challenge: Challenge) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise PlatformError(f"registry {self.host} sent a Bearer challenge without a realm")
        if self.scheme == "https" and not realm.startswith("https://"):
            raise PlatformError(
                f"registry {self.host} asks for credentials at {realm[:100]!r}, not over https: "
                "refusing to send them in clear text"
            )
        scopes = sorted({*self._scopes, *challenge.params.get("scope", "").split()} - {""})
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        query += [("scope", scope) for scope in scopes]
        headers = {"Authorization": self.credentials.basic_header()} if self.credentials else {}
        url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
        response = self._send("GET", url, headers, None)
        if response.status in (401, 403):
            raise self._rejected(response)
        self._expect(response, (200,), f"GET token from {realm}")
        try:
            document = json.loads(response.body)
            return document.get("token") or document["access_token"]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise PlatformError(f"token server {realm} answered without a token") from error

    def _rejected(self, response: Response) -> PlatformError:
        if self.credentials is None:
            return PlatformError(
                f"registry {self.host} requires credentials (HTTP {response.status}) and the "
                f"docker config has none for {self.host}: mount the docker config secret"
            )
        return PlatformError(
            f"registry {self.host} rejected the credentials for user "
            f"{self.credentials.username} (HTTP {response.status}): check the docker config secret"
        )

    def _expect(self, response: Response, expect: tuple[int, ...], what: str) -> Response:
        if response.status in expect:
            return response
        if response.status == 403:
            user = self.credentials.username if self.credentials else "anonymous"
            raise PlatformError(
                f"registry {self.host} denied {what} to user {user} (HTTP 403): "
                f"{response.error_text()}; grant push/pull on the repository"
            )
        raise PlatformError(
            f"registry {self.host}: {what} answered HTTP {response.status}: {response.error_text()}"
        )

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        limit: int = transport.MAX_RESPONSE_BYTES * 4,
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.netloc, timeout=self.timeout_s, context=transport.tls_context()
            )
        elif parts.scheme == "http":
            connection = http.client.HTTPConnection(parts.netloc, timeout=self.timeout_s)
        else:
            raise PlatformError(f"registry {self.host} sent a URL that is not http(s): {url[:100]}")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.connect()  # apart, so a registry that never answered is told (exit 3)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            if not isinstance(error, ssl.SSLError) or transport.never_answered(error):
                raise PlatformUnreachable(self._never_answered(parts, error), self.field) from error
            raise PlatformError(self._unreachable(parts, error)) from error
        try:
            connection.request(method, target or "/", body=body, headers={**_USER_AGENT, **headers})
            raw = connection.getresponse()
            data = transport.read_bounded(raw, limit) if method != "HEAD" else b""
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        except (OSError, http.client.HTTPException) as error:
            raise PlatformError(self._unreachable(parts, error)) from error
        finally:
            connection.close()

    def _never_answered(self, parts: urllib.parse.SplitResult, error: Exception) -> str:
        if isinstance(error, socket.timeout | TimeoutError):
            reason = f"no connection within {self.timeout_s:g}s"
        else:
            reason = transport.never_answered(error) or transport.os_reason(error)
        return (
            f"registry {parts.netloc} did not answer over {parts.scheme} ({reason}): check "
            "the host and port, that the registry runs and this pod may reach it, then run "
            "again"
        )

    def _unreachable(self, parts: urllib.parse.SplitResult, error: Exception) -> str:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        if isinstance(error, socket.timeout | TimeoutError):
            reason = f"no answer within {self.timeout_s:.0f}s"
        hint = ""
        if isinstance(error, ssl.SSLError) and parts.scheme == "https":
            hint = " (if the registry speaks plain http, pass --insecure)"
        return f"cannot reach registry {parts.netloc} over {parts.scheme}: {reason.lower()}{hint}"
