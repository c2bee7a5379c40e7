"""The Kubernetes platform against a stateful fake API server, through the real client."""

from __future__ import annotations

import copy
import time

import pytest
from kube.fake_apiserver import FakeApiServer, RecordedRequest
from kube.fixtures import (
    CANARY_IMAGE,
    NAMESPACE,
    SERVICE,
    STABLE_DEPLOYMENT,
    STABLE_SERVICE,
    USER_OBJECTS,
    VIRTUAL_SERVICE,
    api_server,
    cluster,
)

from canaryflow.errors import InputError, PlatformError, UnreachableError
from canaryflow.kubernetes.platform import KubernetesPlatform, Timeouts
from canaryflow.kubernetes.retry import RetryPolicy
from canaryflow.kubernetes.routers import make_router
from canaryflow.platform.protocol import Artifact, HeaderRoute, Platform
from canaryflow.platform.state import Phase

__all__ = ["api_server", "cluster"]

ROUTER_KINDS = ["istio", "nginx-ingress", "gateway-api", "smi"]
ROUTER_OBJECT = {
    "istio": ("VirtualService", SERVICE),
    "nginx-ingress": ("Ingress", f"{SERVICE}-canary"),
    "gateway-api": ("HTTPRoute", SERVICE),
    "smi": ("TrafficSplit", SERVICE),
}
V2 = Artifact("v2", CANARY_IMAGE)
FAST_RETRY = RetryPolicy(attempts=4, first_delay_s=0.01, max_delay_s=0.05)


def make_platform(server: FakeApiServer, kind: str = "istio", namespace: str = NAMESPACE):
    client = server.api_client()
    router = make_router(kind, client, namespace, SERVICE, retry=FAST_RETRY)
    timeouts = Timeouts(verify_weight_s=1, canary_scale_s=1, poll_s=0.02)
    return KubernetesPlatform(
        client, namespace, SERVICE, router, canary_replicas=2, timeouts=timeouts, retry=FAST_RETRY
    )


def spec_of(server: FakeApiServer, kind: str, name: str) -> dict:
    obj = server.get(kind, NAMESPACE, name)
    assert obj is not None, f"{kind} {name} missing"
    return obj["spec"]


def event_reasons(server: FakeApiServer) -> list[str]:
    return [e["reason"] for e in server.objects("Event", NAMESPACE)]


def canary_weight_written(request: RecordedRequest) -> int | None:
    """The canary weight a router write carried, if it was one."""
    body = request.body
    if request.method == "GET" or not body:
        return None
    if request.kind == "VirtualService":
        for route in body["spec"]["http"]:
            for dest in route.get("route", []):
                if (
                    route["name"] == "canaryflow-primary"
                    and dest["destination"].get("subset") == "canary"
                ):
                    return dest["weight"]
    if request.kind == "Ingress" and request.method == "PATCH":
        weight = (
            body["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/canary-weight")
        )
        return None if weight is None else int(weight)
    if request.kind == "HTTPRoute":
        rule = next(r for r in body["spec"]["rules"] if r["name"] == "canaryflow-primary")
        refs = rule["backendRefs"]
        return refs[1]["weight"] if len(refs) == 2 else None
    if request.kind == "TrafficSplit":
        return body["spec"]["backends"][1]["weight"]
    return None


