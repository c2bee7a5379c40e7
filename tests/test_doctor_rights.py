"""``canaryflow doctor --rights`` and the chart's per-team rights tests.

The chart renders one ``helm test`` Pod per per-team release account; each runs
``canaryflow doctor --rights`` as that account, which asks the API server one
SelfSubjectAccessReview per right a release needs. Here the chart's rendered Roles and
RoleBindings are loaded into the fake API server's RBAC evaluator (``tests/kube/rbac.py``,
following Kubernetes' rbac.go), the doctor runs with the Pod's own arguments through the real
``kubernetes`` client, authenticated as the Pod's account, and:

* the rights doctor asks are exactly what the rendered Role grants, no more, no less, for each
  router kind, a namespace with no service registered and the flag ConfigMaps (one table,
  ``canaryflow.kubernetes.rights``, renders the Role and lists the rights);
* every team's account passes; one verb or one name taken out of a team's Role fails naming
  exactly the rights it took; another team's account fails; an API server that does not answer,
  or answers an error, exits 3.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from chart_validation import NAMESPACE as RELEASE_NAMESPACE
from chart_validation import WEBHOOK_VALUES, objects, of_kind, render, violations
from kube.fake_apiserver import FakeApiServer
from kube.rbac import Authorizer, ServiceAccount

from canaryflow.cli import _parser, main
from canaryflow.commands.doctor import rights_from
from canaryflow.doctor.checks import Status
from canaryflow.doctor.rights import Review, rights_findings
from canaryflow.errors import EXIT_INPUT, EXIT_OK, EXIT_RELEASE_FAILED, EXIT_UNREACHABLE
from canaryflow.kubernetes.rights import Right

TEST_TEMPLATE = "canaryflow/templates/tests/rights.yaml"
PREFIX = "cf-canaryflow-release"
ROUTERS = ["istio", "nginx-ingress", "gateway-api", "smi"]


def teams(router: str = "gateway-api", flags: bool = True) -> dict:
    """Three teams: shop (two services, one on ``router`` with every name of its own), bank
    (one istio service) and a namespace listed in release.namespaces with none registered."""
    values = copy.deepcopy(WEBHOOK_VALUES)
    values["release"] = {"routers": ROUTERS, "namespaces": ["sandbox"]}
    values["events"]["services"] = {
        "acme/checkout": {
            "namespace": "shop",
            "router": router,
            "deployment": "checkout-web",
            "kubernetesService": "checkout-http",
            "route": "checkout-route",
        },
        "acme/cart": {"namespace": "shop"},
        "acme/payments": {"namespace": "bank", "router": "istio"},
    }
    if flags:
        values["flags"] = {"configMaps": ["features", "kill-switches"]}
    return values


def rights_pods(values) -> dict[str, dict]:
    """Service namespace -> its rights test Pod."""
    pods = render(values, hooks=True)[TEST_TEMPLATE]
    return {p["metadata"]["labels"]["canaryflow.dev/service-namespace"]: p for p in pods}


def pod_args(pod) -> list[str]:
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["canaryflow"]
    return container["args"]


def asked(pod) -> set[Right]:
    """What doctor asks, from the Pod's own arguments."""
    args = _parser("doctor").parse_args(pod_args(pod))
    _, rights = rights_from(args)
    return set(rights)


def granted(role) -> set[Right]:
    """Every (verb, resource, name) the Role grants; a rule without names: the empty name (a
    review of any name)."""
    namespace = role["metadata"]["namespace"]
    rights = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for combined in rule["resources"]:
                resource, _, subresource = combined.partition("/")
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [""]:
                        rights.add(Right(verb, namespace, group, resource, subresource, name))
    return rights


def release_roles(rendered) -> dict[str, dict]:
    return {
        r["metadata"]["namespace"]: r
        for r in of_kind(rendered, "Role")
        if r["metadata"]["name"] == "cf-canaryflow-release"
    }


@pytest.mark.parametrize("router", ROUTERS)
def test_doctor_asks_exactly_what_the_rendered_role_grants(router):
    values = teams(router)
    roles = release_roles(objects(values))
    pods = rights_pods(values)

    assert sorted(roles) == sorted(pods) == ["bank", "sandbox", "shop"]
    for namespace, role in roles.items():
        assert asked(pods[namespace]) == granted(role), namespace
    shop = asked(pods["shop"])
    resources = {r.resource for r in shop}
    router_resources = {
        "istio": {"virtualservices", "destinationrules"},
        "nginx-ingress": {"ingresses"},
        "gateway-api": {"httproutes"},
        "smi": {"trafficsplits"},
    }
    wanted = router_resources[router] | router_resources["gateway-api"]  # cart's default
    others = set().union(*router_resources.values()) - wanted
    assert wanted <= resources and not resources & others
    assert Right("patch", "shop", "apps", "deployments", "", "checkout-web") in shop
    assert Right("update", "shop", "", "configmaps", "", "kill-switches") in shop


