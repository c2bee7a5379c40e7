"""A small, stateful Kubernetes API server over real HTTP, for the real ``kubernetes`` client.

It keeps objects in memory and serves get / list (labelSelector) / create / replace / patch
(merge, strategic-merge approximated by merging lists of named items by name, and server-side
apply as create-or-merge of the applied fields) / delete, with resourceVersions, 404 / 409 / 422
answered as ``Status`` objects. Every write is validated with ``tests.kube.schemas`` first, so an
object a real server would reject fails the test.

A simulated Deployment controller creates Pods from the template and writes the status; tests
steer it per Deployment (available, progressing, CrashLoopBackOff, ImagePullBackOff, unready),
write pod logs, inject faults (the next N requests answer 500 / 409 / 429 or drop the connection)
and read the request log.

The ``Progressing`` condition follows the Deployment controller of Kubernetes v1.30:
``pkg/controller/deployment/progress.go`` (``syncRolloutStatus``: complete →
``NewReplicaSetAvailable``; progress made → ``ReplicaSetUpdated`` with a fresh
``lastUpdateTime``; otherwise, once ``DeploymentTimedOut`` → ``status: "False"``, reason
``ProgressDeadlineExceeded``, message ``ReplicaSet "<name>" has timed out progressing.``) and
``pkg/controller/deployment/util/deployment_util.go`` (``DeploymentComplete``,
``DeploymentProgressing``: more updated, fewer old, more ready or more available replicas;
``DeploymentTimedOut``: ``lastUpdateTime + progressDeadlineSeconds`` before now, never after
``NewReplicaSetAvailable``). The real controller re-checks on a resync; this one re-checks
whenever a Deployment is read, which is when a client can notice. ``progressDeadlineSeconds``
defaults to 600 as ``pkg/apis/apps/v1/defaults.go`` sets it.

With ``identities`` set (bearer token -> ``kube.rbac.Authorizer`` of the account the token
authenticates as), the server answers ``SelfSubjectAccessReview`` (authorization.k8s.io/v1) for
the token's own account, as kubernetes v1.30 does
(``pkg/registry/authorization/selfsubjectaccessreview/rest.go``, ``REST.Create``): exactly one of
``spec.resourceAttributes`` / ``spec.nonResourceAttributes`` (``ValidateSelfSubjectAccessReview``,
else 422 Invalid), the attributes checked for the requester's user (``UserFrom(ctx)``, never a
user the body names: a SelfSubjectAccessReview's spec has none), ``status.allowed`` for
``DecisionAllow``, ``status.denied`` for ``DecisionDeny`` (never, from RBAC) and
``status.reason`` the authorizer's reason. Creating one is allowed to every authenticated
identity: the bootstrap ClusterRole ``system:basic-user`` grants create on
``selfsubjectaccessreviews`` and is bound to ``system:authenticated``
(``plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go``, ``ClusterRoles`` and
``ClusterRoleBindings``). ``SelfSubjectReview`` (authentication.k8s.io/v1,
``pkg/registry/authentication/selfsubjectreview/rest.go``) answers the requester's user info.
A token not in ``identities`` is 401 Unauthorized.

``availableReplicas`` counts the ready pods that have been ready for the Deployment's
``minReadySeconds`` (``podutil.IsPodAvailable``, pkg/api/v1/pod/util.go: the Ready condition's
``lastTransitionTime`` plus ``minReadySeconds`` before now); with ``minReadySeconds`` set the
counts are written again whenever the Deployment is read, as the controller's resync would.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from kubernetes.client import ApiClient, Configuration

from . import schemas

Obj = dict[str, Any]

KINDS = {
    ("v1", "pods"): "Pod",
    ("v1", "services"): "Service",
    ("v1", "events"): "Event",
    ("v1", "configmaps"): "ConfigMap",
    ("apps/v1", "deployments"): "Deployment",
    ("networking.k8s.io/v1", "ingresses"): "Ingress",
    ("networking.istio.io/v1", "virtualservices"): "VirtualService",
    ("networking.istio.io/v1", "destinationrules"): "DestinationRule",
    ("gateway.networking.k8s.io/v1", "httproutes"): "HTTPRoute",
    ("split.smi-spec.io/v1alpha4", "trafficsplits"): "TrafficSplit",
    ("autoscaling/v2", "horizontalpodautoscalers"): "HorizontalPodAutoscaler",
}
PLURALS = {kind: plural for (_, plural), kind in KINDS.items()}
ROLLOUTS = (
    "available",
    "progressing",
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "kubelet",
    "unready",
)
"""How the simulated controller brings pods up; ``kubelet``: Pending until a kubelet stand-in
(tests/cluster/kubelet.py) reports them through ``set_pod_status``; ``unready``: pods of a new
template run but never pass readiness, while the pods of an earlier template stay (a rolling
update that cannot make progress), and a template whose pods already run keeps them."""
DEFAULT_PROGRESS_DEADLINE_S = 600
READY_SINCE = "fake.dev/ready-since"
"""When the pod last became ready (the Ready condition's ``lastTransitionTime``)."""


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    api_version: str
    plural: str
    namespace: str
    name: str
    content_type: str
    body: Any
    status: int

    @property
    def kind(self) -> str:
        return KINDS.get((self.api_version, self.plural), "")


@dataclass
class Fault:
    remaining: int
    status: int | str


@dataclass
class FakeApiServer:
    """Start with ``with FakeApiServer() as api:``; ``api.api_client()`` talks to it."""

    validate: Callable[[Obj], None] = schemas.validate
    requests: list[RecordedRequest] = field(default_factory=list)
    _store: dict[tuple[str, str, str, str], Obj] = field(default_factory=dict)
    _version: int = 100
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _faults: list[Fault] = field(default_factory=list)
    _rollouts: dict[tuple[str, str], str] = field(default_factory=dict)
    _logs: dict[tuple[str, str, str], list[tuple[float, str]]] = field(default_factory=dict)
    _unbound: set[tuple[str, str]] = field(default_factory=set)
    _lingering: set[tuple[str, str]] = field(default_factory=set)
    _http: ThreadingHTTPServer | None = None
    default_rollout: str = "available"
    served: frozenset[str] = frozenset(api_version for api_version, _ in KINDS)
    """The group versions the server serves and discovery lists (``/api``, ``/apis``): a
    resource of another version answers 404 as a real server does; versions it lists but
    holds no kinds of (``networking.istio.io/v1beta1``) exist for discovery only."""
    observe: Callable[[FakeApiServer, RecordedRequest], None] | None = None
    """When set, called after every request with the server's state as that request left it
    (under the server's lock, so no other request interleaves): a test sees each moment."""
    authorize: Callable[[Any], bool] | None = None
    """When set (``kube.rbac.Authorizer.allows``), every request is authorized as the API
    server would: a denial answers 403 Forbidden and changes nothing."""
    identities: dict[str, Any] = field(default_factory=dict)
    """Bearer token -> ``kube.rbac.Authorizer`` of the account it authenticates as: the
    self-reviews (SelfSubjectAccessReview, SelfSubjectReview) are answered for it."""

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FakeApiServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    @property
    def url(self) -> str:
        assert self._http is not None, "server not started"
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def api_client(self) -> ApiClient:
        return ApiClient(Configuration(host=self.url))

    # -- test knobs ---------------------------------------------------------------------------

    def seed(self, obj: Obj) -> Obj:
        """Store ``obj`` as a user would have created it (validated)."""
        api_version, plural = obj["apiVersion"], PLURALS[obj["kind"]]
        namespace = obj["metadata"].get("namespace", "default")
        return self._create(api_version, plural, namespace, copy.deepcopy(obj))

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            for (api_version, plural, ns, n), obj in self._store.items():
                if KINDS[(api_version, plural)] == kind and (ns, n) == (namespace, name):
                    return copy.deepcopy(obj)
        return None

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (api_version, plural, ns, _), obj in sorted(self._store.items())
                if KINDS[(api_version, plural)] == kind and namespace in (None, ns)
            ]

    def fail_next(self, count: int, status: int | str = 500) -> None:
        """The next ``count`` requests answer ``status`` (an HTTP code, or "drop")."""
        with self._lock:
            self._faults.append(Fault(count, status))

    def set_rollout(self, namespace: str, deployment: str, rollout: str) -> None:
        """How the simulated controller brings this Deployment's pods up (see ROLLOUTS)."""
        assert rollout in ROLLOUTS, rollout
        with self._lock:
            self._rollouts[(namespace, deployment)] = rollout
            key = ("apps/v1", "deployments", namespace, deployment)
            if key in self._store:
                self._reconcile(self._store[key])

    def set_pod_status(self, namespace: str, pod: str, status: Obj) -> None:
        """A kubelet's status report for one pod; its Deployment's status follows."""
        with self._lock:
            obj = self._store.get(("v1", "pods", namespace, pod))
            if obj is None:
                return
            was_ready = _ready(obj)
            obj["status"] = copy.deepcopy(status)
            if _ready(obj) and not was_ready:
                obj["metadata"]["annotations"][READY_SINCE] = str(time.time())
            elif not _ready(obj):
                obj["metadata"]["annotations"].pop(READY_SINCE, None)
            self._version += 1
            obj["metadata"]["resourceVersion"] = str(self._version)
            key = (
                "apps/v1",
                "deployments",
                namespace,
                obj["metadata"]["annotations"]["fake.dev/deployment"],
            )
            if key in self._store:
                self._reconcile(self._store[key])

    def write_log(
        self,
        namespace: str,
        deployment: str,
        line: str,
        at: float | None = None,
        container: str | None = None,
    ):
        """Append a log line to ``container`` (default: the first) of every pod of the
        Deployment."""
        with self._lock:
            for pod in self._pods_of(namespace, deployment):
                name = container or pod["spec"]["containers"][0]["name"]
                entry = (time.time() if at is None else at, line)
                key = (namespace, pod["metadata"]["name"], name)
                self._logs.setdefault(key, []).append(entry)

    def linger(self, namespace: str, deployment: str) -> None:
        """The pods this Deployment's rollouts replace stay, shutting down (for good: the
        kubelet never finishes): ``metadata.deletionTimestamp`` and
        ``deletionGracePeriodSeconds`` set, as the API server marks a pod it has been asked to
        delete while the kubelet runs its ``terminationGracePeriodSeconds``. Their status is
        left as it was (a draining container may still pass its readiness probe). The
        controller's counts leave them out, as the ReplicaSet controller counts only active
        pods (``controller.FilterActivePods``, pkg/controller/controller_utils.go, v1.30):
        ``status.replicas`` is "non-terminated pods targeted by this deployment"."""
        with self._lock:
            self._lingering.add((namespace, deployment))

    def unbind(self, namespace: str, deployment: str) -> None:
        """The Deployment's pods are not yet scheduled to a node (no ``spec.nodeName``)."""
        with self._lock:
            for pod in self._pods_of(namespace, deployment):
                self._unbound.add((namespace, pod["metadata"]["name"]))

    def writes(self, kind: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.method != "GET" and r.status < 400 and kind in (None, r.kind)
        ]

    # -- request handling ---------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], ctype: str, raw: bytes, token=""
    ):
        """Returns (status, body, content_type) or "drop"; ``token``: the request's bearer
        token (who is asking, for the self-reviews)."""
        api_version, plural, namespace, name, sub = _parse_path(path)
        body = _decode(raw, ctype) if raw else None
        with self._lock:
            fault = next((f for f in self._faults if f.remaining > 0), None)
            if fault:
                fault.remaining -= 1
            review = SELF_REVIEWS.get(path.rstrip("/")) if self.identities else None
            denied = (
                None
                if fault or review
                else self._denied(
                    method, api_version, plural, namespace, name, sub, query, ctype, body
                )
            )
            status, payload, out_type = (
                _fault_response(fault.status)
                if fault
                else self._self_review(review, method, token, body)
                if review
                else denied
                or self._dispatch(
                    method, api_version, plural, namespace, name, sub, query, ctype, body
                )
            )
            request = RecordedRequest(
                method, api_version, plural, namespace, name, ctype, body, status
            )
            self.requests.append(request)
            if self.observe is not None:
                self.observe(self, request)
        return status, payload, out_type

    def _denied(self, method, api_version, plural, namespace, name, sub, query, ctype, body):
        """403 when ``authorize`` refuses the request (or, for a server-side apply that would
        create its object, the ``create`` of that name the API server checks too)."""
        if self.authorize is None or (api_version, plural) not in KINDS:
            return None
        from kube.rbac import request_attributes

        attributes = request_attributes(method, api_version, plural, namespace, name, sub, query)
        checks = [attributes]
        creating = (api_version, plural, namespace, name) not in self._store
        if method == "PATCH" and ctype.startswith("application/apply-patch") and creating:
            checks.append(dataclasses.replace(attributes, verb="create"))
        for check in checks:
            if not self.authorize(check):
                group = check.api_group or '""'
                message = (
                    f'{plural} "{name}" is forbidden: cannot {check.verb} resource "{plural}" '
                    f'in API group {group} in the namespace "{namespace}"'
                )
                return 403, ApiError(403, "Forbidden", message).status(), "application/json"
        return None

    def _self_review(self, kind: str, method: str, token: str, body: Any):
        """A SelfSubjectAccessReview or SelfSubjectReview of the token's account (see the
        module's doc: rest.go's ``REST.Create`` of each)."""
        from kube.rbac import Attributes

        try:
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
            authorizer = self.identities.get(token)
            if authorizer is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            review = copy.deepcopy(body) if isinstance(body, dict) else {}
            if kind == "SelfSubjectReview":
                review["status"] = {
                    "userInfo": {
                        "username": authorizer.subject.username,
                        "groups": list(authorizer.subject.groups),
                    }
                }
                return 201, review, "application/json"
            spec = review.get("spec") or {}
            resource, non_resource = (
                spec.get("resourceAttributes"),
                spec.get("nonResourceAttributes"),
            )
            if (resource is None) == (non_resource is None):
                raise ApiError(
                    422,
                    "Invalid",
                    'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: '
                    "spec.resourceAttributes: Invalid value: exactly one of "
                    "nonResourceAttributes or resourceAttributes must be specified",
                )
            if resource is None:  # the chart grants no non-resource URL: no opinion
                allowed, reason = False, ""
            else:
                allowed, reason = authorizer.authorize(
                    Attributes(
                        verb=resource.get("verb", ""),
                        namespace=resource.get("namespace", ""),
                        api_group=resource.get("group", ""),
                        resource=resource.get("resource", ""),
                        subresource=resource.get("subresource", ""),
                        name=resource.get("name", ""),
                    )
                )
            status: Obj = {"allowed": allowed}  # denied and reason: omitempty
            if reason:
                status["reason"] = reason
            review["status"] = status
            return 201, review, "application/json"
        except ApiError as error:
            return error.code, error.status(), "application/json"

    def _dispatch(self, method, api_version, plural, namespace, name, sub, query, ctype, body):
        try:
            if method == "GET" and plural == "" and api_version in ("", "apis", "api"):
                return 200, self._discovery(api_version), "application/json"
            if method == "GET" and plural == "" and api_version in self.served:
                return 200, self._resources(api_version), "application/json"
            if (api_version, plural) not in KINDS or api_version not in self.served:
                raise ApiError(404, "NotFound", f"the server could not find {api_version}/{plural}")
            if sub == "log":
                return self._read_log(namespace, name, query)
            if method == "GET" and not name:
                return 200, self._list(api_version, plural, namespace, query), "application/json"
            if method == "GET":
                return 200, self._read(api_version, plural, namespace, name), "application/json"
            if method == "POST":
                return 201, self._create(api_version, plural, namespace, body), "application/json"
            if method == "PUT":
                obj = self._replace(api_version, plural, namespace, name, body)
                return 200, obj, "application/json"
            if method == "PATCH":
                obj = self._patch(api_version, plural, namespace, name, ctype, query, body)
                return 200, obj, "application/json"
            if method == "DELETE":
                return 200, self._delete(api_version, plural, namespace, name), "application/json"
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
        except ApiError as error:
            return error.code, error.status(), "application/json"

    # -- discovery ----------------------------------------------------------------------------

    def _discovery(self, root: str) -> Obj:
        """``GET /api`` (APIVersions) or ``GET /apis`` (APIGroupList), as
        k8s.io/apimachinery/pkg/apis/meta/v1 types.go defines them."""
        if root == "api":
            return {"kind": "APIVersions", "apiVersion": "v1", "versions": ["v1"]}
        if root != "apis":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        groups: dict[str, list[str]] = {}
        for group_version in sorted(self.served):
            if "/" in group_version:
                group, version = group_version.split("/", 1)
                groups.setdefault(group, []).append(version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {
                        "groupVersion": f"{group}/{versions[0]}",
                        "version": versions[0],
                    },
                }
                for group, versions in groups.items()
            ],
        }

    def _resources(self, group_version: str) -> Obj:
        """``GET /apis/<group>/<version>`` (``/api/v1``): the APIResourceList a client maps a
        kind to its resource with (client-go's RESTMapper, e.g. Helm's ``lookup``). Every kind
        here is namespaced."""
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": [
                {
                    "name": plural,
                    "singularName": kind.lower(),
                    "namespaced": True,
                    "kind": kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update"],
                }
                for (version, plural), kind in sorted(KINDS.items())
                if version == group_version
            ],
        }

    # -- verbs --------------------------------------------------------------------------------

    def _read(self, api_version: str, plural: str, namespace: str, name: str) -> Obj:
        obj = self._store.get((api_version, plural, namespace, name))
        if obj is None:
            kind = KINDS[(api_version, plural)].lower()
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found ({kind})')
        if plural == "deployments":
            self._tick(obj)
        return obj

    def _list(self, api_version: str, plural: str, namespace: str, query: dict) -> Obj:
        wanted = _parse_selector(query.get("labelSelector", ""))
        items = [
            obj
            for (v, p, ns, _), obj in sorted(self._store.items())
            if (v, p, ns) == (api_version, plural, namespace)
            and _matches(wanted, obj["metadata"].get("labels", {}))
        ]
        return {
            "apiVersion": api_version,
            "kind": KINDS[(api_version, plural)] + "List",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _create(self, api_version: str, plural: str, namespace: str, obj: Obj) -> Obj:
        name = obj.get("metadata", {}).get("name", "")
        if (api_version, plural, namespace, name) in self._store:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        return self._write(api_version, plural, namespace, obj, previous=None)

    def _replace(self, api_version, plural, namespace, name, obj: Obj) -> Obj:
        current = self._read(api_version, plural, namespace, name)
        sent = obj.get("metadata", {}).get("resourceVersion")
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
            )
        return self._write(api_version, plural, namespace, obj, previous=current)

    def _patch(self, api_version, plural, namespace, name, ctype, query, patch: Obj) -> Obj:
        current = self._store.get((api_version, plural, namespace, name))
        if ctype.startswith("application/apply-patch"):
            if not query.get("fieldManager"):
                raise ApiError(422, "Invalid", "fieldManager is required for apply requests")
            if current is None:
                return self._write(api_version, plural, namespace, patch, previous=None)
            return self._write(
                api_version, plural, namespace, _merge(current, patch, keyed=True), current
            )
        if current is None:
            return self._read(api_version, plural, namespace, name)
        sent = (patch.get("metadata") or {}).get("resourceVersion")
        if sent and sent != current["metadata"]["resourceVersion"]:
            # A resourceVersion in a patch is a precondition (controller-runtime's
            # MergeFromWithOptimisticLock relies on it).
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
            )
        if ctype.startswith("application/merge-patch"):
            merged = _merge(current, patch, keyed=False)
        elif ctype.startswith("application/strategic-merge-patch"):
            merged = _merge(current, patch, keyed=True)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ctype}")
        return self._write(api_version, plural, namespace, merged, previous=current)

    def _delete(self, api_version: str, plural: str, namespace: str, name: str) -> Obj:
        obj = self._read(api_version, plural, namespace, name)
        del self._store[(api_version, plural, namespace, name)]
        if plural == "deployments":
            self._set_pods(namespace, name, [])  # the garbage collector deletes its pods
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "kind": plural, "uid": obj["metadata"]["uid"]},
        }

    def _write(self, api_version, plural, namespace, obj: Obj, previous: Obj | None) -> Obj:
        obj = copy.deepcopy(obj)
        kind = KINDS[(api_version, plural)]
        if obj.get("apiVersion") != api_version or obj.get("kind") != kind:
            raise ApiError(400, "BadRequest", f"body is not a {api_version} {kind}")
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        meta["namespace"] = namespace
        self._version += 1
        meta["resourceVersion"] = str(self._version)
        if previous is None:
            meta["uid"] = _uid(f"{namespace}/{meta['name']}/{self._version}")
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
        else:
            for kept in ("uid", "creationTimestamp", "generation"):
                meta[kept] = previous["metadata"][kept]
            if obj.get("spec") != previous.get("spec"):
                meta["generation"] += 1
            if "status" in previous:
                obj["status"] = previous["status"]
            _check_immutable(kind, previous, obj)
        _check_size(kind, obj)
        try:
            self.validate(obj)
        except schemas.SchemaViolation as error:
            raise ApiError(422, "Invalid", str(error)) from error
        self._store[(api_version, plural, namespace, meta["name"])] = obj
        if plural == "deployments":
            self._reconcile(obj)
        return obj

    # -- simulated controller -----------------------------------------------------------------

    def _reconcile(self, deployment: Obj) -> None:
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        rollout = self._rollouts.get((namespace, name), self.default_rollout)
        replicas = deployment["spec"].get("replicas", 1)
        template = deployment["spec"]["template"]
        template_hash = _template_hash(template)
        pods = [
            _pod(namespace, f"{name}-{template_hash[:10]}-{i}", template, rollout)
            for i in range(replicas)
        ]
        for pod in pods:
            _owned_by_replica_set(pod, name, template_hash[:10])
        current = {p["metadata"]["name"]: p for p in self._pods_of(namespace, name)}
        for pod in pods:  # a pod that stays (same name, still ready) stays available
            kept = current.get(pod["metadata"]["name"])
            if kept is not None and _ready(kept) and _ready(pod):
                pod["metadata"]["annotations"][READY_SINCE] = kept["metadata"]["annotations"].get(
                    READY_SINCE, pod["metadata"]["annotations"].get(READY_SINCE)
                )
        if rollout in ("kubelet", "unready"):
            # The RollingUpdate default (maxSurge 25 % rounded up, maxUnavailable 25 % rounded
            # down): pods of the current template are kept, the new ones come up beside the
            # old, and the old go once every new pod is ready.
            current = {p["metadata"]["name"]: p for p in self._pods_of(namespace, name)}
            pods = [copy.deepcopy(current.get(p["metadata"]["name"], p)) for p in pods]
            wanted = {p["metadata"]["name"] for p in pods}
            if not all(_ready(p) for p in pods):
                pods += [copy.deepcopy(p) for n, p in current.items() if n not in wanted]
        self._set_pods(namespace, name, pods)
        deployment["status"] = self._deployment_status(deployment)

    def _deployment_status(self, deployment: Obj) -> Obj:
        """Counts as the Deployment controller writes them, over the pods not being deleted
        (``linger``): ``replicas`` every one, old and new; ``updatedReplicas`` those of the
        current template; ready/available every ready one; and the ``Progressing`` condition
        (see the module docstring)."""
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        template_hash = _template_hash(deployment["spec"]["template"])
        pods = self._pods_of(namespace, name)
        updated = sum(
            p["metadata"]["name"].startswith(f"{name}-{template_hash[:10]}-") for p in pods
        )
        ready = sum(_ready(p) for p in pods)
        min_ready_s = deployment["spec"].get("minReadySeconds", 0)
        available = sum(_available(p, min_ready_s) for p in pods)
        status: Obj = {"observedGeneration": deployment["metadata"]["generation"]}
        counts = {"replicas": len(pods), "updatedReplicas": updated}
        counts |= {"readyReplicas": ready, "availableReplicas": available}
        status |= {k: v for k, v in counts.items() if v}
        previous = deployment.get("status") or {}
        condition = _progressing_condition(deployment, previous, status, template_hash)
        if condition is not None:
            status["conditions"] = [condition]
        return status

    def _tick(self, deployment: Obj) -> None:
        """The controller's resync: a rollout without progress times out."""
        status = deployment.get("status")
        if status is None:
            return
        if deployment["spec"].get("minReadySeconds"):  # pods may have become available
            fresh = self._deployment_status(deployment)
            if fresh != status:
                deployment["status"] = fresh
                self._version += 1
                deployment["metadata"]["resourceVersion"] = str(self._version)
            return
        template_hash = _template_hash(deployment["spec"]["template"])
        condition = _progressing_condition(deployment, status, status, template_hash)
        if condition is not None and [condition] != status.get("conditions"):
            status["conditions"] = [condition]
            self._version += 1
            deployment["metadata"]["resourceVersion"] = str(self._version)

    def _pods_of(self, namespace: str, deployment: str) -> list[Obj]:
        """The Deployment's active pods (none being deleted): what the controller counts."""
        return [
            obj
            for obj in self._all_pods_of(namespace, deployment)
            if not obj["metadata"].get("deletionTimestamp")
        ]

    def _terminating_of(self, namespace: str, deployment: str) -> list[Obj]:
        return [
            obj
            for obj in self._all_pods_of(namespace, deployment)
            if obj["metadata"].get("deletionTimestamp")
        ]

    def _all_pods_of(self, namespace: str, deployment: str) -> list[Obj]:
        return [
            obj
            for (v, p, ns, _), obj in self._store.items()
            if (v, p, ns) == ("v1", "pods", namespace)
            and obj["metadata"]["annotations"]["fake.dev/deployment"] == deployment
        ]

    def _set_pods(self, namespace: str, deployment: str, pods: list[Obj]) -> None:
        """The Deployment's active pods become ``pods``; those that go are deleted at once, or
        (``linger``) left terminating, also when the Deployment itself was deleted (the
        garbage collector deletes its pods gracefully, ``propagationPolicy: Background``). A
        terminating pod whose name a new pod takes (the fake names pods by template) is gone."""
        names = {pod["metadata"]["name"] for pod in pods}
        linger = (namespace, deployment) in self._lingering
        for pod in self._pods_of(namespace, deployment):
            name = pod["metadata"]["name"]
            if linger and name not in names:
                pod["metadata"]["deletionTimestamp"] = _now()
                pod["metadata"]["deletionGracePeriodSeconds"] = 30
                self._version += 1
                pod["metadata"]["resourceVersion"] = str(self._version)
            else:
                self._drop_pod(namespace, name)
        for pod in self._terminating_of(namespace, deployment):
            if pod["metadata"]["name"] in names:
                self._drop_pod(namespace, pod["metadata"]["name"])
        for pod in pods:
            pod["metadata"]["annotations"]["fake.dev/deployment"] = deployment
            self._version += 1
            pod["metadata"]["resourceVersion"] = str(self._version)
            self._store[("v1", "pods", namespace, pod["metadata"]["name"])] = pod

    def _drop_pod(self, namespace: str, name: str) -> None:
        del self._store[("v1", "pods", namespace, name)]
        for key in [k for k in self._logs if k[:2] == (namespace, name)]:
            del self._logs[key]

    def _read_log(self, namespace: str, pod: str, query: dict[str, str]):
        """The API server's pod log rules (``pkg/registry/core/pod/strategy.go: LogLocation``):
        the container is validated first (a pod with several has no default: 400), then a pod
        not bound to a node has no log location: 204 with no body."""
        obj = self._read("v1", "pods", namespace, pod)
        containers = [c["name"] for c in obj["spec"]["containers"]]
        container = query.get("container")
        if not container:
            if len(containers) != 1:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {pod}, "
                    f"choose one of: [{' '.join(containers)}]",
                )
            container = containers[0]
        if container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod}")
        if (namespace, pod) in self._unbound:
            return 204, "", "text/plain"
        since = float(query.get("sinceSeconds", "inf"))
        lines = self._logs.get((namespace, pod, container), [])
        stamped = query.get("timestamps") == "true"  # RFC 3339 with nanoseconds, as kubelet
        text = "".join(
            f"{_rfc3339_nano(at) + ' ' if stamped else ''}{line}\n"
            for at, line in lines
            if time.time() - at <= since
        )
        return 200, text, "text/plain"


