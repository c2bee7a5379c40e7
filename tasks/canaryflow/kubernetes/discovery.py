"""Which API versions canaryflow needs, and a clear refusal when the cluster does not serve one.

A resource path of an unserved version answers 404, the same as a missing object, so without
this check an Istio that serves only ``networking.istio.io/v1beta1`` read as "virtualservice
not found: create the VirtualService". The routers ask discovery (``GET /apis``) before they
read anything, and name the version and the release that brings it.
"""

from __future__ import annotations

from canaryflow.errors import FieldError, InputError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.resources import ResourceKind

MINIMUM = {
    "networking.istio.io": "Istio ≥ 1.22",
    "gateway.networking.k8s.io": "Gateway API ≥ v1.0",
    "split.smi-spec.io": "SMI TrafficSplit v1alpha4 (e.g. Open Service Mesh ≥ 1.0)",
}
"""The release that first serves the version canaryflow speaks, per API group (README)."""


def unserved(kind: ResourceKind, served: dict[str, list[str]]) -> str | None:
    """Why ``kind`` cannot be used on a server serving ``served``; None when it can."""
    group, _, version = kind.api_version.rpartition("/")
    if version in served.get(group, []):
        return None
    need = f"canaryflow needs {MINIMUM.get(group, group)} ({kind.api_version})"
    versions = served.get(group, [])
    if not versions:
        return f"this cluster does not serve {group} at all; {need}"
    listed = ", ".join(f"{group}/{v}" for v in versions)
    return f"this cluster serves only {listed}; {need}"


def require_served(api: ClusterApi, *kinds: ResourceKind) -> None:
    """Refuse (exit 2, nothing changed) when the cluster does not serve every one of ``kinds``."""
    served = api.served_versions()
    problems = list(dict.fromkeys(p for kind in kinds if (p := unserved(kind, served))))
    if problems:
        fix = ": upgrade it, or choose another router.kind"
        raise InputError([FieldError("router.kind", problem + fix) for problem in problems])
