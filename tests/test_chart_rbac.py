"""The chart's Role grants exactly what canaryflow's Kubernetes code calls: nothing missing, nothing
unused, per router kind.

The calls are read from the source (``tasks/canaryflow/kubernetes/**``): every
``….api.<method>(…)`` on ``ClusterApi`` maps to the API verbs it issues, and its resource kind
comes from the ``ResourceKind`` constant passed, or, for ``apply``/``create`` of a built object,
from the ``"kind"`` of the object the builder function returns. A call whose kind cannot be read
fails the test, so new code cannot slip past it. The flag store (``flag_store.py``) is granted
only on the ConfigMaps named in ``flags.configMaps``, by name.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
import source_trees
from chart_validation import WEBHOOK_VALUES, objects, of_kind

from canaryflow.kubernetes import resources
from canaryflow.kubernetes.resources import ResourceKind

SOURCE = Path(__file__).resolve().parents[1] / "tasks" / "canaryflow" / "kubernetes"
FLAG_STORE = SOURCE / "flag_store.py"
ROUTER_MODULES = {
    "nginx-ingress": "nginx_ingress.py",
    "istio": "istio.py",
    "gateway-api": "gateway_api.py",
    "smi": "smi.py",
}
# ClusterApi method -> the verbs it sends. Server-side apply creates a missing object, which
# the API server authorizes as "create" on top of "patch".
VERBS = {
    "get": ("get",),
    "list": ("list",),
    "apply": ("create", "patch"),
    "merge_patch": ("patch",),
    "merge_patch_at": ("patch",),
    "create": ("create",),
    "update": ("get", "update"),
    "delete": ("delete",),
}
KINDS: dict[str, ResourceKind] = {
    name: value for name, value in vars(resources).items() if isinstance(value, ResourceKind)
}
Grant = tuple[str, str, str]  # (verb, api group, resource)
EXECUTOR = {
    ("create", "argoproj.io", "workflowtaskresults"),
    ("patch", "argoproj.io", "workflowtaskresults"),
}


def _group(kind: ResourceKind) -> str:
    return kind.api_version.rpartition("/")[0]


def _kinds_built_by(function: ast.AST) -> set[ResourceKind]:
    """The kinds of the objects a builder puts together: ``"kind": "X"`` or ``"kind": K.kind``."""
    found = set()
    for node in ast.walk(function):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and key.value == "kind"):
                continue
            if isinstance(value, ast.Constant) and value.value in resources.BY_KIND:
                found.add(resources.BY_KIND[value.value])
            elif isinstance(value, ast.Attribute) and getattr(value.value, "id", None) in KINDS:
                found.add(KINDS[value.value.id])
    return found


def _functions(paths: list[Path]) -> dict[str, ast.AST]:
    table = {}
    for path in paths:
        for node in ast.walk(source_trees.parse(path)):
            if isinstance(node, ast.FunctionDef):
                table.setdefault(node.name, node)
    return table


@functools.cache
def _product_functions() -> dict[str, ast.AST]:
    """Every function of the product by name, parsed once per run, not once per scan (the
    scans only read the table)."""
    return _functions(list(SOURCE.rglob("*.py")))


def _callee_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _object_kinds(arg: ast.AST, scope: ast.AST, functions: dict[str, ast.AST]) -> set[ResourceKind]:
    if isinstance(arg, ast.Name):  # a variable: follow its assignment in the enclosing function
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == arg.id for t in node.targets
            ):
                return _object_kinds(node.value, scope, functions)
        return set()
    if isinstance(arg, ast.Call) and _callee_name(arg) in functions:
        builder = functions[_callee_name(arg)]
        if kinds := _kinds_built_by(builder):
            return kinds
        # A builder that hands over to another (canary_deployment -> track_deployment).
        returned = [n.value for n in ast.walk(builder) if isinstance(n, ast.Return) and n.value]
        return set().union(*(_object_kinds(value, builder, functions) for value in returned))
    return set()


def required_grants(paths: list[Path]) -> set[Grant]:
    functions = _product_functions()
    grants: set[Grant] = set()
    for path in paths:
        tree = source_trees.parse(path)
        for scope in ast.walk(tree):
            if not isinstance(scope, ast.FunctionDef):
                continue
            for call in ast.walk(scope):
                grants |= _grants_of(call, scope, functions, path)
    return grants


def _grants_of(call: ast.AST, scope: ast.AST, functions, path: Path) -> set[Grant]:
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        return set()
    receiver = call.func.value
    if not (getattr(receiver, "attr", None) == "api" or getattr(receiver, "id", None) == "api"):
        return set()
    method = call.func.attr
    if method == "pod_log":
        return {("get", "", "pods/log")}
    if method == "served_versions":
        # Discovery (GET /apis) is a non-resource URL that the default ClusterRole
        # system:discovery grants every authenticated client (bootstrap policy): no Role rule.
        return set()
    assert method in VERBS, f"{path.name}:{call.lineno}: unknown ClusterApi method {method}"
    first = call.args[0]
    if isinstance(first, ast.Name) and first.id in KINDS:
        kinds = {KINDS[first.id]}
    else:
        kinds = _object_kinds(first, scope, functions)
    assert kinds, f"{path.name}:{call.lineno}: cannot tell which kind api.{method} writes"
    return {(verb, _group(kind), kind.plural) for kind in kinds for verb in VERBS[method]}


def code_grants(router: str, flags: bool = False) -> set[Grant]:
    """What the release tasks call with ``router``: the platform plus that router only."""
    routers = SOURCE / "routers"
    shared = [p for p in SOURCE.rglob("*.py") if p.parent != routers and p != FLAG_STORE]
    flag_store = [FLAG_STORE] if flags else []
    return required_grants([*shared, *flag_store, routers / ROUTER_MODULES[router]])


def role_grants(role: dict, named: bool = False) -> set[Grant]:
    """The (verb, group, resource) a Role grants; ``named``: rules may carry resourceNames
    (a namespace with services registered), else only the flag ConfigMaps' may."""
    grants = set()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        if rule["resources"] != ["configmaps"] and not named:
            assert not rule.get("resourceNames"), "names vary per service"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants |= {(verb, group, resource) for verb in rule["verbs"]}
    return grants