def test_without_services_or_flags_the_check_and_the_role_still_agree():
    values = {"release": {"routerKind": "istio", "namespaces": ["shop", "bank"]}}
    roles = release_roles(objects(values))
    pods = rights_pods(values)
    assert sorted(pods) == ["bank", "shop"]
    for namespace, role in roles.items():
        rights = asked(pods[namespace])
        assert rights == granted(role)
        assert all(r.name == "" for r in rights)  # no service registered: no names
        assert {r.resource for r in rights} >= {"virtualservices", "destinationrules"}
        assert "configmaps" not in {r.resource for r in rights}


# -- the check, run as each team's account against the chart's RBAC --------------------------


def account(namespace: str) -> ServiceAccount:
    return ServiceAccount(RELEASE_NAMESPACE, f"{PREFIX}-{namespace}")


def kubeconfig(tmp_path, server, token: str):
    path = tmp_path / f"kubeconfig-{token}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server.url}}],
                "users": [{"name": token, "user": {"token": token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": token}}],
                "current-context": "fake",
            }
        )
    )
    return path


def serve(rendered) -> FakeApiServer:
    """A fake API server whose token ``<namespace>`` is that team's release account."""
    namespaces = release_roles(rendered)
    return FakeApiServer(identities={ns: Authorizer(rendered, account(ns)) for ns in namespaces})


def doctor(tmp_path, server, pod, token: str, *extra) -> int:
    return main([*pod_args(pod), "--kubeconfig", str(kubeconfig(tmp_path, server, token)), *extra])


def failures(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("fail")]


def test_every_teams_account_has_every_right_a_release_needs(tmp_path, capsys):
    values = teams("nginx-ingress")
    pods = rights_pods(values)
    with serve(objects(values)) as server:
        for namespace, pod in pods.items():
            assert pod["spec"]["serviceAccountName"] == account(namespace).name
            start = len(server.requests)
            assert doctor(tmp_path, server, pod, namespace) == EXIT_OK, namespace
            out = capsys.readouterr().out
            assert failures(out) == []
            assert f"granted to {account(namespace).username}" in out
            # who am I, then one review per right: nothing read, nothing written
            sent = server.requests[start:]
            assert all(r.method == "POST" and r.plural == "" for r in sent)
            reviews = [r for r in sent if r.api_version == "authorization.k8s.io/v1"]
            assert len(sent) == len(reviews) + 1 == len(asked(pod)) + 1


def without(rendered, namespace, resource, verb=None, name=None):
    """The rendered objects with ``verb`` (or ``name``) taken out of ``resource``'s rule in
    ``namespace``'s release Role."""
    rendered = copy.deepcopy(rendered)
    role = release_roles(rendered)[namespace]
    (rule,) = [r for r in role["rules"] if r["resources"] == [resource]]
    if verb:
        rule["verbs"].remove(verb)
    if name:
        rule["resourceNames"].remove(name)
    return rendered


def test_a_verb_missing_from_a_teams_role_fails_naming_exactly_those_rights(tmp_path, capsys):
    values = teams("istio")
    rendered = without(objects(values), "shop", "deployments", verb="patch")
    pods = rights_pods(values)
    with serve(rendered) as server:
        assert doctor(tmp_path, server, pods["shop"], "shop") == EXIT_RELEASE_FAILED
        out = capsys.readouterr().out
        assert doctor(tmp_path, server, pods["bank"], "bank") == EXIT_OK  # bank's Role intact
    who = account("shop").username
    named = ["checkout-web", "checkout-canary", "checkout-baseline", "cart", "cart-canary"]
    named.append("cart-baseline")
    assert sorted(failures(out)) == sorted(
        f"fail  shop/deployments/{name}: patch denied to {who}: fix the Role bound to {who} "
        f"in namespace shop: grant patch on deployments (API group apps) named {name} (or "
        "upgrade the chart: its release Role grants every right a release needs)"
        for name in named
    )


