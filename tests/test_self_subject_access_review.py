"""The fake API server's SelfSubjectAccessReview, the stand-in for Kubernetes v1.30's
(``pkg/registry/authorization/selfsubjectaccessreview/rest.go``, ``REST.Create``, answered by
the RBAC authorizer of ``plugin/pkg/auth/authorizer/rbac/rbac.go``, ``RBACAuthorizer.Authorize``),
asked through the real ``kubernetes`` client. The expectations are upstream's: the subresource
cases of rbac_test.go's ``TestAuthorizer`` (a rule on ``pods`` does not allow ``pods/status``,
one on ``pods/status`` does not allow ``pods``), ``ResourceNameMatches``
(pkg/apis/rbac/v1/evaluation_helpers.go: a rule with resourceNames allows only those names,
never the empty name of a request for any name), and rest.go's: the review is of the
requester's own user, ``status.allowed`` for an allow with RBAC's reason, neither allowed nor
denied and no reason for RBAC's "no opinion", 422 without exactly one kind of attributes."""

from __future__ import annotations

import pytest
from kube.fake_apiserver import FakeApiServer
from kube.rbac import Authorizer, ServiceAccount
from kubernetes.client import (
    ApiClient,
    AuthenticationV1Api,
    AuthorizationV1Api,
    Configuration,
    V1ResourceAttributes,
    V1SelfSubjectAccessReview,
    V1SelfSubjectAccessReviewSpec,
    V1SelfSubjectReview,
)
from kubernetes.client.exceptions import ApiException

TEAM = ServiceAccount("argo", "release-shop")
OTHER = ServiceAccount("argo", "release-bank")
RBAC = [
    {
        "kind": "Role",
        "metadata": {"name": "release", "namespace": "shop"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get"]},
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "resourceNames": ["checkout"],
                "verbs": ["patch"],
            },
        ],
    },
    {
        "kind": "RoleBinding",
        "metadata": {"name": "release", "namespace": "shop"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "release"},
        "subjects": [{"kind": "ServiceAccount", "name": TEAM.name, "namespace": TEAM.namespace}],
    },
]


@pytest.fixture(scope="module")
def server():
    identities = {"team": Authorizer(RBAC, TEAM), "other": Authorizer(RBAC, OTHER)}
    with FakeApiServer(identities=identities) as api:
        yield api


def client(server, token: str) -> ApiClient:
    configuration = Configuration(host=server.url)
    configuration.api_key = {"BearerToken": token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return ApiClient(configuration)


def review(server, token="team", **attributes):
    body = V1SelfSubjectAccessReview(
        spec=V1SelfSubjectAccessReviewSpec(
            resource_attributes=V1ResourceAttributes(namespace="shop", **attributes)
        )
    )
    answer = AuthorizationV1Api(client(server, token)).create_self_subject_access_review(body)
    return answer.status


def test_a_rule_on_a_resource_does_not_allow_its_subresource_nor_the_other_way(server):
    assert review(server, verb="list", resource="pods").allowed is True
    assert review(server, verb="list", resource="pods", subresource="log").allowed is False
    assert review(server, verb="get", resource="pods", subresource="status").allowed is True
    assert review(server, verb="get", resource="pods").allowed is False


def test_resource_names_allow_those_names_only_never_any_name(server):
    patch = {"verb": "patch", "group": "apps", "resource": "deployments"}
    assert review(server, name="checkout", **patch).allowed is True
    assert review(server, name="checkout-canary", **patch).allowed is False
    assert review(server, **patch).allowed is False  # no name: any name, more than granted


def test_an_allow_carries_rbacs_reason_and_no_opinion_none(server):
    allowed = review(server, verb="list", resource="pods")
    assert allowed.allowed is True and allowed.denied is None
    assert allowed.reason == (
        'RBAC: allowed by RoleBinding "release/shop" of Role "release" to ServiceAccount '
        '"release-shop/argo"'
    )
    refused = review(server, verb="delete", resource="pods")
    assert refused.allowed is False and refused.denied is None and refused.reason is None


def test_the_review_is_of_the_requester_not_of_another_account(server):
    assert review(server, token="team", verb="list", resource="pods").allowed is True
    assert review(server, token="other", verb="list", resource="pods").allowed is False
    who = AuthenticationV1Api(client(server, "other")).create_self_subject_review(
        V1SelfSubjectReview()
    )
    assert who.status.user_info.username == "system:serviceaccount:argo:release-bank"


def test_an_unknown_token_is_unauthorized_and_a_review_without_attributes_invalid(server):
    with pytest.raises(ApiException) as unknown:
        review(server, token="nobody", verb="list", resource="pods")
    assert unknown.value.status == 401
    empty = V1SelfSubjectAccessReview(spec=V1SelfSubjectAccessReviewSpec())
    with pytest.raises(ApiException) as invalid:
        AuthorizationV1Api(client(server, "team")).create_self_subject_access_review(empty)
    assert invalid.value.status == 422
