"""Durations as people write them in plans ("30s", "2m", "1h30m", "500ms"), as seconds.

Go's and Argo's duration syntax, so a value copied from an Argo Rollouts or Flagger spec means
the same thing here. Bare numbers are seconds.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h))+$"


def parse_duration(value: object) -> float:
    """Seconds from ``"1m30s"``-style text or a number; ValueError says how to write one."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 2m or 1h30m, not true/false")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(PATTERN, value.strip()):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value.strip()))
    else:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 2m, 1h30m or 500ms")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; durations are 0 or more")
    return seconds


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
            "anyOf": [{"type": "string", "pattern": PATTERN}, {"type": "number", "minimum": 0}],
            "description": "A duration: 30s, 2m, 1h30m, 500ms, or a number of seconds.",
        }
    ),
]
