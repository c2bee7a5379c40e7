"""What ``canaryflow doctor`` reads: the cluster through the ``kubernetes`` client, Prometheus
over HTTP. Read-only (get and list), each read's failure kept as the reason of its check, so
one missing permission fails one check, not the run. The conclusions are
``canaryflow.doctor.checks``'."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from canaryflow.doctor.checks import (
    ClusterFacts,
    Condition,
    DoctorSettings,
    ServiceFacts,
    Workload,
)

Obj = dict[str, Any]
PART_OF = "app.kubernetes.io/part-of=canaryflow"
TOKEN_SUFFIX = ".service-account-token"
# Where each controller's Deployment is by the upstream install manifests, and the label the
# Helm charts put on it instead (another name).
CONTROLLERS = {
    "argo-workflows": ("workflow-controller", "app.kubernetes.io/component=workflow-controller"),
    "argo-events": ("controller-manager", "app.kubernetes.io/component=controller-manager"),
    "tekton-pipelines": ("tekton-pipelines-controller", "app.kubernetes.io/name=controller"),
}
# How many request series a service has, per metrics flavour (analysis.catalogue's series).
SERIES = {
    "go": 'count(http_requests_total{{app="{name}",namespace="{namespace}"}})',
    "otel": 'count(http_server_request_duration_seconds_count{{app="{name}",'
    'namespace="{namespace}"}})',
    "grpc": 'count(grpc_server_handled_total{{app="{name}",namespace="{namespace}"}})',
    "istio": 'count(istio_requests_total{{reporter="destination",destination_workload="{name}",'
    'destination_workload_namespace="{namespace}"}})',
}


class ReadError(Exception):
    """A read the cluster refused or could not answer (the message says which)."""


class Reader:
    """GETs through the real client's ApiClient (its auth, TLS and proxy settings)."""

    def __init__(self, client: ApiClient, timeout_s: float):
        self.client, self.timeout_s = client, timeout_s

    def get(self, path: str, query: dict[str, str] | None = None) -> Obj | None:
        """The object at ``path``; None when the server says 404."""
        request = self.client.param_serialize(
            method="GET",
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.client.call_api(*request, _request_timeout=self.timeout_s)
            response.read()
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ReadError(f"GET {path}: {error}") from error
        if response.status == 404:
            return None
        if not 200 <= response.status <= 299:
            error = ApiException(http_resp=response)
            raise ReadError(f"GET {path}: HTTP {response.status} {_message(error)}")
        return json.loads(response.data)


def _message(error: ApiException) -> str:
    try:
        return json.loads(error.body or "{}").get("message", "")
    except ValueError:
        return ""


def read_facts(client: ApiClient, settings: DoctorSettings) -> ClusterFacts:
    reader = Reader(client, settings.timeout_s)
    facts = ClusterFacts(
        engine=settings.engine,
        events=settings.events,
        routers=settings.routers,
        cluster=settings.cluster,
    )
    if settings.cluster:
        _read_cluster(reader, facts, settings)
    if settings.prometheus_url:
        facts.prometheus_url = settings.prometheus_url
        try:
            prometheus_query(settings.prometheus_url, "vector(1)", settings.timeout_s)
        except ReadError as error:
            facts.prometheus_error = str(error)
    if settings.service:
        namespace = settings.service_namespace or "default"
        facts.service = ServiceFacts(name=settings.service, namespace=namespace)
        try:
            _service(reader, facts.service, settings, facts.prometheus_error is None)
        except ReadError as error:
            facts.service.error = str(error)
    return facts


def _read_cluster(reader: Reader, facts: ClusterFacts, settings: DoctorSettings) -> None:
    _attempt(facts, "crds", lambda: _crds(reader, facts))
    _attempt(facts, "discovery", lambda: _served(reader, facts))
    for name, namespace in _controllers(settings):
        _attempt(facts, name, lambda n=name, ns=namespace: _controller(reader, facts, n, ns))
    if settings.engine == "argo" and settings.events:
        _attempt(facts, "event-sources", lambda: _event_sources(reader, facts, settings))
    if settings.engine == "argo" and settings.build_service_account:
        facts.token_secret = settings.build_service_account + TOKEN_SUFFIX
        path = f"/api/v1/namespaces/{settings.namespace}/secrets/{facts.token_secret}"
        _attempt(facts, "executor-token", lambda: _exists(reader, facts, path))
    if settings.engine == "argo" and settings.cache_claim:
        facts.cache_claim = settings.cache_claim
        _attempt(facts, "go-cache", lambda: _claim(reader, facts, settings))


def _controllers(settings: DoctorSettings) -> list[tuple[str, str]]:
    if settings.engine == "tekton":
        return [("tekton-pipelines", settings.tekton_namespace)]
    found = [("argo-workflows", settings.argo_namespace)]
    if settings.events:
        found.append(("argo-events", settings.events_namespace))
    return found


def _attempt(facts: ClusterFacts, check: str, read) -> None:
    try:
        read()
    except ReadError as error:
        facts.errors[check] = str(error)


def _crds(reader: Reader, facts: ClusterFacts) -> None:
    listed = reader.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions") or {}
    facts.crds = {item["metadata"]["name"] for item in listed.get("items", [])}


def _served(reader: Reader, facts: ClusterFacts) -> None:
    groups = (reader.get("/apis") or {}).get("groups", [])
    facts.served = {g["name"]: [v["version"] for v in g.get("versions", [])] for g in groups}


def _controller(reader: Reader, facts: ClusterFacts, name: str, namespace: str) -> None:
    deployment_name, selector = CONTROLLERS[name]
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    deployment = reader.get(f"{base}/{deployment_name}")
    if deployment is None:
        items = (reader.get(base, {"labelSelector": selector}) or {}).get("items", [])
        deployment = items[0] if items else None
    if deployment is None:
        facts.controllers[name] = None
        facts.errors[name] = (
            f"no Deployment {deployment_name} (or labelled {selector}) in {namespace}"
        )
        return
    containers = deployment["spec"]["template"]["spec"].get("containers", [])
    facts.controllers[name] = Workload(
        name=f"{namespace}/{deployment['metadata']['name']}",
        images={c["name"]: c.get("image", "") for c in containers},
        labels=deployment["metadata"].get("labels", {}),
    )


def _event_sources(reader: Reader, facts: ClusterFacts, settings: DoctorSettings) -> None:
    path = f"/apis/argoproj.io/v1alpha1/namespaces/{settings.namespace}/eventsources"
    listed = reader.get(path, {"labelSelector": PART_OF}) or {}
    for item in listed.get("items", []):
        conditions = item.get("status", {}).get("conditions", [])
        facts.event_sources[item["metadata"]["name"]] = [
            Condition(
                type=c.get("type", ""),
                status=c.get("status", ""),
                reason=c.get("reason", ""),
                message=c.get("message", ""),
            )
            for c in conditions
        ]


def _exists(reader: Reader, facts: ClusterFacts, path: str) -> None:
    facts.token_secret_found = reader.get(path) is not None


def _claim(reader: Reader, facts: ClusterFacts, settings: DoctorSettings) -> None:
    path = f"/api/v1/namespaces/{settings.namespace}/persistentvolumeclaims/{settings.cache_claim}"
    claim = reader.get(path)
    facts.cache_claim_phase = None if claim is None else claim.get("status", {}).get("phase", "")


def _service(
    reader: Reader, facts: ServiceFacts, settings: DoctorSettings, ask_prometheus: bool
) -> None:
    name, namespace = facts.name, facts.namespace
    deployment = reader.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    if deployment is not None:
        template = deployment["spec"]["template"].get("metadata", {})
        facts.deployment_labels = template.get("labels", {})
    service = reader.get(f"/api/v1/namespaces/{namespace}/services/{name}")
    if service is not None:
        facts.service_selector = service.get("spec", {}).get("selector", {})
    if settings.prometheus_url and ask_prometheus:
        facts.query = SERIES[settings.flavour].format(name=name, namespace=namespace)
        result = prometheus_query(settings.prometheus_url, facts.query, settings.timeout_s)
        facts.series = int(float(result[0]["value"][1])) if result else 0


def prometheus_query(url: str, query: str, timeout_s: float) -> list[Obj]:
    """The instant vector Prometheus answers for ``query``; ReadError on anything else."""
    address = url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(address, timeout=timeout_s) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise ReadError(f"HTTP {error.code} for {query}") from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ReadError(f"no answer: {error}") from error
    if body.get("status") != "success" or body.get("data", {}).get("resultType") != "vector":
        raise ReadError(f"not a query answer: {str(body)[:200]}")
    return body["data"]["result"]
