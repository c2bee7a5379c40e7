"""Validate Kubernetes objects the way an API server would, offline.

Core kinds are checked with ``kubernetes_validate`` in strict mode (unknown fields rejected) for
``KUBERNETES_VERSION``. Istio, Gateway API and SMI objects are checked against the
``openAPIV3Schema`` of their CRDs in ``shared/schemas`` with every object schema that lists
``properties`` closed (no unknown fields), as the API server prunes or rejects them, and their
``metadata`` against the strict ObjectMeta schema. CEL rules (``x-kubernetes-validations``) are not
evaluated: a plain JSON Schema validator cannot.

Reusable by any test: ``validate(obj)`` raises ``SchemaViolation``; ``violations(obj)`` lists them.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from importlib_resources import files
from referencing import Registry, Resource
from upstream import SCHEMAS

KUBERNETES_VERSION = "1.33"
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SCHEMA_ROOT = SCHEMAS

CRD_FILES = {
    "networking.istio.io": [
        "istio/virtualservices.networking.istio.io.yaml",
        "istio/destinationrules.networking.istio.io.yaml",
    ],
    "gateway.networking.k8s.io": [
        "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
        "gateway-api/gateway.networking.k8s.io_gateways.yaml",
    ],
    "split.smi-spec.io": ["smi/split.smi-spec.io_trafficsplits.yaml"],
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class SchemaViolation(ValueError):
    """The object would be rejected by the API server (HTTP 422)."""


def validate(obj: dict[str, Any]) -> None:
    problems = violations(obj)
    if problems:
        name = obj.get("metadata", {}).get("name", "?")
        raise SchemaViolation(f"{obj.get('kind')} {name} is invalid: " + "; ".join(problems))


def violations(obj: dict[str, Any]) -> list[str]:
    """Every schema error of ``obj``, as ``path: message``; empty when valid."""
    group = obj.get("apiVersion", "").rpartition("/")[0]
    if group in CRD_FILES:
        return _crd_violations(obj)
    validator = core_validator(obj.get("apiVersion", ""), obj.get("kind", ""))
    if validator is None:
        kind = f"{obj.get('kind')} {obj.get('apiVersion')}"
        return [f"no Kubernetes {KUBERNETES_VERSION} schema for {kind}"]
    return [f"{_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]


@functools.cache
def core_validator(api_version: str, kind: str) -> jsonschema.Validator | None:
    """The strict schema ``kubernetes_validate`` ships for this kind (loaded once: it is big)."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_dir() / f"{kind.lower()}-{group_version}.json"
    if not kind or not path.is_file():
        return None
    return jsonschema.Draft202012Validator(json.loads(path.read_text()), registry=_registry())


@functools.cache
def _registry() -> Registry:
    definitions = json.loads((_schema_dir() / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


def _crd_violations(obj: dict[str, Any]) -> list[str]:
    schema = crd_schema(obj["apiVersion"], obj.get("kind", ""))
    if schema is None:
        return [f"no CRD schema for {obj.get('kind')} {obj['apiVersion']}"]
    errors = [
        f"{_path(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(obj)
    ]
    meta_errors = _object_meta_validator().iter_errors(obj.get("metadata", {}))
    errors += [f"metadata.{_path(e.absolute_path)}: {e.message}" for e in meta_errors]
    return errors


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The closed ``openAPIV3Schema`` of a served CRD version, or None if we have no CRD."""
    group, _, version = api_version.rpartition("/")
    for relative in CRD_FILES.get(group, []):
        crd = yaml.load((SCHEMA_ROOT / relative).read_text(), Loader=_YamlLoader)
        if crd["spec"]["names"]["kind"] != kind:
            continue
        for served in crd["spec"]["versions"]:
            if served["name"] == version and served.get("served", False):
                schema = close_objects(served["schema"]["openAPIV3Schema"])
                schema.setdefault("properties", {}).update(
                    apiVersion={"type": "string"}, kind={"type": "string"}, metadata={}
                )
                return schema
    return None


def close_objects(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` where objects listing ``properties`` reject any other field."""
    closed = copy.deepcopy(schema)
    _close(closed)
    return closed


def _close(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _close(item)
        return
    if not isinstance(node, dict):
        return
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    for key, value in node.items():
        if key == "properties":
            for child in value.values():
                _close(child)
        elif key != "enum":
            _close(value)


@functools.cache
def _object_meta_validator() -> jsonschema.Validator:
    definitions = json.loads((_schema_dir() / "_definitions.json").read_text())
    schema = {"$ref": f"#/$defs/{OBJECT_META}", "$defs": definitions["$defs"]}
    return jsonschema.Draft202012Validator(schema)


@functools.cache
def _schema_dir() -> Path:
    """The strict schemas of the newest Kubernetes release not newer than KUBERNETES_VERSION."""
    versions = kubernetes_validate.utils.all_versions()
    chosen = [v for v in versions if _minor(v) <= _minor(KUBERNETES_VERSION)][-1]
    root = files("kubernetes_validate") / "kubernetes-json-schema"
    return Path(str(root / f"v{chosen}-local-strict"))


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "<root>"
