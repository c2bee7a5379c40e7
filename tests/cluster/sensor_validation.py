"""The Argo Events Sensor controller's admission of a Sensor, for the k8s triggers the chart uses.

Upstream (argoproj/argo-events v1.9.11, ``pkg/reconciler/sensor/validate.go``), followed check by
check and message by message:

- ``ValidateSensor``: ``validateDependencies`` then ``validateTriggers``; the first error marks
  the Sensor invalid and the controller builds no Deployment for it.
- ``validateDependencies``: at least one; each has ``name``, ``eventSourceName`` and
  ``eventName``; on a NATS Streaming EventBus (``b.Spec.NATS != nil``) an event of an
  EventSource may be referenced by one dependency only; ``validateEventFilter`` (logical
  operators ``and``/``or``/empty; data filters with a known comparator and non-empty ``path``,
  ``type`` and every value).
- ``validateTriggers``: at least one, names unique; ``validateTriggerTemplate`` (a name;
  ``validateK8STrigger``: a ``source``, a known ``operation``, valid parameters),
  ``validateTriggerPolicy`` (a k8s policy names its labels), ``validateTriggerParameter`` (a
  ``src`` with ``dependencyName``, a ``dest``, a known ``operation``), ``validateDlqTrigger``.

Anything else (expression, context and time filters, other trigger kinds, ``conditionsReset``)
raises ``NotImplementedError`` rather than pass unchecked. The upstream code itself was run on
the chart's Sensors (``README.md``, "How Argo Events and Tekton support is tested").
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
BUSES = ("jetstream", "nats", "kafka")
_LOGICAL = ("", "and", "or")
_COMPARATORS = ("", ">=", ">", "=", "!=", "<", "<=")
_K8S_OPERATIONS = ("", "create", "patch", "update", "delete")
_PARAMETER_OPERATIONS = ("", "append", "overwrite", "prepend")
_FILTERS_FOLLOWED = {"data", "dataLogicalOperator", "exprLogicalOperator"}


class InvalidSensor(ValueError):
    """The controller's validation error: the Sensor gets no Deployment."""


def validate_sensor(sensor: Obj, bus: str) -> None:
    """``ValidateSensor`` against an EventBus of type ``bus`` (one of ``BUSES``)."""
    if bus not in BUSES:
        raise ValueError(f"EventBus type {bus}: one of {BUSES}")
    spec = sensor.get("spec") or {}
    _validate_dependencies(spec.get("dependencies") or [], bus)
    _validate_triggers(spec.get("triggers") or [])


def _validate_dependencies(dependencies: list[Obj], bus: str) -> None:
    """``validateDependencies``: the STAN rule is the one a JetStream bus does not have."""
    if not dependencies:
        raise InvalidSensor("no event dependencies found")
    combos: set[tuple[str, str]] = set()
    for dependency in dependencies:
        if not dependency.get("name"):
            raise InvalidSensor("event dependency must define a name")
        source, event = dependency.get("eventSourceName", ""), dependency.get("eventName", "")
        if not source:
            raise InvalidSensor("event dependency must define the EventSourceName")
        if not event:
            raise InvalidSensor("event dependency must define the EventName")
        if bus == "nats":
            if (source, event) in combos:
                raise InvalidSensor(
                    f"event '{event}' from EventSource '{source}' is referenced for more than "
                    "one dependency in this Sensor object"
                )
            combos.add((source, event))
        _validate_filter(dependency.get("filters"))
        _validate_logical(dependency.get("filtersLogicalOperator", ""))


def _validate_logical(operator: str) -> None:
    if operator not in _LOGICAL:
        raise InvalidSensor(f"logical operator {operator} not supported")


