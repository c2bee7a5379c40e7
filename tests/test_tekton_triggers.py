"""The Tekton push Triggers, run on the same GitHub and GitLab payloads as the Argo Sensor.

The listener is emulated by tests/tekton_triggers_sim.py (Tekton's interceptors, real CEL).
"""

from __future__ import annotations

import copy

import pytest
from tekton_triggers_sim import Listener, arguments, payload

from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.documents import default_plan
from canaryflow_workflows.tekton.triggers import (
    GITHUB,
    GITLAB,
    ServiceRoute,
    TriggerSettings,
    trigger_documents,
)


def listener_for(settings: TriggerSettings) -> Listener:
    return Listener(trigger_documents(settings, WorkflowSettings(), default_plan()))


# As tests/test_sensor.py's SERVICES, defaults filled in as the chart's canaryflow.services does.
SERVICES = (
    ServiceRoute(
        "acme/checkout",
        "checkout",
        "shop",
        "registry.example.com/services/checkout",
        ("main", "release/1.x"),
    ),
    ServiceRoute("shop/checkout", "basket", "cf", "reg.example.com/shop/basket", ("main",)),
)
GITHUB_COMMIT = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
GITLAB_COMMIT = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"


@pytest.fixture(scope="module")
def listener() -> Listener:
    return listener_for(
        TriggerSettings(services=SERVICES, gitlab_base_url="https://gitlab.example.com")
    )


def test_a_github_push_starts_the_release_with_everything_it_needs(listener):
    (run,) = listener.runs(payload("github-push-main.json"))
    assert run["kind"] == "PipelineRun"
    assert run["spec"]["pipelineRef"] == {"name": "go-canary-release"}
    assert arguments(run) == {
        "repo": "https://github.com/acme/checkout.git",
        "revision": GITHUB_COMMIT,
        "service": "checkout",
        "namespace": "shop",
        "image-repository": "registry.example.com/services/checkout",
        "git-provider": "github",
        "commit-status-url": f"https://api.github.com/repos/acme/checkout/statuses/{GITHUB_COMMIT}",
    }
    assert run["metadata"]["annotations"]["canaryflow.dev/pushed-by"] == "alice"


def test_a_gitlab_push_maps_its_project_to_the_listed_service(listener):
    (run,) = listener.runs(payload("gitlab-push-main.json"))
    assert arguments(run) == {
        "repo": "https://gitlab.example.com/shop/checkout.git",
        "revision": GITLAB_COMMIT,
        "service": "basket",
        "namespace": "cf",
        "image-repository": "reg.example.com/shop/basket",
        "git-provider": "gitlab",
        "commit-status-url": (
            f"https://gitlab.example.com/api/v4/projects/shop%2Fcheckout/statuses/{GITLAB_COMMIT}"
        ),
    }
    assert run["metadata"]["annotations"]["canaryflow.dev/pushed-by"] == "bob"


def test_a_push_from_a_repository_not_listed_starts_nothing(listener):
    for name, path in (
        ("github-push-main.json", ("repository", "full_name")),
        ("gitlab-push-main.json", ("project", "path_with_namespace")),
    ):
        for other in ("acme/checkout-old", "evil/acme/checkout", "acme/checkou", "ACME/checkout"):
            event = payload(name)
            event["body"][path[0]][path[1]] = other
            assert listener.runs(event) == [], (name, other)


def test_every_configured_branch_triggers_and_its_name_is_matched_literally(listener):
    event = payload("github-push-main.json")
    event["body"]["ref"] = "refs/heads/release/1.x"
    assert len(listener.runs(event)) == 1
    event["body"]["ref"] = "refs/heads/release/1x"
    assert listener.runs(event) == []


def test_a_service_releases_from_its_own_branches_only(listener):
    event = payload("gitlab-push-main.json")
    event["body"]["ref"] = "refs/heads/release/1.x"  # listed for acme/checkout, not this one
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


def test_without_services_any_repository_releases_from_the_default_branches():
    """``canaryflow compile --engine tekton`` alone: the webhook secret is the only gate."""
    listener = listener_for(TriggerSettings(branches=("main",)))
    (github,) = listener.runs(payload("github-push-main.json"))
    (gitlab,) = listener.runs(payload("gitlab-push-main.json"))
    assert arguments(github)["service"] == arguments(gitlab)["service"] == "checkout"
    assert arguments(github)["image-repository"] == "registry.example.com/services/checkout"
    assert arguments(github)["namespace"] == ""  # the plan's
    assert listener.runs(payload("github-push-delete-branch.json")) == []


def test_text_from_the_values_and_the_payload_is_data_in_cel_and_in_the_run():
    """A branch or repository name with quotes cannot change an expression or the run's
    structure: values are CEL string literals and the run is built from parsed JSON."""
    tricky = "main' || true || 'x"
    route = ServiceRoute("acme/checkout", "checkout", "shop", "r/checkout", (tricky,))
    listener = listener_for(TriggerSettings(services=(route,)))
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
