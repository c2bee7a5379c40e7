"""The Sensor stand-in admits and refuses what Argo Events v1.9.11's ``ValidateSensor`` does.

Every expected message below is what upstream's own ``pkg/reconciler/sensor/validate.go``
``ValidateSensor`` (tag v1.9.11, built offline, not committed) returned for the same Sensor, on
a JetStream and on a NATS Streaming EventBus, on 2026-12-08.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from .sensor_validation import InvalidSensor, validate_sensor

Obj = dict[str, Any]
FILTERS = {
    "dataLogicalOperator": "and",
    "data": [
        {"path": "body.ref", "type": "string", "value": ["^refs/heads/main$"]},
        {"path": "body.after", "type": "string", "comparator": "!=", "value": ["^0{40}$"]},
    ],
}
PARAMETER = {
    "src": {"dependencyName": "d1", "dataKey": "body.after"},
    "dest": "spec.x",
    "operation": "append",
}
SENSOR = {
    "spec": {
        "dependencies": [
            {"name": "d1", "eventSourceName": "git", "eventName": "github", "filters": FILTERS}
        ],
        "triggers": [
            {
                "template": {
                    "name": "t1",
                    "conditions": "d1",
                    "k8s": {
                        "operation": "create",
                        "source": {"resource": {"kind": "Workflow"}},
                        "parameters": [PARAMETER],
                    },
                }
            }
        ],
    }
}
STAN = "event 'github' from EventSource 'git' is referenced for more than one dependency in this "
T1 = "trigger for template t1 is invalid, "


def _dependency(spec: Obj) -> Obj:
    return spec["dependencies"][0]


def _k8s(spec: Obj) -> Obj:
    return spec["triggers"][0]["template"]["k8s"]


CASES: list[tuple[str, Callable[[Obj], object], str, str]] = [
    ("valid", lambda s: None, "", ""),
    (
        "two dependencies on one event",
        lambda s: s["dependencies"].append({**copy.deepcopy(_dependency(s)), "name": "d2"}),
        "",
        STAN + "Sensor object",
    ),
    ("no dependencies", lambda s: s.update(dependencies=[]), "no event dependencies found", ""),
    (
        "no event name",
        lambda s: _dependency(s).pop("eventName"),
        "event dependency must define the EventName",
        "",
    ),
    (
        "an empty filter value",
        lambda s: _dependency(s)["filters"]["data"][0].update(value=[""]),
        "one of data filters is not valid (value must be not empty)",
        "",
    ),
    (
        "an unknown comparator",
        lambda s: _dependency(s)["filters"]["data"][1].update(comparator="~"),
        "comparator ~ not supported",
        "",
    ),
    (
        "an unknown logical operator",
        lambda s: _dependency(s)["filters"].update(dataLogicalOperator="xor"),
        "logical operator xor not supported",
        "",
    ),
    ("no triggers", lambda s: s.update(triggers=[]), "no triggers found", ""),
    (
        "a trigger name twice",
        lambda s: s["triggers"].append(copy.deepcopy(s["triggers"][0])),
        "duplicate trigger name: t1",
        "",
    ),
    (
        "a k8s trigger without source",
        lambda s: _k8s(s).pop("source"),
        T1 + "k8s trigger does not contain an absolute action",
        "",
    ),
    (
        "an unknown k8s operation",
        lambda s: _k8s(s).update(operation="apply"),
        T1 + "unknown operation type apply",
        "",
    ),
    (
        "a parameter without dest",
        lambda s: _k8s(s)["parameters"][0].pop("dest"),
        T1 + "resource parameter index: 0. err: parameter destination can't be empty",
        "",
    ),
    (
        "an unknown parameter operation",
        lambda s: _k8s(s)["parameters"][0].update(operation="replace"),
        T1 + "resource parameter index: 0. err: parameter operation replace is invalid",
        "",
    ),
    (
        "a trigger parameter without dependency",
        lambda s: s["triggers"][0].update(parameters=[{"src": {"dataKey": "x"}, "dest": "y"}]),
        "template parameter index: 0. err: parameter dependency name can't be empty",
        "",
    ),
    (
        "a k8s policy without labels",
        lambda s: s["triggers"][0].update(policy={"k8s": {"backoff": {"steps": 1}}}),
        "resource labels are not specified",
        "",
    ),
    (
        "a DLQ trigger without atLeastOnce",
        lambda s: s["triggers"][0].update(
            dlqTrigger={"template": {"name": "d", "k8s": {"source": {"resource": {}}}}}
        ),
        "to use dlqTrigger, trigger.atLeastOnce must be set to true",
        "",
    ),
]


def _outcome(sensor: Obj, bus: str) -> str:
    try:
        validate_sensor(sensor, bus)
    except InvalidSensor as refused:
        return str(refused)
    return ""


@pytest.mark.parametrize(("case", "change", "message", "stan"), CASES, ids=[c[0] for c in CASES])
def test_the_stand_in_gives_upstreams_verdict_and_message(case, change, message, stan):
    sensor = copy.deepcopy(SENSOR)
    change(sensor["spec"])

    assert _outcome(sensor, "jetstream") == message
    assert _outcome(sensor, "nats") == (stan or message)


def test_what_the_stand_in_does_not_follow_is_refused_rather_than_passed():
    sensor = copy.deepcopy(SENSOR)
    sensor["spec"]["dependencies"][0]["filters"]["exprs"] = [{"expr": "a == b"}]
    with pytest.raises(NotImplementedError):
        validate_sensor(sensor, "jetstream")
