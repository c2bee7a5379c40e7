"""``when`` conditions, evaluated as Argo does: govaluate with every variable read as a string.

Upstream: ``workflow/controller/operator.go`` / ``steps.go`` ``shouldExecute``: the condition,
already substituted, is parsed by ``github.com/Knetic/govaluate``; every VARIABLE token is turned
into a STRING token ("foo != bar" needs no quotes), then evaluated without parameters; a
non-boolean result is an error. Supported here: numbers, quoted strings, ``true``/``false``,
bare words (letters, digits, ``_`` and ``.``; a ``-`` is govaluate's minus), ``== != < <= > >=``,
``=~ !~`` (Go regexp), ``&& || !``, ``+ - * / %``, parentheses, ``? :``.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>\d+(?:\.\d+)?) |
    (?P<string>'[^']*'|"[^"]*") |
    (?P<op>&&|\|\||==|!=|=~|!~|<=|>=|[<>!+\-*/%()?:]) |
    (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


class WhenError(ValueError):
    pass


def tokenize(text: str) -> list[tuple[str, Any]]:
    tokens, index, text = [], 0, text.strip()
    while index < len(text):
        match = _TOKEN.match(text, index)
        if not match or match.end() == index:
            raise WhenError(
                f"Invalid 'when' expression {text!r}: cannot read {text[index:]!r} "
                '(hint: try wrapping the affected expression in quotes ("))'
            )
        index = match.end()
        if match["number"] is not None:
            tokens.append(("value", float(match["number"])))
        elif match["string"] is not None:
            tokens.append(("value", match["string"][1:-1]))
        elif match["op"] is not None:
            tokens.append(("op", match["op"]))
        else:
            word = match["word"]
            tokens.append(("value", {"true": True, "false": False}.get(word, word)))
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]], text: str):
        self.tokens, self.position, self.text = tokens, 0, text

    def peek(self) -> Any:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "op":
            return self.tokens[self.position][1]
        return None

    def take(self) -> tuple[str, Any]:
        if self.position >= len(self.tokens):
            raise WhenError(f"Invalid 'when' expression {self.text!r}: unexpected end")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def ternary(self) -> Any:
        condition = self.logical()
        if self.peek() == "?":
            self.take()
            yes = self.ternary()
            no = None
            if self.peek() == ":":
                self.take()
                no = self.ternary()
            return yes if condition is True else no
        return condition

    def logical(self) -> Any:
        value = self.comparison()
        while self.peek() in ("&&", "||"):
            op = self.take()[1]
            right = self.comparison()
            value = (
                (value is True and right is True)
                if op == "&&"
                else (value is True or right is True)
            )
        return value

    def comparison(self) -> Any:
        value = self.additive()
        while self.peek() in ("==", "!=", "<", "<=", ">", ">=", "=~", "!~"):
            op = self.take()[1]
            value = _compare(op, value, self.additive(), self.text)
        return value

    def additive(self) -> Any:
        value = self.multiplicative()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            right = self.multiplicative()
            if op == "+" and (isinstance(value, str) or isinstance(right, str)):
                value = _text(value) + _text(right)
            else:
                value = _number(value, self.text) + (1 if op == "+" else -1) * _number(
                    right, self.text
                )
        return value

    def multiplicative(self) -> Any:
        value = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()[1]
            left, right = _number(value, self.text), _number(self.unary(), self.text)
            value = left * right if op == "*" else left / right if op == "/" else left % right
        return value

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not self.unary()
        if self.peek() == "-":
            self.take()
            return -_number(self.unary(), self.text)
        if self.peek() == "(":
            self.take()
            value = self.ternary()
            if self.take() != ("op", ")"):
                raise WhenError(f"Invalid 'when' expression {self.text!r}: missing ')'")
            return value
        kind, value = self.take()
        if kind != "value":
            raise WhenError(f"Invalid 'when' expression {self.text!r}: unexpected {value!r}")
        return value


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number(value: Any, text: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WhenError(f"Invalid 'when' expression {text!r}: {value!r} is not a number")
    return float(value)


def _compare(op: str, left: Any, right: Any, text: str) -> bool:
    if op in ("=~", "!~"):
        return bool(re.search(str(right), str(left))) == (op == "=~")
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if isinstance(left, str) and isinstance(right, str):
        pair = (left, right)
    else:
        pair = (_number(left, text), _number(right, text))
    return {"<": pair[0] < pair[1], "<=": pair[0] <= pair[1], ">": pair[0] > pair[1]}.get(
        op, pair[0] >= pair[1]
    )


def should_execute(when: str) -> bool:
    """True when the (substituted) ``when`` holds; an empty condition always does."""
    if not when.strip():
        return True
    parser = _Parser(tokenize(when), when)
    result = parser.ternary()
    if parser.position != len(parser.tokens):
        raise WhenError(f"Invalid 'when' expression {when!r}: trailing tokens")
    if not isinstance(result, bool):
        raise WhenError(f"Expected boolean evaluation for {when!r}. Got {result!r}")
    return result
