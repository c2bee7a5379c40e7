"""Durations as people write them in plans ("30s", "2m", "1h30m", "500ms"), as seconds.

Go's and Argo's duration syntax, so a value copied from an Argo Rollouts or Flagger spec means
the same thing here. Bare numbers are seconds.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# ASCII digits only (Python's \d also takes full-width digits, U+FF10...), and no trailing
# newline (a $ would allow one).
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
# 30 days: longer than any release window or approval wait; beyond it is a typo (or 1e999).
MAX_SECONDS = 30 * 24 * 3600.0
_MAX_TEXT = 64
_WHOLE = re.compile(PATTERN[1:-1], re.ASCII)


def parse_duration(value: object) -> float:
    """Seconds from ``"1m30s"``-style text or a number; ValueError says how to write one."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 2m or 1h30m, not true/false")
    shown = _shown(value)
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float
            seconds = math.inf
    elif isinstance(value, str) and len(value) <= _MAX_TEXT and _WHOLE.fullmatch(value):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    else:
        raise ValueError(f"{shown} is not a duration; write it like 30s, 2m, 1h30m or 500ms")
    if math.isnan(seconds):
        raise ValueError(f"{shown} is not a number; write a duration like 30s, 2m or 1h30m")
    if seconds < 0:
        raise ValueError(f"{shown} is negative; durations are 0 or more")
    if math.isinf(seconds):
        raise ValueError(f"{shown} is not a finite duration; write it like 30s, 2m or 1h30m")
    if seconds > MAX_SECONDS:
        raise ValueError(
            f"{shown} is longer than 30 days (720h), the longest duration a plan takes"
        )
    return seconds


def _shown(value: object) -> str:
    """The value as a message may quote it: short, and never failing (a 5000-digit int)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number with more than 19 digits"
    text = repr(value[: _MAX_TEXT + 1] if isinstance(value, str) else value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 4] + "...'"


def format_duration(seconds: float) -> str:
    """The shortest plan spelling of ``seconds`` (``90.0`` -> ``"1m30s"``)."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m")) if n)
    fraction = seconds - whole
    if secs or fraction or not text:
        text += f"{secs + fraction:g}s"
    return text


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PATTERN},
                {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
            ],
            "description": "A duration: 30s, 2m, 1h30m, 500ms, or a number of seconds.",
        }
    ),
]
