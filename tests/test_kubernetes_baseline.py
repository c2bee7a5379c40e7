"""A fresh baseline in a cluster: ``<service>-baseline`` runs stable's template and image at the
canary's size, selected by its own track and never by what selects stable; Gateway API, Istio
and SMI split three ways (nginx-ingress two); rollback and promotion take it away after traffic
has left it and give the user's route back as it was written."""

from __future__ import annotations

import pytest
from kube.fixtures import (
    NAMESPACE,
    SERVICE,
    STABLE_DEPLOYMENT,
    STABLE_IMAGE,
    STABLE_SERVICE,
    api_server,
    cluster,
)
from test_kubernetes_platform import V2, make_platform
from test_kubernetes_routers import user_view

from canaryflow.kubernetes.baseline import baseline_deployment, baseline_service
from canaryflow.kubernetes.canary_objects import HealthCheck, selects
from canaryflow.kubernetes.platform import KubernetesPlatform
from canaryflow.kubernetes.resources import DEPLOYMENT
from canaryflow.platform.protocol import BaselinePlatform, runs_baseline

__all__ = ["api_server", "cluster"]

BASELINE = f"{SERVICE}-baseline"


def test_the_baseline_runs_stables_image_with_its_own_track_and_without_tracking_labels():
    stable = {
        **STABLE_DEPLOYMENT,
        "metadata": {
            **STABLE_DEPLOYMENT["metadata"],
            "labels": {"app": SERVICE, "app.kubernetes.io/instance": "shop-prod"},
        },
    }
    made = baseline_deployment(stable, SERVICE, 2, HealthCheck())
    labels = made["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": SERVICE, "canaryflow.dev/track": "baseline"}
    assert made["spec"]["selector"]["matchLabels"] == labels
    assert made["spec"]["replicas"] == 2
    assert made["spec"]["template"]["spec"]["containers"][0]["image"] == STABLE_IMAGE
    assert "app.kubernetes.io/instance" not in made["metadata"]["labels"], "never Argo CD's"
    assert made["metadata"]["name"] == BASELINE
    assert not selects(STABLE_SERVICE["spec"]["selector"], labels), "stable's share stays off it"
    service = baseline_service(STABLE_SERVICE, SERVICE)
    assert service["metadata"]["name"] == BASELINE
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_only_routers_that_split_three_ways_run_a_baseline(cluster):
    for kind, runs in (
        ("gateway-api", True),
        ("istio", True),
        ("smi", True),
        ("nginx-ingress", False),
    ):
        platform = make_platform(cluster, kind)
        assert isinstance(platform, BaselinePlatform)
        assert runs_baseline(platform, wanted=True) is runs, kind
        assert runs_baseline(platform, wanted=False) is False


def test_gateway_api_splits_three_ways_and_rollback_leaves_the_route_as_written(cluster):
    before = user_view(cluster, "HTTPRoute", SERVICE)
    platform = make_platform(cluster, "gateway-api")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    baseline = cluster.get("Deployment", NAMESPACE, BASELINE)
    assert baseline["spec"]["replicas"] == 2, "the canary's replica count"
    assert cluster.get("Service", NAMESPACE, BASELINE) is not None

    platform.router.set_weight(10, 10)
    assert platform.router.verify_weight(10, 10)
    assert not platform.router.verify_weight(10), "the baseline's share is part of the weight"
    rules = cluster.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
    managed = next(r for r in rules if r["name"] == "canaryflow-primary")
    assert [(ref["name"], ref["weight"]) for ref in managed["backendRefs"]] == [
        (f"{SERVICE}-stable", 80),
        (f"{SERVICE}-canary", 10),
        (BASELINE, 10),
    ]
    platform.router.set_weight(50, 25)
    assert platform.router.verify_weight(50, 25)

    platform.rollback()

    assert user_view(cluster, "HTTPRoute", SERVICE) == before
    assert cluster.get("Deployment", NAMESPACE, BASELINE) is None
    assert cluster.get("Service", NAMESPACE, BASELINE) is None
    reasons = [e["reason"] for e in cluster.objects("Event", NAMESPACE)]
    assert "RouteEditReverted" not in reasons, "the baseline's backendRef is ours, not an edit"


