"""``when`` conditions, evaluated as Argo does: govaluate with every variable read as a string.

Upstream: argo-workflows v3.6.19 ``workflow/controller/steps.go`` ``shouldExecute``: the
condition, already substituted, is lexed by ``github.com/Knetic/govaluate``
(v3.0.1-0.20250325060307-7625b7f8c03d); every VARIABLE token is turned into a STRING token
("foo != bar" needs no quotes), then evaluated without parameters; a non-boolean result is an
error. Followed here from govaluate's own files:

* lexing (``parsing.go`` ``readToken``, ``lexerState.go``): numbers are runs of digits and
  dots; words start with a letter and run over letters, digits, ``_`` and ``.`` — a dotted word
  is an ACCESSOR, not a VARIABLE, so it is never read as a string (``x.y`` is an error); quoted
  strings end at the next quote of either kind; any other run of symbols is one operator
  (``!!`` is an invalid token); each token must be allowed after the one before (``!'x'``:
  "Cannot transition token types from PREFIX");
* precedence (``stagePlanner.go``): ``? : ??`` < ``||`` < ``&&`` < comparators < ``+ -`` <
  ``* / %`` < ``**`` < prefix ``! -``, each level left-associative;
* evaluation (``EvaluableExpression.go`` ``evaluateStage``, ``evaluationStage.go``): ``&&``
  and ``||`` short-circuit; operands are type-checked (``&& || !`` and ``?`` want booleans,
  ``< <= > >=`` two numbers or two strings, ``=~ !~`` strings, ``- * / % **`` numbers, ``+``
  adds numbers or joins when either side is a string); ``==`` is ``reflect.DeepEqual`` (a
  number never equals a string or a boolean).

Not followed: quoted strings that parse as dates (govaluate's TIME tokens), hex literals,
bitwise and shift operators, ``in`` with arrays, functions.
"""

from __future__ import annotations

import math
import re
from typing import Any

_OPERATOR_CHARS = re.compile(r"""[^\sA-Za-z0-9()\[\]'"]+""")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"[0-9.]+")
_PREFIXES = {"!", "-"}
_MODIFIERS = {"+", "-", "*", "/", "%", "**"}
_LOGICAL = {"&&", "||"}
_COMPARATORS = {"==", "!=", ">", ">=", "<", "<=", "=~", "!~"}
_TERNARY = {"?", ":", "??"}
_VALUES = {"number", "bool", "variable", "string"}
_OPERANDS = _VALUES | {"prefix", "accessor", "clause"}
# lexerState.go: the kinds each kind may be followed by ("end" where the expression may stop).
_NEXT = {
    "start": _OPERANDS,
    "clause": _OPERANDS | {"close"},
    "close": _VALUES | {"clause", "close", "comparator", "modifier", "logical", "ternary", "end"},
    "modifier": _OPERANDS | {"close"},
    "comparator": _OPERANDS | {"close"},
    "logical": _OPERANDS | {"close"},
    "prefix": {"number", "bool", "variable", "accessor", "clause", "close"},
    "ternary": _OPERANDS,
    "accessor": {"clause", "modifier", "comparator", "logical", "close", "ternary", "end"},
    "pattern": {"modifier", "comparator", "logical", "close", "end"},
}
for _kind in _VALUES:
    _NEXT[_kind] = {"modifier", "comparator", "logical", "close", "ternary", "end"}


class WhenError(ValueError):
    pass


class Pattern(str):
    """A string right after ``=~``/``!~``: govaluate compiles it to a regexp (``parsing.go``
    ``optimizeTokens``), so it is neither a string nor a number to any other operator."""


def _fail(text: str, why: str) -> WhenError:
    return WhenError(f"Invalid 'when' expression {text!r}: {why}")


def _read_string(text: str, start: int) -> tuple[str, int]:
    """A quoted string from ``start`` (after the quote) to the next quote of either kind."""
    out, index = [], start
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
            continue
        if char in "'\"":
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise _fail(text, "Unclosed string literal")


def _read_word(word: str, text: str) -> tuple[str, Any]:
    if word in ("true", "false"):
        return "bool", word == "true"
    if word in ("in", "IN"):
        raise _fail(text, "the 'in' comparator is not supported by this stand-in")
    if "." in word:
        if word.endswith("."):
            raise _fail(text, f"Hanging accessor on token '{word}'")
        for part in word.split(".")[1:]:
            if part[:1] != part[:1].upper():
                raise _fail(text, f"Unable to access unexported field '{part}' in token '{word}'")
        return "accessor", word
    return "variable", word


