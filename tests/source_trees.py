"""The product's Python sources parsed, for the tests that read its code (layers, RBAC grants).

CPython 3.11 before 3.11.8 can fail a correct ``ast.parse`` with a spurious ``SystemError:
AST constructor recursion depth mismatch`` (python/cpython#106905, fixed for 3.11 by
python/cpython#112849): the depth the ``ast`` module counts while it builds the tree lives in
the interpreter's module state, not the thread's, so another thread of the test process that
builds a tree at the same moment (pytest rewriting a module a server thread imports) can leave
it off. It failed ``test_chart_rbac`` once in each of two full runs on 3.11.7 here. Parsing the
same text is deterministic, so a parse that failed that way alone is tried again.
"""

from __future__ import annotations

import ast
from pathlib import Path

ATTEMPTS = 3
SPURIOUS = "AST constructor recursion depth mismatch"


def parse(path: Path) -> ast.Module:
    """``ast.parse`` of the file, again after CPython 3.11.7's spurious depth error only."""
    text = path.read_text()
    for attempt in range(ATTEMPTS):
        try:
            return ast.parse(text, filename=str(path))
        except SystemError as error:
            if SPURIOUS not in str(error) or attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
