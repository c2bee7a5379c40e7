"""The Kubernetes resource kinds canaryflow reads and writes, and where they live in the API."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceKind:
    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        root = "/api" if "/" not in self.api_version else "/apis"
        collection = f"{root}/{self.api_version}/namespaces/{namespace}/{self.plural}"
        return f"{collection}/{name}" if name else collection

    def describe(self, namespace: str, name: str) -> str:
        return f"{self.kind.lower()} {namespace}/{name}"


DEPLOYMENT = ResourceKind("apps/v1", "Deployment", "deployments")
SERVICE = ResourceKind("v1", "Service", "services")
POD = ResourceKind("v1", "Pod", "pods")
EVENT = ResourceKind("v1", "Event", "events")
CONFIG_MAP = ResourceKind("v1", "ConfigMap", "configmaps")
INGRESS = ResourceKind("networking.k8s.io/v1", "Ingress", "ingresses")
VIRTUAL_SERVICE = ResourceKind("networking.istio.io/v1", "VirtualService", "virtualservices")
DESTINATION_RULE = ResourceKind("networking.istio.io/v1", "DestinationRule", "destinationrules")
HTTP_ROUTE = ResourceKind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
HPA = ResourceKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
TRAFFIC_SPLIT = ResourceKind("split.smi-spec.io/v1alpha4", "TrafficSplit", "trafficsplits")

BY_KIND = {
    k.kind: k
    for k in (
        DEPLOYMENT,
        SERVICE,
        POD,
        EVENT,
        INGRESS,
        VIRTUAL_SERVICE,
        DESTINATION_RULE,
        HTTP_ROUTE,
        TRAFFIC_SPLIT,
        HPA,
    )
}


def kind_of(obj: dict) -> ResourceKind:
    return BY_KIND[obj["kind"]]
