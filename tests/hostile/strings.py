"""The hostile strings every parameter and plan value is fed (issue 14).

Each one is something a careless user or an attacker writes where a name, a ref, a path or a
header belongs: a flag (``-rf``, ``--help``), shell expansion (``$(...)``, backticks), line
breaks (header and log injection), a path out of a folder (``../``) and unicode look-alikes
(a Cyrillic ``\\u0435`` in a name, a fullwidth ``\\uff0d`` that renders like a dash).
"""

from __future__ import annotations

MARKER = "canaryflow-pwned"

HOSTILE = (
    "-rf",
    "--help",
    "-exec=/bin/sh",
    f"$(touch {MARKER})",
    f"`touch {MARKER}`",
    f"a;touch {MARKER}",
    f"a && touch {MARKER}",
    f"a | touch {MARKER}",
    "line\nbreak",
    "cr\r\nX-Injected: 1",
    "../../../etc/passwd",
    "..",
    "/etc/passwd",
    "quote'\"",
    "ch\u0435ckout",  # a Cyrillic e
    "\uff0drf",  # a fullwidth hyphen-minus
    "a\x00b",
    "   ",
    "",
    "$HOME",
    "${IFS}",
    "*",
    "~root",
    "a" * 10_000,
)
