"""The Tekton push Triggers, run on the same GitHub and GitLab payloads as the Argo Sensor.

An EventListener is emulated trigger by trigger, as tektoncd/triggers v0.37.0 processes one:

* the ``github``/``gitlab`` ClusterInterceptor: the event header (``X-GitHub-Event``,
  ``X-Gitlab-Event``) must be one of ``eventTypes`` (pkg/interceptors/github/github.go,
  pkg/interceptors/gitlab/gitlab.go; the signature/token check needs the real secret and is
  not emulated);
* the ``cel`` ClusterInterceptor: ``filter`` and ``overlays`` are evaluated by a real CEL
  implementation (cel-python) over ``body``, ``header`` and ``extensions``, with the two
  non-standard functions used here added as Tekton's CEL environment defines them
  (pkg/interceptors/cel/cel.go: cel-go's strings extension ``split``; triggers.go ``last``);
* the TriggerBinding's ``$(body...)``/``$(extensions...)`` paths, then the TriggerTemplate's
  ``$(tt.params...)`` substitution into the PipelineRun.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import celpy
import pytest
from celpy import celtypes

from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.triggers import (
    GITHUB,
    GITLAB,
    ServiceRoute,
    TriggerSettings,
    trigger_documents,
)

PAYLOADS = Path(__file__).parent / "payloads"
EVENT_HEADERS = {"github": "X-Github-Event", "gitlab": "X-Gitlab-Event"}


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def _split(text: celtypes.StringType, separator: celtypes.StringType) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(part) for part in text.split(separator)])


def _last(items: celtypes.ListType) -> Any:
    return items[-1] if items else None


def cel(expression: str, activation: dict[str, Any]) -> Any:
    environment = celpy.Environment()
    program = environment.program(
        environment.compile(expression), functions={"split": _split, "last": _last}
    )
    return program.evaluate({k: celpy.json_to_cel(v) for k, v in activation.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    return value


def _path(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        node = node[part]
    return node


class Listener:
    """The objects ``trigger_documents`` compiles, processing one event at a time."""

    def __init__(self, settings: TriggerSettings):
        documents = trigger_documents(settings, WorkflowSettings())
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for document in documents:
            by_kind.setdefault(document["kind"], []).append(document)
        (self.listener,) = by_kind["EventListener"]
        selector = self.listener["spec"]["labelSelector"]["matchLabels"]
        self.triggers = [
            t for t in by_kind["Trigger"] if selector.items() <= t["metadata"]["labels"].items()
        ]
        self.bindings = {b["metadata"]["name"]: b for b in by_kind["TriggerBinding"]}
        self.templates = {t["metadata"]["name"]: t for t in by_kind["TriggerTemplate"]}

    def runs(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Every PipelineRun the event creates (one per trigger that accepts it)."""
        return [run for t in self.triggers if (run := self._process(t, event)) is not None]

    def _process(self, trigger: dict[str, Any], event: dict[str, Any]) -> dict | None:
        headers = {k.lower(): v for k, v in event["headers"].items()}
        extensions: dict[str, Any] = {}
        for interceptor in trigger["spec"]["interceptors"]:
            params = {p["name"]: p["value"] for p in interceptor["params"]}
            kind = interceptor["ref"]["name"]
            if kind in EVENT_HEADERS:
                sent = headers.get(EVENT_HEADERS[kind].lower(), [""])[0]
                if sent not in params["eventTypes"]:
                    return None
                continue
            assert kind == "cel", kind
            activation = {"body": event["body"], "header": headers, "extensions": extensions}
            if not _plain(cel(params["filter"], activation)):
                return None
            for overlay in params.get("overlays", []):
                extensions[overlay["key"]] = _plain(cel(overlay["expression"], activation))
        context = {"body": event["body"], "extensions": extensions}
        values = {}
        for binding in trigger["spec"]["bindings"]:
            for param in self.bindings[binding["ref"]]["spec"]["params"]:
                values[param["name"]] = re.sub(
                    r"\$\(([a-z_.-]+)\)", lambda m: str(_path(context, m[1])), param["value"]
                )
        template = self.templates[trigger["spec"]["template"]["ref"]]
        declared = {p["name"] for p in template["spec"]["params"]}
        assert set(values) == declared, (set(values), declared)
        text = json.dumps(template["spec"]["resourcetemplates"][0])
        for name, value in values.items():
            text = text.replace(f"$(tt.params.{name})", json.dumps(value)[1:-1])
        assert "$(tt." not in text
        return json.loads(text)


def arguments(run: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in run["spec"]["params"]}


@pytest.fixture(scope="module")
def listener() -> Listener:
    return Listener(
        TriggerSettings(branches=("main", "release/1.x"), image_registry="reg.example.com/shop")
    )


