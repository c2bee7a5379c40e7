"""A ValidatingAdmissionPolicy's CEL evaluated the way the API server does (Kubernetes 1.30,
staging/src/k8s.io/apiserver/pkg/admission/plugin/policy/validating: each of ``spec.variables``
in order into ``variables``, each able to use the ones before, then every validation with
``object``, ``oldObject`` and ``request``; a validation that is false denies), with cel-python,
a real CEL implementation of the standard the chart's policies keep to."""

from __future__ import annotations

import functools
from typing import Any

import celpy

Obj = dict[str, Any]


@functools.cache
def program(expression: str):
    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


def denials(
    policy: Obj,
    obj: Obj,
    user: str = "alice@example.com",
    operation: str = "CREATE",
    old: Obj | None = None,
) -> list[str]:
    """The messages of the validations ``obj`` fails, as the API server evaluates them."""
    variables = celpy.celtypes.MapType()
    activation = {
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel({"operation": operation, "userInfo": {"username": user}}),
        "variables": variables,
    }
    for variable in policy["spec"]["variables"]:
        value = program(variable["expression"]).evaluate(activation)
        variables[celpy.celtypes.StringType(variable["name"])] = value
    return [
        validation["message"]
        for validation in policy["spec"]["validations"]
        if not bool(program(validation["expression"]).evaluate(activation))
    ]
