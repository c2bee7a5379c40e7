"""How many canary pods a traffic weight needs (pure decisions over API objects).

Argo Rollouts sizes a traffic-routed canary from its weight (``utils/replicaset/canary.go``:
``trafficWeightToReplicas``, ``ceil(spec.replicas * weight / 100)``) and Flagger scales its
primary by the HPA that targets it. canaryflow does both: the canary gets at least
``ceil(stable * weight / 100)`` pods before it gets the weight, never fewer than the plan's
``canaryReplicas``, where *stable* is the stable Deployment's replica count or, when an
HorizontalPodAutoscaler targets it and wants more, the HPA's desired count. Stable's replicas are
never written: its HPA stays in charge of it.
"""

from __future__ import annotations

import math
from typing import Any

Obj = dict[str, Any]


def canary_replicas_for(stable_replicas: int, weight: int, minimum: int) -> int:
    """Canary pods that carry ``weight`` % of the traffic stable's pods carry at 100 %."""
    return max(minimum, math.ceil(stable_replicas * weight / 100))


def stable_replicas(stable: Obj, autoscalers: list[Obj]) -> int:
    """Stable's size: its replicas, or what an HPA targeting it is about to scale it to."""
    name = stable["metadata"]["name"]
    replicas = stable["spec"].get("replicas", 1)
    for hpa in autoscalers:
        target = hpa["spec"].get("scaleTargetRef", {})
        if target.get("kind") == "Deployment" and target.get("name") == name:
            status = hpa.get("status") or {}
            replicas = max(replicas, status.get("desiredReplicas", 0))
    return replicas
