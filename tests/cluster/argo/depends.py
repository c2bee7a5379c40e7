"""Argo's enhanced ``depends`` logic, evaluated as the workflow controller does.

Upstream: docs/enhanced-depends-logic.md and ``workflow/controller/dag.go``
(``evaluateDependsLogic``): ``task.Succeeded``, ``.Failed``, ``.Errored``, ``.Skipped``,
``.Omitted``, ``.Daemoned``, combined with ``&&``, ``||``, ``!`` and parentheses; a bare task
name means ``(task.Succeeded || task.Skipped || task.Daemoned)``. A node in phase ``Error``
matches ``.Errored``. The legacy ``dependencies`` list is the bare names joined by ``&&``.
Not implemented: ``.AnySucceeded`` / ``.AllFailed`` (they need expanded ``withItems`` groups).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?)")
OPERATORS = {"(", ")", "&&", "||", "!"}
RESULTS = {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned"}


def result_of(phase: str) -> str:
    """The depends keyword a node phase answers to (``Error`` is spelled ``Errored``)."""
    return "Errored" if phase == "Error" else phase


class Depends:
    """A recursive-descent evaluator of Argo's ``depends`` grammar."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = self._tokenize(text)
        self.position = 0

    @classmethod
    def of_task(cls, task: Mapping) -> Depends | None:
        if task.get("depends"):
            return cls(task["depends"])
        if task.get("dependencies"):
            return cls(" && ".join(task["dependencies"]))
        return None

    @staticmethod
    def _tokenize(text: str) -> list[str]:
        tokens, index = [], 0
        while index < len(text.rstrip()):
            match = TOKEN.match(text, index)
            if not match:
                raise ValueError(f"cannot read depends at {text[index:]!r}")
            token = match.group(1)
            if "." in token and token.split(".")[1] not in RESULTS:
                raise ValueError(f"depends: unknown task result in {token!r}")
            tokens.append(token)
            index = match.end()
        return tokens

    @staticmethod
    def referenced(text: str) -> set[str]:
        return {t.split(".")[0] for t in Depends._tokenize(text) if t not in OPERATORS}

    @property
    def tasks(self) -> set[str]:
        return self.referenced(self.text)

    def evaluate(self, phases: Mapping[str, str]) -> bool:
        """``phases``: task name → node phase (Succeeded, Failed, Error, Skipped, Omitted ...)."""
        self.position = 0
        value = self._or(phases)
        if self.position != len(self.tokens):
            raise ValueError(f"depends: trailing tokens in {self.text!r}")
        return value

    def _next(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _or(self, phases):
        value = self._and(phases)
        while self._next() == "||":
            self.position += 1
            value = self._and(phases) or value
        return value

    def _and(self, phases):
        value = self._not(phases)
        while self._next() == "&&":
            self.position += 1
            value = self._not(phases) and value
        return value

    def _not(self, phases):
        token = self._next()
        self.position += 1
        if token == "!":
            return not self._not(phases)
        if token == "(":
            value = self._or(phases)
            if self._next() != ")":
                raise ValueError(f"depends: missing ')' in {self.text!r}")
            self.position += 1
            return value
        if token is None or token in OPERATORS:
            raise ValueError(f"depends: expected a task in {self.text!r}")
        task, _, result = token.partition(".")
        phase = result_of(phases[task])
        if not result:
            return phase in {"Succeeded", "Skipped", "Daemoned"}
        return phase == result
