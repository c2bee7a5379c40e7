"""``canaryflow doctor --rights``: the account doctor runs as may do everything a release of a
service namespace needs, each right asked of the API server as a SelfSubjectAccessReview.

A release account cannot read its Roles, and reviewing another account's rights takes
cluster-wide create on SubjectAccessReviews; a SelfSubjectAccessReview asks only about the
requester and every authenticated identity may create one (the bootstrap ClusterRole
``system:basic-user``, bound to ``system:authenticated``: Kubernetes
plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go), so the chart's ``helm test`` runs
this as each per-team account with no extra rights. The rights come from
``canaryflow.kubernetes.rights``, the table the chart's Role is rendered from.

The conclusions are pure; the questions go through a ``Reviewer`` (``canaryflow.doctor.review``
asks the API server).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from canaryflow.doctor.checks import Finding, Status
from canaryflow.kubernetes.rights import Right


@dataclass(frozen=True)
class Review:
    """A SelfSubjectAccessReview's answer: ``status.allowed``, ``status.reason``."""

    allowed: bool
    reason: str = ""


class Reviewer(Protocol):
    def account(self) -> str:
        """Who is asking (the user name the API server authenticated)."""
        ...

    def review(self, right: Right) -> Review:
        """May the asking account do ``right``? Raises ``UnreachableError`` when the API
        server does not answer, or answers an error."""
        ...


def _fix(right: Right, account: str) -> str:
    group = f"API group {right.group}" if right.group else "the core API group"
    resource = f"{right.resource}/{right.subresource}" if right.subresource else right.resource
    named = f" named {right.name}" if right.name else ""
    return (
        f"fix the Role bound to {account} in namespace {right.namespace}: grant {right.verb} "
        f"on {resource} ({group}){named} (or upgrade the chart: its release Role grants every "
        "right a release needs)"
    )


def rights_findings(
    namespace: str, rights: Sequence[Right], answers: Sequence[Review], account: str
) -> list[Finding]:
    """One failure per right refused, named ``<namespace>/<resource>/<name>``; one pass when
    every right is granted."""
    findings = []
    for right, answer in zip(rights, answers, strict=True):
        if answer.allowed:
            continue
        reason = f" ({answer.reason})" if answer.reason else ""
        findings.append(
            Finding(
                check=right.describe(),
                status=Status.FAIL,
                detail=f"{right.verb} denied to {account}{reason}: {_fix(right, account)}",
            )
        )
    if not findings:
        findings.append(
            Finding(
                check="rights",
                status=Status.OK,
                detail=f"the {len(rights)} rights a release needs in {namespace} are granted "
                f"to {account}",
            )
        )
    return findings


def check_rights(namespace: str, rights: Sequence[Right], reviewer: Reviewer) -> list[Finding]:
    """Ask every right (one review each) and conclude."""
    account = reviewer.account()
    answers = [reviewer.review(right) for right in rights]
    return rights_findings(namespace, rights, answers, account)
