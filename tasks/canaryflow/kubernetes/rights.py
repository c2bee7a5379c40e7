"""The rights a release needs in a service namespace: the one table both the chart's per-team
Role (``charts/canaryflow/templates/rbac.yaml`` reads ``files/release-rules.json``, which
``canaryflow chart --generate`` writes from ``RELEASE_RULES``) and ``canaryflow doctor --rights``
(one SelfSubjectAccessReview per right) are cut from, so the two cannot drift.

What each rule grants follows what ``canaryflow.kubernetes`` calls (``tests/test_chart_rbac.py``
checks the chart's Role against the code both ways): ClusterApi.get -> get, list -> list, apply
(server-side apply, may create) -> create + patch, merge_patch -> patch, create -> create,
update -> get + update, delete -> delete, pod_log -> pods/log get.

Names: in a namespace with services registered (the chart's ``events.services``), a rule with
``names`` is bounded to those names of each registered service it applies to (``{service}``,
``{deployment}``, ``{kubernetesService}``, ``{route}`` filled in from the registration); in a
namespace with none, it is granted without names. A rule without ``names`` is never bounded
(a POST create carries no name, generated pod names). ``flags`` rules are bounded to the flag
ConfigMaps (``flags.configMaps``) and left out without any.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from canaryflow.kubernetes import resources
from canaryflow.kubernetes.resources import ResourceKind

FLAGS = "flags"
"""``RoleRule.names`` of a rule bounded to the flag ConfigMaps instead of the services."""


@dataclass(frozen=True)
class RoleRule:
    """One rule of the per-team Role."""

    kind: ResourceKind
    verbs: tuple[str, ...]
    subresource: str = ""
    router: str | None = None
    """Granted only where a release may use this router kind (None: every namespace)."""
    names: tuple[str, ...] | str | None = None
    """Name patterns per registered service, ``FLAGS``, or None: not bounded by name."""

    @property
    def group(self) -> str:
        return self.kind.api_version.rpartition("/")[0]

    @property
    def resource(self) -> str:
        """The Role's ``resources`` entry: ``plural`` or ``plural/subresource``."""
        return f"{self.kind.plural}/{self.subresource}" if self.subresource else self.kind.plural


_WRITE = ("get", "create", "patch", "update", "delete")

RELEASE_RULES: tuple[RoleRule, ...] = (
    RoleRule(
        resources.DEPLOYMENT,
        _WRITE,
        names=("{deployment}", "{service}-canary", "{service}-baseline"),
    ),
    RoleRule(
        resources.SERVICE,
        _WRITE,
        names=("{kubernetesService}", "{service}-canary", "{service}-stable", "{service}-baseline"),
    ),
    RoleRule(resources.POD, ("list",)),
    RoleRule(resources.POD, ("get",), subresource="log"),
    RoleRule(resources.EVENT, ("create",)),
    RoleRule(resources.HPA, ("list",)),
    RoleRule(
        resources.INGRESS,
        ("get", "create", "patch", "delete"),
        router="nginx-ingress",
        names=("{route}", "{service}-canary"),
    ),
    RoleRule(resources.VIRTUAL_SERVICE, ("get", "update"), router="istio", names=("{route}",)),
    RoleRule(resources.DESTINATION_RULE, _WRITE, router="istio", names=("{service}-canaryflow",)),
    RoleRule(resources.HTTP_ROUTE, ("get", "update"), router="gateway-api", names=("{route}",)),
    RoleRule(resources.TRAFFIC_SPLIT, _WRITE, router="smi", names=("{route}",)),
    RoleRule(resources.CONFIG_MAP, ("get", "update"), names=FLAGS),
)


@dataclass(frozen=True)
class Registered:
    """A service registered in the chart (``canaryflow.registry``'s entry, defaults filled)."""

    service: str
    router: str
    deployment: str = ""
    kubernetesService: str = ""  # the chart's key
    route: str = ""

    def fill(self, pattern: str) -> str:
        return (
            pattern.replace("{service}", self.service)
            .replace("{deployment}", self.deployment or self.service)
            .replace("{kubernetesService}", self.kubernetesService or self.service)
            .replace("{route}", self.route or self.service)
        )


@dataclass(frozen=True, order=True)
class Right:
    """One request a release makes, as a SelfSubjectAccessReview's ``resourceAttributes``
    asks it; ``name`` empty: any name (the rule is not bounded)."""

    verb: str
    namespace: str
    group: str
    resource: str
    subresource: str = ""
    name: str = ""

    def describe(self) -> str:
        """``<namespace>/<resource>[/<subresource>]/<name>`` (``*``: any name)."""
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.namespace}/{resource}/{self.name or '*'}"


def routers_of(services: Sequence[Registered], routers: Iterable[str]) -> tuple[str, ...]:
    """The router kinds the Role grants: the registered services' own, else ``routers`` (the
    chart's ``release.routerKind``, or ``release.routers``)."""
    if services:
        return tuple(dict.fromkeys(s.router for s in services))
    return tuple(dict.fromkeys(routers))


def rule_names(
    rule: RoleRule, services: Sequence[Registered], flag_config_maps: Sequence[str]
) -> list[str] | None:
    """The rule's ``resourceNames`` (None: not bounded), in the chart's order, each once."""
    if rule.names == FLAGS:
        return list(dict.fromkeys(flag_config_maps))
    if rule.names is None or not services:
        return None
    names = [
        s.fill(pattern)
        for s in services
        if rule.router in (None, s.router)
        for pattern in rule.names
    ]
    return list(dict.fromkeys(names))


def applies(rule: RoleRule, routers: Sequence[str], flag_config_maps: Sequence[str]) -> bool:
    if rule.names == FLAGS and not flag_config_maps:
        return False
    return rule.router is None or rule.router in routers


def needed_rights(
    namespace: str,
    services: Sequence[Registered] = (),
    routers: Iterable[str] = (),
    flag_config_maps: Sequence[str] = (),
) -> list[Right]:
    """Every (verb, resource, name) a release of ``namespace`` needs: exactly what the chart's
    Role there grants, one Right per verb and name."""
    kinds = routers_of(services, routers)
    rights = []
    for rule in RELEASE_RULES:
        if not applies(rule, kinds, flag_config_maps):
            continue
        names = rule_names(rule, services, flag_config_maps)
        for verb in rule.verbs:
            for name in names if names is not None else [""]:
                rights.append(
                    Right(verb, namespace, rule.group, rule.kind.plural, rule.subresource, name)
                )
    return rights


def chart_rules() -> dict[str, Any]:
    """``files/release-rules.json``: the table as the chart's rbac.yaml reads it."""
    rules = []
    for rule in RELEASE_RULES:
        entry: dict[str, Any] = {
            "apiGroup": rule.group,
            "resource": rule.resource,
            "verbs": list(rule.verbs),
        }
        if rule.router is not None:
            entry["router"] = rule.router
        if rule.names == FLAGS:
            entry["flags"] = True
        elif rule.names is not None:
            entry["names"] = list(rule.names)
        rules.append(entry)
    return {"rules": rules}
