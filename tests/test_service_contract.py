"""A service released as the cluster already runs it: its own Deployment and Service names and
the recommended ``app.kubernetes.io/name`` label instead of ``app`` (``service.deployment``,
``service.service``, ``service.selector``), checked before anything changes, each broken rule
named with its fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from kube.fixtures import CANARY_IMAGE, NAMESPACE, STABLE_DEPLOYMENT, STABLE_SERVICE, api_server
from test_kubernetes_platform import FAST_RETRY

from canaryflow.analysis.query import Subject
from canaryflow.errors import InputError
from canaryflow.kubernetes.canary_objects import TRACK_LABEL
from canaryflow.kubernetes.contract import resolve
from canaryflow.kubernetes.from_plan import platform_for
from canaryflow.kubernetes.platform import Timeouts
from canaryflow.kubernetes.scrape import pod_relabelings
from canaryflow.plan.load import plan_from_dict
from canaryflow.platform.protocol import Artifact

__all__ = ["api_server"]

NAME = {"app.kubernetes.io/name": "checkout"}
TRACKED = {**NAME, "app.kubernetes.io/instance": "shop-checkout"}  # Argo CD's tracking label


def deployment(labels=None, match=None) -> dict:
    obj = copy.deepcopy(STABLE_DEPLOYMENT)
    obj["metadata"] = {"name": "checkout-api", "namespace": NAMESPACE, "labels": dict(TRACKED)}
    pod = {**TRACKED, "version": "v1"} if labels is None else labels
    obj["spec"]["selector"]["matchLabels"] = dict(match if match is not None else pod)
    obj["spec"]["template"]["metadata"]["labels"] = pod
    return obj


def service(selector=None) -> dict:
    obj = copy.deepcopy(STABLE_SERVICE)
    obj["spec"]["selector"] = dict(NAME) if selector is None else selector
    return obj


def contract(stable=None, front=None, selector=None, app="checkout"):
    return resolve(NAMESPACE, "checkout-api", "checkout", selector, app, stable, front)


def test_the_identity_is_found_from_the_deployment_without_version_or_gitops_tracking():
    found = contract(deployment(), service())
    assert found.selector == NAME
    assert (found.deployment, found.service) == ("checkout-api", "checkout")


def test_every_broken_rule_is_named_with_its_field_and_fix():
    with pytest.raises(InputError) as refused:
        contract(None, None)
    paths = [e.path for e in refused.value.errors]
    assert paths == ["service.deployment", "service.service"]
    assert "set service.deployment" in str(refused.value)


def test_pods_without_app_or_the_recommended_name_label_are_refused():
    bare = deployment({"component": "api", "version": "v1"})
    with pytest.raises(InputError) as refused:
        contract(bare, service({"component": "api"}))
    assert "carry neither app nor app.kubernetes.io/name" in str(refused.value)
    assert "label the pod template app.kubernetes.io/name: checkout" in str(refused.value)


def test_a_label_value_other_than_the_gates_select_names_the_selector_to_set():
    with pytest.raises(InputError) as refused:
        contract(deployment(), service(), app="checkout-api")
    assert "set service.selector to {app.kubernetes.io/name: checkout}" in str(refused.value)


def test_a_service_that_misses_the_pods_and_a_selector_they_lack_are_refused():
    with pytest.raises(InputError) as refused:
        contract(deployment(), service({"app": "checkout"}), selector={"tier": "web"})
    message = str(refused.value)
    assert "service.selector: the pods of deployment shop/checkout-api do not carry" in message
    assert "service.service: service shop/checkout selects {'app': 'checkout'}" in message


PLAN = {
    "service": {
        "name": "checkout",
        "namespace": NAMESPACE,
        "deployment": "checkout-api",
        "service": "checkout",
    },
    "router": {"kind": "istio"},
}


def test_a_service_on_its_own_names_and_labels_is_released_and_promoted(api_server):
    api_server.seed(deployment())
    api_server.seed(service({**NAME, "version": "v1"}))
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "checkout", "namespace": NAMESPACE},
        "spec": {
            "hosts": ["checkout"],
            "http": [{"route": [{"destination": {"host": "checkout"}}]}],
        },
    }
    api_server.seed(vs)
    platform = platform_for(plan_from_dict(PLAN), api_server.api_client())
    platform.timeouts = Timeouts(
        stable_rollout_grace_s=2, verify_weight_s=1, canary_scale_s=1, poll_s=0.02
    )
    platform.api.retry = FAST_RETRY
    platform.deploy_canary(Artifact("v2", CANARY_IMAGE))

    canary = api_server.get("Deployment", NAMESPACE, "checkout-canary")
    assert canary["spec"]["selector"]["matchLabels"] == {
        **NAME,
        "version": "v2",
        TRACK_LABEL: "canary",
    }
    assert "app" not in canary["spec"]["template"]["metadata"]["labels"]
    assert "app.kubernetes.io/instance" not in canary["metadata"]["labels"]
    canary_service = api_server.get("Service", NAMESPACE, "checkout-canary")
    assert canary_service["spec"]["selector"] == {**NAME, TRACK_LABEL: "canary"}
    assert platform.wait_healthy(5).healthy

    platform.promote(Artifact("v2", CANARY_IMAGE))
    stable = api_server.get("Deployment", NAMESPACE, "checkout-api")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == CANARY_IMAGE
    assert api_server.get("Deployment", NAMESPACE, "checkout-canary") is None


def test_metrics_are_selected_by_the_recommended_label_and_the_deployments_pod_names():
    rule = next(r for r in pod_relabelings() if r["targetLabel"] == "app")
    assert rule["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    plan = plan_from_dict({**PLAN, "service": {**PLAN["service"], "selector": NAME}})
    subject = Subject("checkout", NAMESPACE, app=plan.service.app_label, deployment="checkout-api")
    assert subject.selector("stable").startswith('app="checkout",namespace="shop"')
    assert 'pod=~"checkout-api-[a-z0-9]+-[a-z0-9]+"' in subject.pods("stable")
    assert 'pod=~"checkout-canary-' in subject.pods("canary")


def write_plan(tmp_path, service_section: dict) -> str:
    import yaml

    path = tmp_path / "canaryflow.yaml"
    plan = {**PLAN, "service": service_section}
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def test_validate_cluster_checks_the_contract_before_anything_is_built(
    tmp_path, api_server, capsys
):
    from kube.fixtures import write_kubeconfig

    from canaryflow.cli import main

    api_server.seed(deployment())
    api_server.seed(service())
    kubeconfig = str(write_kubeconfig(tmp_path / "kubeconfig", api_server.url))
    good = write_plan(tmp_path, PLAN["service"])
    assert main(["validate", good, "--offline", "--cluster", "--kubeconfig", kubeconfig]) == 0
    out = capsys.readouterr().out
    assert "cluster: deployment checkout-api, service checkout" in out
    assert "pods app.kubernetes.io/name=checkout, metrics app=checkout" in out

    wrong = write_plan(tmp_path, {"name": "checkout", "namespace": NAMESPACE})
    assert main(["validate", wrong, "--offline", "--cluster", "--kubeconfig", kubeconfig]) == 2
    err = capsys.readouterr().err
    assert "error: service.deployment: deployment shop/checkout not found" in err
    assert "set service.deployment to the stable Deployment's name" in err
    writes = [r for r in api_server.requests if r.method != "GET"]
    assert writes == [], "validate only reads"


def test_validate_cluster_refuses_a_users_service_named_like_the_owned_stable_one(
    tmp_path, api_server, capsys
):
    """gateway-api creates checkout-stable at deploy-canary: a Service of the user's with that
    name is found before anything is built."""
    from kube.fixtures import write_kubeconfig

    from canaryflow.cli import main

    api_server.seed(deployment())
    api_server.seed(service())
    theirs = service()
    theirs["metadata"]["name"] = "checkout-stable"
    api_server.seed(theirs)
    kubeconfig = str(write_kubeconfig(tmp_path / "kubeconfig", api_server.url))
    plan = write_plan(tmp_path, PLAN["service"])
    Path(plan).write_text(Path(plan).read_text().replace("kind: istio", "kind: gateway-api"))

    assert main(["validate", plan, "--offline", "--cluster", "--kubeconfig", kubeconfig]) == 2
    assert "error: service.name: service shop/checkout-stable exists and is not canaryflow's" in (
        capsys.readouterr().err
    )
