"""Kubernetes RBAC authorization of API requests, as the API server decides it, for tests.

Follows kubernetes v1.30:

* ``staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`` (``NewRequestInfo``):
  the verb from the HTTP method (GET of a name -> ``get``, of a collection -> ``list``, or
  ``watch`` with ``?watch``; POST -> ``create``; PUT -> ``update``; PATCH -> ``patch``; DELETE of
  a name -> ``delete``, of a collection -> ``deletecollection``), the name from the path only
  (a POST create carries none: its name is in the body).
* ``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go``: a server-side apply PATCH
  that creates its object is authorized again as ``create`` of that name (``patchCreater``;
  documented in "API concepts: patch and apply").
* ``plugin/pkg/auth/authorizer/rbac/rbac.go`` (``RuleAllows``) with
  ``pkg/apis/rbac/v1/evaluation_helpers.go``: a rule allows a resource request when its verbs,
  apiGroups, resources (``resource/subresource``; ``*`` and ``*/subresource``) and
  resourceNames (empty: any name) all match.
* ``pkg/registry/rbac/validation/rule.go`` (``VisitRulesFor``): the rules of a subject in a
  namespace are those of the Roles that RoleBindings *in that namespace* bind to it (the
  chart makes no ClusterRoles, so ClusterRoleBindings are left out here).
* ``plugin/pkg/auth/authorizer/rbac/rbac.go`` (``RBACAuthorizer.Authorize``): a rule that
  allows gives ``DecisionAllow`` with the reason ``RBAC: allowed by <binding>``
  (``roleBindingDescriber.String`` in rule.go); no rule gives ``DecisionNoOpinion`` and, with no
  errors resolving the rules, an empty reason. RBAC never answers ``DecisionDeny``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
ALL = "*"


@dataclass(frozen=True)
class Attributes:
    """``authorizer.Attributes`` of one resource request."""

    verb: str
    namespace: str
    api_group: str
    resource: str
    subresource: str = ""
    name: str = ""


def request_attributes(
    method: str, api_version: str, plural: str, namespace: str, name: str, sub: str, query: dict
) -> Attributes:
    """``NewRequestInfo`` for a namespaced resource path."""
    group = api_version.rpartition("/")[0]
    if method == "GET":
        verb = "get" if name else ("watch" if query.get("watch") in ("1", "true") else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]
    return Attributes(verb, namespace, group, plural, sub, name)


def _matches(rule_values: Iterable[str], value: str) -> bool:
    values = list(rule_values)
    return ALL in values or value in values


def _resource_matches(rule: Obj, combined: str, subresource: str) -> bool:
    """``ResourceMatches``: exact, ``*``, or ``*/<subresource>`` for a subresource request."""
    for resource in rule.get("resources", []):
        if resource in (ALL, combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def rule_allows(attributes: Attributes, rule: Obj) -> bool:
    """``RuleAllows`` for a resource request."""
    combined = attributes.resource
    if attributes.subresource:
        combined = f"{attributes.resource}/{attributes.subresource}"
    names = rule.get("resourceNames") or []
    return (
        _matches(rule.get("verbs", []), attributes.verb)
        and _matches(rule.get("apiGroups", []), attributes.api_group)
        and _resource_matches(rule, combined, attributes.subresource)
        and (not names or attributes.name in names)
    )


@dataclass(frozen=True)
class ServiceAccount:
    namespace: str
    name: str

    @property
    def username(self) -> str:
        """The user name the API server authenticates its token as (``serviceaccount.MakeUsername``,
        staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go)."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"


def _binds(binding: Obj, subject: ServiceAccount) -> bool:
    return any(
        s.get("kind") == "ServiceAccount"
        and s.get("name") == subject.name
        and s.get("namespace", binding["metadata"].get("namespace")) == subject.namespace
        for s in binding.get("subjects", [])
    )


class Authorizer:
    """Allows exactly what the given Roles and RoleBindings grant ``subject``."""

    def __init__(self, objects: Iterable[Obj], subject: ServiceAccount):
        objects = list(objects)
        roles = {
            (o["metadata"]["namespace"], o["metadata"]["name"]): o
            for o in objects
            if o["kind"] == "Role"
        }
        self.subject = subject
        self.rules: dict[str, list[Obj]] = {}
        self._sources: dict[str, list[tuple[str, Obj]]] = {}
        for binding in (o for o in objects if o["kind"] == "RoleBinding"):
            namespace = binding["metadata"]["namespace"]
            ref = binding["roleRef"]
            if ref["kind"] != "Role" or not _binds(binding, subject):
                continue
            role = roles.get((namespace, ref["name"]))
            if role is not None:  # a binding to a missing Role grants nothing
                self.rules.setdefault(namespace, []).extend(role.get("rules", []))
                source = _describe(binding, subject)
                for rule in role.get("rules", []):
                    self._sources.setdefault(namespace, []).append((source, rule))
        self.decisions: list[tuple[Attributes, bool]] = []

    def allows(self, attributes: Attributes) -> bool:
        allowed = any(rule_allows(attributes, r) for r in self.rules.get(attributes.namespace, []))
        self.decisions.append((attributes, allowed))
        return allowed

    def authorize(self, attributes: Attributes) -> tuple[bool, str]:
        """``RBACAuthorizer.Authorize``: (allowed, reason); a refusal is "no opinion" with an
        empty reason (the rules resolved without errors)."""
        for source, rule in self._sources.get(attributes.namespace, []):
            if rule_allows(attributes, rule):
                return True, f"RBAC: allowed by {source}"
        return False, ""


def _describe(binding: Obj, subject: ServiceAccount) -> str:
    """``roleBindingDescriber.String`` (rule.go) of the binding that grants ``subject``."""
    meta, ref = binding["metadata"], binding["roleRef"]
    return (
        f'RoleBinding "{meta.get("name", "")}/{meta["namespace"]}" of {ref["kind"]} '
        f'"{ref["name"]}" to ServiceAccount "{subject.name}/{subject.namespace}"'
    )
