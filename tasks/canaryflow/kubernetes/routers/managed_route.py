"""The algorithm Istio and Gateway API share on a user's routing object, written once.

Both routers edit one entry of an ordered list in the user's object (a VirtualService's
``spec.http`` routes, an HTTPRoute's ``spec.rules``): the entry is kept as the user wrote it in
the ``canaryflow.dev/original-route`` annotation before it is split, the header route goes
right before it, and ``restore`` puts back the one field the split rewrote and drops the
header route, leaving every other entry, and the user's mid-release edits of other fields of the
managed entry, as they are. What differs (the list's key, how a destination and a header match are
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

    def has_header(self, obj: Obj | None) -> bool:
        """True while ``obj`` carries our header route."""
        return obj is not None and any(map(self.is_header, obj["spec"].get(self.key) or []))

    def without_header(self, obj: Obj) -> Obj:
        """The header route withdrawn, the split (and its kept original) left as it is: at
        weight 0 every request then reaches stable, and ``restore`` still finds the original."""
        obj["spec"][self.key] = [e for e in obj["spec"].get(self.key, []) if not self.is_header(e)]
        return obj

    def restore(
        self,
        obj: Obj,
        managed: Obj,
        owned: str,
        written: Callable[[Obj], Any],
        reverted: list[str] | None = None,
    ) -> Obj:
        """The object as the user wrote it, with their edits made during the release kept:
        the header route goes, and of the managed entry only ``owned`` (the one field the split
        rewrote: destinations, backendRefs) is put back from the kept original; every other
        field of the entry stays as it is now (a timeout set mid-release survives). When
        ``owned`` itself is not what canaryflow wrote (``written(original)``, weights aside),
        the user edited it: it is still put back, and ``reverted`` gets a line saying so."""
        kept = obj["metadata"].get("annotations", {})
        original = kept.pop(ORIGINAL_ANNOTATION, None)
        if not kept:
            obj["metadata"].pop("annotations", None)
        entries = obj["spec"].get(self.key, [])
        if original is not None:
            before = json.loads(original)
            restored = copy.deepcopy(managed)
            if _unweighted(managed.get(owned)) != _unweighted(written(copy.deepcopy(before))):
                name = managed.get("name") or f"#{entries.index(managed)}"
                if reverted is not None:
                    reverted.append(
                        f"{self.kind} {obj['metadata']['name']}: {self.key}[{name}].{owned} was "
                        f"edited during the release ({json.dumps(managed.get(owned))}); it is "
                        f"back to {json.dumps(before.get(owned))} as before the release"
                    )
            restored.pop(owned, None)
            if owned in before:
                restored[owned] = before[owned]
            entries[entries.index(managed)] = restored
        obj["spec"][self.key] = [entry for entry in entries if not self.is_header(entry)]
        return obj


def _unweighted(value: Any) -> Any:
    """``value`` without ``weight`` keys: the weights are canaryflow's to change."""
    if isinstance(value, dict):
        return {k: _unweighted(v) for k, v in value.items() if k != "weight"}
    if isinstance(value, list):
        return [_unweighted(v) for v in value]
    return value
