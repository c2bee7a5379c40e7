"""A ValidatingAdmissionPolicy's CEL evaluated the way the API server does, with cel-python, a
real CEL implementation of the standard the chart's policies keep to.

Follows k8s.io/apiserver v0.30.0 (Kubernetes 1.30, cel-go v0.17.8):

- ``spec.variables`` are composited into ``variables`` and evaluated lazily, each at most once
  and only when an expression reads it (pkg/admission/plugin/cel/composition.go,
  ``CompositionEnv.Variables``): a variable that fails on some object fails only the
  validations that read it, as a CEL error value (absorbed by ``||``/``&&`` like any error).
- a validation denies unless it evaluates to exactly ``true``
  (pkg/admission/plugin/policy/validating/validator.go ``Validate``: ``EvalResult !=
  celtypes.True``). One that yields a non-bool cannot exist on a real API server: it does not
  compile there (pkg/admission/plugin/cel/compile.go ``CompileCELExpression``, "must evaluate
  to bool"), and the filter turns a compilation error into an evaluation error, decided below.
- an evaluation error is decided by ``spec.failurePolicy`` (``Fail`` by default): ``Fail``
  denies with the filter's message (pkg/admission/plugin/cel/filter.go ``ForInput``:
  "expression '...' resulted in error: ..."), ``Ignore`` admits.

Not modelled (checked against upstream instead, README "Submitter isolation"): static type
checking (cel-python has no checker, so type errors that the API server refuses at creation,
e.g. ``variables.flag == 1`` or a validation whose type is ``dyn``, pass here), Kubernetes'
CEL libraries and cross-type numeric comparison (``1 < 2.0`` is an error here, true there), and
the cost budget. ``request`` carries only ``operation`` and ``userInfo.username``.
"""

from __future__ import annotations

import functools
from typing import Any

import celpy
from celpy import celtypes

Obj = dict[str, Any]
MUST_BE_BOOL = "compilation error: must evaluate to bool"


@functools.cache
def program(expression: str):
    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


class LazyVariables(celtypes.MapType):
    """``variables``: each evaluated on first read against the same activation, an error
    kept as its CEL error value (composition.go ``variableAccessor.Callback``)."""

    def __init__(self, expressions: dict[str, str], activation: dict[str, Any]) -> None:
        super().__init__()
        self._expressions = expressions
        self._activation = activation

    def __contains__(self, key: object) -> bool:
        return str(key) in self._expressions

    def __getitem__(self, key: Any) -> Any:
        if not dict.__contains__(self, key):
            try:
                value = program(self._expressions[str(key)]).evaluate(self._activation)
            except celpy.CELEvalError as error:
                value = error
            dict.__setitem__(self, key, value)
        return dict.__getitem__(self, key)


def decision(validation: Obj, activation: dict[str, Any]) -> tuple[str, bool] | None:
    """Why ``validation`` denies, and whether for an error (then failurePolicy decides), or
    None when it admits."""
    try:
        value = program(validation["expression"]).evaluate(activation)
    except celpy.CELEvalError as error:
        return f"expression '{validation['expression']}' resulted in error: {error}", True
    if not isinstance(value, celtypes.BoolType):
        return MUST_BE_BOOL, True
    return None if value else (validation["message"], False)


def denials(
    policy: Obj,
    obj: Obj,
    user: str = "alice@example.com",
    operation: str = "CREATE",
    old: Obj | None = None,
) -> list[str]:
    """The messages of the validations ``obj`` fails, as the API server evaluates them."""
    activation: dict[str, Any] = {
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel({"operation": operation, "userInfo": {"username": user}}),
    }
    spec = policy["spec"]
    expressions = {v["name"]: v["expression"] for v in spec.get("variables", [])}
    activation["variables"] = LazyVariables(expressions, activation)
    fail = spec.get("failurePolicy", "Fail") == "Fail"
    verdicts = [decision(validation, activation) for validation in spec["validations"]]
    return [message for message, error in filter(None, verdicts) if fail or not error]
