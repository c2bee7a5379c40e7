"""Argo's parameter substitution and ``when`` evaluation, for the subset canaryflow generates.

Follows upstream Argo Workflows:

* ``{{name}}`` tags are replaced once, by text (util/template/simple_template.go); an unknown
  name fails here (Argo leaves it, then fails the node).
* ``{{=expr}}`` tags are expr-lang expressions over the same names
  (util/template/expression_template.go) with Argo's functions ``asInt`` and ``jsonpath``
  (util/expr/env); a string result is used as it is, an int is formatted in decimal. Only
  the subset the templates use is accepted: ``a ? b : c``, ``==``, ``!=``, ``+`` (ints or
  strings), ``'...'``, integers, parameters (``a.b`` and ``a['b-c']``), ``asInt(x)`` and
  ``jsonpath(json, '$[N].key')``.
* ``when`` is a govaluate expression after substitution in which bare words are strings
  (workflow/controller/operator.go ``shouldExecute``): ``a == b``, ``a != b`` and the numeric
  ``a < b`` are what the templates use.
"""

from __future__ import annotations

import json
import re

TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
EXPR_TOKEN = re.compile(
    r"\s*('(?:[^'\\]|\\.)*'|!=|==|\?|:|\+|\[|\]|\(|\)|,|\.|\d+|[A-Za-z_][\w-]*)"
)
JSONPATH = re.compile(r"^\$\[(\d+)\]\.(\w+)$")
WHEN = re.compile(r"^\s*(.*?)\s*(==|!=|<)\s*(.*?)\s*$", re.S)


def evaluate(expression: str, values: dict[str, str]) -> str:
    """One ``{{=...}}`` expression of the subset, as Argo prints its result."""
    tokens = EXPR_TOKEN.findall(expression)
    position = 0

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def call(name: str):
        arguments = [ternary()]
        while peek() == ",":
            take()
            arguments.append(ternary())
        assert take() == ")"
        if name == "asInt":
            return int(arguments[0])
        assert name == "jsonpath", f"function {name} is outside the subset"
        match = JSONPATH.match(arguments[1])
        assert match, f"jsonpath {arguments[1]!r} is outside the subset"
        return json.loads(arguments[0])[int(match.group(1))][match.group(2)]

    def operand():
        token = take()
        if token.startswith("'"):
            return token[1:-1]
        if token.isdigit():
            return int(token)
        if peek() == "(":
            take()
            return call(token)
        path = [token]
        while peek() in {".", "["}:
            if take() == ".":
                path.append(take())
            else:
                path.append(take()[1:-1])
                assert take() == "]"
        return values[".".join(path)]

    def concatenation():
        value = operand()
        while peek() == "+":
            take()
            right = operand()
            assert type(value) is type(right), "expr-lang adds ints or strings, never both"
            value += right
        return value

    def ternary():
        left = concatenation()
        if peek() in {"==", "!="}:
            equal = (take() == "==") == (left == concatenation())
            assert take() == "?"
            yes = ternary()
            assert take() == ":"
            no = ternary()
            return yes if equal else no
        return left

    result = ternary()
    assert position == len(tokens), f"unread tokens in {expression!r}"
    return str(result)


def render(text: str, values: dict[str, str]) -> str:
    """Argo's substitution of every tag in ``text``, in one pass (fasttemplate): what a tag
    is replaced with is never read again."""

    def replace(match: re.Match) -> str:
        tag = match.group(1)
        if tag.startswith("="):
            return evaluate(tag[1:], values)
        return values[tag.strip()]

    return TAG.sub(replace, text)


def when(condition: str, values: dict[str, str]) -> bool:
    """A ``when`` after substitution: bare words compare as strings, numbers with ``<``."""
    left, operator, right = WHEN.match(render(condition, values)).groups()
    if operator == "<":
        return float(left) < float(right)
    return (left == right) == (operator == "==")
