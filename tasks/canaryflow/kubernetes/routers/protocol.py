"""What every Kubernetes traffic router is: the platform's ``TrafficRouter`` plus three steps.

Like Argo Rollouts' ``TrafficRoutingReconciler`` and Flagger's ``Interface``, one protocol and
one module per router (``make_router`` builds them by kind). ``capabilities`` is the router's
row of ``canaryflow.plan.routers.CAPABILITIES``, the one table plan validation reads too.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canaryflow.kubernetes.routers.backends import Backends
from canaryflow.platform.protocol import TrafficRouter


@runtime_checkable
class KubernetesRouter(TrafficRouter, Protocol):
    capabilities: frozenset[str]
    """What the router can do (``plan.routers.HEADER_ROUTES``, ``NAMED_RULES``)."""
    splits_by_service: bool
    """True when stable and canary are told apart by Service (so selectors must not overlap);
    False when by pod label (Istio subsets)."""

    stable_selection: str
    """How stable's share misses the canary pods: the router's row of
    ``canaryflow.plan.routers.STABLE_SELECTION``."""

    def preflight(self, backends: Backends) -> object:
        """Read-only checks of the user's objects: bad input changes nothing."""

    def prepare(self, backends: Backends) -> None:
        """Create or split what the router needs, at weight 0."""

    def withdraw_header_route(self) -> None:
        """Requests carrying the header go where every other request goes; the split stays
        (``remove_managed_routes`` restores the user's route later). Idempotent."""

    def header_route_withdrawn(self) -> bool:
        """True once the router object carries no header route to the canary."""

    def select_stable(self, version: str | None, canary_version: str) -> None:
        """Point the stable side at ``version`` (None: every stable pod) after a promotion."""

    def stable_backends(self) -> list[str]:
        """The Services the router sends stable's share to, when not the stable Service
        itself (the stable backend of a user's TrafficSplit); empty otherwise."""

    def reverted_edits(self) -> list[str]:
        """After ``remove_managed_routes``: one line per edit the user made during the
        release that it had to take back (the platform turns them into Warning Events and
        the rollback's record); empty when every edit of theirs was kept."""
