"""The ``Reviewer`` of ``canaryflow doctor --rights``: SelfSubjectAccessReviews
(authorization.k8s.io/v1) through the real ``kubernetes`` client, as the account it
authenticates as. Any failure to get an answer is ``UnreachableError`` (exit 3): the rights are
then unknown, not missing."""

from __future__ import annotations

import urllib3
from kubernetes.client import (
    ApiClient,
    AuthenticationV1Api,
    AuthorizationV1Api,
    V1ResourceAttributes,
    V1SelfSubjectAccessReview,
    V1SelfSubjectAccessReviewSpec,
    V1SelfSubjectReview,
)
from kubernetes.client.exceptions import ApiException

from canaryflow.doctor.rights import Review
from canaryflow.errors import UnreachableError
from canaryflow.kubernetes.rights import Right

UNKNOWN_ACCOUNT = "this account"


def _error(what: str, error: Exception) -> UnreachableError:
    if isinstance(error, ApiException):
        return UnreachableError(
            f"{what}: the API server answered HTTP {error.status} {error.reason}: check the "
            "cluster and the account's token, then run doctor again"
        )
    return UnreachableError(
        f"{what}: the API server did not answer ({error}): check the cluster, then run doctor again"
    )


class SelfReviewer:
    def __init__(self, client: ApiClient, timeout_s: float = 10.0):
        self.authorization = AuthorizationV1Api(client)
        self.authentication = AuthenticationV1Api(client)
        self.timeout_s = timeout_s

    def account(self) -> str:
        """The requester's user name by a SelfSubjectReview (GA in Kubernetes 1.28); an API
        server that does not serve it leaves the account unnamed, not the check failed."""
        try:
            answer = self.authentication.create_self_subject_review(
                V1SelfSubjectReview(
                    api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"
                ),
                _request_timeout=self.timeout_s,
            )
        except ApiException as error:
            if error.status in (403, 404):
                return UNKNOWN_ACCOUNT
            raise _error("SelfSubjectReview", error) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise _error("SelfSubjectReview", error) from None
        user = answer.status.user_info if answer.status else None
        return (user.username if user else None) or UNKNOWN_ACCOUNT

    def review(self, right: Right) -> Review:
        body = V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1",
            kind="SelfSubjectAccessReview",
            spec=V1SelfSubjectAccessReviewSpec(
                resource_attributes=V1ResourceAttributes(
                    namespace=right.namespace,
                    verb=right.verb,
                    group=right.group,
                    resource=right.resource,
                    subresource=right.subresource or None,
                    name=right.name or None,
                )
            ),
        )
        try:
            answer = self.authorization.create_self_subject_access_review(
                body, _request_timeout=self.timeout_s
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise _error(f"SelfSubjectAccessReview of {right.describe()}", error) from None
        status = answer.status
        if status is None:
            raise UnreachableError(
                f"SelfSubjectAccessReview of {right.describe()}: the API server answered no "
                "status: check the cluster, then run doctor again"
            )
        reason = status.reason or status.evaluation_error or ""
        return Review(allowed=bool(status.allowed) and not status.denied, reason=reason)
