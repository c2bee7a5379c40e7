"""``{{...}}`` substitution in templates, as Argo's ``util/template`` does it.

Upstream (argo-workflows v3.6.19, checked against it: README "Checked against upstream Argo
Workflows"): docs/variables.md and ``util/template/replace.go`` / ``simple_template.go`` /
``expression_template.go``: a tag is what lies between ``{{`` and ``}}``; a *simple* tag
(whitespace allowed around the name) is looked up in the flat variable map, an *expression* tag
(``{{=`` ...) is evaluated by expr over that map expanded into nested maps. With
``allow_unresolved`` an unknown simple tag (or an expression that fails) is left as it was,
which is what the controller does for the workflow-level pass; otherwise it is an error
("failed to resolve {{...}}"), which is what a pod's template gets.

The map is filled per scope like the controller's ``wfScope``/``localParams``:
``workflow.parameters.*``, ``workflow.name|namespace|uid|status|failures|serviceAccountName``,
``inputs.parameters.*`` (and ``inputs.parameters`` as JSON), ``tasks.<t>.outputs.parameters.*``,
``tasks.<t>.outputs.result``, ``tasks.<t>.status``, ``tasks.<t>.exitCode`` (``steps.`` alike),
``item`` / ``item.<key>`` in loops, ``retries`` in a retried pod.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .expr import ExprError, evaluate, expand, to_text

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class UnresolvedError(ValueError):
    pass


def substitute(text: str, scope: Mapping[str, str], allow_unresolved: bool = False) -> str:
    """``text`` with every tag replaced from ``scope``."""
    _check_end_tags(text)
    env: dict[str, Any] | None = None

    def replace(match: re.Match[str]) -> str:
        nonlocal env
        tag = match.group(1)
        if tag.startswith("="):
            if env is None:
                env = expand(scope)
            return _expression(tag[1:], env, match.group(0), allow_unresolved)
        return _simple(tag, scope, match.group(0), allow_unresolved)

    return _TAG.sub(replace, text)


def _check_end_tags(text: str) -> None:
    """fasttemplate v1.2.2 ``NewTemplate``: a ``{{`` with no ``}}`` after it is an error,
    unresolved allowed or not."""
    rest = _TAG.sub("", text)
    if "{{" in rest:
        raise UnresolvedError(f'Cannot find end tag="}}}}" in the template={text!r}')


def _expression(source: str, env: dict[str, Any], whole: str, allow_unresolved: bool) -> str:
    try:
        value = evaluate(source, env)
    except (ExprError, TypeError, ValueError) as error:
        if allow_unresolved:
            return whole
        raise UnresolvedError(f"failed to evaluate expression {source!r}: {error}") from error
    # nil, and what json.Marshal refuses (±Inf, NaN), are unresolved (expression_template.go)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        if allow_unresolved:
            return whole
        raise UnresolvedError(f"failed to evaluate expression {source!r}: {value}")
    return to_text(value)


def _simple(tag: str, scope: Mapping[str, str], whole: str, allow_unresolved: bool) -> str:
    """simple_template.go ``simpleReplace``: the trimmed name, else the name after the tag's
    last ``{{`` (a literal ``{{`` before a tag), else unresolved."""
    name = tag.strip()
    if name in scope:
        return scope[name]
    index = tag.rfind("{{")
    if index > 0 and tag[index + 2 :] in scope:
        return "{{" + tag[:index] + scope[tag[index + 2 :]]
    if allow_unresolved:
        return whole
    raise UnresolvedError(f"failed to resolve {{{{{name}}}}}")


def substitute_all(value: Any, scope: Mapping[str, str], allow_unresolved: bool = False) -> Any:
    """Every string inside a JSON-like value substituted (keys included, as Argo's
    marshal-replace-unmarshal of the whole template does)."""
    if isinstance(value, str):
        return substitute(value, scope, allow_unresolved)
    if isinstance(value, list):
        return [substitute_all(item, scope, allow_unresolved) for item in value]
    if isinstance(value, dict):
        return {
            substitute(key, scope, allow_unresolved): substitute_all(item, scope, allow_unresolved)
            for key, item in value.items()
        }
    return value


def parameters_json(parameters: Mapping[str, str]) -> str:
    """``inputs.parameters`` as one value: a JSON list of ``{name, value}`` (Argo's form)."""
    return json.dumps([{"name": k, "value": v} for k, v in parameters.items()])
