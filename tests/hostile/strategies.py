"""Hypothesis strategies for hostile plans: every class of issue 14, and mutations of good plans.

``plan_texts()`` draws YAML text (or raw bytes) that a careless user or an attacker could hand
to any verb that reads a plan: a valid plan with one value, key or type changed at any depth;
non-finite numbers; the strings of ``hostile.strings``; and the structural attacks (alias
bombs, deep nesting, unhashable keys, binary and non-UTF-8 bytes, huge files).
"""

from __future__ import annotations

import math

import yaml
from hypothesis import strategies as st

from hostile.strings import HOSTILE

BASE = {
    "service": {"name": "checkout", "namespace": "shop", "port": 8080, "healthTimeout": "30s"},
    "owners": {"team": "payments", "contacts": ["ann"]},
    "router": {"kind": "istio", "header": {"name": "x-release-channel", "value": "canary"}},
    "steps": [
        {"weight": 10, "duration": "1m"},
        {"approve": {"message": "go?", "timeout": "10m"}},
        {"weight": 50, "duration": "2m"},
    ],
    "analysis": {
        "prometheus": {"url": "http://prometheus:9090", "timeout": "5s"},
        "interval": "10s",
        "queryWindow": "30s",
        "gates": [
            {"metric": "error-rate", "threshold": {"max": 0.01}},
            {"metric": "latency-p95", "relative": {"maxRatio": 1.5, "floor": 0.05}},
            {"metric": "latency-p99", "statistical": {"confidence": 0.95, "tolerance": 0.2}},
            {"metric": "log-errors", "logs": {"patterns": ["panic"], "max": 0}},
        ],
    },
    "rollback": {"onInconclusive": "hold", "canary": "delete"},
    "notifications": [{"webhook": "https://hooks.example/x", "events": ["promoted"]}],
    "local": {
        "load": {"rate": 50, "headers": {"x-a": "b"}, "paths": ["/"]},
        "canary": {"command": ["./svc", "{port}"], "version": "v2"},
    },
    "flag": {"key": "new-checkout", "steps": [{"percent": 10, "duration": "1m"}]},
}

NON_FINITE = (math.nan, math.inf, -math.inf, 1e400, -1e400)

hostile_strings = st.sampled_from(HOSTILE)
lookalikes = st.sampled_from(
    ["ch\u0435ckout", "\uff43heckout", "check\u200bout", "CHECKOUT", "checkout\u0000"]
)
numbers = st.one_of(
    st.sampled_from(NON_FINITE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**30, -1, 0, 2**63]),
)
scalars = st.one_of(
    hostile_strings, lookalikes, numbers, st.booleans(), st.none(), st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node, prefix=()):
    """Every (path to a value) in a document, mappings and lists alike."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


PATHS = [p for p in _paths(BASE) if p]


def _copy(node):
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


@st.composite
def mutated_plans(draw) -> dict:
    """The base plan with 1-3 changes: a hostile value, a wrong type or an unknown key."""
    document = _copy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = document
        try:
            for part in path[:-1]:
                parent = parent[part]
            kind = draw(st.sampled_from(["value", "unknown-key", "delete"]))
            if kind == "value":
                parent[path[-1]] = draw(values)
            elif kind == "unknown-key" and isinstance(parent, dict):
                key = draw(st.one_of(hostile_strings, lookalikes, st.text(min_size=1, max_size=9)))
                parent[key] = draw(scalars)
            elif isinstance(parent, dict):
                parent.pop(path[-1], None)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or replaced this branch
    return document


def _dump(document) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


STRUCTURAL = {
    "alias-bomb": alias_bomb(9).encode(),
    "anchor-merge": b"service: &s {name: checkout}\nlocal: {<<: *s}\n",
    "deep-flow": b"service: " + b"[" * 50_000,
    "deep-block": "".join(f"{' ' * i}k{i}:\n" for i in range(200)).encode(),
    "unhashable-key": b"? [a, b]\n: 1\nservice: {name: x}\n",
    "mapping-key": b"? {a: 1}\n: 1\n",
    "binary": bytes(range(256)) * 4,
    "non-utf8": b"service:\n  name: \xff\xfeche\xe9ckout\n",
    "utf16": "service: {name: checkout}\n".encode("utf-16"),
    "empty": b"",
    "only-comment": b"# nothing\n",
    "scalar": b"just a string\n",
    "list": b"- service\n",
    "huge": b"service: {name: checkout}\n# " + b"x" * (2 << 20) + b"\n",
    "huge-int": b"service: {name: checkout, port: " + b"9" * 5000 + b"}\n",
    "python-tag": b"service: !!python/object/apply:os.system ['touch canaryflow-pwned']\n",
    "nan-threshold": (
        b"service: {name: c}\nanalysis: {gates: [{metric: error-rate, threshold: {max: .nan}}]}\n"
    ),
    "inf-duration": b"service: {name: c}\nsteps: [{weight: 5, duration: .inf}]\n",
    "duplicate-key": b"service: {name: a}\nservice: {name: b}\n",
    "tab-indent": b"service:\n\tname: x\n",
    "bom": b"\xef\xbb\xbfservice: {name: checkout}\n",
    "nul": b"service: {name: check\x00out}\n",
    "header-crlf": b'service: {name: c}\nrouter: {header: {value: "a\\r\\nX-Injected: 1"}}\n',
    "header-quote": b'service: {name: c}\nlocal: {load: {headers: {x-a: "b\\"c"}}}\n',
}


def plan_texts() -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_plans().map(lambda d: _dump(d).encode()),
        st.sampled_from(sorted(STRUCTURAL)).map(STRUCTURAL.__getitem__),
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
