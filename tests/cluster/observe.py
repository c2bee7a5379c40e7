"""What a finished release shows: the steps that ran, the first failing measurement, the
router's reaction, what stable serves. Read from the workflow's nodes and the bed's parts."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from .argo.controller import Node, Workflow
from .bed import USER_PATH, ServiceUnderTest


def pods(workflow: Workflow, display_name: str) -> list[Node]:
    """The pod nodes of a task or step, in the order they started (retries counted once)."""
    found = [
        n
        for n in workflow.pods()
        if n.display_name == display_name or n.display_name.startswith(f"{display_name}(")
    ]
    return found


def ran(workflow: Workflow, display_name: str) -> bool:
    return any(n.phase in ("Succeeded", "Failed", "Error") for n in pods(workflow, display_name))


def notified(workflow: Workflow) -> str:
    """The event the exit handler's ``notify`` announced (its summary's first line ends in it)."""
    (notify,) = [n for n in workflow.pods() if n.on_exit and n.display_name.startswith("notify")]
    assert notify.phase == "Succeeded", notify.message
    return notify.result.splitlines()[0].rsplit(": ", 1)[-1]


def step_inputs(workflow: Workflow, display_name: str, parameter: str) -> list[str]:
    return [n.inputs[parameter] for n in pods(workflow, display_name)]


def first_failing_measurement(workflow: Workflow) -> float | None:
    """When the first measurement that failed a gate came back (analyze's report output)."""
    times = []
    for node in pods(workflow, "analyze"):
        report = json.loads(node.outputs.get("report") or "{}")
        times += [m["finished"] for m in report.get("measurements", []) if m["outcome"] == "fail"]
    return min(times) if times else None


@dataclass(frozen=True)
class Safety:
    """First failing measurement → weight 0 served by the router."""

    failing_at: float
    safe_at: float

    @property
    def seconds(self) -> float:
        return self.safe_at - self.failing_at


def safety(service: ServiceUnderTest, workflow: Workflow) -> Safety | None:
    failing = first_failing_measurement(workflow)
    if failing is None or service.dataplane is None:
        return None
    safe = service.dataplane.weight_zero_after(failing)
    return None if safe is None else Safety(failing, safe)


def served_version(service: ServiceUnderTest) -> str:
    """The version the service answers with through the router, for a user without header."""
    url = service.dataplane.router.url + USER_PATH
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["version"]


def canary_exists(service: ServiceUnderTest) -> bool:
    namespace, name = service.spec.namespace, f"{service.spec.name}-canary"
    return service.bed.api.get("Deployment", namespace, name) is not None
