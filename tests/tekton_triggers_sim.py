"""Tekton Triggers objects processing webhook events, without a cluster.

An EventListener is emulated trigger by trigger, as tektoncd/triggers v0.37.0 processes one:

* the ``github``/``gitlab`` ClusterInterceptor: the event header (``X-GitHub-Event``,
  ``X-Gitlab-Event``) must be one of ``eventTypes`` (pkg/interceptors/github/github.go,
  pkg/interceptors/gitlab/gitlab.go; the signature/token check needs the real secret and is
  not emulated);
* the ``cel`` ClusterInterceptor: ``filter`` and ``overlays`` are evaluated by a real CEL
  implementation (cel-python) over ``body``, ``header`` and ``extensions``, with the
  non-standard functions used here added as Tekton's CEL environment defines them
  (pkg/interceptors/cel/cel.go: cel-go's strings extension ``split`` and ``replace``;
  triggers.go ``last``);
* the TriggerBinding's ``$(body...)``/``$(extensions...)`` paths, then the TriggerTemplate's
  ``$(tt.params...)`` substitution into the PipelineRun.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import celpy
from celpy import celtypes

PAYLOADS = Path(__file__).parent / "payloads"
EVENT_HEADERS = {"github": "X-Github-Event", "gitlab": "X-Gitlab-Event"}


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def _split(text: celtypes.StringType, separator: celtypes.StringType) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(part) for part in text.split(separator)])


def _replace(
    text: celtypes.StringType, old: celtypes.StringType, new: celtypes.StringType
) -> celtypes.StringType:
    return celtypes.StringType(text.replace(old, new))


def _last(items: celtypes.ListType) -> Any:
    return items[-1] if items else None


def cel(expression: str, activation: dict[str, Any]) -> Any:
    environment = celpy.Environment()
    program = environment.program(
        environment.compile(expression),
        functions={"split": _split, "replace": _replace, "last": _last},
    )
    return program.evaluate({k: celpy.json_to_cel(v) for k, v in activation.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    return value


def _path(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        node = node[part]
    return node


class Listener:
    """Tekton Triggers objects (an EventListener and what it selects), one event at a time."""

    def __init__(self, documents: list[dict[str, Any]]):
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for document in documents:
            by_kind.setdefault(document["kind"], []).append(document)
        (self.listener,) = by_kind["EventListener"]
        selector = self.listener["spec"]["labelSelector"]["matchLabels"]
        self.triggers = [
            t for t in by_kind["Trigger"] if selector.items() <= t["metadata"]["labels"].items()
        ]
        self.bindings = {b["metadata"]["name"]: b for b in by_kind["TriggerBinding"]}
        self.templates = {t["metadata"]["name"]: t for t in by_kind["TriggerTemplate"]}

    def runs(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Every PipelineRun the event creates (one per trigger that accepts it)."""
        return [run for t in self.triggers if (run := self._process(t, event)) is not None]

    def _process(self, trigger: dict[str, Any], event: dict[str, Any]) -> dict | None:
        headers = {k.lower(): v for k, v in event["headers"].items()}
        extensions: dict[str, Any] = {}
        for interceptor in trigger["spec"]["interceptors"]:
            params = {p["name"]: p["value"] for p in interceptor["params"]}
            kind = interceptor["ref"]["name"]
            if kind in EVENT_HEADERS:
                sent = headers.get(EVENT_HEADERS[kind].lower(), [""])[0]
                if sent not in params["eventTypes"]:
                    return None
                continue
            assert kind == "cel", kind
            activation = {"body": event["body"], "header": headers, "extensions": extensions}
            if not _plain(cel(params["filter"], activation)):
                return None
            for overlay in params.get("overlays", []):
                extensions[overlay["key"]] = _plain(cel(overlay["expression"], activation))
        context = {"body": event["body"], "extensions": extensions}
        values = {}
        for binding in trigger["spec"]["bindings"]:
            for param in self.bindings[binding["ref"]]["spec"]["params"]:
                values[param["name"]] = re.sub(
                    r"\$\(([a-z_.-]+)\)", lambda m: str(_path(context, m[1])), param["value"]
                )
        template = self.templates[trigger["spec"]["template"]["ref"]]
        declared = {p["name"] for p in template["spec"]["params"]}
        assert set(values) == declared, (set(values), declared)
        text = json.dumps(template["spec"]["resourcetemplates"][0])
        for name, value in values.items():
            text = text.replace(f"$(tt.params.{name})", json.dumps(value)[1:-1])
        assert "$(tt." not in text
        return json.loads(text)


def arguments(run: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in run["spec"]["params"]}