@pytest.mark.parametrize("router", sorted(ROUTER_MODULES))
def test_the_release_role_grants_exactly_what_the_code_calls(router):
    rendered = objects({"release": {"routerKind": router, "namespaces": ["shop", "payments"]}})
    release = [r for r in of_kind(rendered, "Role") if r["metadata"]["name"].endswith("-release")]

    assert sorted(r["metadata"]["namespace"] for r in release) == ["payments", "shop"]
    wanted = code_grants(router)
    for role in release:
        granted = role_grants(role)
        assert wanted - granted == set(), "missing: the task would get HTTP 403"
        assert granted - wanted == set(), "granted but never called"


@pytest.mark.parametrize(
    ("values", "routers"),
    [
        ({}, sorted(ROUTER_MODULES)),  # the default: each plan chooses its router
        ({"release": {"routers": ["istio", "gateway-api"]}}, ["istio", "gateway-api"]),
        ({"release": {"routerKind": "smi", "routers": ["istio"]}}, ["smi"]),  # the override wins
    ],
    ids=["default", "routers", "override"],
)
def test_without_an_override_the_role_grants_exactly_the_routers_plans_may_choose(values, routers):
    (role,) = [
        r for r in of_kind(objects(values), "Role") if r["metadata"]["name"].endswith("-release")
    ]

    assert role_grants(role) == set().union(*(code_grants(router) for router in routers))


@pytest.mark.parametrize(
    ("registered", "routers"),
    [
        ({}, ["gateway-api"]),  # no router named: the plan's default
        ({"router": "istio"}, ["istio"]),
        ({"router": "smi"}, ["smi"]),
        ({"router": "nginx-ingress"}, ["nginx-ingress"]),
    ],
    ids=["default", "istio", "smi", "nginx-ingress"],
)
def test_a_namespace_with_services_registered_is_granted_exactly_their_routers(registered, routers):
    """release.routers allows all four kinds; shop's Role grants what the code calls with the
    router its one registered service names, and a second service on NGINX Ingress in bank
    does not widen shop's Role."""
    services = {
        "acme/checkout": {"namespace": "shop", **registered},
        "acme/payments": {"namespace": "bank", "router": "nginx-ingress"},
    }
    values = {"events": {**WEBHOOK_VALUES["events"], "services": services}}
    release = {
        r["metadata"]["namespace"]: r
        for r in of_kind(objects(values), "Role")
        if r["metadata"]["name"].endswith("-release")
    }

    assert role_grants(release["shop"], named=True) == set().union(
        *(code_grants(router) for router in routers)
    )
    assert role_grants(release["bank"], named=True) == code_grants("nginx-ingress")


def test_flag_rollouts_may_edit_the_named_config_maps_and_no_other():
    values = {"release": {"routerKind": "istio"}, "flags": {"configMaps": ["checkout-flags"]}}
    (role,) = [
        r for r in of_kind(objects(values), "Role") if r["metadata"]["name"].endswith("-release")
    ]
    (rule,) = [r for r in role["rules"] if r["resources"] == ["configmaps"]]

    assert role_grants(role) == code_grants("istio", flags=True)
    assert rule["resourceNames"] == ["checkout-flags"]
    assert code_grants("istio", flags=True) - code_grants("istio") == {
        ("get", "", "configmaps"),
        ("update", "", "configmaps"),
    }


def test_the_executor_role_grants_only_workflow_task_results_in_the_release_namespace():
    (executor,) = [
        r for r in of_kind(objects(), "Role") if r["metadata"]["name"].endswith("-executor")
    ]

    assert executor["metadata"]["namespace"] == "argo"
    assert role_grants(executor) == EXECUTOR


def test_nothing_is_cluster_scoped_and_every_binding_names_the_workflow_service_account():
    rendered = objects({"release": {"namespaces": ["shop"]}})

    assert not of_kind(rendered, "ClusterRole") and not of_kind(rendered, "ClusterRoleBinding")
    shop = {"kind": "ServiceAccount", "name": "cf-canaryflow-release-shop", "namespace": "argo"}
    release = {"kind": "ServiceAccount", "name": "canaryflow-release", "namespace": "argo"}
    build = {"kind": "ServiceAccount", "name": "canaryflow-build", "namespace": "argo"}
    for binding in of_kind(rendered, "RoleBinding"):
        if binding["metadata"]["name"].endswith("-executor"):  # task results: go pods too
            assert binding["subjects"] == [shop, release, build]
        else:  # the release Role of a namespace: that namespace's account only
            assert binding["subjects"] == [shop]


def test_the_scanner_sees_the_calls_it_must():
    grants = code_grants("istio")

    assert ("create", "", "events") in grants  # api.create(decision_event(...))
    assert ("create", "apps", "deployments") in grants  # api.apply(canary) of a built object
    assert ("update", "networking.istio.io", "virtualservices") in grants
    assert ("get", "", "pods/log") in grants
