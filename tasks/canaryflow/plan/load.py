"""Reading a plan file: every mistake at once, each as ``path: what is wrong and how to fix it``.

Validation happens once, here at the edge; everything past ``load_plan`` works with a typed,
immutable ``ReleasePlan``. Errors carry the YAML line so an editor can jump to it.

A plan is written by many people and read inside CI with credentials, so reading it is bounded
before it is parsed (``docs/limits`` in the README):

- ``MAX_PLAN_BYTES``: a plan is a regular file of at most 256 KiB of UTF-8 text. Directories,
  FIFOs and devices (``/dev/zero``) are refused from ``fstat`` before a byte is read, and the
  file is opened non-blocking, so a FIFO cannot hang the reader.
- ``MAX_DEPTH``: at most 32 nested mappings/sequences (a plan needs about 6); deeper YAML would
  exhaust Python's recursion in the composer.
- No anchors and aliases (``&a`` / ``*a``): no plan needs them, and they are how a few hundred
  bytes expand to gigabytes ("billion laughs"). So the alias count limit is zero.
- ``MAX_ERRORS`` errors are listed, and every value or key quoted in a message is cut to
  ``MAX_SHOWN`` characters: a 10 MB value is never echoed back.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Hashable, Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from canaryflow.errors import FieldError, InputError
from canaryflow.input_file import read_input_file, too_big
from canaryflow.plan.model import ReleasePlan

Loc = tuple[str | int, ...]

MAX_PLAN_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_ERRORS = 50
MAX_SHOWN = 80


def load_plan(source: Path | str) -> ReleasePlan:
    """The plan in ``source`` (a path, or YAML text); InputError lists every mistake."""
    text, origin = _read(source)
    document, lines = _parse_yaml(text, origin)
    return plan_from_dict(document, lines, origin)


def plan_from_dict(document: object, lines: dict[Loc, int] | None = None, origin: str = "plan"):
    if not isinstance(document, dict):
        kind = "empty" if document is None else f"a {_yaml_kind(document)}"
        raise InputError(
            FieldError(
                "(plan)",
                f"{origin} is {kind}, not a mapping of plan sections: start from "
                "`service: {name: my-service}` (see examples/plans)",
            )
        )
    try:
        return ReleasePlan.model_validate(document)
    except ValidationError as error:
        found = list(_field_errors(error, lines or {}, origin))
        if len(found) > MAX_ERRORS:
            more = len(found) - MAX_ERRORS
            found = [*found[:MAX_ERRORS], FieldError("", f"... and {more} more errors")]
        raise InputError(found) from None
    except RecursionError:  # defensive: _parse_yaml already bounds the depth
        raise InputError(FieldError("(plan)", _TOO_DEEP)) from None


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``repr(value)``, cut to ``limit`` characters: messages never echo a whole input."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number with more than 19 digits"
    if isinstance(value, str | bytes):
        value = value[: limit + 1]
    elif isinstance(value, dict | list | tuple | set):
        return f"a {_yaml_kind(value)} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _yaml_kind(value: object) -> str:
    kinds = {list: "list", tuple: "list", dict: "mapping", set: "set", str: "string"}
    return kinds.get(type(value), type(value).__name__)


_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep: a plan needs about 6; flatten it"


def _read(source: Path | str) -> tuple[str, str]:
    if isinstance(source, Path):
        return _read_file(source), str(source)
    if len(source) > MAX_PLAN_BYTES:
        raise InputError(
            FieldError(
                "(plan)", too_big(len(source.encode(errors="replace")), MAX_PLAN_BYTES, "plan")
            )
        )
    return source, "plan"


def _read_file(path: Path) -> str:
    return read_input_file(path, MAX_PLAN_BYTES, "plan")


class _StrictConstruction:
    """Refuses duplicate keys (YAML lets the last one win, silently) and unhashable keys."""

    def construct_mapping(self, node, deep=False):
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable) or isinstance(key, tuple):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key is a list or mapping: keys are plain words such as `name`",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {shown(key)}: keep only one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# libyaml's parser and composer when PyYAML has them (about 10x faster), else pure Python.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_StrictConstruction, _Base):
    """A safe loader for plans; ``_check_structure`` has refused anchors and deep nesting first."""


# YAML 1.1 reads ``1:30`` as the base-60 number 90 (``port: 1:30`` would listen on 90). No plan
# means that: the int and float resolvers are YAML 1.1's without their sexagesimal forms, so
# ``1:30`` stays text and the field refuses it as not a number.
_INT = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$", re.X
)
_FLOAT = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    re.X,
)
_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _check_structure(text: str) -> None:
    """One streaming pass over the parser's events, before any node is built.

    Anchors and aliases (the "billion laughs" expansion) and nesting deeper than ``MAX_DEPTH``
    (which would exhaust the composer's recursion) are refused here, in bounded memory.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_Base):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (&name, *name) are not allowed in a plan: "
                "write the values out",
                event.start_mark,
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, _TOO_DEEP, event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _parse_yaml(text: str, origin: str) -> tuple[object, dict[Loc, int]]:
    loader = None
    try:
        _check_structure(text)
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark else origin
        problem = getattr(error, "problem", None) or getattr(error, "reason", None) or str(error)
        if "maximum nesting depth" in str(problem):  # libyaml's own limit, met first
            problem = _TOO_DEEP
        if isinstance(error, yaml.reader.ReaderError):
            where = f"{origin}: character {error.position}"
            problem = f"control character {error.character:#x} is not allowed in YAML text"
        raise InputError(f"{where}: not valid YAML: {str(problem)[:200]}") from None
    except RecursionError:  # defensive: the structure check bounds the depth first
        raise InputError(f"{origin}: {_TOO_DEEP}") from None
    except ValueError as error:  # int("9" * 5000): beyond Python's int-from-text limit
        problem = "a number with more than 4300 digits" if "digits" in str(error) else error
        raise InputError(f"{origin}: not a usable number: {str(problem)[:120]}") from None
    finally:
        if loader is not None:
            loader.dispose()
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
        if not isinstance(part, int | str):  # a YAML key that is a number, a date...
            part = repr(part)
        elif isinstance(part, str) and len(part) > MAX_SHOWN:
            part = part[: MAX_SHOWN - 3] + "..."
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(plan)"


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _explain(detail: dict, loc: Loc) -> str:
    kind, message = detail["type"], detail["msg"]
    ctx, got = detail.get("ctx") or {}, shown(detail.get("input"))
    if kind == "missing":
        return "required: add it"
    if kind == "extra_forbidden":
        known = ", ".join(_known_keys(loc[:-1])) or "none"
        return f"unknown key {shown(loc[-1])}: remove it or use one of: {known}"
    if kind == "string_pattern_mismatch":
        return f"{got} {_PATTERN_HINTS.get(loc[-1], 'has the wrong form')}"
    if kind == "finite_number":
        return f"{got} is not a finite number: write a plain number (no .nan, .inf or 1e999)"
    if kind == "value_error":
        return _bounded(message.removeprefix("Value error, "))
    if kind == "literal_error":
        return f"{got} is not allowed: use one of {ctx['expected']}"
    for bound, words in _BOUNDS.items():
        if bound in ctx:
            return f"{got} is {words} {ctx[bound]}: change it"
    if not detail.get("url"):  # our own PydanticCustomError: the message says it all
        return _bounded(message)
    return f"{message} (got {got})"


def _bounded(message: str, limit: int = 4 * MAX_SHOWN) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


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
    "webhook": "is not a URL: write http://... or https://... (no spaces or line breaks)",
    "url": "is not a URL: write http://... or https://... (no spaces or line breaks)",
    "route": "is not a Kubernetes object name: lower-case letters, digits, '-' and '.'",
    "paths": "must be a URL path starting with '/' (no spaces, quotes or line breaks)",
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
