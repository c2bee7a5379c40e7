"""The chart hands validate-plan the router each registered service may use
(``events.services[].router``): a plan naming another router is refused at validate-plan,
exit 2, before anything is built or deployed, instead of at the first router call with the
canary up. The value is a literal of the release graph's validate-plan task (Argo and Tekton),
not a workflow parameter, so no submitter sets it; the flag rollout passes none."""

from __future__ import annotations

import copy
import json

from chart_validation import render

from canaryflow.cli import main

ARGO_RELEASE = "canaryflow/templates/generated/workflowtemplate-go-canary-release.yaml"
ARGO_FLAGS = "canaryflow/templates/generated/workflowtemplate-feature-flag-rollout.yaml"
TEKTON_RELEASE = "canaryflow/templates/generated/tekton-pipeline-go-canary-release.yaml"
SERVICES = {
    "events": {
        "enabled": True,
        "webhookSecret": {"name": "git-webhooks"},
        "services": {
            "acme/checkout": {"namespace": "shop", "router": "istio"},
            "acme/cart": {"namespace": "shop"},
            "acme/search": {"namespace": "find", "service": "search-api", "router": "istio"},
        },
    },
    "release": {"routers": ["istio", "gateway-api"]},
}


def argo_argument(values, template=ARGO_RELEASE) -> str | None:
    (workflow,) = render(values)[template]
    for entry in workflow["spec"]["templates"]:
        for task in (entry.get("dag") or {}).get("tasks", []):
            if task["name"] == "validate-plan":
                arguments = task["arguments"]["parameters"]
                found = [p["value"] for p in arguments if p["name"] == "registered-routers"]
                return found[0] if found else None
    raise AssertionError("no validate-plan task")


def tekton_argument(values) -> str:
    (pipeline,) = render({**values, "engine": "tekton"})[TEKTON_RELEASE]
    (task,) = [t for t in pipeline["spec"]["tasks"] if t["name"] == "validate-plan"]
    (value,) = [p["value"] for p in task["params"] if p["name"] == "registered-routers"]
    return value


def test_each_registered_service_is_handed_to_validate_plan_with_its_router():
    expected = {
        "shop/checkout": ["istio"],
        "shop/cart": ["gateway-api"],  # no router: the plan's default
        "find/search-api": ["istio"],
    }
    assert json.loads(argo_argument(SERVICES)) == expected
    assert json.loads(tekton_argument(SERVICES)) == expected


def test_without_registered_services_nothing_is_checked():
    assert argo_argument({}) == ""
    assert tekton_argument({}) == ""


def test_the_chart_wide_router_kind_is_every_services_router():
    values = copy.deepcopy(SERVICES)
    values["events"]["services"] = {"acme/cart": {"namespace": "shop"}}
    values["release"] = {"routerKind": "istio"}
    assert json.loads(argo_argument(values)) == {"shop/cart": ["istio"]}


def test_the_flag_rollout_which_uses_no_router_is_not_held_to_it():
    assert argo_argument(SERVICES, ARGO_FLAGS) is None


def test_the_rendered_registry_refuses_a_plan_with_another_router(tmp_path, capsys):
    (tmp_path / "canaryflow.yaml").write_text(
        "service: {name: cart, namespace: shop}\nrouter: {kind: istio}\n"
    )
    args = ["validate", str(tmp_path / "canaryflow.yaml"), "--offline"]
    args += ["--service", "cart", "--namespace", "shop", "--registered-routers"]

    assert main([*args, argo_argument(SERVICES)]) == 2
    assert (
        "router.kind: plan says 'istio' but the service is registered with router "
        "'gateway-api'" in capsys.readouterr().err
    )
    assert main([*args, tekton_argument(SERVICES)]) == 2