@pytest.mark.parametrize("kind", ROUTER_KINDS)
def test_a_release_deploys_the_canary_beside_stable_shifts_traffic_and_promotes(cluster, kind):
    platform = make_platform(cluster, kind)
    assert isinstance(platform, Platform)
    stable_before = cluster.get("Deployment", NAMESPACE, SERVICE)

    platform.deploy_canary(V2)

    canary = cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary")
    pod_labels = canary["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {"app": SERVICE, "version": "v2", "canaryflow.dev/track": "canary"}
    assert canary["spec"]["selector"]["matchLabels"] == pod_labels
    assert canary["spec"]["replicas"] == 2
    container = canary["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == CANARY_IMAGE
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert spec_of(cluster, "Service", f"{SERVICE}-canary")["selector"] == {
        "app": SERVICE,
        "canaryflow.dev/track": "canary",
    }
    assert cluster.get("Deployment", NAMESPACE, SERVICE) == stable_before
    assert platform.current_state().phase == Phase.DEPLOYED

    assert platform.wait_healthy(timeout_s=2).healthy
    platform.router.set_weight(25)
    assert platform.router.verify_weight(25)
    assert not platform.router.verify_weight(50)
    assert platform.current_state().weight == 25

    platform.promote(V2)

    stable = cluster.get("Deployment", NAMESPACE, SERVICE)
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == CANARY_IMAGE
    assert stable["spec"]["template"]["metadata"] == stable_before["spec"]["template"]["metadata"]
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
    assert cluster.get("Service", NAMESPACE, f"{SERVICE}-canary") is None
    assert platform.router.verify_weight(0)
    assert platform.current_state() is None
    assert {"CanaryDeployed", "CanaryHealthy", "WeightSet", "Promoted"} <= set(
        event_reasons(cluster)
    )


@pytest.mark.parametrize("kind", ROUTER_KINDS)
def test_rollback_verifies_weight_zero_before_removing_the_canary_and_never_touches_stable(
    cluster, kind
):
    platform = make_platform(cluster, kind)
    stable_before = cluster.get("Deployment", NAMESPACE, SERVICE)
    platform.deploy_canary(V2)
    platform.router.set_weight(30)
    cluster.requests.clear()

    platform.rollback()

    assert cluster.get("Deployment", NAMESPACE, SERVICE) == stable_before
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
    assert cluster.get("Service", NAMESPACE, f"{SERVICE}-canary") is None
    log = cluster.requests
    weight_zero = next(i for i, r in enumerate(log) if canary_weight_written(r) == 0)
    router_kind, router_name = ROUTER_OBJECT[kind]
    verified = next(
        i
        for i, r in enumerate(log)
        if i > weight_zero and r.method == "GET" and (r.kind, r.name) == (router_kind, router_name)
    )
    canary_deleted = next(
        i
        for i, r in enumerate(log)
        if (r.method, r.kind, r.name) == ("DELETE", "Deployment", f"{SERVICE}-canary")
    )
    assert weight_zero < verified < canary_deleted
    assert not any(r.kind == "Deployment" and r.name == SERVICE for r in cluster.writes())
    assert "RolledBack" in event_reasons(cluster)


@pytest.mark.parametrize("kind", ROUTER_KINDS)
def test_re_running_deploy_and_rollback_converges_to_the_same_state(cluster, kind):
    platform = make_platform(cluster, kind)
    platform.deploy_canary(V2)
    platform.router.set_weight(20)
    kinds = ["Deployment", "Service", "Ingress", "VirtualService", "DestinationRule"]
    kinds += ["HTTPRoute", "TrafficSplit"]
    before = {k: [o["spec"] for o in cluster.objects(k)] for k in kinds}

    platform.deploy_canary(V2)

    assert {k: [o["spec"] for o in cluster.objects(k)] for k in kinds} == before
    assert platform.current_state().weight == 20
    assert platform.router.verify_weight(20)

    platform.rollback()
    after_rollback = {k: [o["spec"] for o in cluster.objects(k)] for k in kinds}
    platform.rollback()
    assert {k: [o["spec"] for o in cluster.objects(k)] for k in kinds} == after_rollback


def test_a_new_version_replaces_a_canary_left_at_weight_zero(cluster):
    platform = make_platform(cluster)
    platform.deploy_canary(Artifact("v2", CANARY_IMAGE))
    v3 = Artifact("v3", "registry.local/checkout@sha256:" + "3" * 64)

    platform.deploy_canary(v3)

    canary = cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary")
    assert canary["spec"]["selector"]["matchLabels"]["version"] == "v3"
    assert platform.current_state().version == "v3"


def test_a_new_version_is_refused_while_another_canary_takes_traffic(cluster):
    platform = make_platform(cluster)
    platform.deploy_canary(V2)
    platform.router.set_weight(10)

    with pytest.raises(InputError, match="release of v2 is in flight"):
        platform.deploy_canary(Artifact("v3", "registry.local/checkout@sha256:" + "3" * 64))


@pytest.mark.parametrize("fault", [500, 409, 429, 503, "drop"])
def test_transient_api_failures_are_retried(cluster, fault):
    platform = make_platform(cluster, "gateway-api")
    cluster.fail_next(2, fault)

    platform.deploy_canary(V2)
    cluster.fail_next(2, fault)
    platform.router.set_weight(40)

    assert platform.router.verify_weight(40)
    assert cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is not None
    if fault != "drop":
        assert sum(r.status == fault for r in cluster.requests) == 4


def test_retries_are_bounded_and_the_error_says_what_failed(cluster):
    platform = make_platform(cluster)
    cluster.fail_next(100, 503)

    with pytest.raises(PlatformError, match=r"deployment shop/checkout failed: HTTP 503"):
        platform.deploy_canary(V2)
    assert len(cluster.requests) == FAST_RETRY.attempts


@pytest.mark.parametrize("failure", ["CrashLoopBackOff", "ImagePullBackOff"])
def test_a_failing_canary_is_reported_unhealthy_at_once_and_takes_no_traffic(cluster, failure):
    platform = make_platform(cluster, "nginx-ingress")
    cluster.set_rollout(NAMESPACE, f"{SERVICE}-canary", failure)
    platform.deploy_canary(V2)
    before = len(cluster.requests)

    report = platform.wait_healthy(timeout_s=10)

    pod_reads = [r for r in cluster.requests[before:] if r.method == "GET" and r.plural == "pods"]
    assert len(pod_reads) == 1, "the wait ended at its first look at the pods, not at the timeout"
    assert not report.healthy
    assert failure in report.detail and f"{SERVICE}-canary-" in report.detail
    assert "not available after" not in report.detail
    assert platform.router.verify_weight(0)
    assert platform.current_state().phase == Phase.UNHEALTHY
    assert "CanaryUnhealthy" in event_reasons(cluster)


def test_the_pods_of_a_rolled_back_canary_still_terminating_do_not_judge_the_next_one(cluster):
    """A crash-looping canary is rolled back and the fixed version deployed while the old
    canary's pods are still being deleted (``deletionTimestamp``; they carry the same track
    and identity): the new canary is judged, and its logs read, by its own pods only."""
    canary = f"{SERVICE}-canary"
    cluster.linger(NAMESPACE, canary)
    cluster.set_rollout(NAMESPACE, canary, "CrashLoopBackOff")
    platform = make_platform(cluster, "nginx-ingress")
    platform.deploy_canary(V2)
    assert not platform.wait_healthy(timeout_s=10).healthy
    platform.rollback()
    leaving = {
        p["metadata"]["name"]
        for p in cluster.objects("Pod", NAMESPACE)
        if p["metadata"].get("deletionTimestamp")
    }
    assert leaving  # the rolled-back canary's pods, still terminating
    cluster.set_rollout(NAMESPACE, canary, "available")

    platform.deploy_canary(Artifact("v3", "registry.local/checkout@sha256:" + "3" * 64))
    report = platform.wait_healthy(timeout_s=10)

    assert report.healthy, report.detail
    assert not leaving & set(platform.canary_logs_by_pod(time.time() - 60))


def test_a_canary_that_never_becomes_ready_times_out(cluster):
    platform = make_platform(cluster)
    cluster.set_rollout(NAMESPACE, f"{SERVICE}-canary", "progressing")
    platform.deploy_canary(V2)

    report = platform.wait_healthy(timeout_s=0.2)

    assert not report.healthy
    assert "not available after 0.2s: 0/2 pods ready" in report.detail


def test_canary_logs_are_read_per_pod_since_the_given_time(cluster):
    platform = make_platform(cluster)
    platform.deploy_canary(V2)
    cluster.write_log(NAMESPACE, f"{SERVICE}-canary", "old line", at=time.time() - 600)
    cluster.write_log(NAMESPACE, f"{SERVICE}-canary", "panic: boom")

    lines = platform.canary_logs(since=time.time() - 5)

    assert lines == ["panic: boom", "panic: boom"]
    log_reads = [r for r in cluster.requests if r.plural == "pods" and r.name]
    assert len(log_reads) == 2


def with_sidecar(server: FakeApiServer, app_name: str = SERVICE) -> FakeApiServer:
    """The user's objects, stable's pods carrying a mesh proxy listed first (as an injector
    may put it) beside the application container ``app_name``."""
    deployment = copy.deepcopy(STABLE_DEPLOYMENT)
    [app] = deployment["spec"]["template"]["spec"]["containers"]
    app["name"] = app_name
    proxy = {"name": "istio-proxy", "image": PROXY_IMAGE, "ports": [{"containerPort": 15090}]}
    deployment["spec"]["template"]["spec"]["containers"] = [proxy, app]
    for obj in USER_OBJECTS:
        server.seed(deployment if obj is STABLE_DEPLOYMENT else obj)
    return server


PROXY_IMAGE = "istio/proxyv2:1.22"


@pytest.mark.parametrize("app_name", [SERVICE, "server"])
def test_canary_logs_come_from_the_application_container_never_the_sidecar(api_server, app_name):
    # "server" is named unlike the service: found as the container listening on service.port.
    cluster = with_sidecar(api_server, app_name)
    platform = make_platform(cluster)
    platform.deploy_canary(V2)
    cluster.write_log(
        NAMESPACE, f"{SERVICE}-canary", "envoy: upstream reset", container="istio-proxy"
    )
    cluster.write_log(
        NAMESPACE, f"{SERVICE}-canary", "dial tcp: connection refused", container=app_name
    )

    lines = platform.canary_logs(since=time.time() - 5)

    assert lines == ["dial tcp: connection refused"] * 2
    canary = cluster.get("Deployment", NAMESPACE, f"{SERVICE}-canary")
    images = {c["name"]: c["image"] for c in canary["spec"]["template"]["spec"]["containers"]}
    assert images == {"istio-proxy": PROXY_IMAGE, app_name: CANARY_IMAGE}


def test_a_log_read_without_a_container_is_refused_like_the_api_server_does(api_server):
    cluster = with_sidecar(api_server)
    make_platform(cluster).deploy_canary(V2)
    pod = cluster.objects("Pod", NAMESPACE)[0]["metadata"]["name"]
    from canaryflow.kubernetes.api import ClusterApi

    with pytest.raises(PlatformError, match="a container name must be specified"):
        ClusterApi(cluster.api_client(), NAMESPACE, FAST_RETRY).pod_log(pod, 60)


def test_stable_logs_come_from_a_sample_of_stable_pods_never_the_canary(api_server, monkeypatch):
    cluster = with_sidecar(api_server)
    platform = make_platform(cluster)
    platform.deploy_canary(V2)
    cluster.write_log(NAMESPACE, SERVICE, "cache: connection refused", container=SERVICE)
    cluster.write_log(NAMESPACE, SERVICE, "envoy noise", container="istio-proxy")
    cluster.write_log(NAMESPACE, f"{SERVICE}-canary", "canary line", container=SERVICE)

    assert platform.stable_logs(since=time.time() - 5) == (["cache: connection refused"] * 3, 1.0)
    monkeypatch.setattr("canaryflow.kubernetes.platform.STABLE_LOG_PODS", 2)
    lines, share = platform.stable_logs(since=time.time() - 5)
    assert (len(lines), share) == (2, 2 / 3), "a sample, and the share of stable it is"


@pytest.mark.parametrize("read", ["stable_logs_by_pod", "fleet_logs_by_pod"])
def test_stables_terminating_pods_are_never_read_as_stable_for_the_log_gate(cluster, read):
    """Stable rolled (a GitOps self-heal, a hand edit) and its old pods are still draining
    (``deletionTimestamp``): they no longer serve stable's share, so their lines would be judged
    against requests they do not get. Only the active pods are read, and the share is theirs."""
    from kubernetes.client import AppsV1Api

    platform = make_platform(cluster, "nginx-ingress")
    platform.deploy_canary(V2)
    cluster.write_log(NAMESPACE, SERVICE, "panic: old pod shutting down")
    cluster.linger(NAMESPACE, SERVICE)
    stable = cluster.get("Deployment", NAMESPACE, SERVICE)
    stable["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "mid-release"}
    AppsV1Api(cluster.api_client()).replace_namespaced_deployment(SERVICE, NAMESPACE, stable)
    cluster.write_log(NAMESPACE, SERVICE, "GET /orders 200")
    pods = [
        p
        for p in cluster.objects("Pod", NAMESPACE)
        if not p["metadata"]["name"].startswith(f"{SERVICE}-canary")
    ]
    leaving = {p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp")}
    active = {p["metadata"]["name"] for p in pods} - leaving
    assert len(leaving) == 3 and len(active) == 3

    by_pod, share = getattr(platform, read)(since=time.time() - 60)

    assert set(by_pod) == active and share == 1.0
    assert all(lines == ["GET /orders 200"] for lines in by_pod.values())


def test_logs_are_read_pod_by_pod_under_the_names_the_pods_metrics_carry(api_server):
    from canaryflow.analysis.source import PodLogSource
    from canaryflow.platform.protocol import log_source

    cluster = with_sidecar(api_server)
    platform = make_platform(cluster)
    platform.deploy_canary(V2)
    cluster.write_log(NAMESPACE, SERVICE, "cache: connection refused", container=SERVICE)
    cluster.write_log(NAMESPACE, f"{SERVICE}-canary", "canary line", container=SERVICE)

    by_pod, share = platform.stable_logs_by_pod(since=time.time() - 5)
    names = [pod["metadata"]["name"] for pod in cluster.objects("Pod", NAMESPACE)]
    stable = {name for name in names if not name.startswith(f"{SERVICE}-canary")}
    assert len(stable) == 3 and set(by_pod) == stable and share == 1.0
    assert all(lines == ["cache: connection refused"] for lines in by_pod.values())
    canary = platform.canary_logs_by_pod(since=time.time() - 5)
    assert not set(canary) & set(by_pod)
    assert [line for lines in canary.values() for line in lines] == ["canary line"] * 2
    assert isinstance(log_source(platform), PodLogSource)


def test_logs_are_read_with_the_time_each_line_was_written_from_since_exactly(api_server):
    from canaryflow.analysis.source import StampedLogSource
    from canaryflow.platform.protocol import log_source

    cluster = with_sidecar(api_server)
    platform = make_platform(cluster)
    platform.deploy_canary(V2)
    now = time.time()
    for at, line in ((now - 3.5, "too early"), (now - 1.25, "refused"), (now - 0.5, "again")):
        cluster.write_log(NAMESPACE, SERVICE, f"stable {line}", at=at, container=SERVICE)
        cluster.write_log(NAMESPACE, f"{SERVICE}-canary", line, at=at, container=SERVICE)

    stable, share = platform.logs_by_pod_stamped("stable", now - 2.0)
    assert share == 1.0 and len(stable) == 3
    for lines in stable.values():  # sinceSeconds is 2 s or more: "too early" is cut here
        assert [line for _, line in lines] == ["stable refused", "stable again"]
        assert [when for when, _ in lines] == pytest.approx([now - 1.25, now - 0.5], abs=1e-6)
    canary, _ = platform.logs_by_pod_stamped("canary", now - 2.0)
    assert [line for lines in canary.values() for _, line in lines] == ["refused", "again"] * 2
    fleet, _ = platform.logs_by_pod_stamped("fleet", now - 2.0)
    assert set(fleet) == set(stable)
    assert platform.stable_logs_by_pod(now - 2.0)[0] != stable, "unstamped, as before"
    assert isinstance(log_source(platform), StampedLogSource)


def test_the_kubelets_log_stamps_are_read_to_the_nanosecond():
    from canaryflow.kubernetes.platform import rfc3339_seconds, stamped_lines

    assert rfc3339_seconds("2026-12-07T12:00:00.123456789Z") == pytest.approx(
        1796644800.123456789, abs=1e-6
    )
    assert rfc3339_seconds("2026-12-07T13:00:00+01:00") == 1796644800.0
    assert rfc3339_seconds("not-a-time") is None
    text = "2026-12-07T12:00:01Z a b\nno stamp\n2026-12-07T11:59:59Z old\n"
    assert stamped_lines(text, 1796644800.0) == [
        (1796644801.0, "a b"),
        (1796644801.0, "no stamp"),
    ]


def test_a_canary_pod_not_yet_on_a_node_has_no_lines_yet(cluster):
    platform = make_platform(cluster)
    platform.deploy_canary(V2)
    cluster.unbind(NAMESPACE, f"{SERVICE}-canary")

    assert platform.canary_logs(since=time.time() - 5) == []
    log_reads = [r for r in cluster.requests if r.plural == "pods" and r.name]
    assert [r.status for r in log_reads] == [204, 204]


def test_a_missing_stable_deployment_is_an_input_error_and_creates_nothing(cluster):
    platform = make_platform(cluster, namespace="wrong-namespace")

    with pytest.raises(InputError) as error:
        platform.deploy_canary(V2)

    assert str(error.value) == (
        "service.name: deployment wrong-namespace/checkout not found: deploy the stable "
        "version first or fix service.name/namespace"
    )
    assert cluster.writes() == []


@pytest.mark.parametrize(
    ("artifact", "field"),
    [
        (Artifact("v2", "registry.local/checkout:v2"), "artifact.image"),
        (Artifact("v2", None), "artifact.image"),
        (Artifact("v2 beta", CANARY_IMAGE), "artifact.version"),
        (Artifact("v1", CANARY_IMAGE), "artifact.version"),
    ],
)
def test_a_bad_artifact_is_an_input_error_naming_the_field_and_creates_nothing(
    cluster, artifact, field
):
    with pytest.raises(InputError, match=f"^{field}: "):
        make_platform(cluster).deploy_canary(artifact)
    assert cluster.writes() == []


def test_istio_selects_stable_by_its_replica_sets_hash_without_a_version_label(api_server):
    """Stable pods labelled ``app`` only: the stable subset selects stable's ReplicaSet by the
    ``pod-template-hash`` the Deployment controller gave its pods, so no canary pod is in it
    and stable was not restarted to get a label."""
    stable = {**STABLE_DEPLOYMENT, "spec": {**STABLE_DEPLOYMENT["spec"]}}
    stable["spec"]["selector"] = {"matchLabels": {"app": SERVICE}}
    stable["spec"]["template"] = {
        **stable["spec"]["template"],
        "metadata": {"labels": {"app": SERVICE}},
    }
    service = {**STABLE_SERVICE, "spec": {**STABLE_SERVICE["spec"], "selector": {"app": SERVICE}}}
    for obj in (stable, service, VIRTUAL_SERVICE):
        api_server.seed(obj)
    stable_pods = {p["metadata"]["name"] for p in api_server.objects("Pod", NAMESPACE)}

    make_platform(api_server).deploy_canary(V2)

    rule = api_server.get("DestinationRule", NAMESPACE, f"{SERVICE}-canaryflow")
    subsets = {s["name"]: s["labels"] for s in rule["spec"]["subsets"]}
    selected = {
        p["metadata"]["name"]
        for p in api_server.objects("Pod", NAMESPACE)
        if subsets["stable"].items() <= p["metadata"]["labels"].items()
    }
    assert list(subsets["stable"]) == ["pod-template-hash"]
    assert selected == stable_pods and len(selected) == 3
    assert {w.name for w in api_server.writes("Deployment")} == {f"{SERVICE}-canary"}


def test_a_stable_service_that_also_selects_the_canary_pods_is_refused_for_nginx_ingress(
    api_server,
):
    api_server.seed(STABLE_DEPLOYMENT)
    api_server.seed(
        {**STABLE_SERVICE, "spec": {**STABLE_SERVICE["spec"], "selector": {"app": SERVICE}}}
    )

    with pytest.raises(InputError, match="also matches the canary pods"):
        make_platform(api_server, "nginx-ingress").deploy_canary(V2)
    assert api_server.writes() == []


def test_an_unknown_router_kind_lists_the_valid_ones(api_server):
    with pytest.raises(InputError) as error:
        make_router("linkerd", api_server.api_client(), NAMESPACE, SERVICE)
    assert str(error.value) == (
        "router.kind: unknown router 'linkerd': use one of istio, nginx-ingress, gateway-api, smi"
    )


def test_an_unreachable_api_server_is_a_clear_platform_error(cluster):
    platform = make_platform(cluster)
    cluster.stop()

    with pytest.raises(
        PlatformError, match=r"kubernetes API http://127\.0\.0\.1:\d+ did not answer"
    ) as raised:
        platform.deploy_canary(V2)
    assert isinstance(raised.value, UnreachableError), "exit 3, and still a PlatformError"


def test_header_route_reaches_the_canary_and_is_recorded(cluster):
    platform = make_platform(cluster, "nginx-ingress")
    platform.deploy_canary(V2)

    platform.router.set_header_route(HeaderRoute("x-release-channel", "canary"))

    annotations = cluster.get("Ingress", NAMESPACE, f"{SERVICE}-canary")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header"] == "x-release-channel"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-value"] == "canary"
    assert "HeaderRouteSet" in event_reasons(cluster)
