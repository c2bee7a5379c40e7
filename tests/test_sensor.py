"""The push Sensor, evaluated the way Argo Events does on real GitHub and GitLab payloads.

The evaluation is the test bed's Argo Events stand-in, ``cluster.events`` (data filters of
argo-events sensors/dependencies/filter.go, parameters of sensors/triggers/params.go). The
Sensor uses no ``dataTemplate``: everything but the commit is a literal of the trigger. The
EventSource is admitted (or refused) as the v1.9 controller does, ``cluster.eventsource``.
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
from cluster.events import arguments, submitted_by, submitted_workflow
from cluster.eventsource import InvalidEventSource, route_for, routes
from cluster.sensor_validation import BUSES, validate_sensor

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


SERVICES = {
    "acme/checkout": {"namespace": "shop", "branches": ["main", "release/1.x"]},
    "shop/checkout": {"service": "basket", "imageRepository": "reg.example.com/shop/basket"},
}


def values_with(services: dict, **events: Any) -> dict[str, Any]:
    values = copy.deepcopy(WEBHOOK_VALUES)
    values["events"].update(services=services, **events)
    values["events"]["gitlab"] = {
        "enabled": True,
        "baseURL": "https://gitlab.example.com",
        "accessToken": {"name": "gitlab-access"},
    }
    return values


@pytest.fixture(scope="module")
def sensors() -> list[dict[str, Any]]:
    found = of_kind(objects(values_with(SERVICES)), "Sensor")
    assert found and all(violations(sensor) == [] for sensor in found)
    return found


def test_a_github_push_submits_the_release_with_everything_it_needs(sensors):
    workflow = submitted_by(sensors, payload("github-push-main.json"))

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
    assert workflow["metadata"]["labels"]["canaryflow.dev/release"] == "checkout"
    assert workflow["metadata"]["generateName"] == "checkout-"


def test_a_gitlab_push_maps_its_project_to_the_listed_service(sensors):
    workflow = submitted_by(sensors, payload("gitlab-push-main.json"))

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


def test_a_push_from_a_repository_not_listed_starts_nothing(sensors):
    for name, path in (
        ("github-push-main.json", ("repository", "full_name")),
        ("gitlab-push-main.json", ("project", "path_with_namespace")),
    ):
        for other in ("acme/checkout-old", "evil/acme/checkout", "acme/checkou", "ACME/checkout"):
            event = payload(name)
            event["body"][path[0]][path[1]] = other
            assert submitted_by(sensors, event) is None, (name, other)


def test_every_configured_branch_triggers_and_its_name_is_matched_literally(sensors):
    event = payload("github-push-main.json")
    event["body"]["ref"] = "refs/heads/release/1.x"
    assert submitted_by(sensors, event) is not None
    event["body"]["ref"] = "refs/heads/release/1x"  # "." must not match any character
    assert submitted_by(sensors, event) is None


def test_a_service_without_branches_gets_the_default_branches_only(sensors):
    event = payload("gitlab-push-main.json")
    event["body"]["ref"] = "refs/heads/release/1.x"  # listed for acme/checkout, not this one
    assert submitted_by(sensors, event) is None


@pytest.mark.parametrize(
    "ref", ["refs/heads/feature/cart", "refs/heads/main-old", "refs/heads/old/main", "main"]
)
def test_pushes_to_other_branches_are_ignored(sensors, ref):
    for name in ("github-push-main.json", "gitlab-push-main.json"):
        event = payload(name)
        event["body"]["ref"] = ref
        assert submitted_by(sensors, event) is None, (name, ref)


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
def test_tags_branch_deletions_and_other_events_are_ignored(sensors, name):
    assert submitted_by(sensors, payload(name)) is None


def test_a_push_body_under_another_event_header_is_ignored(sensors):
    event = payload("github-push-main.json")
    event["headers"]["X-Github-Event"] = ["push_request"]  # the regex is anchored both ends

    assert submitted_by(sensors, event) is None


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
    found = of_kind(rendered, "Sensor")
    (source,) = of_kind(rendered, "EventSource")

    dependencies = [d for sensor in found for d in sensor["spec"]["dependencies"]]
    assert {d["name"].split("-")[0] for d in dependencies} == {"github"}
    assert "gitlab" not in source["spec"]
    assert submitted_by(found, payload("gitlab-push-main.json")) is None


def test_every_listed_service_namespace_gets_the_release_role():
    rendered = objects(values_with(SERVICES))
    namespaces = {
        role["metadata"]["namespace"]
        for role in of_kind(rendered, "Role")
        if role["metadata"]["name"].endswith("-release")
    }
    assert {"shop", NAMESPACE} <= namespaces


@pytest.mark.parametrize("name", ["github-push-main.json", "gitlab-push-main.json"])
def test_the_submitted_workflow_is_valid_and_sets_every_required_parameter(sensors, name):
    from canaryflow_workflows import WorkflowSettings, compile_documents

    release = compile_documents(WorkflowSettings())["go-canary-release.workflowtemplate.yaml"]
    declared = release["spec"]["arguments"]["parameters"]
    required = {p["name"] for p in declared if "value" not in p}
    workflow = submitted_by(sensors, payload(name))

    assert workflow is not None and violations(workflow) == []
    given = arguments(workflow)
    assert required <= set(given), f"missing {required - set(given)}"
    assert set(given) <= {p["name"] for p in declared}
    assert all(given[key] for key in required)


def test_a_default_service_name_is_the_repository_name_in_lower_case():
    event = payload("github-push-main.json")
    event["body"]["repository"]["full_name"] = "Acme/Checkout"
    (found,) = of_kind(objects(values_with({"Acme/Checkout": {}})), "Sensor")

    workflow = submitted_workflow(found, event)

    assert workflow is not None and arguments(workflow)["service"] == "checkout"


def _event_source(values: dict[str, Any]) -> dict[str, Any]:
    (source,) = of_kind(objects(values), "EventSource")
    assert violations(source) == []
    return source


def test_the_installs_event_source_is_accepted_by_argo_events_and_serves_github():
    """The README's install (events.enabled, one service): upstream's github/validate.go
    refused it ("either repositories or organizations is required"), so no push ever ran."""
    source = _event_source(WEBHOOK_VALUES)

    assert [(r.kind, r.event_name) for r in routes(source)] == [("github", "github")]
    assert source["spec"]["github"]["github"]["repositories"] == [
        {"owner": "acme", "names": ["checkout"]}
    ]
    assert "gitlab" not in source["spec"]  # off unless asked for: it needs an access token


def test_repositories_and_projects_come_from_the_listed_services():
    services = {**SERVICES, "acme/cart": {}, "shop/team/basket": {}}
    source = _event_source(values_with(services))

    github, gitlab = source["spec"]["github"]["github"], source["spec"]["gitlab"]["gitlab"]
    assert github["repositories"] == [
        {"owner": "acme", "names": ["cart", "checkout"]},
        {"owner": "shop", "names": ["checkout"]},
    ]  # shop/team/basket has a subgroup: a GitLab path only
    assert gitlab["projects"] == ["acme/cart", "acme/checkout", "shop/checkout", "shop/team/basket"]
    assert gitlab["accessToken"] == {"name": "gitlab-access", "key": "token"}
    for version in ("v1.9.0", "v1.9.5", "v1.9.11"):
        assert {r.kind for r in routes(source, version)} == {"github", "gitlab"}


def test_explicit_repositories_and_projects_win():
    values = values_with(SERVICES)
    values["events"]["github"] = {"repositories": [{"owner": "acme", "names": ["x"]}]}
    values["events"]["gitlab"]["projects"] = ["42"]
    source = _event_source(values)

    assert source["spec"]["github"]["github"]["repositories"] == [{"owner": "acme", "names": ["x"]}]
    assert source["spec"]["gitlab"]["gitlab"]["projects"] == ["42"]


def test_gitlab_without_an_access_token_stops_the_install_with_the_fix():
    values = values_with(SERVICES)
    del values["events"]["gitlab"]["accessToken"]
    with pytest.raises(helm.HelmError) as raised:
        objects(values)
    message = str(raised.value)
    assert "events.gitlab.accessToken.name" in message
    assert "events.gitlab.enabled: false" in message


def test_github_without_any_github_repository_stops_the_install_with_the_fix():
    with pytest.raises(helm.HelmError) as raised:
        objects(values_with({"shop/team/basket": {}}))
    assert "events.github.repositories" in str(raised.value)


def test_every_dependency_listens_to_a_webhook_the_event_source_serves():
    values = values_with(SERVICES)
    rendered = objects(values)
    (source,) = of_kind(rendered, "EventSource")
    found = of_kind(rendered, "Sensor")
    served = {(r.event_source, r.event_name) for r in routes(source)}

    for dependency in (d for sensor in found for d in sensor["spec"]["dependencies"]):
        assert (dependency["eventSourceName"], dependency["eventName"]) in served
    for name, provider in (
        ("github-push-main.json", "github"),
        ("gitlab-push-main.json", "gitlab"),
    ):
        route = route_for(source, provider)
        assert submitted_by(found, payload(name), route) is not None


def test_a_push_through_an_event_source_argo_events_refused_starts_nothing():
    """What a cluster does with the old chart: the controller marks the EventSource invalid and
    runs no webhook server; the bed's push goes through ``route_for`` and stops there."""
    source = _event_source(WEBHOOK_VALUES)
    del source["spec"]["github"]["github"]["repositories"]
    with pytest.raises(InvalidEventSource, match="either repositories or organizations"):
        route_for(source, "github")


