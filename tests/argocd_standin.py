"""A stand-in for Argo CD's application controller: auto-sync with self-heal and prune, label
tracking, ``ignoreDifferences`` by JSON pointer, reading a real Git repository; and one for
Flux's kustomize-controller (``FluxStandIn``, below).

What it follows (argo-cd v2.x/v3.x docs and source):

- Resource tracking, label method (user-guide/resource_tracking.md): every object applied from
  Git gets ``app.kubernetes.io/instance: <application>``; the application's live objects are
  those carrying the label with no ownerReferences (``isRootAppNode``, an app name and no
  owner, in the controller's cluster cache).
- Automated sync (user-guide/auto_sync.md): a new commit on the followed branch is synced;
  with ``selfHeal: true`` a live object that drifted from Git is synced back; with
  ``prune: true`` a tracked live object that Git no longer holds is deleted.
- Diffing customisation (user-guide/diffing.md; util/argo/normalizers/diff_normalizer.go of the v3
  module at commit 000039b5, ``NewIgnoreNormalizer`` and ``Normalize``): each ``jsonPointers`` entry
  becomes an RFC 6902 ``remove`` applied to both the Git and the live object before they are
  compared; a path missing from the object is skipped. Each ``jqPathExpressions`` entry ``E`` runs
  as ``del(E)`` (gojq there; the jq program here, the same language for these paths). With the
  sync option ``RespectIgnoreDifferences=true`` (user-guide/sync-options.md) a sync applies Git's
  object with the ignored fields copied from live, as controller/sync.go's
  ``normalizeTargetResources`` (argo-cd commit 37ee0097) does for a custom resource: a JSON merge
  patch (RFC 7386, in which a list is one value) from the normalised live object to the live
  object, applied to the normalised Git object, then ``restoreNonIgnoredFields``.
- A difference is a field Git sets that the live object holds differently (fields only the
  cluster or other writers set, such as status, are not a difference: the three-way diff).

A Helm source (a chart at the path: Argo CD renders it with ``helm template`` and the chart's
values.yaml) is rendered with Helm's engine (helm-python-sdk). The kustomization ``images``
transformer (kustomize ``api/filters/imagetag``: a container
image whose name matches ``images[].name`` becomes ``newName`` with ``@digest`` or
``:newTag``) is applied when the application path holds a kustomization.yaml.

It writes through the fake API server's own store (validated like any write) but not through
HTTP, so the server's request log holds only canaryflow's requests.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from git_server import GIT_ENV
from kube.fake_apiserver import KINDS, PLURALS, FakeApiServer

Obj = dict[str, Any]
INSTANCE_LABEL = "app.kubernetes.io/instance"
TRACKED_KINDS = ("Deployment", "Service", "HTTPRoute", "Ingress", "VirtualService")
API_VERSIONS = {kind: api_version for (api_version, _), kind in KINDS.items()}


@dataclass
class ArgoCdStandIn:
    api: FakeApiServer
    repository: str
    path: str
    application: str
    namespace: str
    ignore_differences: list[Obj] = field(default_factory=list)
    respect_ignore_differences: bool = False
    interval_s: float = 0.1
    syncs: int = 0
    paused: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _checkout: tempfile.TemporaryDirectory | None = None

    # -- loop ----------------------------------------------------------------------------------

    def __enter__(self) -> ArgoCdStandIn:
        self._checkout = tempfile.TemporaryDirectory(prefix="argocd-standin-")
        self.sync_once()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._checkout is not None:
            self._checkout.cleanup()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self.paused:
                self.sync_once()

    def wait_syncs(self, count: int = 2, timeout_s: float = 20.0) -> None:
        """Until ``count`` more syncs have run (each reads Git and reconciles)."""
        target = self.syncs + count
        stop = threading.Event()
        deadline = timeout_s
        while self.syncs < target and deadline > 0:
            stop.wait(0.05)
            deadline -= 0.05
        assert self.syncs >= target, "the sync loop stalled"

    # -- one sync ------------------------------------------------------------------------------

    def sync_once(self) -> None:
        desired = [self._tracked(obj) for obj in self._from_git()]
        wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in desired}
        for obj in desired:
            live = self.api.get(obj["kind"], self.namespace, obj["metadata"]["name"])
            if live is None:
                self._write(obj, None)
            elif self._differs(obj, live):
                self._write(self._synced(obj, live), live)
        for kind in TRACKED_KINDS:
            for live in self.api.objects(kind, self.namespace):
                meta = live["metadata"]
                ours = (meta.get("labels") or {}).get(INSTANCE_LABEL) == self.application
                if ours and not meta.get("ownerReferences") and (kind, meta["name"]) not in wanted:
                    self._delete(live)
        self.syncs += 1

    def _from_git(self) -> list[Obj]:
        assert self._checkout is not None
        work = Path(self._checkout.name) / "repo"
        if not work.exists():
            self._git("clone", "--quiet", "--", self.repository, str(work), cwd=work.parent)
        else:
            self._git("fetch", "--quiet", "origin", cwd=work)
            self._git("reset", "--quiet", "--hard", "origin/HEAD", cwd=work)
        root = work / self.path
        kustomization = root / "kustomization.yaml"
        if (root / "Chart.yaml").is_file():  # a Helm source: Helm's own engine renders it
            with helm.Chart.load(str(root)) as chart:
                rendered = chart.render(
                    {}, name=self.application, namespace=self.namespace, is_install=True
                )
            return [o for text in rendered.values() for o in yaml.safe_load_all(text) if o]
        if kustomization.is_file():
            spec = yaml.safe_load(kustomization.read_text())
            files = [root / name for name in spec.get("resources", [])]
            images = spec.get("images", [])
        else:
            files, images = sorted(root.glob("*.yaml")), []
        objects = [o for f in files for o in yaml.safe_load_all(f.read_text()) if o]
        return [_images_transformed(obj, images) for obj in objects]

    def _git(self, *args: str, cwd: Path) -> None:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr

    def _tracked(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = self.namespace
        meta.setdefault("labels", {})[INSTANCE_LABEL] = self.application
        return obj

    # -- diffing -------------------------------------------------------------------------------

    def _matching(self, obj: Obj) -> list[Obj]:
        group = obj["apiVersion"].rpartition("/")[0]
        found = []
        for rule in self.ignore_differences:
            if rule.get("group", "") != group or rule.get("kind") != obj["kind"]:
                continue
            if rule.get("name") not in (None, obj["metadata"]["name"]):
                continue
            if rule.get("namespace") not in (None, self.namespace):
                continue
            found.append(rule)
        return found

    def _pointers(self, obj: Obj) -> list[str]:
        return [p for rule in self._matching(obj) for p in rule.get("jsonPointers", [])]

    def _jq_paths(self, obj: Obj) -> list[str]:
        return [p for rule in self._matching(obj) for p in rule.get("jqPathExpressions", [])]

    def _normalized(self, obj: Obj) -> Obj:
        """``obj`` without the ignored fields (``Normalize``: pointers, then jq paths)."""
        obj = _removed(obj, self._pointers(obj))
        paths = self._jq_paths(obj)
        if not paths:
            return obj
        program = " | ".join(f"del({path})" for path in paths)
        done = subprocess.run(
            ["jq", "-c", program], input=json.dumps(obj), capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def _differs(self, desired: Obj, live: Obj) -> bool:
        return not _subset(self._normalized(desired), self._normalized(live))

    def _synced(self, desired: Obj, live: Obj) -> Obj:
        """What a sync applies: Git's fields over the live object; with
        RespectIgnoreDifferences, Git's object with the ignored fields copied from live."""
        if self.respect_ignore_differences:
            normalized_target, normalized_live = self._normalized(desired), self._normalized(live)
            patched = _merge_patch(normalized_target, _create_merge_patch(normalized_live, live))
            _restore_non_ignored(patched, desired, normalized_target, normalized_live)
            desired = patched
        return _merged(live, desired)

    # -- writes --------------------------------------------------------------------------------

    def _write(self, obj: Obj, live: Obj | None) -> None:
        api_version, plural = obj["apiVersion"], PLURALS[obj["kind"]]
        with self.api._lock:
            if live is None:
                self.api._create(api_version, plural, self.namespace, obj)
            else:
                obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                self.api._replace(api_version, plural, self.namespace, obj["metadata"]["name"], obj)

    def _delete(self, live: Obj) -> None:
        api_version, plural = live["apiVersion"], PLURALS[live["kind"]]
        with self.api._lock:
            self.api._delete(api_version, plural, self.namespace, live["metadata"]["name"])