def test_the_header_rule_leads_to_the_canary_not_the_baseline(cluster):
    from canaryflow.platform.protocol import HeaderRoute

    platform = make_platform(cluster, "gateway-api")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    platform.router.set_weight(10, 10)
    platform.router.set_header_route(HeaderRoute())
    rules = cluster.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
    header = next(r for r in rules if r["name"] == "canaryflow-header")
    assert [ref["name"] for ref in header["backendRefs"]] == [f"{SERVICE}-canary"]


def test_making_traffic_safe_puts_the_baseline_at_zero_too(cluster):
    platform = make_platform(cluster, "gateway-api")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    platform.router.set_weight(20, 20)
    platform.make_traffic_safe()
    assert platform.router.verify_weight(0)
    rules = cluster.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
    managed = next(r for r in rules if r["name"] == "canaryflow-primary")
    assert [ref["weight"] for ref in managed["backendRefs"]] == [100, 0, 0]


def split_backends(cluster) -> list[tuple[str, int]]:
    split = cluster.get("TrafficSplit", NAMESPACE, SERVICE)
    return [(b["service"], b["weight"]) for b in split["spec"]["backends"]]


def test_smi_splits_three_ways_in_its_own_split_and_rollback_deletes_it(cluster):
    platform = make_platform(cluster, "smi")
    platform.deploy_canary(V2)
    platform.deploy_baseline()

    platform.router.set_weight(10, 10)
    assert platform.router.verify_weight(10, 10)
    assert not platform.router.verify_weight(10), "the baseline's share is part of the weight"
    assert split_backends(cluster) == [
        (f"{SERVICE}-stable", 80),
        (f"{SERVICE}-canary", 10),
        (BASELINE, 10),
    ]
    platform.router.set_weight(50, 25)
    assert platform.router.verify_weight(50, 25)
    platform.make_traffic_safe()
    assert [weight for _, weight in split_backends(cluster)] == [100, 0, 0]
    assert platform.router.verify_weight(0)

    platform.rollback()

    assert cluster.get("TrafficSplit", NAMESPACE, SERVICE) is None
    assert cluster.get("Deployment", NAMESPACE, BASELINE) is None
    assert cluster.get("Service", NAMESPACE, BASELINE) is None


def test_smi_gives_a_users_split_back_without_the_baseline(cluster):
    from test_router_defects import BACKEND_V1, USERS_SPLIT

    cluster.seed(USERS_SPLIT)
    cluster.seed(BACKEND_V1)
    before = user_view(cluster, "TrafficSplit", SERVICE)
    platform = make_platform(cluster, "smi")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    platform.router.set_weight(20, 20)
    assert split_backends(cluster) == [
        (f"{SERVICE}-stable", 60),
        (f"{SERVICE}-canary", 20),
        (BASELINE, 20),
    ]
    assert platform.router.verify_weight(20, 20)

    platform.rollback()

    assert user_view(cluster, "TrafficSplit", SERVICE) == before


def test_a_rerun_of_deploy_canary_keeps_the_smi_baselines_share(cluster):
    platform = make_platform(cluster, "smi")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    platform.router.set_weight(10, 10)

    make_platform(cluster, "smi").deploy_canary(V2)

    assert platform.router.verify_weight(10, 10)


def test_istio_splits_three_ways_by_subset_and_rollback_gives_the_route_back(cluster):
    before = user_view(cluster, "VirtualService", SERVICE)
    platform = make_platform(cluster, "istio")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    platform.router.set_weight(10, 10)
    assert platform.router.verify_weight(10, 10)

    http = cluster.get("VirtualService", NAMESPACE, SERVICE)["spec"]["http"]
    managed = next(r for r in http if r["name"] == "canaryflow-primary")
    assert [(d["destination"]["subset"], d["weight"]) for d in managed["route"]] == [
        ("stable", 80),
        ("canary", 10),
        ("baseline", 10),
    ]
    subsets = cluster.get("DestinationRule", NAMESPACE, f"{SERVICE}-canaryflow")["spec"]["subsets"]
    assert subsets[-1] == {"name": "baseline", "labels": {"canaryflow.dev/track": "baseline"}}
    (stable_hash,) = subsets[0]["labels"].values()
    assert subsets[0] == {"name": "stable", "labels": {"pod-template-hash": stable_hash}}
    baseline_pods = [
        p
        for p in cluster.objects("Pod", NAMESPACE)
        if p["metadata"]["labels"].get("canaryflow.dev/track") == "baseline"
    ]
    assert baseline_pods, "the baseline runs"
    assert all(
        p["metadata"]["labels"].get("pod-template-hash") != stable_hash for p in baseline_pods
    ), "the stable subset reaches no baseline pod"

    platform.rollback()

    assert user_view(cluster, "VirtualService", SERVICE) == before
    assert cluster.get("Deployment", NAMESPACE, BASELINE) is None


