"""The Tekton push Triggers, run on the same GitHub and GitLab payloads as the Argo Sensor.

The listener is emulated by tests/tekton_triggers_sim.py (Tekton's interceptors, real CEL).
"""

from __future__ import annotations

import copy

import pytest
from tekton_triggers_sim import Listener, arguments, payload

from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.triggers import (
    GITHUB,
    GITLAB,
    ServiceRoute,
    TriggerSettings,
    trigger_documents,
)


def listener_for(settings: TriggerSettings) -> Listener:
    return Listener(trigger_documents(settings, WorkflowSettings()))


@pytest.fixture(scope="module")
def listener() -> Listener:
    return listener_for(
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
    (run,) = listener_for(TriggerSettings()).runs(payload("github-push-main.json"))
    assert arguments(run)["image-repository"] == TriggerSettings().image_repository


ROUTES = (
    ServiceRoute("acme/checkout", "checkout-api", "shop", "reg.example.com/co"),
    ServiceRoute("shop/checkout", "checkout", "shop-eu", "reg.example.com/eu", ("main", "eu")),
)


def test_with_services_each_known_repository_names_its_service_namespace_and_image():
    listener = listener_for(TriggerSettings(services=ROUTES))
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
    listener = listener_for(TriggerSettings(services=ROUTES[:1]))
    assert listener.runs(payload("gitlab-push-main.json")) == []
    event = payload("github-push-main.json")
    event["body"]["repository"]["full_name"] = "acme/other"
    assert listener.runs(event) == []


def test_with_services_each_repository_releases_from_its_own_branches_only():
    listener = listener_for(TriggerSettings(services=ROUTES))
    for name, branch, runs in (
        ("gitlab-push-main.json", "eu", 1),
        ("github-push-main.json", "eu", 0),
        ("gitlab-push-main.json", "us", 0),
    ):
        event = payload(name)
        event["body"]["ref"] = f"refs/heads/{branch}"
        assert len(listener.runs(event)) == runs, (name, branch)


def test_text_from_the_payload_is_data_in_cel_and_in_the_run():
    """A branch or repository name with quotes cannot change an expression or the run's
    structure: values are CEL string literals and the run is built from parsed JSON."""
    tricky = "main' || true || 'x"
    listener = listener_for(TriggerSettings(branches=(tricky,)))
    event = payload("github-push-main.json")
    event["body"]["ref"] = "refs/heads/other"
    assert listener.runs(event) == []
    event["body"]["ref"] = f"refs/heads/{tricky}"
    assert len(listener.runs(event)) == 1
    event = copy.deepcopy(payload("github-push-main.json"))
    event["body"]["repository"]["name"] = 'x", "kind": "Secret'
    (run,) = listener_for(TriggerSettings()).runs(event)
    assert run["kind"] == "PipelineRun" and arguments(run)["service"].startswith('x", ')


def test_both_providers_are_wired_by_the_listeners_label_selector():
    listener = listener_for(TriggerSettings())
    assert {t["spec"]["name"] for t in listener.triggers} == {
        f"{GITHUB.name}-push",
        f"{GITLAB.name}-push",
    }
