"""Plan values are JSON-safe end to end (issue 23, item 9).

``variants.on: .nan`` passed validate, ``flag-off`` wrote ``"on": NaN`` (not JSON) and exited
0, and a flagd-style reader kept its previous document: the flag stayed on.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.cli import main
from canaryflow.errors import PlatformError
from canaryflow.flags.document import encode_document
from canaryflow.flags.spec import json_problem

STEPS = "steps: [{percent: 5, duration: 1m}]"


def _flag_plan(tmp_path, variants: str):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text(
        f"service: {{name: checkout}}\nflag: {{key: new-checkout, variants: {variants}, {STEPS}}}\n"
    )
    return plan


@pytest.mark.parametrize(
    ("variants", "said"),
    [
        ("{'on': .nan, 'off': false}", "flag.variants.on: the value is nan, not a finite number"),
        ("{'on': .inf, 'off': false}", "flag.variants.on: the value is inf"),
        ("{'on': true, 'off': -.inf}", "flag.variants.off: the value is -inf"),
        ("{'on': [1, {a: .nan}], 'off': 0}", "flag.variants.on: the value[1].a is nan"),
        ("{'on': 2024-01-01, 'off': x}", "flag.variants.on: the value is a date"),
        ("{'on': {1: a}, 'off': x}", "flag.variants.on: the value has the key 1"),
    ],
)
def test_a_variant_json_cannot_hold_is_refused_at_validate(tmp_path, capsys, variants, said):
    code = main(["validate", "--offline", str(_flag_plan(tmp_path, variants))])
    assert code == 2
    assert said in capsys.readouterr().err


def test_flag_off_refuses_and_writes_nothing_when_the_flag_cannot_be_json(tmp_path, capsys):
    flags = tmp_path / "flags.json"
    flags.write_text('{"flags": {}}\n')
    plan = _flag_plan(tmp_path, "{'on': .nan, 'off': false}")

    code = main(["flag-off", "--plan", str(plan), "--flags-file", str(flags)])

    assert code != 0
    assert flags.read_text() == '{"flags": {}}\n'


def test_the_writer_refuses_what_is_not_strict_json():
    for bad in (
        {"flags": {"f": {"variants": {"on": math.nan}}}},
        {"flags": {"f": {"variants": {"on": {1: "a", "1": "b"}}}}},
    ):
        with pytest.raises(PlatformError):
            encode_document(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values)
def test_whatever_a_variant_holds_it_is_refused_or_reads_back_as_itself(value):
    if json_problem(value) is None:
        text = encode_document({"flags": {"f": {"variants": {"on": value}}}})
        assert json.loads(text)["flags"]["f"]["variants"]["on"] == value
    else:
        with pytest.raises(PlatformError):
            encode_document({"flags": {"f": {"variants": {"on": value}}}})
