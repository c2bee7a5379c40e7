"""Write a released image into a configuration file, keeping the rest of it (pure functions).

Three places an image lives in a GitOps repository, as Argo CD Image Updater and Flux image
automation write them too: a kustomization's ``images[]`` entry (``newName`` and ``digest``;
kustomize ignores ``newTag`` once a digest is set, so it is dropped), a Helm values key (a
dotted path), and the container image of a Deployment in a plain manifest.

The edit is decided on the parsed data (a list of set / delete operations), then written in
one of two ways:

* in place: when every operation sets a scalar that already exists, only the characters of
  those scalars change (found through PyYAML's node marks), so comments, blank lines,
  quoting, indentation and key order stay exactly as they were;
* re-dumped: otherwise (a key or entry to add, ``newTag`` to remove, an anchor in the way),
  every document is dumped again with PyYAML: keys and their order are kept, but comments,
  blank lines, quoting styles, flow style and anchors (expanded) are lost.

Either result is parsed again and must equal the intended data, or nothing is written.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from canaryflow.errors import FieldError, InputError

Path = tuple[str | int, ...]
Format = Literal["kustomization", "helm-values", "manifest"]


@dataclass(frozen=True)
class ImageTarget:
    """Where in the file the image goes (the plan's ``promotion.gitops``)."""

    format: Format
    deployment: str
    image: str | None = None
    key: str | None = None
    value: Literal["reference", "digest"] = "reference"
    container: str | None = None


@dataclass(frozen=True)
class Operation:
    document: int
    path: Path
    value: Any = None
    delete: bool = False


@dataclass(frozen=True)
class Written:
    text: str
    in_place: bool
    """True when only the changed scalars' characters differ (nothing else of the file lost)."""


def split_reference(reference: str) -> tuple[str, str]:
    """``repo@sha256:hex`` as (repository, digest)."""
    repository, _, digest = reference.partition("@")
    return repository, digest


def write_image(text: str, target: ImageTarget, reference: str, where: str) -> Written:
    """``text`` with ``reference`` written where ``target`` says; ``where`` names the file in
    errors. Raises InputError when the file does not hold what the plan names."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise _error(where, f"is not YAML ({_first_line(error)}): fix the file") from None
    operations = _operations(documents, target, reference, where)
    wanted = _applied(documents, operations)
    if wanted == documents:
        return Written(text, in_place=True)
    spliced = _in_place(text, operations)
    if spliced is not None and _parses_to(spliced, wanted):
        return Written(spliced, in_place=True)
    dumped = _dump(wanted, text)
    if not _parses_to(dumped, wanted):  # pragma: no cover - PyYAML's own round trip
        raise _error(where, "could not be written back faithfully: edit it by hand")
    return Written(dumped, in_place=False)


# -- what to change -------------------------------------------------------------------------


def _operations(documents: list, target: ImageTarget, reference: str, where: str):
    repository, digest = split_reference(reference)
    if target.format == "kustomization":
        return _kustomization(documents, target.image or repository, repository, digest, where)
    if target.format == "helm-values":
        value = reference if target.value == "reference" else digest
        return _helm_values(documents, target.key or "", value, where)
    return _manifest(documents, target, reference, where)


def _kustomization(documents: list, name: str, repository: str, digest: str, where: str):
    root = documents[0] if documents else None
    if not isinstance(root, dict):
        raise _error(where, "is not a kustomization (no mapping at the top): check the path")
    images = root.get("images")
    if images is None:
        entry = {"name": name, "newName": repository, "digest": digest}
        return [Operation(0, ("images",), [entry])]
    if not isinstance(images, list):
        raise _error(where, "images is not a list: fix the kustomization")
    for index, entry in enumerate(images):
        if isinstance(entry, dict) and entry.get("name") == name:
            base: Path = ("images", index)
            ops = [Operation(0, (*base, "digest"), digest)]
            if entry.get("newName", name) != repository:
                ops.append(Operation(0, (*base, "newName"), repository))
            if "newTag" in entry:
                ops.append(Operation(0, (*base, "newTag"), delete=True))
            return ops
    entry = {"name": name, "newName": repository, "digest": digest}
    return [Operation(0, ("images", len(images)), entry)]


def _helm_values(documents: list, key: str, value: str, where: str):
    root = documents[0] if documents else {}
    if root is None:
        root = {}
    if not isinstance(root, dict):
        raise _error(where, "is not a values file (no mapping at the top): check the path")
    node: Any = root
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        node = node.get(part) if isinstance(node, dict) else None
        if node is not None and not isinstance(node, dict):
            shown = ".".join(parts[: depth + 1])
            raise _error(where, f"{shown} is not a mapping, so {key} cannot be set: fix the key")
        if node is None:
            break
    if isinstance(node, dict) and isinstance(node.get(parts[-1]), dict | list):
        raise _error(where, f"{key} holds a mapping or list, not a value: name the leaf key")
    return [Operation(0, tuple(parts), value)]


def _manifest(documents: list, target: ImageTarget, reference: str, where: str):
    for index, document in enumerate(documents):
        if not isinstance(document, dict) or document.get("kind") != "Deployment":
            continue
        if (document.get("metadata") or {}).get("name") != target.deployment:
            continue
        containers = (((document.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []
        wanted = target.container or target.deployment
        named = [i for i, c in enumerate(containers) if c.get("name") == wanted]
        if not named and target.container is None and len(containers) == 1:
            named = [0]
        if not named:
            names = ", ".join(str(c.get("name")) for c in containers)
            raise _error(
                where,
                f"deployment {target.deployment} has no container {wanted!r} (containers: "
                f"{names}): set promotion.gitops.container",
            )
        path = ("spec", "template", "spec", "containers", named[0], "image")
        return [Operation(index, path, reference)]
    raise _error(
        where,
        f"holds no Deployment named {target.deployment}: point promotion.gitops.path at the "
        "manifest of the stable Deployment",
    )


def _applied(documents: list, operations: list[Operation]) -> list:
    result = copy.deepcopy(documents)
    if not result:
        result = [{}]
    for op in operations:
        if result[op.document] is None:
            result[op.document] = {}
        parent = result[op.document]
        for step in op.path[:-1]:
            if isinstance(parent, dict) and parent.get(step) is None:  # absent or `key:` (null)
                parent[step] = {}
            parent = parent[step]
        last = op.path[-1]
        if op.delete:
            parent.pop(last, None)
        elif isinstance(parent, list) and last == len(parent):
            parent.append(op.value)
        else:
            parent[last] = op.value
    return result


# -- how to write it ------------------------------------------------------------------------


def _in_place(text: str, operations: list[Operation]) -> str | None:
    """Only the changed scalars rewritten, or None when an operation needs more than that."""
    if any(op.delete or not isinstance(op.value, str) for op in operations):
        return None
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    spans = []
    for op in operations:
        if op.document >= len(nodes):
            return None
        node = _node_at(nodes[op.document], op.path)
        text_or_empty = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:null")
        if not isinstance(node, yaml.ScalarNode) or node.tag not in text_or_empty:
            return None
        spans.append((node.start_mark.index, node.end_mark.index, _scalar(op.value, node)))
    for start, end, replacement in sorted(spans, reverse=True):
        if start == end and start and text[start - 1] == ":":  # an empty value: `key:`
            replacement = " " + replacement
        text = text[:start] + replacement + text[end:]
    return text


def _node_at(node: yaml.Node | None, path: Path) -> yaml.Node | None:
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            node = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            node = node.value[step] if step < len(node.value) else None
        else:
            return None
    return node


def _scalar(value: str, old: yaml.ScalarNode) -> str:
    """``value`` in the old scalar's style where that reads back as the same string."""
    if old.style == "'" and "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    if old.style in (None, "") and _plain_safe(value):
        return value
    return json.dumps(value)  # a YAML double-quoted scalar


def _plain_safe(value: str) -> bool:
    if not value or value != value.strip() or value[0] in "-?:,[]{}#&*!|>'\"%@`":
        return False
    if any(part in value for part in ("\n", ": ", " #", "\t")) or value.endswith(":"):
        return False
    try:
        return yaml.safe_load(value) == value
    except yaml.YAMLError:
        return False


def _dump(documents: list, original: str) -> str:
    options = {"sort_keys": False, "default_flow_style": False, "width": 4096}
    explicit = len(documents) > 1 or original.lstrip().startswith("---")
    return yaml.safe_dump_all(documents, explicit_start=explicit, **options)


def _parses_to(text: str, wanted: list) -> bool:
    try:
        return list(yaml.safe_load_all(text)) == wanted
    except yaml.YAMLError:
        return False


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _error(where: str, message: str) -> InputError:
    return InputError(FieldError("promotion.gitops.path", f"{where} {message}"))