def test_a_promotion_removes_the_baseline(cluster):
    platform = make_platform(cluster, "gateway-api")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    platform.router.set_weight(100)
    platform.promote(V2)
    assert cluster.get("Deployment", NAMESPACE, BASELINE) is None
    assert cluster.get("Service", NAMESPACE, BASELINE) is None


def test_the_baseline_grows_with_the_canary(cluster):
    platform = make_platform(cluster, "gateway-api")
    platform.api.merge_patch(DEPLOYMENT, SERVICE, {"spec": {"replicas": 12}})
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    assert cluster.get("Deployment", NAMESPACE, BASELINE)["spec"]["replicas"] == 2
    platform.router.set_weight(33, 33)
    canary = cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary")["spec"]["replicas"]
    baseline = cluster.get("Deployment", NAMESPACE, BASELINE)["spec"]["replicas"]
    assert canary > 2, "the canary was scaled for its share"
    assert baseline == canary


def test_an_istio_promotion_keeps_the_baseline_subset_until_the_route_is_given_back(cluster):
    before = user_view(cluster, "VirtualService", SERVICE)
    platform = make_platform(cluster, "istio")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    platform.router.set_weight(10, 10)
    platform.router.inner.select_stable(None, "v2")  # what a promotion does first
    subsets = cluster.get("DestinationRule", NAMESPACE, f"{SERVICE}-canaryflow")["spec"]["subsets"]
    assert [s["name"] for s in subsets] == ["stable", "canary", "baseline"]
    platform.router.set_weight(100)
    platform.promote(V2)
    assert user_view(cluster, "VirtualService", SERVICE) == before
    assert cluster.get("Deployment", NAMESPACE, BASELINE) is None


def _managed_rule_weights(cluster) -> tuple[int, ...]:
    rules = cluster.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
    managed = next(r for r in rules if r["name"] == "canaryflow-primary")
    return tuple(ref["weight"] for ref in managed["backendRefs"])


def _split_weights(cluster) -> tuple[int, ...]:
    return tuple(weight for _, weight in split_backends(cluster))


@pytest.mark.parametrize(
    ("router", "weights", "route"),
    [
        ("gateway-api", _managed_rule_weights, ("HTTPRoute", SERVICE)),
        ("smi", _split_weights, None),
    ],
)
def test_a_release_engine_run_in_a_cluster_deploys_splits_and_removes_the_baseline(
    cluster, router, weights, route
):
    from test_fresh_baseline import Windows

    from canaryflow.analysis.measurement import Outcome
    from canaryflow.plan.load import plan_from_dict
    from canaryflow.release.decision import Phase
    from canaryflow.release.engine import ReleaseEngine
    from canaryflow.release.record import ReleaseRecord

    before = user_view(cluster, *route) if route else None
    platform = make_platform(cluster, router)
    header = {} if router == "gateway-api" else {"header": None}
    plan = plan_from_dict(
        {
            "service": {"name": SERVICE, "namespace": NAMESPACE, "healthTimeout": "5s"},
            "router": {"kind": router, "drain": "0s", **header},
            "steps": [{"weight": 10, "duration": "1s"}, {"weight": 50, "duration": "1s"}],
        }
    )
    seen: list[tuple[int, ...]] = []

    class Watching(Windows):
        def run_window(self, duration_s, on_round):
            seen.append(weights(cluster))
            return super().run_window(duration_s, on_round)

    engine = ReleaseEngine(
        plan,
        platform,
        Watching([Outcome.PASS, Outcome.FAIL], []),
        ReleaseRecord(SERVICE, "v2", "kubernetes"),
        sleep=lambda s: None,
        warmup_s=lambda: 45.0,
    )
    result = engine.run(V2)

    assert result.phase is Phase.ROLLED_BACK
    assert seen == [(80, 10, 10), (25, 50, 25)]
    assert cluster.get("Deployment", NAMESPACE, BASELINE) is None
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
    if route:
        assert user_view(cluster, *route) == before
    else:
        assert cluster.get("TrafficSplit", NAMESPACE, SERVICE) is None