def test_a_name_missing_from_a_teams_role_fails_naming_exactly_that_object(tmp_path, capsys):
    values = teams("istio")
    rendered = without(objects(values), "shop", "services", name="checkout-stable")
    with serve(rendered) as server:
        pod = rights_pods(values)["shop"]
        assert doctor(tmp_path, server, pod, "shop", "--json") == EXIT_RELEASE_FAILED
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    assert [
        (f["check"], f["status"], f["detail"].split(" denied")[0]) for f in document["findings"]
    ] == [
        ("shop/services/checkout-stable", "fail", verb)
        for verb in ("get", "create", "patch", "update", "delete")
    ]


def test_an_unnamed_right_missing_is_named_with_any_name(tmp_path, capsys):
    values = teams()
    rendered = without(objects(values), "sandbox", "pods/log", verb="get")
    with serve(rendered) as server:
        pod = rights_pods(values)["sandbox"]
        assert doctor(tmp_path, server, pod, "sandbox") == EXIT_RELEASE_FAILED
    (line,) = failures(capsys.readouterr().out)
    assert line.startswith(f"fail  sandbox/pods/log/*: get denied to {account('sandbox').username}")


def test_another_teams_account_has_none_of_the_rights(tmp_path, capsys):
    values = teams()
    with serve(objects(values)) as server:
        shop = rights_pods(values)["shop"]
        assert doctor(tmp_path, server, shop, "bank") == EXIT_RELEASE_FAILED
    lines = failures(capsys.readouterr().out)
    assert len(lines) == len(asked(shop))
    assert all(f"denied to {account('bank').username}" in line for line in lines)


def test_an_api_server_that_does_not_answer_exits_3(tmp_path, capsys):
    values = teams()
    pod = rights_pods(values)["shop"]
    with serve(objects(values)) as server:
        config = kubeconfig(tmp_path, server, "shop")
    # stopped: nothing listens on its port any more
    assert main([*pod_args(pod), "--kubeconfig", str(config)]) == EXIT_UNREACHABLE
    assert "the API server did not answer" in capsys.readouterr().err


