"""Promote and rollback drain the canary: no request may meet a canary that is already gone.

A router accepts weight 0 before every proxy applies it, and requests already on their way to
the canary must finish there. So promote and rollback first verify on the router object that no
request is routed to the canary (weight 0, header route withdrawn), then wait the plan's
``router.drain``, and only then remove the canary's pods and restore the user's route. The
analysis fail-safe makes traffic safe the same way and never waits (it removes nothing).

The wait is observed by injecting ``sleep``: at that moment the router must already say "no
canary traffic" and the canary must still be running. The stateful fake API server (tests/kube)
holds the objects, written and read by the real kubernetes client.
"""

from __future__ import annotations

import pytest
from kube.fixtures import NAMESPACE, SERVICE, api_server, cluster
from test_kubernetes_platform import FAST_RETRY, V2

from canaryflow.kubernetes.from_plan import platform_for
from canaryflow.kubernetes.platform import KubernetesPlatform, Timeouts
from canaryflow.kubernetes.routers import make_router
from canaryflow.plan.model import ReleasePlan
from canaryflow.platform.protocol import HeaderRoute

__all__ = ["api_server", "cluster"]

HEADER_ROUTERS = ["istio", "nginx-ingress", "gateway-api"]
CANARY = f"{SERVICE}-canary"


class DrainWatch:
    """Stands in for ``time.sleep``: records what the cluster looked like at each wait."""

    def __init__(self, server, platform_ref: list):
        self.server = server
        self.platform_ref = platform_ref
        self.waits: list[dict] = []

    def __call__(self, seconds: float) -> None:
        platform: KubernetesPlatform = self.platform_ref[0]
        self.waits.append(
            {
                "seconds": seconds,
                "weight_0": platform.router.verify_weight(0),
                "header_withdrawn": platform.router.header_route_withdrawn(),
                "canary_running": self.server.get("Deployment", NAMESPACE, CANARY) is not None,
            }
        )


def draining_platform(server, kind: str, drain_s: float) -> tuple[KubernetesPlatform, DrainWatch]:
    client = server.api_client()
    router = make_router(kind, client, NAMESPACE, SERVICE, retry=FAST_RETRY)
    timeouts = Timeouts(verify_weight_s=1, canary_scale_s=1, poll_s=0.02)
    ref: list = []
    watch = DrainWatch(server, ref)
    platform = KubernetesPlatform(
        client, NAMESPACE, SERVICE, router, 1, timeouts=timeouts, retry=FAST_RETRY,
        drain_s=drain_s, sleep=watch,
    )  # fmt: skip
    ref.append(platform)
    return platform, watch


def canary_with_traffic(platform: KubernetesPlatform) -> None:
    platform.deploy_canary(V2)
    assert platform.wait_healthy(timeout_s=2).healthy
    platform.router.set_header_route(HeaderRoute("x-release-channel", "canary"))
    platform.router.set_weight(50)
    assert not platform.router.header_route_withdrawn()


@pytest.mark.parametrize("kind", HEADER_ROUTERS)
@pytest.mark.parametrize("verb", ["promote", "rollback"])
def test_the_canary_goes_only_after_a_drain_with_no_traffic_verified(cluster, kind, verb):
    platform, watch = draining_platform(cluster, kind, drain_s=7)
    canary_with_traffic(platform)

    platform.promote(V2) if verb == "promote" else platform.rollback()

    assert watch.waits == [
        {"seconds": 7, "weight_0": True, "header_withdrawn": True, "canary_running": True}
    ]
    assert cluster.get("Deployment", NAMESPACE, CANARY) is None
    assert "Draining" in [e["reason"] for e in cluster.objects("Event", NAMESPACE)]


@pytest.mark.parametrize("kind", HEADER_ROUTERS)
def test_the_fail_safe_path_makes_traffic_safe_without_waiting_or_removing_anything(cluster, kind):
    platform, watch = draining_platform(cluster, kind, drain_s=7)
    canary_with_traffic(platform)

    platform.make_traffic_safe()

    assert watch.waits == []
    assert platform.router.verify_weight(0) and platform.router.header_route_withdrawn()
    assert cluster.get("Deployment", NAMESPACE, CANARY) is not None


def test_a_rollback_after_the_canary_is_gone_has_nothing_to_drain(cluster):
    platform, watch = draining_platform(cluster, "istio", drain_s=7)
    canary_with_traffic(platform)
    platform.rollback()

    platform.rollback()

    assert len(watch.waits) == 1, "only the first rollback had a canary to drain"


def test_the_plan_sets_the_drain_and_defaults_to_10s(cluster):
    base = {"service": {"name": SERVICE, "namespace": NAMESPACE}, "router": {"kind": "istio"}}
    client = cluster.api_client()

    assert platform_for(ReleasePlan.model_validate(base), client).drain_s == 10
    base["router"]["drain"] = "2s"
    assert platform_for(ReleasePlan.model_validate(base), client).drain_s == 2
