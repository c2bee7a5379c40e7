"""The algorithm Istio and Gateway API share on a user's routing object, written once.

Both routers edit one entry of an ordered list in the user's object (a VirtualService's
``spec.http`` routes, an HTTPRoute's ``spec.rules``): the entry is kept as the user wrote it in
the ``canaryflow.dev/original-route`` annotation before it is split, the header route goes
right before it, and ``restore`` puts the entry back and drops the header route, leaving every
other entry as it was. What differs (the list's key, how a destination and a header match are
written, which fields the header route copies) stays in each router's module.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from canaryflow.errors import PlatformError
from canaryflow.kubernetes.routers.backends import ORIGINAL_ANNOTATION

Obj = dict[str, Any]


def annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


@dataclass(frozen=True)
class RouteList:
    """Where a routing object keeps its ordered entries, and which of them is our header route."""

    kind: str
    """The object's kind as kubectl names it (``virtualservice``), for messages."""
    key: str
    """The list under ``spec`` (``http``, ``rules``)."""
    noun: str
    """What one entry is called (``route``, ``rule``), for messages."""
    is_header: Callable[[Obj], bool]

    def is_split(self, obj: Obj | None) -> bool:
        """True once canaryflow split an entry of ``obj`` (and so keeps its original)."""
        return obj is not None and ORIGINAL_ANNOTATION in annotations(obj)

    def keep_original(self, obj: Obj, managed: Obj) -> bool:
        """Keep ``managed`` as the user wrote it; False when it is already kept (a re-run)."""
        kept = obj["metadata"].setdefault("annotations", {})
        if ORIGINAL_ANNOTATION in kept:
            return False
        kept[ORIGINAL_ANNOTATION] = json.dumps(managed, sort_keys=True)
        return True

    def require_split(self, obj: Obj) -> None:
        if not self.is_split(obj):
            raise PlatformError(
                f"{self.kind} {obj['metadata']['name']}: the managed {self.noun} is not split "
                "yet; deploy the canary first"
            )

    def insert_header(self, obj: Obj, managed: Obj, header: Obj, copied: Iterable[str]) -> Obj:
        """``header`` (plus ``copied`` fields of ``managed``) right before ``managed``; an
        earlier header route is replaced."""
        entries = [entry for entry in obj["spec"][self.key] if not self.is_header(entry)]
        obj["spec"][self.key] = entries
        header |= {key: copy.deepcopy(managed[key]) for key in copied if key in managed}
        entries.insert(entries.index(managed), header)
        return obj

    def restore(self, obj: Obj, managed: Obj) -> Obj:
        """The object as the user wrote it: header route gone, managed entry restored."""
        kept = obj["metadata"].get("annotations", {})
        original = kept.pop(ORIGINAL_ANNOTATION, None)
        if not kept:
            obj["metadata"].pop("annotations", None)
        entries = obj["spec"].get(self.key, [])
        if original is not None:
            entries[entries.index(managed)] = json.loads(original)
        obj["spec"][self.key] = [entry for entry in entries if not self.is_header(entry)]
        return obj