def test_beside_a_baseline_the_fleets_logs_are_stables_pods_and_the_references_the_baselines(
    cluster,
):
    """The reference's lines are the baseline's (compared); the stable fleet's pods' are read
    apart, to learn the lines' over-dispersion from (``evidence``), never the baseline's."""
    import time

    from canaryflow.analysis.source import FleetLogSource
    from canaryflow.platform.protocol import log_source

    platform = make_platform(cluster, "gateway-api")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    cluster.write_log(NAMESPACE, SERVICE, "stable line")
    cluster.write_log(NAMESPACE, BASELINE, "baseline line")
    since = time.time() - 5

    reference, _ = platform.stable_logs_by_pod(since)
    fleet, share = platform.fleet_logs_by_pod(since)
    assert {line for lines in reference.values() for line in lines} == {"baseline line"}
    assert {line for lines in fleet.values() for line in lines} == {"stable line"}
    assert len(fleet) == 3 and share == 1.0 and not set(fleet) & set(reference)
    assert isinstance(log_source(platform), FleetLogSource)


def _fleet_beside_a_baseline(cluster) -> tuple[KubernetesPlatform, float]:
    """V2's canary and a fresh baseline beside stable's fleet, whose pods logged a line: the
    platform and a time before that line."""
    import time

    platform = make_platform(cluster, "gateway-api")
    platform.deploy_canary(V2)
    platform.deploy_baseline()
    cluster.write_log(NAMESPACE, SERVICE, "stable line")
    return platform, time.time() - 5


def test_the_fleets_logs_are_read_from_the_pods_its_metrics_sample_first(cluster, monkeypatch):
    """A large fleet's lines come from a few pods: the ones the over-dispersion's metrics are
    read from (``analysis.fleet_sample``), so lines and requests are of the same pods; without
    them, the first pods by the sample's hash order, the same round after round."""
    from canaryflow.analysis.fleet_sample import ranked

    platform, since = _fleet_beside_a_baseline(cluster)
    monkeypatch.setattr("canaryflow.kubernetes.platform.STABLE_LOG_PODS", 2)
    every, _ = platform.fleet_logs_by_pod(since)
    monkeypatch.setattr("canaryflow.kubernetes.platform.STABLE_LOG_PODS", 3)
    names = ranked(platform.fleet_logs_by_pod(since)[0])
    monkeypatch.setattr("canaryflow.kubernetes.platform.STABLE_LOG_PODS", 2)
    assert set(every) == set(names[:2]), "by hash order, not by name"
    last = names[-1]
    fleet, share = platform.fleet_logs_by_pod(since, [last, "gone-pod"])
    assert last in fleet and len(fleet) == 2 and share == 2 / 3


def test_the_fleets_stamped_lines_come_from_the_metrics_sample_first_too(cluster, monkeypatch):
    """Where lines carry the time they were written (the path a comparing logs gate takes on
    Kubernetes), the fleet's pods are chosen as without times: the metrics' sample first."""
    from canaryflow.analysis.fleet_sample import ranked

    platform, since = _fleet_beside_a_baseline(cluster)
    monkeypatch.setattr("canaryflow.kubernetes.platform.STABLE_LOG_PODS", 3)
    last = ranked(platform.logs_by_pod_stamped("fleet", since)[0])[-1]
    monkeypatch.setattr("canaryflow.kubernetes.platform.STABLE_LOG_PODS", 2)
    assert last not in platform.logs_by_pod_stamped("fleet", since)[0], "hash order alone"
    fleet, share = platform.logs_by_pod_stamped("fleet", since, [last])
    assert last in fleet and len(fleet) == 2 and share == 2 / 3
