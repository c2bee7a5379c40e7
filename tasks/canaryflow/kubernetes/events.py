"""core/v1 Events for each release decision, so ``kubectl describe deployment`` tells the story."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

COMPONENT = "canaryflow"


def decision_event(involved: dict[str, Any], reason: str, message: str, warning: bool = False):
    """An Event about ``involved`` (a stored object, so its uid links the two)."""
    meta = involved["metadata"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