def _operator_kind(symbol: str, after: str) -> str:
    if symbol in _PREFIXES and "prefix" in _NEXT[after]:
        return "prefix"
    for kind, symbols in (
        ("modifier", _MODIFIERS),
        ("logical", _LOGICAL),
        ("comparator", _COMPARATORS),
        ("ternary", _TERNARY),
    ):
        if symbol in symbols:
            return kind
    return ""


def _next_token(text: str, index: int, after: str) -> tuple[tuple[str, Any], int]:
    char = text[index]
    if char.isdigit() or char == ".":
        number = _NUMBER.match(text, index).group(0)  # type: ignore[union-attr]
        try:
            return ("number", float(number)), index + len(number)
        except ValueError:
            raise _fail(text, f"Unable to parse numeric value '{number}' to float64") from None
    if char.isalpha():
        word = _WORD.match(text, index).group(0)  # type: ignore[union-attr]
        return _read_word(word, text), index + len(word)
    if char in "'\"":
        value, end = _read_string(text, index + 1)
        return ("string", value), end
    if char == "[":
        close = text.find("]", index)
        if close < 0:
            raise _fail(text, "Unclosed parameter bracket")
        return ("variable", text[index + 1 : close]), close + 1
    if char in "()":
        return ("clause" if char == "(" else "close", char), index + 1
    symbol = _OPERATOR_CHARS.match(text, index).group(0)  # type: ignore[union-attr]
    kind = _operator_kind(symbol, after)
    if not kind:
        raise _fail(
            text,
            f"Invalid token: '{symbol}' "
            '(hint: try wrapping the affected expression in quotes ("))',
        )
    return (kind, symbol), index + len(symbol)


def tokenize(text: str) -> list[tuple[str, Any]]:
    """govaluate's tokens, VARIABLE already read as STRING (as shouldExecute does)."""
    tokens: list[tuple[str, Any]] = []
    index, after, depth = 0, "start", 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        token, index = _next_token(text, index, after)
        kind = "string" if token[0] == "variable" else token[0]
        # shouldExecute lexes twice, the second time with VARIABLE already STRING: both must pass
        if kind not in _NEXT[after]:
            previous = tokens[-1][1] if tokens else ""
            raise _fail(
                text,
                f"Cannot transition token types from {after.upper()} [{previous}] "
                f"to {kind.upper()} [{token[1]}]",
            )
        depth += {"clause": 1, "close": -1}.get(kind, 0)
        after = kind
        value = token[1]
        if kind == "string" and tokens and tokens[-1][1] in ("=~", "!~"):
            # a quoted string is a PATTERN from the first lexing on (no ternary after it);
            # a bare word only becomes one in the second, after its syntax was checked
            value = _pattern(value, text)
            after = "pattern" if token[0] == "string" else after
        tokens.append((kind, value))
    if depth != 0:
        raise _fail(text, "Unbalanced parenthesis")
    if "end" not in _NEXT[after]:
        raise _fail(text, "Unexpected end of expression")
    return tokens


def _pattern(source: str, text: str) -> Pattern:
    try:
        re.compile(source)
    except re.error as error:
        raise _fail(text, f"error parsing regexp: {error}") from None
    return Pattern(source)


# A parsed expression: ("value", v) or (operator, left, right) / ("prefix", op, operand).
Node = tuple[Any, ...]
_LEVELS: list[set[str]] = [
    {"?", ":", "??"},
    {"||"},
    {"&&"},
    _COMPARATORS,
    {"+", "-"},
    {"*", "/", "%"},
    {"**"},
]


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]], text: str):
        self.tokens, self.position, self.text = tokens, 0, text

    def peek(self) -> Any:
        if self.position < len(self.tokens):
            kind, value = self.tokens[self.position]
            if kind in ("modifier", "logical", "comparator", "ternary", "close"):
                return value
        return None

    def level(self, depth: int = 0) -> Node:
        if depth == len(_LEVELS):
            return self.prefix()
        node = self.level(depth + 1)
        while self.peek() in _LEVELS[depth]:
            op = self.tokens[self.position][1]
            self.position += 1
            node = (op, node, self.level(depth + 1))
        return node

    def prefix(self) -> Node:
        kind, value = self.tokens[self.position]
        self.position += 1
        if kind == "prefix":
            return ("prefix", value, self.prefix())
        if kind == "clause":
            node = self.level()
            if self.peek() != ")":
                raise _fail(self.text, "missing ')'")
            self.position += 1
            return node
        if kind == "accessor":
            return ("accessor", value)
        if kind not in _VALUES:
            raise _fail(self.text, f"unexpected {value!r}")
        return ("value", value)