def test_a_github_push_to_main_starts_the_release_with_commit_repo_and_service(listener):
    (run,) = listener.runs(payload("github-push-main.json"))
    assert run["kind"] == "PipelineRun"
    assert run["spec"]["pipelineRef"] == {"name": "go-canary-release"}
    assert arguments(run) == {
        "repo": "https://github.com/acme/checkout.git",
        "revision": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "service": "checkout",
        "namespace": "",
        "image-repository": "reg.example.com/shop/checkout",
    }
    assert run["metadata"]["annotations"]["canaryflow.dev/pushed-by"] == "alice"


def test_a_gitlab_push_to_main_takes_the_service_from_the_project_path(listener):
    (run,) = listener.runs(payload("gitlab-push-main.json"))
    assert arguments(run) == {
        "repo": "https://gitlab.example.com/shop/checkout.git",
        "revision": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        "service": "checkout",
        "namespace": "",
        "image-repository": "reg.example.com/shop/checkout",
    }
    assert run["metadata"]["annotations"]["canaryflow.dev/pushed-by"] == "bob"


def test_every_configured_branch_triggers_and_its_name_is_matched_literally(listener):
    event = payload("github-push-main.json")
    event["body"]["ref"] = "refs/heads/release/1.x"
    assert len(listener.runs(event)) == 1
    event["body"]["ref"] = "refs/heads/release/1x"
    assert listener.runs(event) == []


@pytest.mark.parametrize(
    "ref", ["refs/heads/feature/cart", "refs/heads/main-old", "refs/heads/old/main", "main"]
)
def test_pushes_to_other_branches_are_ignored(listener, ref):
    for name in ("github-push-main.json", "gitlab-push-main.json"):
        event = payload(name)
        event["body"]["ref"] = ref
        assert listener.runs(event) == [], (name, ref)


@pytest.mark.parametrize(
    "name",
    [
        "github-push-tag.json",
        "github-push-delete-branch.json",
        "github-ping.json",
        "gitlab-tag-push.json",
        "gitlab-merge-request.json",
    ],
)
def test_tags_branch_deletions_and_other_events_are_ignored(listener, name):
    assert listener.runs(payload(name)) == []


def test_a_push_body_under_another_event_header_is_ignored(listener):
    event = payload("github-push-main.json")
    event["headers"]["X-Github-Event"] = ["push_request"]
    assert listener.runs(event) == []


def test_without_an_image_registry_every_service_gets_the_default_repository():
    (run,) = Listener(TriggerSettings()).runs(payload("github-push-main.json"))
    assert arguments(run)["image-repository"] == TriggerSettings().image_repository


ROUTES = (
    ServiceRoute(
        "https://github.com/acme/checkout.git", "checkout-api", "shop", "reg.example.com/co"
    ),
    ServiceRoute(
        "https://gitlab.example.com/shop/checkout.git", "checkout", "shop-eu", "reg.example.com/eu"
    ),
)


def test_with_services_each_known_repository_names_its_service_namespace_and_image():
    listener = Listener(TriggerSettings(services=ROUTES))
    (github,) = listener.runs(payload("github-push-main.json"))
    (gitlab,) = listener.runs(payload("gitlab-push-main.json"))
    assert arguments(github) | {"revision": ""} == {
        "repo": "https://github.com/acme/checkout.git",
        "revision": "",
        "service": "checkout-api",
        "namespace": "shop",
        "image-repository": "reg.example.com/co",
    }
    assert (arguments(gitlab)["service"], arguments(gitlab)["namespace"]) == ("checkout", "shop-eu")


def test_with_services_a_push_from_an_unknown_repository_starts_nothing():
    listener = Listener(TriggerSettings(services=ROUTES[:1]))
    assert listener.runs(payload("gitlab-push-main.json")) == []
    event = payload("github-push-main.json")
    event["body"]["repository"]["clone_url"] = "https://github.com/acme/other.git"
    assert listener.runs(event) == []


def test_text_from_the_payload_is_data_in_cel_and_in_the_run():
    """A branch or repository name with quotes cannot change an expression or the run's
    structure: values are CEL string literals and the run is built from parsed JSON."""
    tricky = "main' || true || 'x"
    listener = Listener(TriggerSettings(branches=(tricky,)))
    event = payload("github-push-main.json")
    event["body"]["ref"] = "refs/heads/other"
    assert listener.runs(event) == []
    event["body"]["ref"] = f"refs/heads/{tricky}"
    assert len(listener.runs(event)) == 1
    event = copy.deepcopy(payload("github-push-main.json"))
    event["body"]["repository"]["name"] = 'x", "kind": "Secret'
    (run,) = Listener(TriggerSettings()).runs(event)
    assert run["kind"] == "PipelineRun" and arguments(run)["service"].startswith('x", ')


def test_both_providers_are_wired_by_the_listeners_label_selector():
    listener = Listener(TriggerSettings())
    assert {t["spec"]["name"] for t in listener.triggers} == {
        f"{GITHUB.name}-push",
        f"{GITLAB.name}-push",
    }
