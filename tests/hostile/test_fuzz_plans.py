"""Property tests: any plan text, through the loader and through the CLI, is answered well.

CI runs a fixed, derandomized budget (``CANARYFLOW_FUZZ_EXAMPLES``, default 120, a few
seconds); ``make fuzz`` runs ``tests/hostile/fuzz.py`` for thousands of cases.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from canaryflow.errors import InputError
from canaryflow.plan.load import load_plan
from canaryflow.plan.model import ReleasePlan
from hostile.oracle import PLAN_VERBS, assert_no_crash, plan_argv, run_cli, snapshot
from hostile.strategies import plan_texts

BUDGET = int(os.environ.get("CANARYFLOW_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=BUDGET,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


def check_loader(data: bytes, folder: Path) -> str:
    """``accepted`` or ``refused``; anything else (a crash, an unbounded message) fails."""
    path = folder / "plan.yaml"
    path.write_bytes(data)
    try:
        plan = load_plan(path)
    except InputError as error:
        assert error.errors, "a refusal names at least one mistake"
        for mistake in error.errors:
            assert len(str(mistake)) < 1200, str(mistake)[:300]
        return "refused"
    assert isinstance(plan, ReleasePlan)
    return "accepted"


@FUZZ
@given(data=plan_texts())
def test_the_loader_accepts_or_names_the_mistake_never_crashes(data, tmp_path_factory):
    check_loader(data, tmp_path_factory.mktemp("plan"))


@pytest.mark.parametrize("verb", sorted(PLAN_VERBS))
def test_every_plan_reading_verb_answers_hostile_plans_without_starting_anything(
    verb, tmp_path_factory
):
    @settings(FUZZ, max_examples=max(10, BUDGET // 10))
    @given(data=plan_texts())
    def check(data):
        folder = tmp_path_factory.mktemp(verb)
        plan = folder / "plan.yaml"
        plan.write_bytes(data)
        if check_loader(data, folder) == "accepted":
            return  # a valid plan goes on to do real work; that is other tests' business
        before = snapshot(folder)
        outcome = run_cli(plan_argv(verb, plan, folder / "out"), folder)
        assert outcome.code == 2, (verb, outcome.stderr[-1000:])
        assert_no_crash(outcome)
        assert outcome.processes == []
        assert snapshot(folder) == before, "nothing written, not even the output folder"

    check()