# -- JSON pointers (RFC 6901) and merging ----------------------------------------------------


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _get(obj: Any, pointer: str) -> tuple[bool, Any]:
    return _walk(obj, _tokens(pointer))


def _walk(obj: Any, tokens: list[str]) -> tuple[bool, Any]:
    for token in tokens:
        if isinstance(obj, dict) and token in obj:
            obj = obj[token]
        elif isinstance(obj, list) and token.isdigit() and int(token) < len(obj):
            obj = obj[int(token)]
        else:
            return False, None
    return True, obj


def _set(obj: Any, pointer: str, value: Any) -> None:
    *parents, last = _tokens(pointer)
    for token in parents:
        obj = obj.setdefault(token, {}) if isinstance(obj, dict) else obj[int(token)]
    if isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value


def _removed(obj: Obj, pointers: list[str]) -> Obj:
    """``obj`` with each pointer removed; a missing path is skipped (diff_normalizer.go)."""
    obj = copy.deepcopy(obj)
    for pointer in pointers:
        *parents, last = _tokens(pointer)
        found, parent = _walk(obj, parents)
        if not found:
            continue
        if isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            del parent[int(last)]
    return obj


def _subset(desired: Any, live: Any) -> bool:
    """Every field Git sets holds the same value live (lists compared item by item)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and _subset(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(_subset(d, lv) for d, lv in zip(desired, live, strict=True))
        )
    return desired == live


def _create_merge_patch(original: Any, modified: Any) -> Any:
    """RFC 7386 patch turning ``original`` into ``modified`` (evanphx/json-patch
    ``CreateMergePatch``): mappings key by key, anything else (a list too) whole."""
    if not (isinstance(original, dict) and isinstance(modified, dict)):
        return copy.deepcopy(modified)
    patch: dict[str, Any] = {}
    for key, value in modified.items():
        if key not in original:
            patch[key] = copy.deepcopy(value)
        elif original[key] != value:
            if isinstance(original[key], dict) and isinstance(value, dict):
                patch[key] = _create_merge_patch(original[key], value)
            else:
                patch[key] = copy.deepcopy(value)
    for key in original:
        if key not in modified:
            patch[key] = None
    return patch


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _restore_non_ignored(patched: Obj, original: Obj, normalized: Obj, live: Obj | None) -> None:
    """controller/sync.go ``restoreNonIgnoredFields``: a field the normaliser left alone in
    Git's object keeps Git's value; recursion into mappings only (a list is a leaf)."""
    for key, value in original.items():
        in_patched, in_normalized = key in patched, key in normalized
        if (
            in_patched
            and isinstance(patched[key], dict)
            and isinstance(value, dict)
            and isinstance(normalized.get(key), dict)
        ):
            nested = (live or {}).get(key)
            _restore_non_ignored(
                patched[key], value, normalized[key], nested if isinstance(nested, dict) else None
            )
            continue
        if in_normalized and normalized[key] == value and (not in_patched or patched[key] != value):
            patched[key] = copy.deepcopy(value)
    for key in list(patched):
        if key not in original and key in (live or {}):
            del patched[key]


def _merged(live: Obj, desired: Obj) -> Obj:
    result = copy.deepcopy(live)
    for key, value in desired.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _images_transformed(obj: Obj, images: list[Obj]) -> Obj:
    if obj.get("kind") != "Deployment" or not images:
        return obj
    obj = copy.deepcopy(obj)
    for container in obj["spec"]["template"]["spec"]["containers"]:
        name = container["image"].split("@")[0].rsplit(":", 1)[0]
        for image in images:
            if image.get("name") == name:
                new = image.get("newName", name)
                if image.get("digest"):
                    container["image"] = f"{new}@{image['digest']}"
                elif image.get("newTag"):
                    container["image"] = f"{new}:{image['newTag']}"
                else:
                    container["image"] = new
    return obj


FLUX_NAME, FLUX_NAMESPACE = (
    "kustomize.toolkit.fluxcd.io/name",
    "kustomize.toolkit.fluxcd.io/namespace",
)
FLUX_SSA = "kustomize.toolkit.fluxcd.io/ssa"


@dataclass
class FluxStandIn(ArgoCdStandIn):
    """Flux's kustomize-controller, as docs/spec/v1/kustomizations.md describes it: every
    interval the objects built from the source are applied (drift correction: Git's fields
    win), each labelled ``kustomize.toolkit.fluxcd.io/name`` and ``/namespace``; objects it
    applied before that the source no longer holds are pruned; ``spec.patches`` (here: ones
    that only add annotations) are applied to the built objects first; an object annotated
    ``kustomize.toolkit.fluxcd.io/ssa: IfNotPresent`` is applied only when it is not on the
    cluster ("Controlling the apply behavior of resources").

    Ignore rules (kustomizations.md at kustomize-controller commit 186fb3b2, "Ignore Rules",
    v1.9.0): each of ``ignore`` (the Kustomization's ``spec.ignore``) holds JSON pointer
    ``paths`` and an optional ``target`` whose group, version, kind, name and namespace are
    regular expressions; matched paths are left out of drift detection, and when Flux applies
    the object anyway their in-cluster values are adopted (canaryflow writes with Update, so
    the "Adopt" case).

    ``patches`` are the Flux Kustomization's ``spec.patches``; ``application`` its name."""

    patches: list[Obj] = field(default_factory=list)
    ignore: list[Obj] = field(default_factory=list)

    def _ignored_paths(self, obj: Obj) -> list[str]:
        group, _, version = obj["apiVersion"].rpartition("/")
        facts = {
            "group": group,
            "version": version,
            "kind": obj["kind"],
            "name": obj["metadata"]["name"],
            "namespace": self.namespace,
        }
        paths = []
        for rule in self.ignore:
            target = rule.get("target") or {}
            if all(re.fullmatch(target[k], v) for k, v in facts.items() if k in target):
                paths += rule["paths"]
        return paths

    def _tracked(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = self.namespace
        meta.setdefault("labels", {}).update(
            {FLUX_NAME: self.application, FLUX_NAMESPACE: "flux-system"}
        )
        for entry in self.patches:
            target = entry["target"]
            group = obj["apiVersion"].rpartition("/")[0]
            if (target.get("group", group), target.get("kind"), target.get("name")) == (
                group,
                obj["kind"],
                meta["name"],
            ):
                patch = yaml.safe_load(entry["patch"])
                added = (patch.get("metadata") or {}).get("annotations") or {}
                meta.setdefault("annotations", {}).update(added)
        return obj

    def _differs(self, desired: Obj, live: Obj) -> bool:
        if (desired["metadata"].get("annotations") or {}).get(FLUX_SSA) == "IfNotPresent":
            return False  # present: never applied again
        paths = self._ignored_paths(desired)
        return not _subset(_removed(desired, paths), _removed(live, paths))

    def _applied(self, desired: Obj, live: Obj) -> Obj:
        result = _merged(live, desired)
        for path in self._ignored_paths(desired):  # Adopt: the in-cluster value is kept
            found, value = _get(live, path)
            if found:
                _set(result, path, copy.deepcopy(value))
        return result

    def sync_once(self) -> None:
        desired = [self._tracked(obj) for obj in self._from_git()]
        wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in desired}
        for obj in desired:
            live = self.api.get(obj["kind"], self.namespace, obj["metadata"]["name"])
            if live is None:
                self._write(obj, None)
            elif self._differs(obj, live):
                self._write(self._applied(obj, live), live)
        for kind in TRACKED_KINDS:
            for live in self.api.objects(kind, self.namespace):
                labels = live["metadata"].get("labels") or {}
                ours = labels.get(FLUX_NAME) == self.application
                if ours and (kind, live["metadata"]["name"]) not in wanted:
                    self._delete(live)
        self.syncs += 1
