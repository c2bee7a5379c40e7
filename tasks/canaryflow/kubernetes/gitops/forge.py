"""Opening, reading and closing the promotion's merge request on GitHub or GitLab.

In ``mode: merge-request`` the change is pushed to its own branch (``git.py``); this module
asks the forge to merge it into the followed branch, then tells promote whether it is still
open, merged or closed. The requests follow the providers' REST documentation:

- GitHub, "REST API endpoints for pull requests" (docs.github.com/rest/pulls/pulls, apiVersion
  2022-11-28; the project is read first with "Get a repository", ``GET /repos/{owner}/{repo}``,
  docs.github.com/rest/repos/repos): ``POST /repos/{owner}/{repo}/pulls`` with ``title``,
  ``head``, ``base``, ``body`` answers 201 with ``number`` and ``html_url``, or 422 "Validation
  Failed" when a pull request from ``head`` is already open (then ``GET
  .../pulls?head=owner:branch&state=open`` finds it); ``GET .../pulls/{number}`` carries
  ``state`` (open, closed) and ``merged``; ``PATCH .../pulls/{number}`` with ``state: closed``
  closes it. Headers: ``Authorization: Bearer``, ``Accept: application/vnd.github+json``,
  ``X-GitHub-Api-Version``, and a ``User-Agent`` (required by the API).
- GitLab, "Merge requests API" (doc/api/merge_requests.md; the project is read first with ``GET
  /projects/:id``, doc/api/projects.md): ``POST /projects/:id/merge_requests`` with
  ``source_branch``, ``target_branch``, ``title``, ``description`` answers 201 with ``iid`` and
  ``web_url``, or 409 when an open merge request from that source branch exists (``GET
  .../merge_requests?source_branch=&state=opened`` finds it); ``:id`` is the URL-encoded project
  path; ``state`` is opened, closed, locked or merged; ``PUT .../merge_requests/:iid`` with
  ``state_event: close`` closes it. Header ``PRIVATE-TOKEN``.

Every call goes through ``canaryflow.transport`` (TLS verified, same-origin redirects only, a
timeout, a bounded answer). The token is read from the credentials Secret's file and goes into
one header, nowhere else: an error message names the call and the API's own message, with the
token masked should a server echo it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from canaryflow import transport
from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.input_file import read_input_file

State = Literal["open", "merged", "closed"]
TIMEOUT_S = 10.0
ATTEMPTS = 3
MAX_TOKEN_BYTES = 4096
TOKEN_KEYS = ("token", "password")
"""Keys of the credentials Secret tried for the API token: a separate ``token``, else the
``password`` git pushes with (a GitHub or GitLab access token serves both)."""
GITHUB_API_VERSION = "2022-11-28"
_TOKEN = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space: one header value


@dataclass(frozen=True)
class MergeRequest:
    number: int
    """GitHub's pull request ``number``, GitLab's merge request ``iid``."""
    url: str
    """The page people review it on (``html_url``, ``web_url``)."""


class Forge(Protocol):
    provider: str

    def check(self) -> None: ...
    def open(self, branch: str, base: str, title: str, body: str) -> MergeRequest: ...
    def state(self, request: MergeRequest) -> State: ...
    def close(self, request: MergeRequest) -> None: ...


class ForgeError(PlatformError):
    """The forge refused a call or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# -- where: pure ----------------------------------------------------------------------------------


def default_api_url(provider: str, repository: str) -> str | None:
    """The REST API of the forge serving ``repository``: api.github.com for github.com, else
    GitHub Enterprise's ``/api/v3`` or GitLab's ``/api/v4`` on the repository's host; None when
    the repository is not reached over http(s) (then the chart's gitops.apiUrl must say)."""
    parts = urllib.parse.urlsplit(repository)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    if provider == "github" and parts.hostname.lower() == "github.com":
        return "https://api.github.com"
    suffix = "/api/v3" if provider == "github" else "/api/v4"
    return f"{parts.scheme}://{parts.netloc}{suffix}"


def default_project(repository: str) -> str:
    """``org/config`` of ``https://host/org/config.git``."""
    path = urllib.parse.urlsplit(repository).path.strip("/")
    return path.removesuffix(".git")


def read_token(credentials: Path | None) -> str:
    """The API token from the mounted credentials Secret; InputError (exit 2) when absent."""
    for key in TOKEN_KEYS:
        if credentials is not None and (credentials / key).is_file():
            token = read_input_file(credentials / key, MAX_TOKEN_BYTES, "gitops token").strip()
            if token and not _TOKEN.fullmatch(token):
                # Never in a header (nor, through http.client's error, in a message).
                raise InputError(
                    FieldError(
                        "gitops.credentialsSecret",
                        f"key {key}: the token holds spaces or control characters: store the "
                        "token alone",
                    )
                )
            if token:
                return token
    raise InputError(
        FieldError(
            "gitops.credentialsSecret",
            "no token for the forge API: add the key `token` (or `password`) to the chart's "
            "credentials Secret, a token that may open merge requests",
        )
    )


# -- the calls ------------------------------------------------------------------------------------


