"""Kubernetes RBAC authorization of API requests, as the API server decides it, for tests.

Follows kubernetes v1.30:

* ``staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`` (``NewRequestInfo``):
  the verb from the HTTP method (GET of a name -> ``get``, of a collection -> ``list``, or
  ``watch`` when the ``watch`` parameter is there and not ``0`` / ``false`` in any case,
  ``runtime.Convert_Slice_string_To_bool``; POST -> ``create``; PUT -> ``update``; PATCH ->
  ``patch``; DELETE of a name -> ``delete``, of a collection -> ``deletecollection``), the name
  from the path (a POST create carries none: its name is in the body) or, for a list or watch,
  from a ``fieldSelector`` requiring ``metadata.name`` (``fields.ParseSelector``,
  ``RequiresExactMatch``, a valid path segment name). Other query parameters the ParameterCodec
  could fail to decode are not modeled (the fake server passes the last value of each).
* ``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go``: a server-side apply PATCH
  that creates its object is authorized again as ``create`` of that name (``patchCreater``;
  documented in "API concepts: patch and apply").
* ``plugin/pkg/auth/authorizer/rbac/rbac.go`` (``RuleAllows``) with
  ``pkg/apis/rbac/v1/evaluation_helpers.go``: a rule allows a resource request when its verbs,
  apiGroups, resources (``resource/subresource``; ``*`` and ``*/subresource``) and
  resourceNames (empty: any name) all match.
* ``pkg/registry/rbac/validation/rule.go`` (``VisitRulesFor``, ``appliesToUser``,
  ``GetRoleReferenceRules``): the rules of a user in a namespace are those of every
  ClusterRoleBinding, then of the RoleBindings *in that namespace*, that name the user, one of
  its groups, or its service account (a subject's namespace defaults to the binding's), each
  resolving its roleRef to a Role of the binding's namespace or a ClusterRole. A roleRef that
  does not resolve is an error, with the message of the API server's listers
  (client-go ``listers/rbac/v1``: ``role.rbac.authorization.k8s.io "<name>" not found``).
* ``plugin/pkg/auth/authorizer/rbac/rbac.go`` (``RBACAuthorizer.Authorize``): the first rule
  that allows gives ``DecisionAllow`` with the reason ``RBAC: allowed by <binding>``
  (``roleBindingDescriber`` / ``clusterRoleBindingDescriber.String`` in rule.go); none gives
  ``DecisionNoOpinion`` with an empty reason, or ``RBAC: <errors>`` (``utilerrors.NewAggregate``)
  when roleRefs did not resolve. RBAC never answers ``DecisionDeny``.

Bindings are visited in the order of the objects given (the API server's informer caches
have no order: when two bindings allow, either may be named).
Checked against upstream's own code (charts/canaryflow/README.md, "Tested with the real RBAC
rules").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
ALL = "*"
FALSE_WATCH = ("0", "false")
"""``runtime.Convert_Slice_string_To_bool``: only these (case-insensitive) are false."""
NAME_MAY_NOT_BE = (".", "..")
NAME_MAY_NOT_CONTAIN = ("/", "%")
"""``path.IsValidPathSegmentName`` (apimachinery pkg/api/validation/path/name.go)."""
SELECTOR_OPERATORS = ("!=", "==", "=")
"""``fields.termOperators``, in the order ``splitTerm`` tries them."""


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
        verb = "get"
        if not name:  # a get of no name is a list or a watch, which a fieldSelector may name
            verb = "watch" if _watch(query) else "list"
            name = _selected_name(query.get("fieldSelector", ""))
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]
    return Attributes(verb, namespace, group, plural, sub, name)


def _watch(query: dict) -> bool:
    value = query.get("watch")
    return value is not None and value.lower() not in FALSE_WATCH


def _selected_name(selector: str) -> str:
    """The ``metadata.name`` a field selector requires, or "" (also for a selector
    ``fields.ParseSelector`` refuses, which makes the request info drop the name)."""
    try:
        terms = sorted(_split_terms(selector))
        parsed = [_parse_term(t, selector) for t in terms if t]
    except ValueError:
        return ""
    for field, operator, value in parsed:
        if field == "metadata.name" and operator != "!=":
            valid = value not in NAME_MAY_NOT_BE and not any(
                c in value for c in NAME_MAY_NOT_CONTAIN
            )
            return value if valid else ""
    return ""


def _split_terms(selector: str) -> list[str]:
    """``fields.splitTerms``: split on the commas no backslash escapes."""
    if not selector:
        return []
    terms, start, escaped = [], 0, False
    for i, c in enumerate(selector):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(selector[start:i])
            start = i + 1
    return [*terms, selector[start:]]


def _parse_term(term: str, selector: str) -> tuple[str, str, str]:
    """``fields.splitTerm`` and ``UnescapeValue``: (field, operator, value)."""
    for i in range(len(term)):
        for operator in SELECTOR_OPERATORS:
            if term.startswith(operator, i):
                return term[:i], operator, _unescape(term[i + len(operator) :])
    raise ValueError(f"invalid selector: '{selector}'; can't understand '{term}'")


def _unescape(value: str) -> str:
    out, escaped = [], False
    for c in value:
        if escaped:
            if c not in "\\,=":
                raise ValueError(f"invalid escape sequence \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            raise ValueError(f"unescaped {c}")
        else:
            out.append(c)
    if escaped:
        raise ValueError("invalid escape sequence \\")
    return "".join(out)


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

    @property
    def groups(self) -> tuple[str, ...]:
        """Its token's groups (``serviceaccount.MakeGroupNames``) and ``system:authenticated``,
        which the authenticator chain adds (``group.AuthenticatedGroupAdder``)."""
        return (
            "system:serviceaccounts",
            f"system:serviceaccounts:{self.namespace}",
            "system:authenticated",
        )


def _applies(subject: Obj, account: ServiceAccount, binding_namespace: str) -> bool:
    """``appliesToUser`` (rule.go)."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == account.username
    if kind == "Group":
        return name in account.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and f"system:serviceaccount:{namespace}:{name}" == account.username
    return False


