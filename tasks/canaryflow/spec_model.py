"""The one base of every typed model read from a plan: its rules hold in every section.

camelCase keys in YAML (Argo Rollouts' and Flagger's spelling), unknown keys rejected (a
misspelt key is a mistake, not a default), immutable once loaded, and no NaN or infinity: a NaN
limit passes every comparison, so it is refused where it is read.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

# Longest text any field takes unless it says less: a plan is read in CI and echoed in
# reports, runbooks and notifications, and no name, message or query needs more.
MAX_TEXT_CHARS = 8192
# Characters that make text read differently from what it is: bidirectional overrides,
# embeddings and isolates (CVE-2021-42574, "Trojan Source"), and invisible marks.
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9]+(:[0-5]?[0-9])+(\.[0-9]*)?")


class SpecModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        frozen=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _plain_input(cls, value: Any, info: ValidationInfo) -> Any:
        """Rules for every field of every section, before its own type reads the value."""
        field = cls.model_fields.get(info.field_name or "")
        numeric = field is not None and _is_numeric(field.annotation)
        if numeric and isinstance(value, bool):
            raise ValueError("true/false is not a number: write the number itself")
        if numeric and isinstance(value, str) and _SEXAGESIMAL.fullmatch(value):
            raise ValueError(
                f"{value!r} is YAML 1.1 base-60 notation, not a number: write the number "
                "(e.g. 90 for 1:30)"
            )
        _check_text(value, mappings=field is not None and _is_mapping(field.annotation))
        return value


def _is_numeric(annotation: Any) -> bool:
    """int or float, or an optional or union of them (not bool, str or a model)."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(a in (int, float) for a in args)
    return False


def _is_mapping(annotation: Any) -> bool:
    """A plain mapping field (``dict[str, str]``): its strings have no model to check them."""
    origins = {typing.get_origin(annotation)} | {
        typing.get_origin(a) for a in typing.get_args(annotation)
    }
    return dict in origins


def _check_text(value: Any, depth: int = 0, mappings: bool = False) -> None:
    """No string (also inside lists, and plain mappings) longer than ``MAX_TEXT_CHARS`` or
    carrying bidirectional controls. A section's own fields check themselves, so the error
    names the innermost field."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(
                f"text of {len(value)} characters: at most {MAX_TEXT_CHARS}; "
                "link to longer text instead"
            )
        if _BIDI.search(value):
            raise ValueError(
                "contains a right-to-left override or another invisible direction mark: "
                "retype it without them"
            )
    elif depth < 8 and isinstance(value, list | tuple):
        for item in value:
            _check_text(item, depth + 1, mappings)
    elif depth < 8 and mappings and isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, depth + 1, mappings)
            _check_text(item, depth + 1, mappings)
