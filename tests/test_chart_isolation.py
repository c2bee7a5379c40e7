"""Per-team isolation, checked with Kubernetes' own RBAC rules: the chart's rendered Roles and
RoleBindings are loaded into an RBAC evaluator that follows rbac.go (``tests/kube/rbac.py``),
the fake API server asks it about every request the release verbs send, and a denial is a 403
that changes nothing.

A release of a registered service runs every verb in its own namespace with its namespace's
account; another team's account, or a service nobody registered, is refused at the first call.
"""

from __future__ import annotations

import copy
import functools
import re

import pytest
import yaml
from chart_validation import NAMESPACE as RELEASE_NAMESPACE
from chart_validation import WEBHOOK_VALUES, objects, of_kind, violations
from kube.fixtures import (
    CANARY_IMAGE,
    HTTP_ROUTE,
    NAMESPACE,
    SERVICE,
    STABLE_DEPLOYMENT,
    STABLE_SERVICE,
    write_kubeconfig,
)
from kube.rbac import Attributes, Authorizer, ServiceAccount, rule_allows

from canaryflow.cli import main
from canaryflow.plan.model import ReleasePlan

PREFIX = "cf-canaryflow-release"  # fullname of release "cf" + "-release"
ROUTERS = ["istio", "nginx-ingress", "gateway-api"]
TEAMS = {
    **copy.deepcopy(WEBHOOK_VALUES),
    "release": {"routers": [*ROUTERS, "smi"]},
}
TEAMS["events"]["services"] = {
    "acme/checkout": {"namespace": NAMESPACE},
    "acme/payments": {"namespace": "bank"},
}


@pytest.fixture(scope="module")
def rendered():
    return objects(TEAMS)


@functools.cache
def rendered_with(router: str) -> list:
    """TEAMS with checkout registered with ``router``: its namespace's Role grants that kind."""
    values = copy.deepcopy(TEAMS)
    values["events"]["services"]["acme/checkout"]["router"] = router
    return objects(values)


def account(namespace: str) -> ServiceAccount:
    return ServiceAccount(RELEASE_NAMESPACE, f"{PREFIX}-{namespace}")


@pytest.fixture
def kubeconfig(tmp_path, cluster):
    return write_kubeconfig(tmp_path / "kubeconfig", cluster.url)


def plan_file(tmp_path, router: str, service: str = SERVICE):
    path = tmp_path / f"plan-{router}-{service}.yaml"
    plan = {
        "service": {"name": service, "namespace": NAMESPACE, "healthTimeout": "5s"},
        "router": {"kind": router, "drain": "0s"},
    }
    path.write_text(yaml.safe_dump(plan))
    return path


def verb(name, plan, kubeconfig, *extra):
    return main([name, "--plan", str(plan), "--kubeconfig", str(kubeconfig), *extra])


