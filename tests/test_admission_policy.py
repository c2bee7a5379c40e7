"""The stand-in API server (admission_policy) decides as k8s.io/apiserver v0.30.0 does where
cel-python alone would differ: a validation admits only on exactly ``true``, an evaluation
error is decided by failurePolicy, and variables are evaluated only when read. These were
checked against cel-go v0.17.8 in Kubernetes' environment (README, "Submitter isolation")."""

from __future__ import annotations

from typing import Any

import pytest
from admission_policy import MUST_BE_BOOL, denials

Obj = dict[str, Any]
WORKFLOW = {"kind": "Workflow", "metadata": {"name": "w"}, "spec": {"entrypoint": "main"}}


def policy(validation: str, variables: dict[str, str] | None = None, failure: str = "Fail") -> Obj:
    return {
        "spec": {
            "failurePolicy": failure,
            "variables": [{"name": n, "expression": e} for n, e in (variables or {}).items()],
            "validations": [{"expression": validation, "message": "refused"}],
        }
    }


@pytest.mark.parametrize("expression", ["object.metadata.name", "object.spec", "1"])
def test_a_validation_that_is_not_a_bool_denies_instead_of_passing_as_truthy(expression: str):
    """validator.go Validate admits only ``celtypes.True``; compile.go refuses such an
    expression outright ("must evaluate to bool"), which under Fail denies every request."""
    assert denials(policy(expression), WORKFLOW) == [MUST_BE_BOOL]


def test_an_evaluation_error_denies_under_fail_and_admits_under_ignore():
    """filter.go ForInput makes the error an evaluation error; validator.go decides it by
    failurePolicy: Fail denies with the error, Ignore admits."""
    (message,) = denials(policy("object.spec.missing == 'x'"), WORKFLOW)
    assert message.startswith("expression 'object.spec.missing == 'x'' resulted in error")
    assert denials(policy("object.spec.missing == 'x'", failure="Ignore"), WORKFLOW) == []


def test_a_failing_variable_fails_only_the_validations_that_read_it():
    """composition.go evaluates variables lazily: one no validation reads cannot deny, and
    one that fails is an error value that ``||`` absorbs."""
    broken = {"broken": "object.spec.missing", "named": "object.metadata.name == 'w'"}
    assert denials(policy("variables.named", broken), WORKFLOW) == []
    assert denials(policy("variables.named || variables.broken", broken), WORKFLOW) == []
    (message,) = denials(policy("variables.broken == 'x'", broken), WORKFLOW)
    assert "resulted in error" in message
