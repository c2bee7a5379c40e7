"""What a router splits traffic between, as the platform found it in the cluster."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backends:
    stable_service: str
    canary_service: str
    port: int
    stable_version: str | None
    canary_version: str
    stable_hash: str | None = None
    """The ``pod-template-hash`` of stable's ReplicaSet, which ``<service>-stable`` and an Istio
    stable subset select (``canaryflow.kubernetes.owned_services``); None for a router that
    sends stable's share to the user's Service."""


ORIGINAL_ANNOTATION = "canaryflow.dev/original-route"
"""On a user's object: its managed route as it was before canaryflow, restored at the end."""
