"""``{{workflow.failures}}`` byte for byte as the workflow controller writes it.

Upstream (argoproj/argo-workflows): ``workflow/controller/operator.go`` ``operate`` (v3.5.15:468,
v3.6.19:422, v4.1.2:479) ranges over ``wf.Status.Nodes`` (a Go map: no order), takes every node
whose phase is Failed or Error, whatever its type (Pod, Retry, Steps, DAG, TaskGroup, Suspend,
the workflow's own root node), as ``failedNodeStatus{displayName, message, templateName, phase,
podName, finishedAt}``, ``json.Marshal``s the list and stores ``strconv.Quote`` of that text;
``hooks_test.go`` ``TestWfHookHasFailures`` asserts the escaped form. ``podName`` is
``workflow/util/pod_name.go`` ``GeneratePodName`` (v2 names: the workflow's name for its root
node, else ``<workflow>-<template>-<fnv32a(node name)>``), ``finishedAt`` a ``metav1.Time``
(RFC 3339 in UTC, ``null`` when unset). The stand-in orders the nodes by their (random) ids: as
arbitrary as Go's map order, but repeatable within one run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

FAILED = ("Failed", "Error")
_MAX_PREFIX = 253 - 10 - 1


class FailedNode(Protocol):
    id: str
    name: str
    display_name: str
    template_name: str
    phase: str
    message: str
    finished_at: float | None


def fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def pod_name(workflow: str, node_name: str, template: str) -> str:
    """``GeneratePodName`` with ``PodNameV2`` (the default since v3.4)."""
    if workflow == node_name:
        return workflow
    prefix = f"{workflow}-{template}" if template else workflow
    return f"{prefix[:_MAX_PREFIX]}-{fnv32a(node_name)}"


def go_json_string(text: str) -> str:
    """A string as Go's ``encoding/json`` writes it (HTML-safe: ``<``, ``>``, ``&`` escaped)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif code < 0x20 or char in "<>&\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """``json.Marshal`` of lists, string-keyed objects (field order kept), strings and null."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return go_json_string(value)
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_json_string(k)}:{go_json(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not modelled: {type(value).__name__}")


def go_quote(text: str) -> str:
    """``strconv.Quote``: printable runes kept, ``"`` and ``\\`` escaped, the rest as escapes."""
    out = ['"']
    short = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in short or char == "\v":
            out.append(short.get(char, "\\v"))
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _time(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workflow_failures(workflow: str, nodes: Iterable[FailedNode]) -> str:
    """The value of ``workflow.failures`` when the exit handler starts."""
    failed = [
        {
            "displayName": node.display_name,
            "message": node.message,
            "templateName": node.template_name,
            "phase": node.phase,
            "podName": pod_name(workflow, node.name, node.template_name),
            "finishedAt": _time(node.finished_at),
        }
        for node in sorted(nodes, key=lambda n: n.id)
        if node.phase in FAILED
    ]
    return go_quote(go_json(failed if failed else None))