@pytest.mark.parametrize("router", ROUTERS)
def test_a_release_runs_every_verb_in_its_namespace_with_its_own_account(
    tmp_path, cluster, kubeconfig, router
):
    authorizer = Authorizer(rendered_with(router), account(NAMESPACE))
    cluster.authorize = authorizer.allows
    plan = plan_file(tmp_path, router)
    artifact = ["--image", CANARY_IMAGE, "--version", "v2"]
    assert verb("deploy-canary", plan, kubeconfig, *artifact) == 0
    assert verb("health-gate", plan, kubeconfig) == 0
    assert verb("set-weight", plan, kubeconfig, "--weight", "5", "--header-route") == 0
    assert verb("set-weight", plan, kubeconfig, "--weight", "50") == 0
    assert verb("rollback", plan, kubeconfig, "--reason", "gate failed") == 0
    assert verb("deploy-canary", plan, kubeconfig, *artifact) == 0
    assert verb("set-weight", plan, kubeconfig, "--weight", "100") == 0
    assert verb("promote", plan, kubeconfig, *artifact) == 0
    denied = [a for a, allowed in authorizer.decisions if not allowed]
    assert denied == []
    named = {(a.resource, a.name) for a, _ in authorizer.decisions if a.name}
    assert ("deployments", f"{SERVICE}-canary") in named, "the canary was authorized by name"
    if router != "nginx-ingress":  # the routers that split three ways run a fresh baseline
        assert ("deployments", f"{SERVICE}-baseline") in named, "so was the baseline"
    assert (
        cluster.get("Deployment", NAMESPACE, SERVICE)["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        == CANARY_IMAGE
    )


@pytest.mark.parametrize("verb_name", ["deploy-canary", "set-weight", "rollback"])
def test_another_teams_account_is_refused_and_changes_nothing(
    tmp_path, cluster, kubeconfig, rendered, verb_name, capsys
):
    authorizer = Authorizer(rendered, account("bank"))
    cluster.authorize = authorizer.allows
    extra = {
        "deploy-canary": ["--image", CANARY_IMAGE, "--version", "v2"],
        "set-weight": ["--weight", "50"],
        "rollback": [],
    }[verb_name]
    assert verb(verb_name, plan_file(tmp_path, "istio"), kubeconfig, *extra) == 1
    assert "forbidden" in capsys.readouterr().err
    assert cluster.writes() == []
    assert all(a.namespace == NAMESPACE for a, _ in authorizer.decisions)
    assert not any(allowed for _, allowed in authorizer.decisions)


def test_a_service_not_registered_in_the_namespace_is_refused(
    tmp_path, cluster, kubeconfig, rendered, capsys
):
    cart = copy.deepcopy(cluster.get("Deployment", NAMESPACE, SERVICE))
    cart["metadata"] = {"name": "cart", "namespace": NAMESPACE, "labels": {"app": "cart"}}
    cluster.seed(cart)
    cluster.authorize = Authorizer(rendered, account(NAMESPACE)).allows
    plan = plan_file(tmp_path, "istio", service="cart")
    assert verb("deploy-canary", plan, kubeconfig, "--image", CANARY_IMAGE, "--version", "v2") == 1
    assert 'deployments "cart" is forbidden' in capsys.readouterr().err
    assert cluster.writes() == []


def test_the_workflow_derives_its_account_from_the_namespace_and_takes_no_account_parameter(
    rendered,
):
    for name in ("go-canary-release", "feature-flag-rollout"):
        (template,) = [
            t for t in of_kind(rendered, "WorkflowTemplate") if t["metadata"]["name"] == name
        ]
        spec = template["spec"]
        assert spec["serviceAccountName"] == f"{PREFIX}-{{{{workflow.parameters.namespace}}}}"
        parameters = {p["name"] for p in spec["arguments"]["parameters"]}
        assert "namespace" in parameters and "service-account" not in parameters
        assert violations(template) == []


def test_tekton_pipeline_runs_take_the_account_of_the_namespace_the_trigger_sets():
    rendered = objects({**copy.deepcopy(TEAMS), "engine": "tekton"})
    (trigger_template,) = of_kind(rendered, "TriggerTemplate")
    (run,) = trigger_template["spec"]["resourcetemplates"]
    account = run["spec"]["taskRunTemplate"]["serviceAccountName"]
    assert account == f"{PREFIX}-$(tt.params.namespace)"
    bindings = [
        b for b in of_kind(rendered, "RoleBinding") if b["metadata"]["name"].endswith("-release")
    ]
    assert {b["subjects"][0]["name"] for b in bindings} == {
        f"{PREFIX}-{NAMESPACE}",
        f"{PREFIX}-bank",
    }


def test_one_account_and_one_role_per_team_namespace_and_none_in_argos(rendered):
    accounts = {
        a["metadata"]["name"]
        for a in of_kind(rendered, "ServiceAccount")
        if a["metadata"]["name"].startswith(PREFIX)
    }
    assert accounts == {f"{PREFIX}-{NAMESPACE}", f"{PREFIX}-bank"}
    roles = {r["metadata"]["namespace"] for r in of_kind(rendered, "Role")} - {RELEASE_NAMESPACE}
    assert roles == {NAMESPACE, "bank"}
    release_roles = [
        r
        for r in of_kind(rendered, "Role")
        if r["metadata"]["namespace"] == RELEASE_NAMESPACE
        and r["metadata"]["name"].endswith("-release")
    ]
    assert release_roles == [], "no release rights in Argo's own namespace"
    for binding in of_kind(rendered, "RoleBinding"):
        if binding["metadata"]["name"].endswith("-release"):
            (subject,) = binding["subjects"]
            assert subject["name"] == f"{PREFIX}-{binding['metadata']['namespace']}"


def test_roles_name_the_registered_services_objects_and_only_the_routers_in_use():
    values = copy.deepcopy(TEAMS)
    values["release"] = {"routerKind": "gateway-api"}
    values["events"]["services"]["acme/checkout"]["route"] = "storefront"
    (role,) = [
        r for r in of_kind(objects(values), "Role") if r["metadata"]["namespace"] == NAMESPACE
    ]
    by_resource = {tuple(r["resources"]): r for r in role["rules"]}
    assert by_resource[("deployments",)]["resourceNames"] == [
        "checkout",
        "checkout-canary",
        "checkout-baseline",
    ]
    assert by_resource[("services",)]["resourceNames"] == [
        "checkout",
        "checkout-canary",
        "checkout-stable",
        "checkout-baseline",
    ]
    assert by_resource[("httproutes",)]["resourceNames"] == ["storefront"]
    groups = {g for r in role["rules"] for g in r["apiGroups"]}
    assert "networking.istio.io" not in groups and "networking.k8s.io" not in groups


def release_role(rendered: list, namespace: str) -> dict:
    (role,) = [
        r
        for r in of_kind(rendered, "Role")
        if r["metadata"]["namespace"] == namespace and r["metadata"]["name"].endswith("-release")
    ]
    return role


def router_resources(role: dict) -> dict[str, list | None]:
    """The router resources a Role grants -> their resourceNames (None: any name)."""
    routing = {"networking.k8s.io", "networking.istio.io", "gateway.networking.k8s.io"}
    routing.add("split.smi-spec.io")
    return {
        r["resources"][0]: r.get("resourceNames")
        for r in role["rules"]
        if set(r["apiGroups"]) & routing
    }


def test_each_namespace_is_granted_only_the_router_kinds_its_registered_services_use():
    """release.routers allows all four kinds, yet shop (checkout on Istio, cart on the default
    Gateway API) gets those two only, each bounded to its own services' routes; bank (payments
    on NGINX Ingress) gets Ingresses only; a namespace with no service registered keeps the
    release.routers rule."""
    values = copy.deepcopy(TEAMS)
    services = values["events"]["services"]
    services["acme/checkout"] |= {"router": "istio", "route": "storefront"}
    services["acme/cart"] = {"namespace": NAMESPACE}
    services["acme/payments"]["router"] = "nginx-ingress"
    values["release"]["namespaces"] = ["spare"]
    rendered = objects(values)

    assert router_resources(release_role(rendered, NAMESPACE)) == {
        "virtualservices": ["storefront"],
        "destinationrules": ["checkout-canaryflow"],
        "httproutes": ["cart"],
    }
    assert router_resources(release_role(rendered, "bank")) == {
        "ingresses": ["payments", "payments-canary"],
    }
    assert router_resources(release_role(rendered, "spare")) == {
        "ingresses": None,
        "virtualservices": None,
        "destinationrules": None,
        "httproutes": None,
        "trafficsplits": None,
    }
    for obj in of_kind(rendered, "Role"):
        assert violations(obj) == []


def test_a_registered_service_defaults_to_the_plans_default_router_gateway_api(rendered):
    assert ReleasePlan.model_validate({"service": {"name": "x"}}).router.kind == "gateway-api"
    assert router_resources(release_role(rendered, NAMESPACE)) == {"httproutes": ["checkout"]}


def test_a_release_through_a_router_its_service_was_not_registered_with_is_refused(
    tmp_path, cluster, kubeconfig, rendered, capsys
):
    """checkout is registered with the default (Gateway API): a plan switching it to Istio
    gets no VirtualService, whatever the submitter's plan says."""
    authorizer = Authorizer(rendered, account(NAMESPACE))
    cluster.authorize = authorizer.allows
    plan = plan_file(tmp_path, "istio")
    assert verb("set-weight", plan, kubeconfig, "--weight", "50") == 1
    err = capsys.readouterr().err
    assert "is forbidden" in err and "networking.istio.io" in err
    assert cluster.writes() == []
    assert not any(
        allowed for a, allowed in authorizer.decisions if a.api_group == "networking.istio.io"
    )


@pytest.mark.parametrize(
    ("release", "router", "complaint"),
    [
        ({"routers": ["istio"]}, None, "is gateway-api (the default"),
        ({"routers": ["istio"]}, "smi", "is smi, which is not among release.routers"),
        ({"routerKind": "istio"}, "smi", "release.routerKind istio replaces"),
    ],
)
def test_a_service_router_outside_what_the_install_allows_stops_rendering(
    release, router, complaint
):
    values = copy.deepcopy(TEAMS)
    values["release"] = release
    if router:
        values["events"]["services"]["acme/checkout"]["router"] = router
    with pytest.raises(Exception, match=re.escape(complaint)):
        objects(values)


def test_the_values_schema_refuses_an_unknown_router_kind():
    values = copy.deepcopy(TEAMS)
    values["events"]["services"]["acme/checkout"]["router"] = "traefik"
    with pytest.raises(Exception, match="router"):
        objects(values)


RENAMED = {"deployment": "checkout-api", "kubernetesService": "checkout-svc"}


def renamed_values() -> dict:
    values = copy.deepcopy(TEAMS)
    values["release"] = {"routerKind": "gateway-api"}
    values["events"]["services"]["acme/checkout"] |= RENAMED
    return values


def test_roles_name_the_deployment_and_service_a_plan_names_otherwise():
    (role,) = [
        r
        for r in of_kind(objects(renamed_values()), "Role")
        if r["metadata"]["namespace"] == NAMESPACE
    ]
    by_resource = {tuple(r["resources"]): r for r in role["rules"]}
    assert by_resource[("deployments",)]["resourceNames"] == [
        "checkout-api",
        "checkout-canary",
        "checkout-baseline",
    ]
    assert by_resource[("services",)]["resourceNames"] == [
        "checkout-svc",
        "checkout-canary",
        "checkout-stable",
        "checkout-baseline",
    ]


def test_a_release_of_a_renamed_deployment_and_service_runs_with_no_denial(
    tmp_path, api_server, kubeconfig_for_empty
):
    """The Role cut from values naming checkout-api and checkout-svc lets every verb of a
    plan naming them through Kubernetes' RBAC rules, checkout-stable included."""
    for obj in (STABLE_DEPLOYMENT, STABLE_SERVICE, HTTP_ROUTE):
        obj = copy.deepcopy(obj)
        if obj["kind"] == "Deployment":
            obj["metadata"]["name"] = RENAMED["deployment"]
        if obj["kind"] == "Service":
            obj["metadata"]["name"] = RENAMED["kubernetesService"]
        if obj["kind"] == "HTTPRoute":
            obj["spec"]["rules"][1]["backendRefs"][0]["name"] = RENAMED["kubernetesService"]
        api_server.seed(obj)
    authorizer = Authorizer(objects(renamed_values()), account(NAMESPACE))
    api_server.authorize = authorizer.allows
    plan = tmp_path / "plan.yaml"
    service = {"name": SERVICE, "namespace": NAMESPACE, "healthTimeout": "5s"}
    service |= {"deployment": RENAMED["deployment"], "service": RENAMED["kubernetesService"]}
    router = {"kind": "gateway-api", "drain": "0s"}  # the rule leading to checkout-svc
    plan.write_text(yaml.safe_dump({"service": service, "router": router}))
    artifact = ["--image", CANARY_IMAGE, "--version", "v2"]

    assert verb("deploy-canary", plan, kubeconfig_for_empty, *artifact) == 0
    assert verb("set-weight", plan, kubeconfig_for_empty, "--weight", "50") == 0
    assert verb("promote", plan, kubeconfig_for_empty, *artifact) == 0
    assert [a for a, allowed in authorizer.decisions if not allowed] == []
    assert api_server.get("Service", NAMESPACE, "checkout-stable") is None


@pytest.fixture
def kubeconfig_for_empty(tmp_path, api_server):
    return write_kubeconfig(tmp_path / "kubeconfig", api_server.url)


@pytest.mark.parametrize(
    ("rule", "attributes", "allowed"),
    [
        # resourceNames bound a named request...
        (
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "verbs": ["delete"],
                "resourceNames": ["a"],
            },
            Attributes("delete", "shop", "apps", "deployments", name="a"),
            True,
        ),
        (
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "verbs": ["delete"],
                "resourceNames": ["a"],
            },
            Attributes("delete", "shop", "apps", "deployments", name="b"),
            False,
        ),
        # ...but a POST create has no name in the request: resourceNames cannot allow it.
        (
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "verbs": ["create"],
                "resourceNames": ["a"],
            },
            Attributes("create", "shop", "apps", "deployments"),
            False,
        ),
        # a subresource needs its own entry (or */subresource)
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            Attributes("get", "shop", "", "pods", "log", "p"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]},
            Attributes("get", "shop", "", "pods", "log", "p"),
            True,
        ),
        (
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            Attributes("patch", "shop", "x.io", "things", name="n"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
            Attributes("get", "shop", "apps", "services", name="s"),
            False,
        ),
    ],
)
def test_the_evaluator_follows_rbac_rule_allows(rule, attributes, allowed):
    assert rule_allows(attributes, rule) is allowed
