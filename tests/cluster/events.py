"""The Argo Events stand-in: a webhook event through the rendered Sensor becomes a Workflow.

Upstream (argoproj/argo-events): the event's ``data`` is ``{"headers": ..., "body": ...}``
(eventsources/sources/github, gitlab: the webhook request as received); ``sensors/dependencies``
filters (docs/sensors/filters/data.md): gjson paths, ``type: string`` values as unanchored Go
regular expressions, ``comparator: "!="`` inverting the match, the filters AND-ed with
``dataLogicalOperator: and`` (OR-ed with ``or``); ``sensors/triggers/params.go``
(docs/sensors/trigger-parameterization.md): a parameter's ``src`` is ``dataKey`` (gjson path,
its ``Result.String()``), ``dataTemplate`` (a Go template over ``.Input``, the event data, with
sprig) or ``value`` (the default when the key is missing), written at ``dest`` (an sjson path,
``\\.`` escaping a dot) with ``operation`` ``overwrite`` / ``append`` / ``prepend``; a trigger
fires when its ``conditions`` (dependency names, ``&&``/``||``) hold. The k8s trigger then
creates ``source.resource`` with ``operation: create`` (sensors/triggers/standard-k8s). An event
reaches the Sensor only through a webhook of a valid EventSource (``cluster.eventsource``), and
only the dependencies naming that EventSource and event name see it.

Go templates: only ``{{ <func> .Input.<path> }}`` chains of the sprig functions listed in
``_FUNCTIONS`` and plain ``{{ .Input.<path> }}``; anything else fails loudly, naming it.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from typing import Any

from .argo.govaluate import should_execute
from .eventsource import Route

_MISSING = object()
Obj = dict[str, Any]


def _segments(path: str) -> list[str]:
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", path)]


def resolve(data: Any, path: str) -> Any:
    """gjson's plain dotted paths: keys, ``\\.`` in keys, numeric indexes into arrays."""
    node = data
    for part in _segments(path):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def as_string(value: Any) -> str:
    """gjson's ``Result.String()``: strings as they are, anything else as raw JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def passes(data_filter: Obj, event: Obj) -> bool:
    found = resolve(event, data_filter["path"])
    if found is _MISSING:
        return False
    if data_filter["type"] != "string":
        raise NotImplementedError(f"data filter type {data_filter['type']} (only string)")
    text = as_string(found)
    negate = data_filter.get("comparator", "=") == "!="
    return any(bool(re.search(value, text)) != negate for value in data_filter["value"])


def matching_dependencies(sensor: Obj, event: Obj, route: Route | None = None) -> list[str]:
    """Dependencies whose filters pass; with ``route`` (the EventSource webhook the event came
    through) only those naming its ``eventSourceName`` and ``eventName``."""
    fired = []
    for dependency in sensor["spec"]["dependencies"]:
        if route is not None and (
            dependency["eventSourceName"] != route.event_source
            or dependency["eventName"] != route.event_name
        ):
            continue
        filters = dependency.get("filters", {})
        results = [passes(f, event) for f in filters.get("data", [])]
        combine = any if filters.get("dataLogicalOperator") == "or" else all
        if combine(results):
            fired.append(dependency["name"])
    return fired


def _conditions_hold(conditions: str, fired: list[str]) -> bool:
    """``conditions``: dependency names with ``&&``/``||`` (govaluate, as Argo Events)."""
    if not conditions.strip():
        return True
    expression = re.sub(r"[A-Za-z0-9_-]+", lambda m: str(m.group(0) in fired).lower(), conditions)
    return should_execute(expression)


_FUNCTIONS = {
    "base": posixpath.basename,
    "dir": posixpath.dirname,
    "lower": str.lower,
    "upper": str.upper,
    "trim": str.strip,
}


def render_template(text: str, event: Obj) -> str:
    """``{{ f g .Input.a.b }}`` tags (sprig one-argument functions applied right to left)."""

    def tag(match: re.Match[str]) -> str:
        words = match.group(1).split()
        *functions, path = words
        if not path.startswith(".Input."):
            raise NotImplementedError(f"data template {text!r}: only .Input.<path> arguments")
        found = resolve(event, path[len(".Input.") :])
        value = "<no value>" if found is _MISSING else as_string(found)
        for name in reversed(functions):
            if name not in _FUNCTIONS:
                raise NotImplementedError(f"data template {text!r}: function {name}")
            value = _FUNCTIONS[name](value)
        return value

    return re.sub(r"\{\{-?\s*(.*?)\s*-?\}\}", tag, text)


def _set(resource: Obj, dest: str, value: str, operation: str | None) -> None:
    *parents, last = _segments(dest)
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    current = node[key] if isinstance(node, list) else node.get(key, "")
    node[key] = {"append": current + value, "prepend": value + current}.get(operation, value)


def _parameter_value(source: Obj, event: Obj) -> str:
    if "dataTemplate" in source:
        return render_template(source["dataTemplate"], event)
    if "dataKey" in source:
        found = resolve(event, source["dataKey"])
        if found is not _MISSING:
            return as_string(found)
    if "value" in source:
        return source["value"]
    raise ValueError(f"parameter source {source}: the key is missing and there is no default")


def submitted_workflow(sensor: Obj, event: Obj, route: Route | None = None) -> Obj | None:
    """The object the Sensor creates for ``event``, or None when the event is filtered out."""
    fired = matching_dependencies(sensor, event, route)
    triggers = [
        t["template"]
        for t in sensor["spec"]["triggers"]
        if _conditions_hold(t["template"].get("conditions", ""), fired)
    ]
    if not fired or not triggers:
        return None
    if len(triggers) != 1:
        raise AssertionError("one push must start one release")
    trigger = triggers[0]["k8s"]
    if trigger.get("operation", "create") != "create":
        raise NotImplementedError(f"k8s trigger operation {trigger['operation']}")
    resource = copy.deepcopy(trigger["source"]["resource"])
    for parameter in trigger.get("parameters", []):
        value = _parameter_value(parameter["src"], event)
        _set(resource, parameter["dest"], value, parameter.get("operation"))
    return resource


def submitted_by(sensors: list[Obj], event: Obj, route: Route | None = None) -> Obj | None:
    """What the chart's Sensors (one per service) create for ``event`` together: at most one
    Workflow, since a push comes from one repository and only its service's Sensor matches."""
    created = [w for s in sensors if (w := submitted_workflow(s, event, route)) is not None]
    if len(created) > 1:
        raise AssertionError("one push must start one release")
    return created[0] if created else None


def arguments(workflow: Obj) -> dict[str, str]:
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
