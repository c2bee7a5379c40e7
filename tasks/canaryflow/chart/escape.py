"""Argo's ``{{…}}`` expressions inside Helm templates, left for Argo to evaluate.

Helm evaluates every ``{{`` in a template, so each Argo brace pair is written as a Helm string
literal: ``{{inputs.parameters.x}}`` becomes ``{{ "{{" }}inputs.parameters.x{{ "}}" }}``, which
Helm renders back to the original text. One pass over the text, so the braces the escape itself
introduces are never escaped again.
"""

from __future__ import annotations

import re

_BRACES = re.compile(r"\{\{|\}\}")
_LITERAL = {"{{": '{{ "{{" }}', "}}": '{{ "}}" }}'}


def escape_braces(text: str) -> str:
    """``text`` as a Helm template that renders to exactly ``text``."""
    return _BRACES.sub(lambda match: _LITERAL[match.group()], text)
