"""Log patterns in RE2 semantics: a match takes time linear in the line, whatever the pattern.

A ``logs`` gate matches the canary's log lines, and the sample service logs request paths, so
a user's request chooses the text a plan's pattern runs on. With Python's backtracking ``re``,
``(a+)+$`` against forty ``a`` and a ``!`` never returns, and the window (with the canary
holding traffic) stalls (issue 23, item 10). RE2 (``google-re2``, the bindings of Google's
engine) guarantees time linear in the input; what it cannot run in linear time
(backreferences, lookahead and lookbehind) it refuses to compile, so such a pattern is refused
when the plan is validated, never discovered mid-release. Each line is also cut to
``MAX_LINE_CHARS`` before matching, so one huge line costs a bounded time too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import re2

MAX_PATTERN_CHARS = 1024
MAX_LINE_CHARS = 16 * 1024


class LogPatternError(ValueError):
    """A pattern RE2 cannot compile: the message says why and how to fix it."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the refusal goes into the plan's error, not stderr
    options.never_capture = True  # only "does it match": no submatch bookkeeping
    return options


def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2; LogPatternError when it has no linear-time meaning."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise LogPatternError(
            f"a log pattern of {len(pattern)} characters: at most {MAX_PATTERN_CHARS}"
        )
    try:
        return re2.compile(pattern, _options())
    except re2.error as error:
        why = str(
            error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else error
        )
        raise LogPatternError(
            f"log pattern {_shown(pattern)} cannot be matched in linear time or is not a "
            f"regular expression ({why}): backreferences (\\1) and lookaround ((?=, (?!, (?<=) "
            "are not supported; escape special characters with a backslash"
        ) from None


def matching_lines(patterns: Sequence[str], lines: Sequence[str]) -> list[str]:
    """The lines (whole) of which the first ``MAX_LINE_CHARS`` match any pattern."""
    compiled = [compile_pattern(p) for p in patterns]
    return [line for line in lines if any(p.search(line[:MAX_LINE_CHARS]) for p in compiled)]


def matching_times(patterns: Sequence[str], lines: Sequence[tuple[float, str]]) -> list[float]:
    """When each matching line was written, of lines stamped ``(unix seconds, text)``."""
    compiled = [compile_pattern(p) for p in patterns]
    return [t for t, line in lines if any(p.search(line[:MAX_LINE_CHARS]) for p in compiled)]


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
