"""The fake API server (tests/kube) with what ``canaryflow doctor`` reads besides the kinds it
serves: cluster-scoped CustomResourceDefinitions, API discovery (``/apis``, an
``APIGroupList`` of the groups and versions served), and read-only namespaced objects of other
kinds (Secrets, PersistentVolumeClaims, EventSources), listed with label selectors. Reads only:
doctor writes nothing, and a write here is a 405. ``forbid`` answers 403 under a path, as an
API server does for a verb RBAC does not grant."""

from __future__ import annotations

import copy
from typing import Any

from kube.fake_apiserver import FakeApiServer, _matches, _parse_selector

Obj = dict[str, Any]
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


class DoctorApiServer(FakeApiServer):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._extra: dict[str, Obj] = {}
        self._groups: dict[str, list[str]] = {}
        self._forbidden: list[str] = []
        self.paths: list[tuple[str, str]] = []
        """Every request as (method, path), those the base server answers too."""

    def crd(self, plural: str, group: str, versions: tuple[str, ...] = ("v1",)) -> None:
        """A CustomResourceDefinition (its group served in discovery too)."""
        name = f"{plural}.{group}"
        self._extra[f"{CRDS}/{name}"] = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "names": {"plural": plural},
                "scope": "Namespaced",
                "versions": [
                    {"name": v, "served": True, "storage": i == 0} for i, v in enumerate(versions)
                ],
            },
        }
        self.serve(group, *versions)

    def serve(self, group: str, *versions: str) -> None:
        served = self._groups.setdefault(group, [])
        served += [v for v in versions if v not in served]

    def put(self, plural: str, obj: Obj) -> None:
        """A namespaced object of a kind the base server does not serve (read-only here)."""
        api_version, meta = obj["apiVersion"], obj["metadata"]
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
        self._extra[path] = copy.deepcopy(obj)

    def forbid(self, path_prefix: str) -> None:
        self._forbidden.append(path_prefix)

    def handle(
        self, method: str, path: str, query: dict[str, str], ctype: str, raw: bytes, token=""
    ):
        self.paths.append((method, path))
        if any(path.startswith(prefix) for prefix in self._forbidden):
            return (
                403,
                _status(403, "Forbidden", f'{path} is forbidden for "doctor"'),
                "application/json",
            )
        if path == "/apis":
            return 200, self._discovery(), "application/json"
        if path in self._extra:
            if method != "GET":
                return 405, _status(405, "MethodNotAllowed", "read-only"), "application/json"
            return 200, copy.deepcopy(self._extra[path]), "application/json"
        listed = [o for p, o in self._extra.items() if p.rsplit("/", 1)[0] == path]
        if (
            listed
            or path == CRDS
            or path.endswith(("/secrets", "/persistentvolumeclaims", "/eventsources"))
        ) and method == "GET":
            wanted = _parse_selector(query.get("labelSelector", ""))
            items = [o for o in listed if _matches(wanted, o["metadata"].get("labels", {}))]
            return 200, {"kind": "List", "apiVersion": "v1", "items": items}, "application/json"
        known = path.startswith(CRDS) or "/secrets/" in path or "/persistentvolumeclaims/" in path
        if known or "/eventsources/" in path:
            return 404, _status(404, "NotFound", f"{path} not found"), "application/json"
        return super().handle(method, path, query, ctype, raw, token=token)

    def _discovery(self) -> Obj:
        groups = {"apps": ["v1"], "networking.k8s.io": ["v1"], **self._groups}
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": name,
                    "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
                    "preferredVersion": {
                        "groupVersion": f"{name}/{versions[0]}",
                        "version": versions[0],
                    },
                }
                for name, versions in groups.items()
            ],
        }


def _status(code: int, reason: str, message: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }
