"""flagd flag documents: the segment each rollout step exposes, and their validation.

Documents stay plain JSON dicts (what flagd, the sample service and a ConfigMap hold). The
builders emit only the JSONLogic subset the sample service and flagd both evaluate: ``if``,
``and``, ``>=``/``<=`` over ``{"var": "userId"}`` and ``fractional`` on the targeting key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from canaryflow.errors import FieldError, InputError, PlatformError

ON, OFF = "on", "off"
STATES = ("ENABLED", "DISABLED")
# Operators the sample service's evaluator knows (examples/sample-service/targeting.go).
OPERATORS = frozenset(
    {"var", "if", "and", "or", "!", "==", "!=", "<", "<=", ">", ">=", "in", "cat", "fractional"}
)


@dataclass(frozen=True)
class Variants:
    """The flag's values: what "on" and "off" serve."""

    on: Any = True
    off: Any = False


MAX_LISTED_USERS = 10_000


@dataclass(frozen=True)
class UserRange:
    """Users with IDs ``first..last`` (inclusive) get the new behaviour.

    Numeric IDs compare as numbers, so the rule stays two comparisons however wide the range.
    IDs with a ``prefix`` ("user-17") have no order JSONLogic can use: the rule lists them
    (``in``), which caps the range at ``MAX_LISTED_USERS``.
    """

    first: int
    last: int
    prefix: str = ""

    def targeting(self) -> dict[str, Any]:
        user = {"var": "userId"}
        if self.prefix:
            ids = [f"{self.prefix}{n}" for n in range(self.first, self.last + 1)]
            return {"if": [{"in": [user, ids]}, ON, OFF]}
        within = {"and": [{">=": [user, self.first]}, {"<=": [user, self.last]}]}
        return {"if": [within, ON, OFF]}

    def __str__(self) -> str:
        return f"users {self.prefix}{self.first}..{self.prefix}{self.last}"


@dataclass(frozen=True)
class Percent:
    """A stable share of users, bucketed by flagd's ``fractional`` on the targeting key."""

    value: float

    def targeting(self) -> dict[str, Any]:
        return {"fractional": [[ON, self.value], [OFF, 100 - self.value]]}

    def __str__(self) -> str:
        return f"{self.value:g}% of users"


@dataclass(frozen=True)
class Everyone:
    def __str__(self) -> str:
        return "everyone"


@dataclass(frozen=True)
class Nobody:
    def __str__(self) -> str:
        return "nobody"


Segment = UserRange | Percent | Everyone | Nobody


def segment_document(key: str, segment: Segment, variants: Variants = Variants()) -> dict:
    """The document exposing ``segment``: targeting for a part, the default for all or none."""
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {ON: variants.on, OFF: variants.off},
        "defaultVariant": ON if isinstance(segment, Everyone) else OFF,
    }
    if isinstance(segment, Percent) and segment.value >= 100:
        flag["defaultVariant"] = ON
    elif isinstance(segment, UserRange | Percent):
        flag["targeting"] = segment.targeting()
    return {"flags": {key: flag}}


def flag_off(key: str, variants: Variants = Variants()) -> dict:
    """Nobody exposed: default "off" and no targeting left to switch anyone on."""
    return segment_document(key, Nobody(), variants)


def with_flag(document: dict | None, key: str, flag_document: dict) -> dict:
    """``document`` with flag ``key`` as ``flag_document`` defines it, all else kept.

    The document in force is shared: other flags and top-level keys (``$schema``,
    ``$evaluators``) belong to other people and pass through untouched. Only the flag written
    here is checked, so a rule of theirs this evaluator does not know is not our business.
    """
    validate_document(flag_document)
    merged = copy.deepcopy(document) if document is not None else {}
    if not isinstance(merged, dict) or not isinstance(merged.setdefault("flags", {}), dict):
        raise PlatformError(
            'the flag document in force is not {"flags": {...}}: fix or remove it by hand; '
            "canaryflow will not overwrite what it cannot read"
        )
    merged["flags"][key] = copy.deepcopy(flag_document["flags"][key])
    return merged


def encode_document(document: dict) -> str:
    """The exact text stored: the service reports the digest of these bytes back.

    Strict JSON only, checked by reading it back: ``NaN``/``Infinity`` (which ``json.dumps``
    writes by default) or a key that changes type would make a document the service's reader
    rejects, and a reader that keeps its previous document keeps the flag as it was.
    """
    try:
        text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (ValueError, TypeError) as error:
        raise PlatformError(f"the flag document cannot be written as JSON: {error}") from None
    if json.loads(text) != document:
        raise PlatformError("the flag document does not read back as written (a non-string key?)")
    return text


def document_digest(text: str) -> str:
    """First 16 hex digits of the text's sha256, as the sample service computes it."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flag_state(document: dict, key: str) -> str:
    """``on``, ``off`` or ``partial`` for one flag of a (valid) document."""
    flag = document["flags"][key]
    if flag.get("state") == "DISABLED" or not flag.get("targeting"):
        return flag["defaultVariant"]
    return "partial"


def validate_document(document: Any, path: str = "") -> dict:
    """``document`` when it is a flagd document the service accepts; else ``InputError``."""
    errors = list(document_errors(document, path))
    if errors:
        raise InputError(errors)
    return document


def document_errors(document: Any, path: str = "") -> list[FieldError]:
    prefix = f"{path}." if path else ""
    if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
        return [
            FieldError(f"{prefix}flags", 'missing; a flagd document is {"flags": {"<key>": {...}}}')
        ]
    errors: list[FieldError] = []
    for key in sorted(document["flags"]):
        errors += _flag_errors(document["flags"][key], f"{prefix}flags.{key}")
    return errors


def _flag_errors(flag: Any, path: str) -> list[FieldError]:
    if not isinstance(flag, dict):
        return [FieldError(path, "must be an object with state, variants and defaultVariant")]
    errors = []
    if flag.get("state") not in STATES:
        errors.append(
            FieldError(f"{path}.state", f"{flag.get('state')!r} is not ENABLED or DISABLED")
        )
    variants = flag.get("variants")
    if not isinstance(variants, dict) or not variants:
        errors.append(
            FieldError(f"{path}.variants", 'empty; name them, e.g. {"on": true, "off": false}')
        )
        variants = {}
    default = flag.get("defaultVariant")
    if default not in variants:
        names = ", ".join(sorted(variants)) or "none"
        errors.append(
            FieldError(f"{path}.defaultVariant", f"{default!r} is not a variant (have: {names})")
        )
    targeting = flag.get("targeting")
    if targeting:
        problem = _rule_problem(targeting)
        if problem:
            errors.append(FieldError(f"{path}.targeting", problem))
    return errors


def _rule_problem(rule: Any) -> str | None:
    if isinstance(rule, list):
        return next((p for p in map(_rule_problem, rule) if p), None)
    if isinstance(rule, dict):
        if len(rule) != 1:
            return f"a rule object needs exactly one operator, got {len(rule)} keys"
        ((name, args),) = rule.items()
        if name not in OPERATORS:
            return f"operator {name!r} is not supported; use one of {', '.join(sorted(OPERATORS))}"
        return _rule_problem(args)
    return None
