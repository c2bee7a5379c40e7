"""Argument types shared by the verbs: numbers from a command line are finite and in range.

argparse's ``type=float`` takes ``nan``, ``inf`` and ``1e999``; a timeout of NaN never fires
and an infinite one never ends. These types refuse them with exit 2 before anything runs.
"""

from __future__ import annotations

import argparse
import math

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