@pytest.mark.parametrize("bus", BUSES)
def test_every_sensor_is_admitted_on_every_event_bus_type(bus):
    """Argo Events v1.9.11 ValidateSensor (cluster.sensor_validation) refuses, on a NATS
    Streaming EventBus, a Sensor with two dependencies on one event: one Sensor for every
    service would have been refused there as soon as two services were listed."""
    found = of_kind(objects(values_with(SERVICES)), "Sensor")

    assert found
    for sensor in found:
        validate_sensor(sensor, bus)  # raises InvalidSensor with upstream's message


def test_sensor_names_stay_distinct_label_values_however_long_the_names():
    """Argo Events labels each Sensor's Deployment and pods ``sensor-name: <name>``
    (pkg/reconciler/sensor/controller.go, v1.9.11): a name over 63 characters would leave the
    Sensor without a Deployment. Long names are cut and keep a hash of the whole name."""
    services = {
        "platform-engineering/payments-gateway-checkout-service": {},
        "platform-engineering/payments-gateway-checkout-service-v2": {},
        "acme/checkout": {},
    }
    values = values_with(services)
    values["fullnameOverride"] = "payments-team-canary-releases"
    names = [s["metadata"]["name"] for s in of_kind(objects(values), "Sensor")]

    assert len(names) == len(set(names)) == len(services)
    label_value = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
    assert all(len(name) <= 63 and label_value.fullmatch(name) for name in names), names
    assert "payments-team-canary-releases-push-acme-checkout" in names
