"""The push Sensor, evaluated the way Argo Events does on real GitHub and GitLab payloads.

Data filters: gjson paths, string values as unanchored Go regular expressions, ``!=`` inverting
the match, all filters AND-ed (``dataLogicalOperator: and``) (argo-events sensors/dependencies/
filter.go). Parameters: ``dataKey`` (gjson path), the ``value`` default when the key is
missing, written to an sjson ``dest`` with ``\\.`` escapes, replacing the value or appended to
it (``operation: append``) (argo-events sensors/triggers/params.go). The Sensor uses no
``dataTemplate``: everything but the commit is a literal of the trigger.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from chart_validation import NAMESPACE, WEBHOOK_VALUES, objects, of_kind, violations

PAYLOADS = Path(__file__).parent / "payloads"
_MISSING = object()


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def _segments(path: str) -> list[str]:
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", path)]


def resolve(data: Any, path: str) -> Any:
    """gjson's plain dotted paths: keys, ``\\.`` in keys, numeric indexes into arrays."""
    node = data
    for part in _segments(path):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def as_string(value: Any) -> str:
    """gjson's ``Result.String()``: strings as they are, anything else as raw JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def passes(data_filter: dict[str, Any], event: dict[str, Any]) -> bool:
    found = resolve(event, data_filter["path"])
    if found is _MISSING:
        return False
    assert data_filter["type"] == "string", "only string filters are used"
    text = as_string(found)
    negate = data_filter.get("comparator", "=") == "!="
    return any(bool(re.search(value, text)) != negate for value in data_filter["value"])


def matching_dependencies(sensor: dict[str, Any], event: dict[str, Any]) -> list[str]:
    return [
        dependency["name"]
        for dependency in sensor["spec"]["dependencies"]
        if dependency["filters"]["dataLogicalOperator"] == "and"
        and all(passes(f, event) for f in dependency["filters"]["data"])
    ]


def _set(resource: dict[str, Any], dest: str, value: str, operation: str | None) -> None:
    *parents, last = _segments(dest)
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    current = node[key] if isinstance(node, list) else node.get(key, "")
    node[key] = {"append": current + value, "prepend": value + current}.get(operation, value)


def submitted_workflow(sensor: dict[str, Any], event: dict[str, Any]) -> dict[str, Any] | None:
    """The Workflow the Sensor creates for ``event``, or None when the event is filtered out."""
    fired = matching_dependencies(sensor, event)
    triggers = [
        t["template"] for t in sensor["spec"]["triggers"] if t["template"]["conditions"] in fired
    ]
    if not triggers:
        return None
    assert len(triggers) == 1, "one push must start one release"
    trigger = triggers[0]["k8s"]
    resource = copy.deepcopy(trigger["source"]["resource"])
    for parameter in trigger["parameters"]:
        source = parameter["src"]
        assert "dataTemplate" not in source, "outside the tested subset"
        found = resolve(event, source["dataKey"])
        value = source.get("value", "") if found is _MISSING else as_string(found)
        _set(resource, parameter["dest"], value, parameter.get("operation"))
    return resource


def arguments(workflow: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}


SERVICES = {
    "acme/checkout": {"namespace": "shop", "branches": ["main", "release/1.x"]},
    "shop/checkout": {"service": "basket", "imageRepository": "reg.example.com/shop/basket"},
}


def values_with(services: dict, **events: Any) -> dict[str, Any]:
    values = copy.deepcopy(WEBHOOK_VALUES)
    values["events"].update(services=services, **events)
    values["events"]["gitlab"] = {"baseURL": "https://gitlab.example.com"}
    return values


@pytest.fixture(scope="module")
def sensor() -> dict[str, Any]:
    (found,) = of_kind(objects(values_with(SERVICES)), "Sensor")
    assert violations(found) == []
    return found


def test_a_github_push_submits_the_release_with_everything_it_needs(sensor):
    workflow = submitted_workflow(sensor, payload("github-push-main.json"))

    assert workflow is not None
    assert workflow["kind"] == "Workflow"
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "go-canary-release"}
    commit = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert arguments(workflow) == {
        "repo": "https://github.com/acme/checkout.git",
        "revision": commit,
        "service": "checkout",
        "namespace": "shop",
        "image-repository": "registry.example.com/services/checkout",
        "git-provider": "github",
        "commit-status-url": f"https://api.github.com/repos/acme/checkout/statuses/{commit}",
    }
    assert workflow["metadata"]["annotations"]["canaryflow.dev/pushed-by"] == "alice"
    assert workflow["metadata"]["labels"]["canaryflow.dev/trigger"] == "github"
    assert workflow["metadata"]["generateName"] == "checkout-"


def test_a_gitlab_push_maps_its_project_to_the_listed_service(sensor):
    workflow = submitted_workflow(sensor, payload("gitlab-push-main.json"))

    assert workflow is not None
    commit = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert arguments(workflow) == {
        "repo": "https://gitlab.example.com/shop/checkout.git",
        "revision": commit,
        "service": "basket",
        "namespace": NAMESPACE,  # the default: the chart's own namespace
        "image-repository": "reg.example.com/shop/basket",
        "git-provider": "gitlab",
        "commit-status-url": (
            f"https://gitlab.example.com/api/v4/projects/shop%2Fcheckout/statuses/{commit}"
        ),
    }
    assert workflow["metadata"]["annotations"]["canaryflow.dev/pushed-by"] == "bob"


def test_a_push_from_a_repository_not_listed_starts_nothing(sensor):
    for name, path in (
        ("github-push-main.json", ("repository", "full_name")),
        ("gitlab-push-main.json", ("project", "path_with_namespace")),
    ):
        for other in ("acme/checkout-old", "evil/acme/checkout", "acme/checkou", "ACME/checkout"):
            event = payload(name)
            event["body"][path[0]][path[1]] = other
            assert submitted_workflow(sensor, event) is None, (name, other)


def test_every_configured_branch_triggers_and_its_name_is_matched_literally(sensor):
    event = payload("github-push-main.json")
    event["body"]["ref"] = "refs/heads/release/1.x"
    assert submitted_workflow(sensor, event) is not None
    event["body"]["ref"] = "refs/heads/release/1x"  # "." must not match any character
    assert submitted_workflow(sensor, event) is None


def test_a_service_without_branches_gets_the_default_branches_only(sensor):
    event = payload("gitlab-push-main.json")
    event["body"]["ref"] = "refs/heads/release/1.x"  # listed for acme/checkout, not this one
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


def test_the_service_defaults_to_the_repository_name():
    (found,) = of_kind(objects(values_with({"acme/checkout": None})), "Sensor")

    workflow = submitted_workflow(found, payload("github-push-main.json"))

    assert workflow is not None
    parameters = arguments(workflow)
    assert (parameters["service"], parameters["namespace"]) == ("checkout", NAMESPACE)
    assert parameters["image-repository"] == "registry.example.com/services/checkout"


def test_events_without_services_fail_with_the_fix():
    with pytest.raises(helm.HelmError) as raised:
        objects(values_with({}))
    assert "events.services is empty" in str(raised.value)


def test_only_the_enabled_provider_is_wired():
    values = values_with(SERVICES)
    values["events"]["gitlab"] = {"enabled": False}
    rendered = objects(values)
    (found,) = of_kind(rendered, "Sensor")
    (source,) = of_kind(rendered, "EventSource")

    assert {d["name"].split("-")[0] for d in found["spec"]["dependencies"]} == {"github"}
    assert "gitlab" not in source["spec"]
    assert submitted_workflow(found, payload("gitlab-push-main.json")) is None


def test_every_listed_service_namespace_gets_the_release_role():
    rendered = objects(values_with(SERVICES))
    namespaces = {
        role["metadata"]["namespace"]
        for role in of_kind(rendered, "Role")
        if role["metadata"]["name"].endswith("-release")
    }
    assert {"shop", NAMESPACE} <= namespaces
