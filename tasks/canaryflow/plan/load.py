"""Reading a plan file: every mistake at once, each as ``path: what is wrong and how to fix it``.

Validation happens once, here at the edge; everything past ``load_plan`` works with a typed,
immutable ``ReleasePlan``. Errors carry the YAML line so an editor can jump to it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from canaryflow.errors import FieldError, InputError
from canaryflow.plan.model import ReleasePlan

Loc = tuple[str | int, ...]


def load_plan(source: Path | str) -> ReleasePlan:
    """The plan in ``source`` (a path, or YAML text); InputError lists every mistake."""
    text, origin = _read(source)
    document, lines = _parse_yaml(text, origin)
    return plan_from_dict(document, lines, origin)


def plan_from_dict(document: object, lines: dict[Loc, int] | None = None, origin: str = "plan"):
    if not isinstance(document, dict):
        raise InputError(FieldError("", f"{origin}: expected a mapping of plan sections"))
    try:
        return ReleasePlan.model_validate(document)
    except ValidationError as error:
        raise InputError(list(_field_errors(error, lines or {}, origin))) from None


def _read(source: Path | str) -> tuple[str, str]:
    if isinstance(source, Path):
        try:
            return source.read_text(), str(source)
        except OSError as error:
            raise InputError(f"{source}: cannot read the plan: {error.strerror}") from None
    return source, "plan"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which YAML silently lets the last one win."""

    def construct_mapping(self, node, deep=False):
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}: keep only one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, origin: str) -> tuple[object, dict[Loc, int]]:
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark else origin
        problem = getattr(error, "problem", None) or str(error)
        raise InputError(f"{where}: not valid YAML: {problem}") from None
    return document, dict(_node_lines(node, ()))


def _node_lines(node: yaml.Node | None, loc: Loc) -> Iterator[tuple[Loc, int]]:
    if node is None:
        return
    yield loc, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _node_lines(value, (*loc, key.value))
            yield (*loc, key.value), key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _node_lines(item, (*loc, index))


def _field_errors(error: ValidationError, lines: dict[Loc, int], origin: str):
    for detail in error.errors():
        loc = _with_subpath(tuple(detail["loc"]), detail)
        path = format_path(loc)
        line = _line_of(loc, lines)
        where = f" ({origin}, line {line})" if line else ""
        yield FieldError(path, _explain(detail, loc) + where)


def _with_subpath(loc: Loc, detail: dict) -> Loc:
    cause = (detail.get("ctx") or {}).get("error")
    return (*loc, *getattr(cause, "subpath", ()))


def format_path(loc: Loc) -> str:
    """``("steps", 2, "weight")`` -> ``steps[2].weight``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(plan)"


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _explain(detail: dict, loc: Loc) -> str:
    kind, message = detail["type"], detail["msg"]
    if kind == "missing":
        return "required: add it"
    if kind == "extra_forbidden":
        known = ", ".join(_known_keys(loc[:-1])) or "none"
        return f"unknown key {loc[-1]!r}: remove it or use one of: {known}"
    if kind == "string_pattern_mismatch":
        return f"{detail['input']!r} {_PATTERN_HINTS.get(loc[-1], 'has the wrong form')}"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    ctx, got = detail.get("ctx") or {}, detail.get("input")
    if kind == "literal_error":
        return f"{got!r} is not allowed: use one of {ctx['expected']}"
    for bound, words in _BOUNDS.items():
        if bound in ctx:
            return f"{got!r} is {words} {ctx[bound]}: change it"
    if not detail.get("url"):  # our own PydanticCustomError: the message says it all
        return message
    return f"{message} (got {got!r})"


_BOUNDS = {
    "le": "above the maximum",
    "lt": "not below",
    "ge": "below the minimum",
    "gt": "not above",
    "max_length": "longer than the maximum length",
    "min_length": "shorter than the minimum length",
}


_PATTERN_HINTS = {
    "name": "is not a valid name: lower-case letters, digits and '-', at most 53 characters",
    "namespace": "is not a valid namespace: lower-case letters, digits and '-'",
    "health_path": "must be a path starting with '/'",
    "healthPath": "must be a path starting with '/'",
    "webhook": "is not a URL: write http://... or https://...",
}


def _known_keys(loc: Loc) -> list[str]:
    model = _model_at(ReleasePlan, loc)
    if model is None:
        return []
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    for part in loc:
        if isinstance(part, int):
            continue
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if field is None:
            return None
        found = _first_model(field.annotation)
        if found is None:
            return None
        model = found
    return model


def _first_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _first_model(arg)
            if found is not None:
                return found
    return None
