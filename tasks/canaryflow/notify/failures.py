"""Argo's ``{{workflow.failures}}`` as the list of failed nodes it describes.

Argo Workflows stores the value ``strconv.Quote``d: ``operator.go`` (v3.5.15:468, v3.6.19:422,
v4.1.2:479) marshals every Failed or Error node (``displayName``, ``message``, ``templateName``,
``phase``, ``podName``, ``finishedAt``) to JSON and quotes that text as a Go string literal "so
that the escaped quotes are not removed during parameter substitution"; ``hooks_test.go``
asserts the escaped form. A container argument ``{{workflow.failures}}`` therefore receives
``"[{\\"displayName\\":…}]"``, outer quotes included. Plain JSON (a person running ``notify``
by hand, older tooling) is read too. The nodes come in Go map order: nothing here depends on
their order.
"""

from __future__ import annotations

import json
import re
from typing import Any

from canaryflow.errors import FieldError, InputError

_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}
_ESCAPE = re.compile(r"\\(?:x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[0-7]{3}|.)", re.DOTALL)


def go_unquote(text: str) -> str:
    """``strconv.Unquote`` of a double-quoted Go string literal; ValueError when it is not one."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError("not a double-quoted Go string")
    body = text[1:-1]
    if re.search(r'(?<!\\)(?:\\\\)*"', body) or "\n" in body:
        raise ValueError("an unescaped quote or newline inside the string")
    raw = bytearray()
    position = 0
    for match in _ESCAPE.finditer(body):
        raw += body[position : match.start()].encode()
        raw += _escaped(match.group(0)[1:])
        position = match.end()
    raw += body[position:].encode()
    return raw.decode("utf-8", errors="replace")


def _escaped(token: str) -> bytes:
    """One escape sequence (without its backslash) as the bytes it stands for."""
    if token[0] == "x":
        return bytes([int(token[1:], 16)])
    if token[0] in "uU":
        return chr(int(token[1:], 16)).encode("utf-8", errors="replace")
    if len(token) == 3 and token[0] in "01234567":
        return bytes([int(token, 8) & 0xFF])
    if token in _SIMPLE:
        return _SIMPLE[token].encode()
    raise ValueError(f"unknown escape \\{token}")


def parse_failures(text: str, field: str = "--failures") -> list[dict[str, Any]]:
    """The failed nodes of ``{{workflow.failures}}``: quoted (as Argo passes it) or plain JSON.

    Empty, ``null`` and ``"null"`` (Argo's value when no node failed) are no failures. Anything
    else that is neither form is bad input, named with the fix."""
    stripped = text.strip()
    if stripped.startswith('"'):
        try:
            stripped = go_unquote(stripped).strip()
        except ValueError as error:
            raise InputError(
                FieldError(
                    field,
                    f"not a Go-quoted string ({error}): pass Argo's {{{{workflow.failures}}}} "
                    "unchanged",
                )
            ) from None
    if not stripped or stripped == "null":
        return []
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as error:
        raise InputError(
            FieldError(
                field, f"not JSON ({error.msg}): pass Argo's {{{{workflow.failures}}}} unchanged"
            )
        ) from None
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
