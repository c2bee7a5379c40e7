"""Keys a schema does not declare: what a structural schema would prune or a strict one refuse.

JSON Schema's ``additionalProperties`` defaults to allowed, and Kubernetes prunes unknown fields
of a structural CRD silently, so a misspelt key (``whenn``, ``dependz``) would pass validation
and vanish on the server. This walk reports each such key by its path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Node = dict[str, Any]


def unknown_fields(
    value: Any, node: Node, path: str = "", resolve: Callable[[Node], Node] = lambda n: n
) -> list[str]:
    """Paths of keys in ``value`` that ``node`` does not declare at their position.

    ``resolve`` follows a ``$ref`` (Argo's single-file schema); a node that preserves unknown
    fields (``x-kubernetes-preserve-unknown-fields``) accepts anything below it.
    """
    node = resolve(node)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict) and "properties" in node:
        for key, item in value.items():
            if key not in node["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(item, node["properties"][key], f"{path}.{key}", resolve)
    elif isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        for key, item in value.items():
            found += unknown_fields(item, node["additionalProperties"], f"{path}.{key}", resolve)
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            found += unknown_fields(item, node["items"], f"{path}[{index}]", resolve)
    return found
