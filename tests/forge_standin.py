"""A stand-in for GitHub's and GitLab's merge request APIs on 127.0.0.1, merging into a real
bare repository (the one ``git daemon`` serves), so Argo CD's stand-in syncs what it merged.

The request and response shapes follow the providers' documentation (the same pages
``canaryflow.kubernetes.gitops.forge`` cites):

- GitHub, "REST API endpoints for pull requests" (docs.github.com/rest/pulls/pulls, apiVersion
  2022-11-28; "Get a repository" in docs.github.com/rest/repos/repos): ``GET
  /repos/{owner}/{repo}`` -> 200 with ``full_name``; ``POST /repos/{owner}/{repo}/pulls``
  (``title``, ``head``, ``base``, ``body``) -> 201 with ``number``, ``html_url``, ``state:
  open``, ``merged: false``; 422 ``{"message": "Validation Failed", "errors": [{"resource":
  "PullRequest", "code": "custom", "message": "A pull request already exists for
  owner:branch."}]}`` for a second open one from the same head; ``GET
  .../pulls?head=owner:branch&state=open`` -> list; ``GET .../pulls/{n}``; ``PATCH
  .../pulls/{n}`` ``{"state": "closed"}``; 401 ``{"message": "Bad credentials"}`` without
  ``Authorization: Bearer <token>``.
- GitLab, "Merge requests API" (doc/api/merge_requests.md; "Get a single project" in
  doc/api/projects.md): ``GET /projects/:id`` -> 200 with ``path_with_namespace``; ``POST
  /projects/:id/merge_requests`` (``source_branch``, ``target_branch``, ``title``) -> 201 with
  ``iid``, ``web_url``, ``state: opened``; 409 ``{"message": ["Another open merge request
  already exists for this source branch: !1"]}``; ``GET ...?source_branch=&state=opened``; ``GET
  .../merge_requests/:iid``; ``PUT .../:iid`` ``{"state_event": "close"}``; 401 ``{"message":
  "401 Unauthorized"}`` without ``PRIVATE-TOKEN``. ``:id`` is the URL-encoded project path.

``reviewer`` decides what happens to an opened request after ``delay_s``: ``merge`` (a
fast-forward of the base branch to the head commit, as GitHub's and GitLab's fast-forward
merge method do), ``close``, or ``never``. It runs in this process (a thread), stopped with
the server.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from git_server import GIT_ENV

Reviewer = Literal["merge", "close", "never"]
NO_ROUTE = -1


@dataclass
class Request:
    number: int
    head: str
    base: str
    title: str
    body: str
    base_at_open: str
    """The base branch's commit when the request was opened (before any merge)."""
    state: str = "open"  # open, closed, merged


@dataclass
class Call:
    method: str
    path: str
    body: Any
    authorized: bool