def _validate_filter(filters: Obj | None) -> None:
    """``validateEventFilter`` for data filters and the logical operators."""
    if filters is None:
        return
    if set(filters) - _FILTERS_FOLLOWED:
        raise NotImplementedError(f"filters {sorted(set(filters) - _FILTERS_FOLLOWED)}")
    _validate_logical(filters.get("exprLogicalOperator", ""))
    _validate_logical(filters.get("dataLogicalOperator", ""))
    for data in filters.get("data") or []:
        comparator = data.get("comparator", "")
        if comparator not in _COMPARATORS:
            raise InvalidSensor(f"comparator {comparator} not supported")
        values = data.get("value") or []
        if not data.get("path") or not data.get("type") or not values:
            raise InvalidSensor(
                "one of data filters is not valid (type, path and value must be not empty)"
            )
        if any(value == "" for value in values):
            raise InvalidSensor("one of data filters is not valid (value must be not empty)")


def _validate_triggers(triggers: list[Obj]) -> None:
    """``validateTriggers``."""
    if not triggers:
        raise InvalidSensor("no triggers found")
    names: set[str] = set()
    for trigger in triggers:
        _validate_trigger(trigger)
        name = trigger["template"]["name"]
        if name in names:
            raise InvalidSensor(f"duplicate trigger name: {name}")
        names.add(name)


def _validate_trigger(trigger: Obj) -> None:
    """``validateTrigger``: template, policy, parameters, then the DLQ trigger."""
    template = trigger.get("template")
    if template is None:
        raise InvalidSensor("trigger template can't be nil")
    if not template.get("name"):
        raise InvalidSensor("trigger must define a name")
    if template.get("conditionsReset"):
        raise NotImplementedError("conditionsReset")
    kinds = set(template) - {"name", "conditions", "k8s"}
    if kinds:
        raise NotImplementedError(f"trigger kinds {sorted(kinds)}")
    if "k8s" in template:
        _validate_k8s(template["k8s"], template["name"])
    k8s_policy = (trigger.get("policy") or {}).get("k8s")
    if "k8s" in template and k8s_policy is not None and k8s_policy.get("labels") is None:
        raise InvalidSensor("resource labels are not specified")
    for index, parameter in enumerate(trigger.get("parameters") or []):
        problem = _parameter_problem(parameter)
        if problem:
            raise InvalidSensor(f"template parameter index: {index}. err: {problem}")
    dlq = trigger.get("dlqTrigger")
    if dlq is not None:
        if not trigger.get("atLeastOnce"):
            raise InvalidSensor("to use dlqTrigger, trigger.atLeastOnce must be set to true")
        if not dlq.get("atLeastOnce"):
            raise InvalidSensor("atLeastOnce must be set to true within the dlqTrigger")
        _validate_trigger(dlq)


def _validate_k8s(k8s: Obj | None, name: str) -> None:
    """``validateK8STrigger``, wrapped as ``validateTriggerTemplate`` wraps it."""
    prefix = f"trigger for template {name} is invalid, "
    if k8s is None:
        raise InvalidSensor(prefix + "k8s trigger can't be nil")
    if k8s.get("source") is None:
        raise InvalidSensor(prefix + "k8s trigger does not contain an absolute action")
    operation = k8s.get("operation", "")
    if operation not in _K8S_OPERATIONS:
        raise InvalidSensor(prefix + f"unknown operation type {operation}")
    for index, parameter in enumerate(k8s.get("parameters") or []):
        problem = _parameter_problem(parameter)
        if problem:
            raise InvalidSensor(prefix + f"resource parameter index: {index}. err: {problem}")


def _parameter_problem(parameter: Obj) -> str:
    """``validateTriggerParameter``'s message, or "" for a valid parameter."""
    source = parameter.get("src")
    if source is None:
        return "parameter source can't be empty"
    if not source.get("dependencyName"):
        return "parameter dependency name can't be empty"
    if not parameter.get("dest"):
        return "parameter destination can't be empty"
    operation = parameter.get("operation", "")
    if operation not in _PARAMETER_OPERATIONS:
        return f"parameter operation {operation} is invalid"
    return ""