def _go(value: Any) -> str:
    """A value as Go's ``%v`` prints it (float64 without a needless ``.0``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return "<nil>" if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, float) and not isinstance(value, bool)


def _is_string(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, Pattern)


def _type_error(value: Any, op: str, what: str) -> WhenError:
    formats = {
        "logical": "Value '{}' cannot be used with the logical operator '{}', it is not a bool",
        "modifier": "Value '{}' cannot be used with the modifier '{}', it is not a number",
        "comparator": "Value '{}' cannot be used with the comparator '{}', it is not a number",
        "ternary": "Value '{}' cannot be used with the ternary operator '{}', it is not a bool",
        "prefix": "Value '{}' cannot be used with the prefix '{}'",
    }
    return WhenError(formats[what].format(_go(value), op))


def _prefix(op: str, value: Any) -> Any:
    if op == "!":
        if not isinstance(value, bool):
            raise _type_error(value, op, "prefix")
        return not value
    if not _is_number(value):
        raise _type_error(value, op, "prefix")
    return -value


def _arith(op: str, left: Any, right: Any) -> Any:
    if op == "+":
        if _is_number(left) and _is_number(right):
            return left + right
        if not _is_string(left) and not _is_string(right):
            raise _type_error(left, op, "modifier")
        return _go(left) + _go(right)
    for value in (left, right):
        if not _is_number(value):
            raise _type_error(value, op, "modifier")
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "**":
        return math.pow(left, right)
    if right == 0:
        return math.nan if op == "%" or left == 0 else math.copysign(math.inf, left)
    return left / right if op == "/" else math.fmod(left, right)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("==", "!="):
        same = type(left) is type(right) and left == right
        return same == (op == "==")
    if op in ("=~", "!~"):
        if not _is_string(left):
            raise _type_error(left, op, "comparator")
        if not isinstance(right, str):
            raise _type_error(right, op, "comparator")
        return bool(re.search(right, left)) == (op == "=~")
    both_numbers = _is_number(left) and _is_number(right)
    if not (both_numbers or (_is_string(left) and _is_string(right))):
        raise _type_error(left, op, "comparator")
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _evaluate(node: Node) -> Any:
    if node[0] == "value":
        return node[1]
    if node[0] == "prefix":
        return _prefix(node[1], _evaluate(node[2]))
    if node[0] == "accessor":  # evaluated without parameters: there is nothing to access
        raise WhenError(f"No parameter '{node[1].split('.')[0]}' found.")
    op, left_node, right_node = node
    left = _evaluate(left_node)
    if (op == "&&" and left is False) or (op == "||" and left is True):
        return left
    if op == "??" and left is not None:
        return left
    if op == ":" and left is not None:
        return left
    if op == "?" and left is False:
        return None
    right = _evaluate(right_node)
    if op in ("&&", "||"):
        for value in (left, right):
            if not isinstance(value, bool):
                raise _type_error(value, op, "logical")
        return right
    if op == "?":
        if not isinstance(left, bool):
            raise _type_error(left, op, "ternary")
        return right
    if op in (":", "??"):
        return right
    if op in _COMPARATORS:
        return _compare(op, left, right)
    return _arith(op, left, right)


def should_execute(when: str) -> bool:
    """True when the (substituted) ``when`` holds; an empty condition always does."""
    if when == "":
        return True
    parser = _Parser(tokenize(when), when)
    if not parser.tokens:
        return True
    tree = parser.level()
    if parser.position != len(parser.tokens):
        raise _fail(when, "trailing tokens")
    try:
        result = _evaluate(tree)
    except WhenError as error:  # upstream's wording, typo included
        raise WhenError(f"Failed to evaluate 'when' expresion '{when}': {error}") from None
    if not isinstance(result, bool):
        raise WhenError(f"Expected boolean evaluation for '{when}'. Got {_go(result)}")
    return result
