"""The release plan: what a valid plan looks like, and how every mistake is named."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.duration import format_duration, parse_duration
from canaryflow.errors import InputError
from canaryflow.plan.load import load_plan, plan_from_dict
from canaryflow.plan.model import ReleasePlan

EXAMPLES = Path(__file__).parent.parent / "examples" / "plans"

MINIMAL = """
service:
  name: checkout
"""


def errors_of(text: str) -> dict[str, str]:
    with pytest.raises(InputError) as caught:
        load_plan(text)
    return {error.path: error.message for error in caught.value.errors}


def test_a_minimal_plan_takes_every_default_from_the_model():
    plan = load_plan(MINIMAL)
    assert plan.service.namespace == "default"
    assert [s.weight for s in plan.steps] == [5, 25, 50, 100]
    assert plan.router.header is not None
    assert (plan.router.header.name, plan.router.header.value) == ("x-release-channel", "canary")
    assert plan.analysis.gates, "a plan without gates gets the default gate set"
    assert plan.rollback.on_inconclusive == "rollback"


def test_the_example_plans_are_valid():
    plans = sorted(EXAMPLES.glob("*.yaml"))
    assert plans
    for path in plans:
        assert isinstance(load_plan(path), ReleasePlan), path


def test_five_kinds_of_mistakes_are_all_named_with_field_path_and_fix():
    errors = errors_of(
        """
service: {name: checkout}
router: {kind: linkerd}
steps:
  - {weight: 5, duration: 30s}
  - {weight: 150, duration: 1m}
  - {weight: 25, duration: 5 minutes}
analysis:
  gates:
    - metric: latncy-p95
    - name: custom
      query: sum(rate(foo[1m]))
  colour: blue
"""
    )
    assert "use one of 'nginx-ingress'" in errors["router.kind"]
    assert "above the maximum 100" in errors["steps[1].weight"]
    assert "write it like 30s" in errors["steps[2].duration"]
    assert "did you mean 'latency-p95'" in errors["analysis.gates[0]"]
    assert "has no limit: add threshold" in errors["analysis.gates[1]"]
    assert "unknown key 'colour'" in errors["analysis.colour"]
    assert "line 13" in errors["analysis.colour"]


def test_weights_must_increase_and_the_error_names_the_step():
    errors = errors_of(
        """
service: {name: checkout}
steps:
  - {weight: 50, duration: 1m}
  - {weight: 20, duration: 1m}
"""
    )
    assert "does not increase on the previous step's 50" in errors["steps[1].weight"]


def test_a_step_is_either_traffic_or_approval():
    errors = errors_of(
        """
service: {name: checkout}
steps:
  - {weight: 10}
  - {weight: 20, duration: 1m, approve: {}}
"""
    )
    assert "add duration" in errors["steps[0]"]
    assert "not both" in errors["steps[1]"]


def test_missing_and_misspelt_sections_say_what_to_do():
    errors = errors_of("servce: {name: checkout}\n")
    assert errors["service"].startswith("required: add it")
    assert "unknown key 'servce'" in errors["servce"]


def test_duplicate_keys_and_broken_yaml_are_input_errors_not_tracebacks():
    assert "duplicate key 'name'" in str(errors_of("service: {name: a, name: b}\n"))
    assert "not valid YAML" in str(errors_of("service: [\n"))
    with pytest.raises(InputError, match="not a mapping of plan sections"):
        plan_from_dict(["not", "a", "plan"])


def test_service_names_leave_room_for_the_canary_suffix():
    assert "lower-case letters" in errors_of(f"service: {{name: {'a' * 54}}}\n")["service.name"]
    assert load_plan(f"service: {{name: {'a' * 53}}}\n").service.name == "a" * 53


@given(st.floats(min_value=0, max_value=10 * 3600, allow_nan=False).map(lambda s: round(s, 3)))
def test_durations_round_trip_through_their_spelling(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-3)


@given(st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=8))
def test_a_plan_is_valid_exactly_when_its_weights_rise(weights):
    document = {
        "service": {"name": "svc"},
        "steps": [{"weight": w, "duration": "10s"} for w in weights],
    }
    rising = all(a < b for a, b in itertools.pairwise(weights))
    if rising:
        assert [s.weight for s in plan_from_dict(document).steps] == weights
    else:
        with pytest.raises(InputError, match="does not increase"):
            plan_from_dict(document)
