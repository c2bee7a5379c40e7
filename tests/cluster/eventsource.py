"""The Argo Events EventSource controller's admission of an EventSource, GitHub and GitLab only.

Upstream (argoproj/argo-events, v1.9.0 to v1.9.11), followed check by check and message by
message:

- ``pkg/reconciler/eventsource/validate.go`` ``ValidateEventSource``: every named source of every
  type is validated; an event name used twice (even under two types) is refused ("more than one
  %q found in the spec"). ``controller.go`` ``reconcile`` returns on a validation error before it
  builds the Deployment: an invalid EventSource serves no webhook at all.
- ``pkg/eventsources/sources/github/validate.go`` ``validate``: ``GetOwnedRepositories()``
  (``repositories`` when non-empty, else the deprecated ``owner`` + ``repository``) or
  ``organizations`` is required, not both; ``events`` must be non-empty when hooks are created
  (``NeedToCreateHooks``: an ``apiToken`` or ``githubApp.privateKey`` and a ``webhook.url``);
  ``contentType`` is ``json`` or ``form``; ``githubBaseURL`` and ``githubUploadURL`` come together.
- ``pkg/eventsources/sources/gitlab/validate.go`` ``validate``: ``events`` present, a
  ``gitlabBaseURL``, an ``accessToken`` (every v1.9.x); v1.9.0 to v1.9.5 first refuse a source
  with neither ``projects`` (or the deprecated ``projectID``) nor ``groups`` (dropped in v1.9.6).
- ``pkg/eventsources/common/webhook/validate.go`` ``ValidateWebhookContext``: a webhook with an
  ``endpoint`` and a ``port`` that ``strconv.Atoi`` parses.

Go's ``encoding/json`` distinguishes a missing (or null) list, which is nil, from an empty one,
which is not: ``organizations: []`` passes the "repositories or organizations" check and
``events: []`` passes GitLab's "events can't be empty", as upstream. Expectations of the tests
come from upstream's ``validate_test.go`` (the empty source's message, the examples under
``examples/event-sources`` valid).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
LATEST = (1, 9, 11)
_GO_INT = re.compile(r"[+-]?[0-9]+")


class InvalidEventSource(ValueError):
    """The controller's validation error: the EventSource gets no Deployment."""


@dataclass(frozen=True)
class Route:
    """One webhook the EventSource's pod serves: ``eventName`` on ``port`` + ``endpoint``."""

    event_source: str
    event_name: str
    kind: str
    port: int
    endpoint: str


def _version(text: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in text.lstrip("v").split("."))
    return major, minor, patch


def validate_webhook_context(webhook: Obj | None) -> None:
    """``webhook.ValidateWebhookContext``."""
    if webhook is None:
        raise InvalidEventSource("")
    if not webhook.get("endpoint"):
        raise InvalidEventSource("endpoint can't be empty")
    port = webhook.get("port", "")
    if port == "":
        raise InvalidEventSource("port can't be empty")
    if not isinstance(port, str) or not _GO_INT.fullmatch(port):
        raise InvalidEventSource(_atoi_error(port, "invalid syntax"))
    if not -(2**63) <= int(port) < 2**63:
        raise InvalidEventSource(_atoi_error(port, "value out of range"))


def _atoi_error(port: object, reason: str) -> str:
    """The message of a port ``strconv.Atoi`` refuses: Go tells bad syntax from a number
    outside int64 (``ErrSyntax``, ``ErrRange``); upstream quotes it."""
    return f'failed to parse server port {port}. err: strconv.Atoi: parsing "{port}": {reason}'


def _owned_repositories(source: Obj) -> list[Obj] | None:
    """``GithubEventSource.GetOwnedRepositories`` (nil when neither form is set)."""
    if source.get("repositories"):
        return source["repositories"]
    if source.get("owner") and source.get("repository"):
        return [{"owner": source["owner"], "names": [source["repository"]]}]
    return None


def validate_github(source: Obj | None) -> None:
    """``github.validate``."""
    if source is None:
        raise InvalidEventSource("event source can't be nil")
    repositories = _owned_repositories(source)
    organizations = source.get("organizations")  # nil only when missing or null
    if repositories is None and organizations is None:
        raise InvalidEventSource("either repositories or organizations is required")
    if repositories is not None and organizations is not None:
        raise InvalidEventSource("only one of repositories and organizations is allowed")
    credentials = source.get("apiToken") is not None or (
        source.get("githubApp") is not None and source["githubApp"].get("privateKey") is not None
    )
    hooks = credentials and bool((source.get("webhook") or {}).get("url"))
    if hooks and not source.get("events"):
        raise InvalidEventSource("events must be defined to create a github webhook")
    if source.get("contentType", "") not in ("", "json", "form"):
        raise InvalidEventSource('content type must be "json" or "form"')
    base, upload = source.get("githubBaseURL", ""), source.get("githubUploadURL", "")
    if base or upload:
        if not base:
            raise InvalidEventSource("githubBaseURL is required when githubUploadURL is set")
        if not upload:
            raise InvalidEventSource("githubUploadURL is required when githubBaseURL is set")
    validate_webhook_context(source.get("webhook"))


def validate_gitlab(source: Obj | None, version: tuple[int, int, int] = LATEST) -> None:
    """``gitlab.validate`` (the projects-or-groups rule only before v1.9.6)."""
    if source is None:
        raise InvalidEventSource("event source can't be nil")
    if version < (1, 9, 6):
        projects = source.get("projects") or (
            [source["projectID"]] if source.get("projectID") else []
        )
        if not projects and not source.get("groups"):
            raise InvalidEventSource("projects and groups cannot be empty at the same time")
    if source.get("events") is None:
        raise InvalidEventSource("events can't be empty")
    if not source.get("gitlabBaseURL"):
        raise InvalidEventSource("gitlab base url can't be empty")
    if source.get("accessToken") is None:
        raise InvalidEventSource("access token can't be nil")
    validate_webhook_context(source.get("webhook"))


_VALIDATORS = {"github": validate_github, "gitlab": validate_gitlab}


def routes(event_source: Obj, version: str = "v1.9.11") -> list[Route]:
    """The webhooks a valid EventSource serves; ``InvalidEventSource`` as the reconciler's
    ``ValidateEventSource`` (the first error, after marking the source not provided)."""
    at = _version(version)
    name = event_source["metadata"]["name"]
    spec = event_source.get("spec", {})
    served: list[Route] = []
    seen: set[str] = set()
    for kind, sources in spec.items():
        if kind in ("eventBusName", "service", "template", "replicas") or not isinstance(
            sources, dict
        ):
            continue
        if kind not in _VALIDATORS:
            raise NotImplementedError(f"EventSource type {kind}: only github and gitlab here")
        for event_name, source in sources.items():
            if event_name in seen:
                raise InvalidEventSource(f'more than one "{event_name}" found in the spec')
            seen.add(event_name)
            if kind == "gitlab":
                validate_gitlab(source, at)
            else:
                validate_github(source)
            webhook = source["webhook"]
            served.append(Route(name, event_name, kind, int(webhook["port"]), webhook["endpoint"]))
    return served


def route_for(event_source: Obj, kind: str, version: str = "v1.9.11") -> Route:
    """The webhook a provider's push reaches; ``InvalidEventSource`` when nothing serves it."""
    found = [r for r in routes(event_source, version) if r.kind == kind]
    if not found:
        raise InvalidEventSource(f"the EventSource serves no {kind} webhook")
    return found[0]