@dataclass
class ForgeStandIn:
    provider: Literal["github", "gitlab"]
    bare: Path
    project: str
    token: str
    reviewer: Reviewer = "merge"
    delay_s: float = 0.2
    refuse_open: int | None = None
    """When set, opening a request answers this status (a token that may push but not open
    one: GitHub 403 "Resource not accessible by personal access token")."""
    requests: list[Request] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> ForgeStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                status, answer = standin.handle(self.command, self.path, self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    @property
    def api(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}" + ("/api/v4" if self.provider == "gitlab" else "")

    # -- the API -------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, body: Any) -> tuple[int, Any]:
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query))
        authorized = self._authorized(headers)
        with self._lock:
            self.calls.append(Call(method, url.path, body, authorized))
        if not authorized:
            words = "Bad credentials" if self.provider == "github" else "401 Unauthorized"
            return 401, {"message": words}
        if method == "GET" and url.path == self._project_path:
            return 200, self._project_shape()
        number = self._route(url.path)
        if number == NO_ROUTE:
            return 404, {"message": "Not Found"}
        with self._lock:
            if number is None and method == "POST":
                return self._create(body)
            if number is None and method == "GET":
                return 200, [self._shape(r) for r in self._matching(query)]
            found = next((r for r in self.requests if r.number == number), None)
            if found is None:
                return 404, {"message": "Not Found"}
            if method == "GET":
                return 200, self._shape(found)
            closing = (body or {}).get("state") == "closed" or (body or {}).get(
                "state_event"
            ) == "close"
            if method in ("PATCH", "PUT") and closing:
                if found.state == "merged":
                    return 422, {"message": "Validation Failed"}
                found.state = "closed"
                return 200, self._shape(found)
        return 405, {"message": "Method Not Allowed"}

    def _authorized(self, headers: Any) -> bool:
        """Header names are case-insensitive (urllib sends `Private-token`)."""
        if self.provider == "github":
            return headers.get("Authorization") == f"Bearer {self.token}"
        return headers.get("PRIVATE-TOKEN") == self.token

    @property
    def _project_path(self) -> str:
        """GitHub "Get a repository", GitLab "Get a single project"."""
        if self.provider == "github":
            return f"/repos/{self.project}"
        return "/api/v4/projects/" + urllib.parse.quote(self.project, safe="")

    def _project_shape(self) -> dict:
        if self.provider == "github":
            return {"id": 1, "full_name": self.project, "default_branch": "main"}
        return {"id": 1, "path_with_namespace": self.project, "default_branch": "main"}

    def _route(self, path: str) -> int | None:
        """None: the collection; a number: that request; NO_ROUTE: anything else."""
        suffix = "/pulls" if self.provider == "github" else "/merge_requests"
        prefix = self._project_path + suffix
        if path == prefix:
            return None
        match = re.fullmatch(re.escape(prefix) + r"/([0-9]+)", path)
        return int(match.group(1)) if match else NO_ROUTE

    def _create(self, body: dict) -> tuple[int, Any]:
        if self.refuse_open is not None:
            words = {
                "github": "Resource not accessible by personal access token",
                "gitlab": f"{self.refuse_open} Forbidden",
            }[self.provider]
            return self.refuse_open, {"message": words}
        if self.provider == "github":
            head, base, title, text = body["head"], body["base"], body["title"], body.get("body")
        else:
            head, base = body["source_branch"], body["target_branch"]
            title, text = body["title"], body.get("description")
        if any(r.head == head and r.state == "open" for r in self.requests):
            if self.provider == "github":
                owner = self.project.split("/")[0]
                message = f"A pull request already exists for {owner}:{head}."
                error = {"resource": "PullRequest", "code": "custom", "message": message}
                return 422, {"message": "Validation Failed", "errors": [error]}
            return 409, {
                "message": ["Another open merge request already exists for this source branch: !1"]
            }
        tip = self._git("rev-parse", "--verify", f"refs/heads/{base}").strip()
        request = Request(len(self.requests) + 1, head, base, title, text or "", tip)
        self.requests.append(request)
        reviewer = threading.Thread(target=self._review, args=(request,), daemon=True)
        reviewer.start()
        self._threads.append(reviewer)
        return 201, self._shape(request)

    def _matching(self, query: dict) -> list[Request]:
        if self.provider == "github":
            head = query.get("head", "").partition(":")[2]
            state = query.get("state", "open")
        else:
            head = query.get("source_branch", "")
            state = {"opened": "open"}.get(query.get("state", ""), query.get("state", ""))
        return [r for r in self.requests if (not head or r.head == head) and r.state == state]

    def _shape(self, request: Request) -> dict:
        if self.provider == "github":
            return {
                "number": request.number,
                "html_url": f"https://github.example/{self.project}/pull/{request.number}",
                "state": "closed" if request.state != "open" else "open",
                "merged": request.state == "merged",
                "head": {"ref": request.head},
                "base": {"ref": request.base},
                "title": request.title,
                "body": request.body,
            }
        return {
            "iid": request.number,
            "web_url": f"https://gitlab.example/{self.project}/-/merge_requests/{request.number}",
            "state": {"open": "opened"}.get(request.state, request.state),
            "source_branch": request.head,
            "target_branch": request.base,
            "title": request.title,
            "description": request.body,
        }

    # -- the reviewer --------------------------------------------------------------------------

    def _review(self, request: Request) -> None:
        if self.reviewer == "never" or self._stop.wait(self.delay_s):
            return
        with self._lock:
            if request.state != "open":
                return
            if self.reviewer == "close":
                request.state = "closed"
                return
            head = self._git("rev-parse", "--verify", f"refs/heads/{request.head}").strip()
            self._git("merge-base", "--is-ancestor", f"refs/heads/{request.base}", head)
            self._git("update-ref", f"refs/heads/{request.base}", head)
            request.state = "merged"

    def _git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.bare, env=GIT_ENV, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout
