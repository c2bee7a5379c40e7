"""The subset of expr-lang (github.com/expr-lang/expr) Argo's ``{{=...}}`` tags use here.

Upstream: docs/variables.md ("expression" tags) and ``util/template/expression_template.go``:
the flat variable map is expanded into nested maps (``inputs.parameters.x`` is
``inputs.parameters['x']``), the expression is evaluated, a nil result is an error
("failed to evaluate expression"), a string result is written as it is and anything else as
JSON. Argo's functions: ``asInt``, ``asFloat``, ``string``, ``jsonpath``, ``toJson`` and
``sprig.*``; expr's own: ``len``, ``int``, ``float``, ``lower``, ``upper``, ``trim``,
``split``, ``join``, ``first``, ``last``, ``toJSON``, ``fromJSON``.

Grammar implemented: literals (numbers, quoted strings, ``true``/``false``/``nil``, ``[...]``,
``{k: v}``), member access ``a.b``, ``a['b']``, ``a[0]``, ``a[1:]``, ``?.``, calls, unary
``! not -``, ``* / %``, ``+ -`` (``+`` joins strings), ``== != < <= > >=``, ``in``, ``contains``,
``startsWith``, ``endsWith``, ``matches``, ``&& and || or``, ``??`` and ``? :``. Not
implemented: closures (``filter``/``map`` with ``#``), pipes, ``let``.

Checked against expr-lang v1.17.7 on random expressions (README, "Checked against upstream
Argo Workflows"); the parser climbs expr-lang's operator precedences (``??`` binds tightest and
cannot be mixed with another operator unparenthesised; ``a < b < c`` chains), numbers decoded
from JSON are float64 and JSON is written as Go's json.Marshal writes it. Known differences: this
evaluates as it parses, so ``&& || ?: ??`` never short-circuit (an error in a branch expr-lang
skips is raised here), and a non-bool operand of ``&&``/``||`` is refused where expr-lang passes
it through. Neither form is in the generated templates.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>\d+\.\d+|\d+) |
    (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*") |
    (?P<op>\?\?|\?\.|&&|\|\||==|!=|<=|>=|\.\.|[-+*/%<>!?:.,()\[\]{}]) |
    (?P<word>[A-Za-z_$][A-Za-z0-9_$]*)
    )""",
    re.VERBOSE,
)
_WORD_OPERATORS = {"and", "or", "not", "in", "contains", "startsWith", "endsWith", "matches"}


class ExprError(ValueError):
    pass


# expr-lang v1.17.7 parser/operator/operator.go (the operators this subset reads)
_BINARY = {
    "||": 10, "or": 10, "&&": 15, "and": 15,
    "==": 20, "!=": 20, "<": 20, ">": 20, ">=": 20, "<=": 20,
    "in": 20, "matches": 20, "contains": 20, "startsWith": 20, "endsWith": 20,
    "+": 30, "-": 30, "*": 60, "/": 60, "%": 60, "??": 500,
}  # fmt: skip
_UNARY = {"!": 50, "not": 50, "-": 90, "+": 90}
_CHAINED = ("<", ">", "<=", ">=")
_NEGATABLE = {"in", "contains", "matches", "startsWith", "endsWith"}


def _tokens(text: str) -> list[tuple[str, Any]]:
    out, index = [], 0
    while index < len(text.rstrip()):
        match = _TOKEN.match(text, index)
        if not match or match.end() == index:
            raise ExprError(f"cannot read expression at {text[index:]!r}")
        index = match.end()
        if match["number"] is not None:
            number = match["number"]
            out.append(("value", float(number) if "." in number else int(number)))
        elif match["string"] is not None:
            out.append(("value", json.loads('"' + _unquote(match["string"]) + '"')))
        elif match["op"] is not None:
            out.append(("op", match["op"]))
        elif match["word"] in _WORD_OPERATORS:
            out.append(("op", match["word"]))
        elif match["word"] in ("true", "false", "nil"):
            out.append(("value", {"true": True, "false": False, "nil": None}[match["word"]]))
        else:
            out.append(("name", match["word"]))
    return out


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    if literal[0] == "'":
        body = body.replace("\\'", "'").replace('"', '\\"')
    return body


_MISSING = object()


class _Parser:
    """Recursive descent over the token list, evaluating as it goes (no side effects)."""

    def __init__(self, text: str, env: Mapping[str, Any]):
        self.text, self.env = text, env
        self.tokens = _tokens(text)
        self.position = 0

    # token helpers
    def peek(self, offset: int = 0) -> tuple[str, Any] | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in ops

    def expect(self, op: str) -> None:
        if not self.at(op):
            raise ExprError(f"expected {op!r} in {self.text!r}")
        self.position += 1

    # grammar: expr-lang v1.17.7 parser/parser.go parseExpression (precedence climbing over
    # parser/operator Binary), parseComparison, parseConditional, parsePrimary (Unary)
    def expression(self) -> Any:
        return self.binary(0)

    def binary(self, floor: int) -> Any:
        value = self.unary()
        previous = ""
        while True:
            op, width, negate = self._binary_operator()
            if op is None or _BINARY[op] < floor:
                break
            if previous == "??" and op != "??":
                raise ExprError(
                    f"Operator ({op}) and coalesce expressions (??) cannot be mixed. "
                    f"Wrap either by parentheses. in {self.text!r}"
                )
            self.position += width
            if op in _CHAINED:
                value = self._comparison_chain(value, op)
            else:
                value = self._apply(op, value, self.binary(_BINARY[op] + 1), negate)
            previous = op
        return self._conditional(value) if floor == 0 else value

    def _binary_operator(self) -> tuple[str | None, int, bool]:
        """The binary operator at the cursor, how many tokens it takes, and whether ``not``
        negates it (``not in``, ``not contains`` ...)."""
        token = self.peek()
        if token is None or token[0] != "op":
            return None, 0, False
        if token[1] == "not":
            following = self.peek(1)
            if following is not None and following[0] == "op" and following[1] in _NEGATABLE:
                return following[1], 2, True
            return None, 0, False
        return (token[1], 1, False) if token[1] in _BINARY else (None, 0, False)

    def _comparison_chain(self, left: Any, op: str) -> Any:
        """``a < b < c`` is ``a < b && b < c`` (parseComparison)."""
        result: bool | None = None
        while True:
            right = self.binary(_BINARY[op] + 1)
            holds = _compare(op, left, right, self.text)
            result = holds if result is None else (result and holds)
            left = right
            if not self.at(*_CHAINED):
                return result
            op = self.tokens[self.position][1]
            self.position += 1

    def _apply(self, op: str, left: Any, right: Any, negate: bool) -> Any:
        if op == "??":
            return right if left is None else left
        if op in ("||", "or"):
            return _bool(left, self.text) or _bool(right, self.text)
        if op in ("&&", "and"):
            return _bool(left, self.text) and _bool(right, self.text)
        if _BINARY[op] == 20:
            return _compare(op, left, right, self.text) != negate
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            return left + right
        return _arith(op, left, right, self.text)

    def _conditional(self, condition: Any) -> Any:
        while self.at("?"):
            self.position += 1
            yes = self.binary(0)
            self.expect(":")
            no = self.binary(0)
            if not isinstance(condition, bool):
                raise ExprError(f"non-bool {condition!r} used as a condition in {self.text!r}")
            condition = yes if condition else no
        return condition

    def unary(self) -> Any:
        if self.at("!", "not"):
            self.position += 1
            return not _bool(self.binary(_UNARY["!"]), self.text)
        if self.at("-", "+"):
            sign = self.tokens[self.position][1]
            self.position += 1
            operand = self.binary(_UNARY["-"])
            return _arith(sign, 0, operand, self.text)
        return self.postfix()

    def postfix(self) -> Any:
        value, name = self.primary()
        while True:
            if self.at(".", "?."):
                optional = self.at("?.")
                self.position += 1
                token = self.peek()
                if token is None or token[0] not in ("name", "op"):
                    raise ExprError(f"expected a field name in {self.text!r}")
                self.position += 1
                field = str(token[1])
                if self.at("(") and name is not None:
                    name = f"{name}.{field}"
                    value = _MISSING
                    continue
                value = None if (optional and value is None) else _member(value, field, self.text)
                name = None
            elif self.at("["):
                self.position += 1
                value = self._index(value)
                name = None
            elif self.at("("):
                self.position += 1
                arguments = []
                while not self.at(")"):
                    arguments.append(self.expression())
                    if not self.at(")"):
                        self.expect(",")
                self.expect(")")
                value = _call(name, arguments, self.text)
                name = None
            else:
                if value is _MISSING:
                    raise ExprError(f"unknown name {name!r} in {self.text!r}")
                return value

    def _index(self, value: Any) -> Any:
        start = None if self.at(":") else self.expression()
        if self.at(":"):
            self.position += 1
            end = None if self.at("]") else self.expression()
            self.expect("]")
            return value[start:end]
        self.expect("]")
        if isinstance(value, list) and isinstance(start, int):
            return value[start] if -len(value) <= start < len(value) else None
        return _member(value, start, self.text)

    def primary(self) -> tuple[Any, str | None]:
        token = self.peek()
        if token is None:
            raise ExprError(f"unexpected end of {self.text!r}")
        self.position += 1
        kind, value = token
        if kind == "value":
            return value, None
        if kind == "name":
            found = self.env.get(value, _MISSING)
            return found, value
        if value == "(":
            inner = self.expression()
            self.expect(")")
            return inner, None
        if value == "[":
            items = []
            while not self.at("]"):
                items.append(self.expression())
                if not self.at("]"):
                    self.expect(",")
            self.expect("]")
            return items, None
        if value == "{":
            mapping = {}
            while not self.at("}"):
                key_token = self.peek()
                self.position += 1
                self.expect(":")
                mapping[str(key_token[1])] = self.expression()
                if not self.at("}"):
                    self.expect(",")
            self.expect("}")
            return mapping, None
        raise ExprError(f"unexpected {value!r} in {self.text!r}")


def _member(value: Any, key: Any, text: str) -> Any:
    if value is _MISSING:
        raise ExprError(f"unknown name in {text!r}")
    if isinstance(value, Mapping):
        return value.get(key)
    if value is None:
        raise ExprError(f"cannot fetch {key!r} from nil in {text!r}")
    raise ExprError(f"cannot fetch {key!r} from {type(value).__name__} in {text!r}")


def _bool(value: Any, text: str) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"{value!r} is not a bool in {text!r}")
    return value


def _arith(op: str, left: Any, right: Any, text: str) -> Any:
    for side in (left, right):
        if isinstance(side, bool) or not isinstance(side, int | float):
            raise ExprError(f"invalid operation {left!r} {op} {right!r} in {text!r}")
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":  # expr's division is always float64: a zero divisor gives ±Inf or NaN
        if right == 0:
            return math.nan if left == 0 else math.copysign(math.inf, left)
        return left / right
    return _modulo(left, right, text)


def _modulo(left: Any, right: Any, text: str) -> int:
    """expr-lang v1.17.7 vm/runtime ``Modulo``: integers only, Go's remainder (its sign is the
    dividend's), a zero divisor an error."""
    if not (isinstance(left, int) and isinstance(right, int)):
        kinds = f"{type(left).__name__} % {type(right).__name__}"
        raise ExprError(f"invalid operation: {kinds} in {text!r}")
    if right == 0:
        raise ExprError(f"integer divide by zero in {text!r}")
    return int(math.fmod(left, right)) if abs(left) < 2**53 else left - right * int(left / right)


def _compare(op: str, left: Any, right: Any, text: str) -> bool:
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op == "in":
        return _in(left, right, text)
    if op in ("contains", "startsWith", "endsWith", "matches"):
        return _string_operator(op, left, right, text)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    strings = all(isinstance(v, str) for v in (left, right))
    if not (numbers or strings):
        raise ExprError(f"invalid operation {left!r} {op} {right!r} in {text!r}")
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _in(needle: Any, haystack: Any, text: str) -> bool:
    """expr-lang v1.17.7 vm/runtime ``In``: nil holds nothing, a list its elements, a map its
    keys; anything else (a string too) is an error."""
    if haystack is None:
        return False
    if isinstance(haystack, list):
        return any(_equal(item, needle) for item in haystack)
    if isinstance(haystack, Mapping) and isinstance(needle, str):
        return needle in haystack
    raise ExprError(f"operator in not defined on {type(haystack).__name__} in {text!r}")


def _string_operator(op: str, left: Any, right: Any, text: str) -> bool:
    """expr-lang v1.17.7 vm.go OpContains / OpStartsWith / OpEndsWith / OpMatches: false with a
    nil side, else both sides must be strings (``a.(string)``; no conversion)."""
    if left is None or right is None:
        return False
    if not isinstance(left, str) or not isinstance(right, str):
        raise ExprError(f"{op} needs two strings, not {left!r} and {right!r} in {text!r}")
    if op == "contains":
        return right in left
    if op == "startsWith":
        return left.startswith(right)
    if op == "endsWith":
        return left.endswith(right)
    return re.search(right, left) is not None


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right


def _as_int(value: Any) -> int:
    if isinstance(value, str):
        return int(value.strip())
    if isinstance(value, float):
        return int(value)
    return int(value)


def _as_float(value: Any) -> float:
    return float(value.strip() if isinstance(value, str) else value)


def to_text(value: Any) -> str:
    """Go's ``fmt``/``json`` rendering of a result: strings raw, numbers without ``.0``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and not math.isinf(value):
        return str(int(value))
    return _go_json(value)


def _go_json(value: Any, indent: int | None = None) -> str:
    """Go's json.Marshal (``MarshalIndent`` with ``indent``): whole floats as integers, UTF-8
    kept, ``< > &`` and U+2028/U+2029 escaped."""
    text = json.dumps(
        _integral(value),
        separators=(",", ":") if indent is None else (",", ": "),
        ensure_ascii=False,
        indent=indent,
    )
    for char, escape in _GO_JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text


_GO_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _from_json(text: str) -> Any:
    """Go decodes every JSON number into a float64."""
    return json.loads(text, parse_int=float)


def _integral(value: Any) -> Any:
    """Whole float64s as Go's json.Marshal writes them (``20``, not ``20.0``), at any depth."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


def jsonpath(document: Any, path: str) -> Any:
    """``$``, ``.key``, ``['key']``, ``[n]``, ``[a:b]``, ``[*]`` (PaesslerAG/jsonpath subset)."""
    # Go decodes every JSON number into a float64 (``20`` is not an int: ``20 % 3`` is an error)
    node = _from_json(document) if isinstance(document, str) else document
    if not path.startswith("$"):
        raise ExprError(f"jsonpath {path!r} must start with $")
    parts = re.findall(
        r"\.([A-Za-z0-9_-]+)|\[('[^']*'|\"[^\"]*\"|\*|-?\d*:-?\d*|-?\d+)\]", path[1:]
    )
    nodes, spread = [node], False
    for field, bracket in parts:
        results = []
        for current in nodes:
            if field:
                results.append(current[field])
            elif bracket == "*":
                results.extend(current.values() if isinstance(current, Mapping) else current)
                spread = True
            elif ":" in bracket:
                start, end = (int(p) if p else None for p in bracket.split(":"))
                results.append(current[start:end])
            elif bracket[0] in "'\"":
                results.append(current[bracket[1:-1]])
            else:
                results.append(current[int(bracket)])
        nodes = results
    return nodes if spread else nodes[0]


def _sprig(name: str) -> Callable[..., Any]:
    functions: dict[str, Callable[..., Any]] = {
        "trim": str.strip,
        "lower": str.lower,
        "upper": str.upper,
        "toString": to_text,
        "toJson": _go_json,
        "fromJson": _from_json,
        "default": lambda default, value=None: (
            value if value not in (None, "", [], {}) else default
        ),
        "empty": lambda value: value in (None, "", [], {}, 0, False),
        "list": lambda *items: list(items),
        "first": lambda items: items[0] if items else None,
        "rest": lambda items: list(items[1:]),
        "last": lambda items: items[-1] if items else None,
        "atoi": _as_int,
        "int": _as_int,
        "add": lambda *numbers: sum(_as_int(n) for n in numbers),
        "sub": lambda a, b: _as_int(a) - _as_int(b),
        "len": len,
        "replace": lambda old, new, text: text.replace(old, new),
        "contains": lambda sub, text: sub in text,
        "hasPrefix": lambda prefix, text: text.startswith(prefix),
        "quote": lambda value: json.dumps(to_text(value)),
    }
    if name not in functions:
        raise ExprError(f"sprig.{name} is not implemented by the test bed")
    return functions[name]


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": _as_int,
    "asFloat": _as_float,
    "string": to_text,
    "int": _as_int,
    "float": _as_float,
    "len": len,
    "lower": str.lower,
    "upper": str.upper,
    "trim": str.strip,
    "split": lambda text, separator: text.split(separator),
    "join": lambda items, separator="": separator.join(items),
    "first": lambda items: items[0] if items else None,
    "last": lambda items: items[-1] if items else None,
    "jsonpath": jsonpath,
    "toJson": _go_json,
    "toJSON": lambda value: _go_json(value, indent=2),  # expr-lang builtin: MarshalIndent
    "fromJSON": _from_json,
}


def _call(name: str | None, arguments: list[Any], text: str) -> Any:
    if name is None:
        raise ExprError(f"only named functions can be called in {text!r}")
    function = _sprig(name[6:]) if name.startswith("sprig.") else _FUNCTIONS.get(name)
    if function is None:
        raise ExprError(f"unknown function {name!r} in {text!r}")
    try:
        return function(*arguments)
    except (TypeError, ValueError, KeyError, IndexError) as error:
        raise ExprError(f"{name}: {error} in {text!r}") from error


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    parser = _Parser(text, env)
    value = parser.expression()
    if parser.position != len(parser.tokens):
        raise ExprError(f"unexpected {parser.tokens[parser.position][1]!r} in {text!r}")
    return value


def expand(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b.c": v}`` → ``{"a": {"b": {"c": v}}}``; a nested map wins over a flat string."""
    nested: dict[str, Any] = {}
    for key in sorted(flat, key=lambda k: k.count(".")):
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(last), dict):
            node[last] = flat[key]
    return nested