def test_an_api_server_answering_an_error_exits_3(tmp_path, capsys):
    values = teams()
    with serve(objects(values)) as server:
        server.fail_next(3, 500)  # the account's review, then the first right's
        pod = rights_pods(values)["shop"]
        assert doctor(tmp_path, server, pod, "shop", "--json") == EXIT_UNREACHABLE
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["kind"] == "unreachable"
    assert "HTTP 500" in document["errors"][0]["message"]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--rights"], "--namespace: --rights checks one namespace"),
        (["--rights", "--namespace", "Shop"], "--namespace: 'Shop' is not a namespace name"),
        (["--rights", "--namespace", "shop", "--registry", "{"], "--registry: is not JSON"),
        (
            ["--rights", "--namespace", "shop", "--registry", '{"shop": [{"service": "a"}]}'],
            "--registry.shop[0].router: expected one of",
        ),
        (
            [
                *("--rights", "--namespace", "shop", "--router", "istio"),
                *("--registry", '{"shop": [{"service": "a", "router": "smi"}]}'),
            ],
            "--router: the services registered in shop name their routers",
        ),
        (["--registry", "{}"], "--registry: is a --rights setting"),
        (["--rights", "--namespace", "shop", "--service", "a"], "--rights: checks the release"),
        (["--rights", "--namespace", "shop", "--events"], "release account only: drop --events"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(args, complaint, capsys):
    assert main(["doctor", *args, "--kubeconfig", "/nonexistent"]) == EXIT_INPUT
    assert complaint in capsys.readouterr().err


def test_the_conclusions_name_each_refused_right_with_the_servers_reason():
    """Pure (no API server): a refusal carries the authorizer's reason when it gives one (a
    webhook authorizer's explicit denial does); every right granted is one pass."""
    rights = [
        Right("get", "shop", "", "pods", "log"),
        Right("update", "shop", "gateway.networking.k8s.io", "httproutes", "", "checkout"),
    ]
    refused = rights_findings(
        "shop", rights, [Review(True), Review(False, "denied by policy")], "alice"
    )
    assert [(f.check, f.status, f.detail) for f in refused] == [
        (
            "shop/httproutes/checkout",
            Status.FAIL,
            "update denied to alice (denied by policy): fix the Role bound to alice in "
            "namespace shop: grant update on httproutes (API group gateway.networking.k8s.io) "
            "named checkout (or upgrade the chart: its release Role grants every right a "
            "release needs)",
        )
    ]
    (passed,) = rights_findings("shop", rights, [Review(True), Review(True)], "alice")
    assert passed.status == Status.OK and "the 2 rights" in passed.detail


# -- the rendered test Pods --------------------------------------------------------------------


def test_helm_install_creates_none_of_the_rights_pods():
    assert render(teams())[TEST_TEMPLATE] == []


def test_each_rights_pod_is_a_valid_test_hook_running_as_its_teams_account():
    for values in (teams(), {"engine": "tekton"}, {}):
        pods = rights_pods(values)
        assert pods
        for namespace, pod in pods.items():
            assert violations(pod) == [], violations(pod)
            annotations = pod["metadata"]["annotations"]
            assert annotations["helm.sh/hook"] == "test"
            assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
            assert pod["metadata"]["namespace"] == RELEASE_NAMESPACE
            assert pod["spec"]["serviceAccountName"] == f"{PREFIX}-{namespace}"
            assert pod_args(pod)[:4] == ["doctor", "--rights", "--namespace", namespace]
    # the doctor's own test Pod is still there
    doctor_pods = of_kind(
        render(teams(), hooks=True)["canaryflow/templates/tests/doctor.yaml"], "Pod"
    )
    assert [p["metadata"]["name"] for p in doctor_pods] == ["cf-canaryflow-doctor"]


def test_long_namespaces_still_give_each_account_its_own_valid_pod():
    long = "team-" + "x" * 50
    values = {"release": {"namespaces": [f"{long}-a", f"{long}-b", "shop"]}}
    pods = rights_pods(values)
    names = [p["metadata"]["name"] for p in pods.values()]
    assert len(set(names)) == 3 and all(len(n) <= 63 for n in names)
    assert pods["shop"]["metadata"]["name"] == "cf-canaryflow-rights-shop"
    for namespace, pod in pods.items():
        assert violations(pod) == []
        assert pod["spec"]["serviceAccountName"] == f"{PREFIX}-{namespace}"


def test_the_rights_pods_are_scheduled_and_pulled_as_the_doctors_pod():
    values = {
        **teams(),
        "image": {"repository": "registry.example/cf", "digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "pull"}],
        "nodeSelector": {"pool": "tools"},
        "tolerations": [{"key": "tools", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "tools",
        "podLabels": {"team": "platform"},
        "podAnnotations": {"note": "x", "helm.sh/hook": "pre-install"},
    }
    hooks = render(values, hooks=True)
    (doctor_pod,) = of_kind(hooks["canaryflow/templates/tests/doctor.yaml"], "Pod")
    shared = ("imagePullSecrets", "nodeSelector", "tolerations", "affinity", "priorityClassName")
    for pod in rights_pods(values).values():
        assert violations(pod) == []
        for key in (*shared, "securityContext", "restartPolicy"):
            assert pod["spec"][key] == doctor_pod["spec"][key], key
        (container,) = pod["spec"]["containers"]
        assert container["image"] == doctor_pod["spec"]["containers"][0]["image"]
        assert container["image"] == "registry.example/cf@sha256:" + "a" * 64
        assert (
            container["securityContext"] == doctor_pod["spec"]["containers"][0]["securityContext"]
        )
        labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
        assert labels["team"] == "platform" and annotations["note"] == "x"
        # the chart's own labels and the hook annotations win, as on the doctor's Pod
        assert labels["app.kubernetes.io/part-of"] == "canaryflow"
        assert labels["app.kubernetes.io/component"] == "doctor"
        assert annotations["helm.sh/hook"] == "test"


def test_the_submitter_policy_leaves_the_rights_pods_alone():
    """The policy matches Argo's objects only (its matchConstraints.resourceRules): a Pod that
    runs as a team's account is none of them, so the API server admits the rights test Pods
    without evaluating it."""
    values = teams()
    (policy,) = of_kind(objects(values), "ValidatingAdmissionPolicy")
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rules and all(rule["apiGroups"] == ["argoproj.io"] for rule in rules)

    def matched(group: str, resource: str, operation: str) -> bool:
        return any(
            {group, "*"} & set(rule["apiGroups"])
            and {resource, "*"} & set(rule["resources"])
            and {operation, "*"} & set(rule["operations"])
            for rule in rules
        )

    pods = rights_pods(values)
    assert sorted(pods) == ["bank", "sandbox", "shop"]
    assert matched("argoproj.io", "workflows", "CREATE")  # the matcher does match
    for pod in pods.values():
        assert pod["kind"] == "Pod"
        assert not matched(pod["apiVersion"].rpartition("/")[0], "pods", "CREATE")
