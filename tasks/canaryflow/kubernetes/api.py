"""The Kubernetes calls canaryflow makes, through the ``kubernetes`` client's ``ApiClient``.

One generic path serves every kind (Deployments, Services, Ingresses, Istio, Gateway API, SMI):
objects stay plain dicts, so the routers edit exactly the fields they own and round-trip the rest.
Writes are idempotent: objects canaryflow owns are server-side applied
(``application/apply-patch+yaml``, ``fieldManager=canaryflow``, ``force``); objects shared with the
user (their VirtualService or HTTPRoute, the stable Deployment at promotion) are read, edited and
replaced under their resourceVersion, re-read on a 409. Every call retries transient failures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client import ApiClient, ApisApi, CoreV1Api
from kubernetes.client.exceptions import ApiException

from canaryflow import transport
from canaryflow.errors import PlatformError, PlatformUnreachable
from canaryflow.kubernetes.resources import POD, ResourceKind, kind_of
from canaryflow.kubernetes.retry import DEFAULT_RETRY, RetryPolicy, call_with_retries

Obj = dict[str, Any]

FIELD_MANAGER = "canaryflow"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class ClusterApi:
    """Namespaced object access with retries; failures become ``PlatformError`` with context."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        retry: RetryPolicy = DEFAULT_RETRY,
        request_timeout_s: float = 10.0,
    ):
        self.client = api_client
        self.namespace = namespace
        self.retry = retry
        self.request_timeout_s = request_timeout_s

    @property
    def host(self) -> str:
        return self.client.configuration.host

    def get(self, kind: ResourceKind, name: str) -> Obj | None:
        try:
            return self._call("GET", kind, name)
        except NotFound:
            return None

    def list(self, kind: ResourceKind, labels: dict[str, str]) -> list[Obj]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return self._call("GET", kind, query={"labelSelector": selector})["items"]

    def apply(self, obj: Obj) -> Obj:
        """Server-side apply ``obj`` (create it or converge the fields canaryflow owns)."""
        query = {"fieldManager": FIELD_MANAGER, "force": "true"}
        return self._call("PATCH", kind_of(obj), obj["metadata"]["name"], query, obj, APPLY_PATCH)

    def merge_patch(self, kind: ResourceKind, name: str, patch: Obj) -> Obj | None:
        """JSON merge patch ``name``; None when it does not exist."""
        query = {"fieldManager": FIELD_MANAGER}
        try:
            return self._call("PATCH", kind, name, query, patch, MERGE_PATCH)
        except NotFound:
            return None

    def merge_patch_at(
        self, kind: ResourceKind, name: str, patch: Obj, resource_version: str
    ) -> Obj:
        """JSON merge patch ``name`` only while it is still at ``resource_version``: a
        resourceVersion in a patch's body is a precondition, and the API server answers 409
        Conflict when the object moved on (what controller-runtime's
        ``MergeFromWithOptimisticLock`` relies on, ``pkg/client/patch.go``). ``Conflict``
        then: the caller re-reads and decides, nothing is retried blindly."""
        meta = {**patch.get("metadata", {}), "resourceVersion": resource_version}
        body = {**patch, "metadata": meta}
        query = {"fieldManager": FIELD_MANAGER}

        def attempt() -> Obj:
            try:
                return self._call("PATCH", kind, name, query, body, MERGE_PATCH, retry=False)
            except ApiException as error:
                if error.status == 409:
                    raise Conflict(self._failure("patch", kind, name, error)) from error
                raise

        try:
            return call_with_retries(attempt, self.retry)
        except (ApiException, urllib3.exceptions.HTTPError, ConnectionError) as error:
            raise self._failure("patch", kind, name, error) from error

    def create(self, obj: Obj) -> Obj:
        return self._call("POST", kind_of(obj), None, {"fieldManager": FIELD_MANAGER}, obj)

    def update(self, kind: ResourceKind, name: str, edit: Callable[[Obj], Obj]) -> Obj:
        """Replace ``name`` with ``edit(current)`` under its resourceVersion; no-op when equal.

        A 409 (someone else wrote in between) re-reads and edits again, so the other writer's
        change survives.
        """

        def attempt() -> Obj:
            current = self._call("GET", kind, name, retry=False)
            edited = edit(json.loads(json.dumps(current)))
            if edited == current:
                return current
            return self._call(
                "PUT", kind, name, {"fieldManager": FIELD_MANAGER}, edited, None, False
            )

        try:
            return call_with_retries(attempt, self.retry)
        except (ApiException, urllib3.exceptions.HTTPError, ConnectionError) as error:
            raise self._failure("update", kind, name, error) from error

    def delete(self, kind: ResourceKind, name: str) -> bool:
        """Delete ``name``; False when it was already gone."""
        try:
            self._call("DELETE", kind, name)
        except NotFound:
            return False
        return True

    def served_versions(self) -> dict[str, list[str]]:
        """Every API group the server serves and its versions (discovery: ``GET /apis``,
        which every authenticated client may read through ``system:discovery``)."""

        def read() -> dict[str, list[str]]:
            groups = ApisApi(self.client).get_api_versions(_request_timeout=self.request_timeout_s)
            return {
                group.name: [v.version for v in group.versions or []]
                for group in groups.groups or []
            }

        try:
            return call_with_retries(read, self.retry)
        except (ApiException, urllib3.exceptions.HTTPError, ConnectionError) as error:
            if transport.never_answered(error):
                raise self._failure("discover", None, "", error) from error
            raise PlatformError(
                f"kubernetes API {self.host}: discovery (GET /apis) failed: "
                f"{_status_message(error) if isinstance(error, ApiException) else error}"
            ) from error

    def pod_log(
        self,
        pod: str,
        since_seconds: int,
        container: str | None = None,
        timestamps: bool = False,
    ) -> str:
        """The log of ``container`` in the pod over the last ``since_seconds``; empty when the
        pod is gone or has no log yet: the API server answers 204 with no body for a pod not
        bound to a node (the client returns None), and 400 "is waiting to start" for a
        container not yet started (``pkg/kubelet/kubelet_pods.go: validateContainerLogStatus``).
        ``timestamps``: each line begins with the time the runtime wrote it (RFC 3339 with
        nanoseconds, UTC) and a space (``timestamps=true``)."""

        def read() -> str | None:
            return CoreV1Api(self.client).read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                since_seconds=since_seconds,
                timestamps=timestamps,
                _request_timeout=self.request_timeout_s,
            )

        try:
            text = call_with_retries(read, self.retry)
        except ApiException as error:
            if error.status == 404:
                return ""
            if error.status == 400 and "waiting to start" in str(error.body or ""):
                return ""
            raise self._failure("read log of", POD, pod, error) from error
        except (urllib3.exceptions.HTTPError, ConnectionError) as error:
            raise self._failure("read log of", POD, pod, error) from error
        return text if isinstance(text, str) else ""

    def _call(
        self,
        method: str,
        kind: ResourceKind,
        name: str | None = None,
        query: dict[str, str] | None = None,
        body: Obj | None = None,
        content_type: str | None = None,
        retry: bool = True,
    ) -> Obj:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        request = self.client.param_serialize(
            method=method,
            resource_path=kind.path(self.namespace, name),
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )

        def send() -> Obj:
            response = self.client.call_api(*request, _request_timeout=self.request_timeout_s)
            response.read()
            if not 200 <= response.status <= 299:
                raise ApiException(http_resp=response)
            return json.loads(response.data) if response.data else {}

        try:
            return call_with_retries(send, self.retry) if retry else send()
        except ApiException as error:
            if error.status == 404:
                raise NotFound(self._failure(method, kind, name or "", error)) from error
            if not retry:
                raise
            raise self._failure(method, kind, name or "", error) from error
        except (urllib3.exceptions.HTTPError, ConnectionError) as error:
            if not retry:
                raise
            raise self._failure(method, kind, name or "", error) from error

    def _failure(
        self, verb: str, kind: ResourceKind | None, name: str, error: Exception
    ) -> PlatformError:
        if kind is None:
            target = "API groups (GET /apis)"
        else:
            target = (
                kind.describe(self.namespace, name)
                if name
                else f"{kind.plural} in {self.namespace}"
            )
        if not (isinstance(error, ApiException) and error.status):
            reason = transport.never_answered(error)
            if reason is not None:  # exit 3: nothing reached the API server, try again later
                return PlatformUnreachable(
                    f"kubernetes API {self.host} did not answer ({verb} {target}: {reason}): "
                    "check the kubeconfig context or the in-cluster service account, and that "
                    "the API server is up, then run again",
                    "kubeconfig",
                )
        if isinstance(error, ApiException) and error.status:
            return PlatformError(
                f"kubernetes API {self.host}: {verb} {target} failed: "
                f"HTTP {error.status} {_status_message(error)}"
            )
        return PlatformError(
            f"kubernetes API {self.host} is unreachable ({verb} {target}: "
            f"{type(error).__name__}): check the kubeconfig context or the in-cluster "
            "service account, and that the API server is up"
        )


class NotFound(PlatformError):
    """The object (or its namespace) does not exist."""


class Conflict(PlatformError):
    """The object changed since it was read (HTTP 409 on a resourceVersion precondition)."""


def _status_message(error: ApiException) -> str:
    try:
        status = json.loads(error.body or "")
        return f"{status.get('reason', '')}: {status.get('message', '')}".strip(": ")
    except ValueError:
        return str(error.reason or "")