def _rfc3339_nano(at: float) -> str:
    """``at`` as the kubelet stamps a log line (``timestamps=true``): UTC, nine decimals."""
    whole = math.floor(at)
    nanos = round((at - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    day = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{nanos:09d}Z"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeApiServer
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per response: no delayed-ACK stalls on keep-alive
    disable_nagle_algorithm = True

    def do_request(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ctype = self.headers.get("Content-Type", "")
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        status, payload, out_type = self.fake.handle(
            self.command, url.path, query, ctype, raw, token=token
        )
        if status == "drop":
            self.close_connection = True
            return
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", out_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_request

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log is ``FakeApiServer.requests``."""


SELF_REVIEWS = {
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews": "SelfSubjectAccessReview",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews": "SelfSubjectReview",
}


def _parse_path(path: str) -> tuple[str, str, str, str, str]:
    """(apiVersion, plural, namespace, name, subresource) of a namespaced resource path."""
    parts = [p for p in path.split("/") if p]
    if parts in (["api"], ["apis"]):
        return parts[0], "", "", "", ""
    if parts[:1] == ["api"]:
        api_version, rest = parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return "", "", "", "", ""
    if len(rest) < 3 or rest[0] != "namespaces":
        return api_version, "", "", "", ""
    name = rest[3] if len(rest) > 3 else ""
    sub = rest[4] if len(rest) > 4 else ""
    return api_version, rest[2], rest[1], name, sub


def _decode(raw: bytes, ctype: str) -> Any:
    return yaml.safe_load(raw) if "yaml" in ctype else json.loads(raw)


def _fault_response(status: int | str) -> tuple[int | str, Obj, str]:
    if status == "drop":
        return "drop", {}, ""
    reasons = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError"}
    error = ApiError(int(status), reasons.get(int(status), "ServiceUnavailable"), "injected fault")
    return int(status), error.status(), "application/json"


def _merge(current: Any, patch: Any, keyed: bool) -> Any:
    """JSON merge patch; with ``keyed`` lists of named objects merge by name (strategic/apply)."""
    if isinstance(current, dict) and isinstance(patch, dict):
        merged = dict(current)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = _merge(current.get(key), value, keyed)
        return merged
    if keyed and _named_items(current) and _named_items(patch):
        by_name = {item["name"]: item for item in current}
        return [_merge(by_name.get(item["name"]), item, keyed) for item in patch]
    return copy.deepcopy(patch)


def _named_items(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def _check_immutable(kind: str, previous: Obj, obj: Obj) -> None:
    if kind == "Deployment" and previous["spec"]["selector"] != obj["spec"].get("selector"):
        raise ApiError(
            422, "Invalid", "spec.selector: Invalid value: field is immutable (Deployment)"
        )


MAX_CONFIG_MAP_BYTES = 1024 * 1024


def _check_size(kind: str, obj: Obj) -> None:
    """``ValidateConfigMap`` (pkg/apis/core/validation/validation.go): the bytes of every
    ``data`` and ``binaryData`` value, keys not counted, at most ``core.MaxSecretSize``."""
    if kind != "ConfigMap":
        return
    size = sum(len(v.encode()) for v in (obj.get("data") or {}).values())
    size += sum(len(v) * 3 // 4 - v.count("=") for v in (obj.get("binaryData") or {}).values())
    if size > MAX_CONFIG_MAP_BYTES:
        name = obj["metadata"]["name"]
        raise ApiError(
            422,
            "Invalid",
            f'ConfigMap "{name}" is invalid: []: Too long: may not be more than '
            f"{MAX_CONFIG_MAP_BYTES} bytes",
        )


def _parse_selector(text: str) -> list[tuple[str, str, str]]:
    terms = []
    for term in filter(None, text.split(",")):
        for op in ("!=", "==", "="):
            if op in term:
                key, value = term.split(op, 1)
                terms.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            terms.append((term.strip(), "exists", ""))
    return terms


def _matches(terms: list[tuple[str, str, str]], labels: dict[str, str]) -> bool:
    for key, op, value in terms:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
    return True


def _pod(namespace: str, name: str, template: Obj, rollout: str) -> Obj:
    containers = template["spec"]["containers"]
    state: Obj = {"running": {"startedAt": _now()}}
    if rollout in ("CrashLoopBackOff", "ImagePullBackOff"):
        message = {
            "CrashLoopBackOff": "back-off 40s restarting failed container",
            "ImagePullBackOff": "Back-off pulling image",
        }[rollout]
        state = {"waiting": {"reason": rollout, "message": message}}
    if rollout == "kubelet":
        state = {"waiting": {"reason": "ContainerCreating"}}
    ready = rollout == "available"
    if rollout == "unready":
        state = {"running": {"startedAt": _now()}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(template["metadata"].get("labels", {})),
            "annotations": {READY_SINCE: str(time.time())} if ready else {},
            "uid": _uid(name),
        },
        "spec": copy.deepcopy(template["spec"]),
        "status": {
            "phase": "Running" if ready or rollout == "unready" else "Pending",
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "ready": ready,
                    "restartCount": 3 if rollout == "CrashLoopBackOff" else 0,
                    "state": state,
                }
                for c in containers
            ],
        },
    }


def _owned_by_replica_set(pod: Obj, deployment: str, pod_template_hash: str) -> None:
    """As the Deployment controller makes them (Kubernetes v1.30
    ``pkg/controller/deployment/sync.go``, ``getNewReplicaSet``): the ReplicaSet is named
    ``<deployment>-<hash>``, its pods carry ``pod-template-hash: <hash>`` beside the template's
    labels and name the ReplicaSet as their controlling owner."""
    pod["metadata"]["labels"]["pod-template-hash"] = pod_template_hash
    pod["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": f"{deployment}-{pod_template_hash}",
            "uid": _uid(f"{deployment}-{pod_template_hash}"),
            "controller": True,
        }
    ]


def _ready(pod: Obj) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses", [])
    return bool(statuses) and all(c.get("ready") for c in statuses)


def _available(pod: Obj, min_ready_s: float) -> bool:
    """Ready for ``min_ready_s`` (``podutil.IsPodAvailable``)."""
    if not _ready(pod):
        return False
    since = float(pod["metadata"].get("annotations", {}).get(READY_SINCE, 0))
    return min_ready_s <= 0 or time.time() - since >= min_ready_s


def _template_hash(template: Obj) -> str:
    return hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()


def _progressing_condition(
    deployment: Obj, previous: Obj, status: Obj, template_hash: str
) -> Obj | None:
    """The ``Progressing`` condition ``syncRolloutStatus`` writes from ``previous`` to ``status``
    (progress.go and deployment_util.go, v1.30)."""
    spec = deployment["spec"]
    replicas = spec.get("replicas", 1)
    rs_name = f"{deployment['metadata']['name']}-{template_hash[:10]}"
    now = datetime.now(UTC)
    old = next((c for c in previous.get("conditions", []) if c.get("type") == "Progressing"), None)

    def condition(state: str, reason: str, message: str, fresh: bool) -> Obj:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        keep = old is not None and old["status"] == state
        return {
            "type": "Progressing",
            "status": state,
            "reason": reason,
            "message": message,
            "lastUpdateTime": stamp if fresh or old is None else old["lastUpdateTime"],
            "lastTransitionTime": old["lastTransitionTime"] if keep else stamp,
        }

    def count(s: Obj, key: str) -> int:
        return s.get(key, 0)

    complete = (
        count(status, "updatedReplicas") == replicas
        and count(status, "replicas") == replicas
        and count(status, "availableReplicas") == replicas
    )
    if complete:
        message = f'ReplicaSet "{rs_name}" has successfully progressed.'
        return condition(
            "True",
            "NewReplicaSetAvailable",
            message,
            old is None or old["reason"] != "NewReplicaSetAvailable",
        )
    new_rs = old is None or rs_name not in old.get("message", "")
    progressing = (
        count(status, "updatedReplicas") > count(previous, "updatedReplicas")
        or count(status, "replicas") - count(status, "updatedReplicas")
        < count(previous, "replicas") - count(previous, "updatedReplicas")
        or count(status, "readyReplicas") > count(previous, "readyReplicas")
        or count(status, "availableReplicas") > count(previous, "availableReplicas")
    )
    if new_rs or progressing:
        return condition(
            "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', True
        )
    assert old is not None
    if old["reason"] == "ProgressDeadlineExceeded":
        return old
    deadline = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_S)
    last = datetime.strptime(old["lastUpdateTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if old["reason"] != "NewReplicaSetAvailable" and (now - last).total_seconds() > deadline:
        message = f'ReplicaSet "{rs_name}" has timed out progressing.'
        return condition("False", "ProgressDeadlineExceeded", message, True)
    return old


def _uid(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()[:32]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
