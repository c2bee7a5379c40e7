"""Arguments shared by the verbs: numbers from a command line are finite and in range, and
one ``--json`` for every verb with output.

argparse's ``type=float`` takes ``nan``, ``inf`` and ``1e999``; a timeout of NaN never fires
and an infinite one never ends. These types refuse them with exit 2 before anything runs.

``--json`` (``add_json_option``, ``emit``): the verb's result as one JSON object on stdout and
nothing else there (progress and warnings stay on stderr); its errors as the JSON document the
CLI prints for every verb (``{"ok": false, "kind": "input" | "unreachable" | "failed", ...}``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

MAX_SECONDS = 30 * 24 * 3600.0


def seconds(text: str) -> float:
    """A positive, finite number of seconds, at most 30 days."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a usable number of seconds: write a plain number above 0 "
            f"and at most {MAX_SECONDS:.0f} (30 days)"
        )
    return value


def add_json_option(
    parser: argparse.ArgumentParser,
    help: str = "print the result as one JSON object on stdout (errors too), for CI and scripts",
) -> None:
    """The one ``--json`` of every verb with output (``help``: what that verb's object holds)."""
    parser.add_argument("--json", action="store_true", help=help)


def emit(args: argparse.Namespace, document: dict[str, Any], *lines: str) -> None:
    """``document`` as one JSON object under ``--json``, else ``lines`` as written."""
    if getattr(args, "json", False):
        print(json.dumps({"ok": True, **document}, indent=2))
    else:
        for line in lines:
            print(line)
    sys.stdout.flush()
