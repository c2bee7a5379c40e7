"""The RBAC stand-in (``tests/kube/rbac.py``) decides as Kubernetes v1.30's own code does.

Every expected decision, reason and request info here is what upstream's code answered on the
same objects and requests (``RBACAuthorizer.Authorize`` of plugin/pkg/auth/authorizer/rbac/rbac.go
wired to client-go listers, as kube-apiserver wires it, and ``RequestInfoFactory.NewRequestInfo``
of k8s.io/apiserver v0.30.0; see charts/canaryflow/README.md, "Tested with the real RBAC
rules"): subjects that are
groups, users or service accounts with an empty namespace, roleRefs to ClusterRoles,
ClusterRoleBindings, the reason for a roleRef that does not resolve, and the ``watch`` and
``fieldSelector`` parameters of a list.
"""

from __future__ import annotations

import copy

import pytest
from chart_validation import NAMESPACE as RELEASE_NAMESPACE
from chart_validation import WEBHOOK_VALUES, objects
from kube.rbac import Attributes, Authorizer, ServiceAccount, request_attributes

RBAC_GROUP = "rbac.authorization.k8s.io"


def role(kind: str, name: str, namespace: str | None, rules: list) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, "rules": rules}


def binding(kind: str, name: str, namespace: str | None, ref: tuple, subjects: list) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    role_ref = {"apiGroup": RBAC_GROUP, "kind": ref[0], "name": ref[1]}
    return {"kind": kind, "metadata": meta, "roleRef": role_ref, "subjects": subjects}


PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
CONFIG_MAPS = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
CHECKOUT = {
    "apiGroups": ["apps"],
    "resources": ["deployments"],
    "resourceNames": ["checkout"],
    "verbs": ["patch"],
}
OBJECTS = [
    role("ClusterRole", "view-pods", None, [PODS]),
    role("ClusterRole", "edit-checkout", None, [CHECKOUT]),
    role("Role", "cm", "shop", [CONFIG_MAPS]),
    binding(
        "ClusterRoleBinding",
        "argo-accounts",
        None,
        ("ClusterRole", "view-pods"),
        [{"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:serviceaccounts:argo"}],
    ),
    binding(
        "RoleBinding",
        "edit",
        "shop",
        ("ClusterRole", "edit-checkout"),
        [{"kind": "ServiceAccount", "name": "b", "namespace": "argo"}],
    ),
    binding(
        "RoleBinding",
        "by-user",
        "shop",
        ("Role", "cm"),
        [{"kind": "User", "apiGroup": RBAC_GROUP, "name": "system:serviceaccount:argo:u"}],
    ),
    binding(
        "RoleBinding",
        "local",
        "shop",
        ("Role", "cm"),
        [{"kind": "ServiceAccount", "name": "l", "namespace": ""}],
    ),
    binding(
        "RoleBinding",
        "gone",
        "shop",
        ("Role", "missing"),
        [{"kind": "ServiceAccount", "name": "m", "namespace": "argo"}],
    ),
    binding(
        "RoleBinding",
        "odd",
        "shop",
        ("Thing", "x"),
        [{"kind": "ServiceAccount", "name": "m", "namespace": "argo"}],
    ),
]


@pytest.mark.parametrize(
    ("account", "attributes", "expected"),
    [
        (  # a ClusterRoleBinding to a group of service accounts, in any namespace
            ServiceAccount("argo", "a"),
            Attributes("list", "anywhere", "", "pods"),
            (
                True,
                'RBAC: allowed by ClusterRoleBinding "argo-accounts" of ClusterRole "view-pods" '
                'to Group "system:serviceaccounts:argo"',
            ),
        ),
        (
            ServiceAccount("other", "a"),
            Attributes("list", "anywhere", "", "pods"),
            (False, ""),
        ),
        (  # a RoleBinding to a ClusterRole grants its rules in the binding's namespace only
            ServiceAccount("argo", "b"),
            Attributes("patch", "shop", "apps", "deployments", name="checkout"),
            (
                True,
                'RBAC: allowed by RoleBinding "edit/shop" of ClusterRole "edit-checkout" '
                'to ServiceAccount "b/argo"',
            ),
        ),
        (
            ServiceAccount("argo", "b"),
            Attributes("patch", "bank", "apps", "deployments", name="checkout"),
            (False, ""),
        ),
        (  # a User subject naming a service account's user name
            ServiceAccount("argo", "u"),
            Attributes("get", "shop", "", "configmaps", name="c"),
            (
                True,
                'RBAC: allowed by RoleBinding "by-user/shop" of Role "cm" '
                'to User "system:serviceaccount:argo:u"',
            ),
        ),
        (  # an empty subject namespace is the binding's
            ServiceAccount("shop", "l"),
            Attributes("get", "shop", "", "configmaps", name="c"),
            (
                True,
                'RBAC: allowed by RoleBinding "local/shop" of Role "cm" to ServiceAccount "l/shop"',
            ),
        ),
        (  # roleRefs that do not resolve: no opinion, with the errors as the reason
            ServiceAccount("argo", "m"),
            Attributes("get", "shop", "", "configmaps", name="c"),
            (
                False,
                'RBAC: [role.rbac.authorization.k8s.io "missing" not found, '
                'unsupported role reference kind: "Thing"]',
            ),
        ),
    ],
)
def test_the_stand_in_resolves_bindings_as_upstream(account, attributes, expected):
    assert Authorizer(OBJECTS, account).authorize(attributes) == expected