@dataclass
class _Client:
    api: str
    token: str = field(repr=False)
    provider: str = ""
    timeout_s: float = TIMEOUT_S
    sleep: Any = time.sleep

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        """(status, decoded JSON) of a 2xx answer; ForgeError otherwise. A connection error or
        a 5xx/429 answer is tried again (``ATTEMPTS``); any other answer is final."""
        url = self.api.rstrip("/") + path
        problem: ForgeError | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                self.sleep(0.5 * 2 ** (attempt - 1))
            try:
                return self._exchange(method, url, body)
            except ForgeError as error:
                problem = error
                if error.status is not None and error.status < 500 and error.status != 429:
                    raise
        assert problem is not None
        raise problem

    def _exchange(self, method: str, url: str, body: dict | None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {**self._headers(), "User-Agent": "canaryflow"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        what = f"{self.provider} API {method} {urllib.parse.urlsplit(url).path}"
        try:
            with transport.opener().open(request, timeout=self.timeout_s) as response:
                return response.status, _decode(transport.read_bounded(response))
        except transport.RedirectRefused as error:
            raise ForgeError(f"{what}: {error.reason}", error.code) from None
        except urllib.error.HTTPError as error:
            try:
                answer = _decode(transport.read_bounded(error))
            except (OSError, ValueError):
                answer = None
            message = self._mask(_message(answer))
            hint = _hint(error.code)
            raise ForgeError(
                f"{what}: HTTP {error.code}{': ' + message if message else ''}{hint}", error.code
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = self._mask(str(getattr(error, "reason", error)))[:200]
            raise ForgeError(f"{what}: {reason}") from None

    def _mask(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    def check(self) -> None:
        """Read the project before anything is pushed: a refused token or a wrong project is
        bad input (exit 2, nothing changed), found while nothing has changed yet."""
        try:
            self.call("GET", self._project)
        except ForgeError as error:
            if error.status in (401, 403):
                raise InputError(FieldError("gitops.credentialsSecret", str(error))) from None
            if error.status == 404:
                raise InputError(FieldError("promotion.gitops.project", str(error))) from None
            raise

    @property
    def _project(self) -> str:
        raise NotImplementedError


def _decode(data: bytes) -> Any:
    return json.loads(data) if data.strip() else None


def _message(answer: Any) -> str:
    """The API's own words: GitHub's ``message`` and ``errors[].message``, GitLab's
    ``message`` (a string, a list or a mapping of field to list) or ``error``."""
    if not isinstance(answer, dict):
        return ""
    parts = [answer.get("message") or answer.get("error") or ""]
    for error in answer.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(error["message"])
    text = "; ".join(p if isinstance(p, str) else json.dumps(p, sort_keys=True) for p in parts if p)
    return " ".join(text.split())[:300]


def _hint(status: int) -> str:
    if status in (401, 403):
        return (
            " (the token of the chart's gitops.credentialsSecret is refused or may not open "
            "merge requests here)"
        )
    if status == 404:
        return " (check promotion.gitops.project and the chart's gitops.apiUrl)"
    return ""


@dataclass
class GitHub(_Client):
    owner_repo: str = ""
    provider: str = "github"

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
        }

    @property
    def _project(self) -> str:
        owner, repo = self.owner_repo.split("/")
        return f"/repos/{_segment(owner)}/{_segment(repo)}"

    @property
    def _pulls(self) -> str:
        return f"{self._project}/pulls"

    def open(self, branch: str, base: str, title: str, body: str) -> MergeRequest:
        payload = {"title": title, "head": branch, "base": base, "body": body}
        try:
            _, pull = self.call("POST", self._pulls, payload)
        except ForgeError as error:
            if error.status != 422:
                raise
            owner = self.owner_repo.split("/")[0]
            query = urllib.parse.urlencode({"head": f"{owner}:{branch}", "state": "open"})
            _, pulls = self.call("GET", f"{self._pulls}?{query}")
            if not pulls:
                raise
            pull = pulls[0]
        return MergeRequest(int(pull["number"]), str(pull.get("html_url", "")))

    def state(self, request: MergeRequest) -> State:
        _, pull = self.call("GET", f"{self._pulls}/{request.number}")
        if pull.get("merged") or pull.get("merged_at"):
            return "merged"
        return "closed" if pull.get("state") == "closed" else "open"

    def close(self, request: MergeRequest) -> None:
        self.call("PATCH", f"{self._pulls}/{request.number}", {"state": "closed"})


@dataclass
class GitLab(_Client):
    project: str = ""
    provider: str = "gitlab"

    def _headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token, "Accept": "application/json"}

    @property
    def _project(self) -> str:
        return f"/projects/{_segment(self.project)}"

    @property
    def _requests(self) -> str:
        return f"{self._project}/merge_requests"

    def open(self, branch: str, base: str, title: str, body: str) -> MergeRequest:
        payload = {
            "source_branch": branch,
            "target_branch": base,
            "title": title,
            "description": body,
            "remove_source_branch": True,
        }
        try:
            _, request = self.call("POST", self._requests, payload)
        except ForgeError as error:
            if error.status != 409:
                raise
            query = urllib.parse.urlencode(
                {"source_branch": branch, "target_branch": base, "state": "opened"}
            )
            _, requests = self.call("GET", f"{self._requests}?{query}")
            if not requests:
                raise
            request = requests[0]
        return MergeRequest(int(request["iid"]), str(request.get("web_url", "")))

    def state(self, request: MergeRequest) -> State:
        _, found = self.call("GET", f"{self._requests}/{request.number}")
        return {"merged": "merged", "closed": "closed"}.get(found.get("state"), "open")

    def close(self, request: MergeRequest) -> None:
        self.call("PUT", f"{self._requests}/{request.number}", {"state_event": "close"})


def _segment(text: str) -> str:
    """One path segment: GitLab's ``:id`` is the project path with '/' encoded as %2F."""
    return urllib.parse.quote(text, safe="")


def make_forge(provider: str, api: str, project: str, token: str) -> Forge:
    if provider == "github":
        return GitHub(api, token, owner_repo=project)
    return GitLab(api, token, project=project)
