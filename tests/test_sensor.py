"""The push Sensor, evaluated the way Argo Events does on real GitHub and GitLab payloads.

The evaluation (filters, trigger parameters) is the test bed's Argo Events stand-in,
``cluster.events``, which names the upstream behaviour it follows.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from chart_validation import WEBHOOK_VALUES, objects, of_kind, violations
from cluster.events import arguments, submitted_workflow

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


@pytest.fixture(scope="module")
def sensor() -> dict[str, Any]:
    values = copy.deepcopy(WEBHOOK_VALUES)
    values["events"].update(branches=["main", "release/1.x"], imageRegistry="reg.example.com/shop")
    (found,) = of_kind(objects(values), "Sensor")
    assert violations(found) == []
    return found


def test_a_github_push_to_main_submits_the_release_with_commit_repo_and_service(sensor):
    workflow = submitted_workflow(sensor, payload("github-push-main.json"))

    assert workflow is not None
    assert workflow["kind"] == "Workflow"
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "go-canary-release"}
    assert arguments(workflow) == {
        "repo": "https://github.com/acme/checkout.git",
        "revision": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "service": "checkout",
        "image-repository": "reg.example.com/shop/checkout",
    }
    assert workflow["metadata"]["annotations"]["canaryflow.dev/pushed-by"] == "alice"
    assert workflow["metadata"]["labels"]["canaryflow.dev/trigger"] == "github"


def test_a_gitlab_push_to_main_takes_the_service_from_the_project_path(sensor):
    workflow = submitted_workflow(sensor, payload("gitlab-push-main.json"))

    assert workflow is not None
    assert arguments(workflow) == {
        "repo": "https://gitlab.example.com/shop/checkout.git",
        "revision": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        "service": "checkout",
        "image-repository": "reg.example.com/shop/checkout",
    }
    assert workflow["metadata"]["annotations"]["canaryflow.dev/pushed-by"] == "bob"


def test_every_configured_branch_triggers_and_its_name_is_matched_literally(sensor):
    event = payload("github-push-main.json")
    event["body"]["ref"] = "refs/heads/release/1.x"
    assert submitted_workflow(sensor, event) is not None
    event["body"]["ref"] = "refs/heads/release/1x"  # "." must not match any character
    assert submitted_workflow(sensor, event) is None


@pytest.mark.parametrize(
    "ref", ["refs/heads/feature/cart", "refs/heads/main-old", "refs/heads/old/main", "main"]
)
def test_pushes_to_other_branches_are_ignored(sensor, ref):
    for name in ("github-push-main.json", "gitlab-push-main.json"):
        event = payload(name)
        event["body"]["ref"] = ref
        assert submitted_workflow(sensor, event) is None, (name, ref)


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
def test_tags_branch_deletions_and_other_events_are_ignored(sensor, name):
    assert submitted_workflow(sensor, payload(name)) is None


def test_a_push_body_under_another_event_header_is_ignored(sensor):
    event = payload("github-push-main.json")
    event["headers"]["X-Github-Event"] = ["push_request"]  # the regex is anchored both ends

    assert submitted_workflow(sensor, event) is None


def test_without_an_image_registry_the_template_default_image_repository_stays():
    (found,) = of_kind(objects(WEBHOOK_VALUES), "Sensor")

    workflow = submitted_workflow(found, payload("github-push-main.json"))

    assert workflow is not None
    assert set(arguments(workflow)) == {"repo", "revision", "service"}


def test_only_the_enabled_provider_is_wired():
    values = copy.deepcopy(WEBHOOK_VALUES)
    values["events"]["gitlab"] = {"enabled": False}
    rendered = objects(values)
    (found,) = of_kind(rendered, "Sensor")
    (source,) = of_kind(rendered, "EventSource")

    assert [d["name"] for d in found["spec"]["dependencies"]] == ["github-push"]
    assert "gitlab" not in source["spec"]
    assert submitted_workflow(found, payload("gitlab-push-main.json")) is None