def test_a_single_unresolved_role_ref_is_the_reason_itself():
    objects = [o for o in OBJECTS if o["metadata"]["name"] != "odd"]
    authorizer = Authorizer(objects, ServiceAccount("argo", "m"))
    assert authorizer.authorize(Attributes("get", "shop", "", "configmaps")) == (
        False,
        'RBAC: role.rbac.authorization.k8s.io "missing" not found',
    )


def test_tekton_triggers_account_gets_what_tektons_cluster_role_grants_in_the_release_namespace():
    """The chart binds Tekton's ``tekton-triggers-eventlistener-roles`` ClusterRole (shipped by
    Tekton Triggers, here a one-rule stand-in of it) in the release namespace only; the
    per-team accounts get nothing from it."""
    values = copy.deepcopy(WEBHOOK_VALUES)
    values["engine"] = "tekton"
    tekton_role = role(
        "ClusterRole",
        "tekton-triggers-eventlistener-roles",
        None,
        [{"apiGroups": ["triggers.tekton.dev"], "resources": ["eventlisteners"], "verbs": ["get"]}],
    )
    rendered = [*objects(values), tekton_role]
    get = Attributes("get", RELEASE_NAMESPACE, "triggers.tekton.dev", "eventlisteners", name="e")
    triggers = Authorizer(rendered, ServiceAccount(RELEASE_NAMESPACE, "cf-canaryflow-triggers"))
    assert triggers.authorize(get) == (
        True,
        'RBAC: allowed by RoleBinding "cf-canaryflow-triggers/argo" of ClusterRole '
        '"tekton-triggers-eventlistener-roles" to ServiceAccount "cf-canaryflow-triggers/argo"',
    )
    elsewhere = Attributes("get", "shop", "triggers.tekton.dev", "eventlisteners", name="e")
    assert triggers.authorize(elsewhere) == (False, "")
    team = Authorizer(rendered, ServiceAccount(RELEASE_NAMESPACE, "cf-canaryflow-release-shop"))
    assert team.authorize(get) == (False, "")


@pytest.mark.parametrize(
    ("query", "verb", "name"),
    [
        ({"watch": "1"}, "watch", ""),
        ({"watch": "True"}, "watch", ""),
        ({"watch": "yes"}, "watch", ""),
        ({"watch": "FALSE"}, "list", ""),
        ({"watch": "0"}, "list", ""),
        ({"fieldSelector": "metadata.name=x"}, "list", "x"),
        ({"fieldSelector": "metadata.name==x", "watch": "1"}, "watch", "x"),
        ({"fieldSelector": "metadata.name!=x"}, "list", ""),
        ({"fieldSelector": "status.phase=Running,metadata.name=y"}, "list", "y"),
        ({"fieldSelector": "metadata.name=x,metadata.name=y"}, "list", "x"),
        ({"fieldSelector": "metadata.name=.."}, "list", ""),
        ({"fieldSelector": "metadata.name=a%b"}, "list", ""),
        ({"fieldSelector": "metadata.name=a\\,b"}, "list", "a,b"),
        ({"fieldSelector": "metadata.name=a\\x"}, "list", ""),
        ({"fieldSelector": "metadata.name"}, "list", ""),
        ({"fieldSelector": "a=b=c,metadata.name=z"}, "list", ""),
    ],
)
def test_a_list_request_info_is_upstreams(query, verb, name):
    attributes = request_attributes("GET", "v1", "pods", "shop", "", "", query)
    assert (attributes.verb, attributes.name) == (verb, name)