def _quote(text: str) -> str:
    """Go's ``%q`` of a printable string."""
    return json.dumps(text, ensure_ascii=False)


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    """``describeSubject`` (rule.go)."""
    if subject.get("kind") == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return f"ServiceAccount {_quote(subject.get('name', '') + '/' + namespace)}"
    return f"{subject.get('kind', '')} {_quote(subject.get('name', ''))}"


def _describe(binding: Obj, subject: Obj) -> str:
    """``roleBindingDescriber`` / ``clusterRoleBindingDescriber.String`` (rule.go)."""
    meta, ref = binding["metadata"], binding["roleRef"]
    namespace = meta.get("namespace", "")
    name = meta.get("name", "")
    if binding["kind"] == "RoleBinding":
        name = f"{name}/{namespace}"
    return (
        f"{binding['kind']} {_quote(name)} of {ref.get('kind', '')} {_quote(ref.get('name', ''))}"
        f" to {_describe_subject(subject, namespace)}"
    )


def aggregate(errors: list[str]) -> str:
    """``utilerrors.NewAggregate(errors).Error()``: one message, or the distinct ones in
    brackets."""
    distinct = list(dict.fromkeys(errors))
    if len(errors) == 1 or len(distinct) == 1:
        return distinct[0]
    return "[" + ", ".join(distinct) + "]"


class Authorizer:
    """Allows exactly what the given Roles, ClusterRoles and their bindings grant ``subject``."""

    def __init__(self, objects: Iterable[Obj], subject: ServiceAccount):
        objects = list(objects)
        self.subject = subject
        self._roles = {
            (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in objects
            if o["kind"] == "Role"
        }
        self._cluster_roles = {
            o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"
        }
        self._bindings = [o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
        self.decisions: list[tuple[Attributes, bool]] = []

    def _role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        """``GetRoleReferenceRules`` (rule.go) with the API server's listers' NotFound."""
        kind, name = ref.get("kind"), ref.get("name", "")
        role = (
            self._roles.get((namespace, name))
            if kind == "Role"
            else self._cluster_roles.get(name)
            if kind == "ClusterRole"
            else None
        )
        if kind not in ("Role", "ClusterRole"):
            raise LookupError(f"unsupported role reference kind: {_quote(kind or '')}")
        if role is None:
            resource = "role" if kind == "Role" else "clusterrole"
            raise LookupError(f"{resource}.rbac.authorization.k8s.io {_quote(name)} not found")
        return role.get("rules") or []

    def _visit(self, namespace: str) -> Iterator[tuple[str, Obj | None, str]]:
        """``VisitRulesFor`` (rule.go): (source, rule, "") per rule that applies, or
        ("", None, error) per roleRef that does not resolve; cluster bindings first."""
        cluster = [b for b in self._bindings if b["kind"] == "ClusterRoleBinding"]
        local = [
            b
            for b in self._bindings
            if namespace
            and b["kind"] == "RoleBinding"
            and b["metadata"].get("namespace") == namespace
        ]
        for binding in [*cluster, *local]:
            scope = namespace if binding["kind"] == "RoleBinding" else ""
            subject = next(
                (s for s in binding.get("subjects") or [] if _applies(s, self.subject, scope)),
                None,
            )
            if subject is None:
                continue
            try:
                rules = self._role_rules(binding["roleRef"], scope)
            except LookupError as error:
                yield "", None, str(error)
                continue
            source = _describe(binding, subject)
            for rule in rules:
                yield source, rule, ""

    def allows(self, attributes: Attributes) -> bool:
        allowed, _ = self.authorize(attributes)
        self.decisions.append((attributes, allowed))
        return allowed

    def authorize(self, attributes: Attributes) -> tuple[bool, str]:
        """``RBACAuthorizer.Authorize``: (allowed, reason); a refusal is "no opinion", its
        reason empty or the errors met resolving the rules."""
        errors = []
        for source, rule, error in self._visit(attributes.namespace):
            if rule is not None and rule_allows(attributes, rule):
                return True, f"RBAC: allowed by {source}"
            if error:
                errors.append(error)
        return False, f"RBAC: {aggregate(errors)}" if errors else ""
