"""A user Service that selects ``app`` alone: stable's share goes to checkout-stable, a Service
canaryflow owns selecting stable's ReplicaSet by ``pod-template-hash`` (Argo Rollouts'
``stableService``), so the weights are exact, stable is never restarted for a label, and no
request meets an empty selection, at promotion or when a promotion fails."""

from __future__ import annotations

import copy
import json
import threading
import time

import pytest
from kube.fake_apiserver import FakeApiServer, RecordedRequest
from kube.fixtures import (
    HTTP_ROUTE,
    NAMESPACE,
    SERVICE,
    STABLE_DEPLOYMENT,
    STABLE_IMAGE,
    STABLE_SERVICE,
    VIRTUAL_SERVICE,
    api_server,
)
from kubernetes.client import AppsV1Api
from test_analysis_run import SteppingClock, TableSource, healthy, spec
from test_kubernetes_platform import FAST_RETRY, V2, canary_weight_written, make_platform

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.run import AnalysisRun
from canaryflow.errors import InputError, PlatformError
from canaryflow.kubernetes.from_plan import platform_for
from canaryflow.kubernetes.platform import (
    EXIT_MARGIN_S,
    TERMINATION_GRACE_S,
    KubernetesPlatform,
    Timeouts,
)
from canaryflow.kubernetes.routers import make_router
from canaryflow.kubernetes.stable_record import recorded
from canaryflow.plan.model import ReleasePlan
from canaryflow.platform.state import Phase
from canaryflow.release.windows import AnalysisWindows

__all__ = ["api_server"]

STABLE = f"{SERVICE}-stable"
CANARY = f"{SERVICE}-canary"


def seed_app_only(server: FakeApiServer, *extra: dict) -> FakeApiServer:
    """Stable pods labelled ``app`` only (no version), the user's Service selecting ``app``;
    a 2 s progress deadline, so a rollout that cannot progress ends soon."""
    stable = copy.deepcopy(STABLE_DEPLOYMENT)
    stable["spec"]["progressDeadlineSeconds"] = 2
    stable["spec"]["selector"] = {"matchLabels": {"app": SERVICE}}
    stable["spec"]["template"]["metadata"]["labels"] = {"app": SERVICE}
    service = copy.deepcopy(STABLE_SERVICE)
    service["metadata"]["labels"] = {"app.kubernetes.io/instance": "shop", "team": "payments"}
    service["spec"]["selector"] = {"app": SERVICE}
    for obj in (stable, service, HTTP_ROUTE, *extra):
        server.seed(obj)
    return server


def ready(pod: dict) -> bool:
    statuses = pod["status"].get("containerStatuses") or []
    return bool(statuses) and all(c["ready"] for c in statuses)


def selected(server: FakeApiServer, service: str) -> list[dict]:
    selector = server.get("Service", NAMESPACE, service)["spec"]["selector"]
    return [
        p
        for p in server.objects("Pod", NAMESPACE)
        if selector.items() <= p["metadata"]["labels"].items()
    ]


def is_canary(pod: dict) -> bool:
    return pod["metadata"]["labels"].get("canaryflow.dev/track") == "canary"


def managed_refs(server: FakeApiServer) -> list[dict]:
    rules = server.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
    return next(r for r in rules if r["name"] == "canaryflow-primary")["backendRefs"]


def test_exact_weights_with_no_canary_pod_behind_stables_share(api_server):
    seed_app_only(api_server)
    stable_pods = {p["metadata"]["name"] for p in api_server.objects("Pod", NAMESPACE)}
    platform = make_platform(api_server, "gateway-api")

    platform.deploy_canary(V2)
    platform.router.set_weight(20)

    assert managed_refs(api_server) == [
        {"name": STABLE, "port": 80, "weight": 80},
        {"name": CANARY, "port": 80, "weight": 20},
    ]
    behind_stable = selected(api_server, STABLE)
    behind_canary = selected(api_server, CANARY)
    assert {p["metadata"]["name"] for p in behind_stable} == stable_pods
    assert not any(map(is_canary, behind_stable))
    assert behind_canary and all(map(is_canary, behind_canary))
    assert {w.name for w in api_server.writes("Deployment")} == {CANARY}  # stable not restarted


def test_the_owned_stable_service_is_canaryflows_and_claimed_by_no_gitops_tool(api_server):
    seed_app_only(api_server)
    make_platform(api_server, "gateway-api").deploy_canary(V2)

    owned = api_server.get("Service", NAMESPACE, STABLE)
    labels = owned["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "canaryflow"
    assert labels["canaryflow.dev/role"] == "stable"
    assert "app.kubernetes.io/instance" not in labels
    assert owned["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert set(owned["spec"]["selector"]) == {"app", "pod-template-hash"}


@pytest.mark.parametrize("ending", ["rollback", "promote"])
def test_the_route_comes_back_to_the_users_service_and_the_owned_one_goes(api_server, ending):
    seed_app_only(api_server)
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(40)

    platform.rollback() if ending == "rollback" else platform.promote(V2)

    assert managed_refs(api_server) == [{"name": SERVICE, "port": 80}]
    assert api_server.get("Service", NAMESPACE, STABLE) is None
    assert api_server.get("Service", NAMESPACE, CANARY) is None
    assert api_server.get("Service", NAMESPACE, SERVICE)["spec"]["selector"] == {"app": SERVICE}


class EmptySelections:
    """Watches every moment of a release: each Service the HTTPRoute sends a share to must
    exist and select at least one ready pod."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.moments = 0

    def __call__(self, server: FakeApiServer, request: RecordedRequest) -> None:
        if request.method == "GET" or request.status >= 400:
            return
        self.check(server, f"{request.method} {request.kind} {request.name}")

    def check(self, server: FakeApiServer, moment: str) -> None:
        """The state now (also after a change no request made: a kubelet's report)."""
        self.moments += 1
        for ref in managed_refs(server):
            if ref.get("weight", 1) == 0:
                continue
            service = server.get("Service", NAMESPACE, ref["name"])
            if service is None or not any(map(ready, selected(server, ref["name"]))):
                self.seen.append(f"{moment}: {ref}")


def test_a_promotion_never_sends_a_share_to_an_empty_selection(api_server):
    """stable's ReplicaSet changes at promotion, and the fake controller replaces its pods at
    once: checkout-stable must select every pod of the service before stable is patched, and
    go only after the route leads to the user's Service again."""
    seed_app_only(api_server)
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    watch = EmptySelections()
    api_server.observe = watch

    platform.promote(V2)

    assert watch.moments > 5
    assert watch.seen == []
    new_stable = api_server.objects("Pod", NAMESPACE)
    assert len(new_stable) == 3 and {p["spec"]["containers"][0]["image"] for p in new_stable} == {
        V2.image
    }


def test_a_failed_promotion_leaves_stable_serving_everything_through_its_own_replica_set(
    api_server,
):
    seed_app_only(api_server)
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    before = api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"]
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")
    watch = EmptySelections()
    api_server.observe = watch

    with pytest.raises(PlatformError, match=r"^promotion failed, stable restored"):
        platform.promote(V2)

    assert watch.seen == []
    assert managed_refs(api_server) == [
        {"name": STABLE, "port": 80, "weight": 100},
        {"name": CANARY, "port": 80, "weight": 0},
    ]
    assert api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"] == before
    behind_stable = selected(api_server, STABLE)
    assert behind_stable and all(ready(p) and not is_canary(p) for p in behind_stable)
    assert {p["spec"]["containers"][0]["image"] for p in behind_stable} == {
        STABLE_DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["image"]
    }


def test_a_stable_deployment_still_rolling_out_is_refused_and_nothing_changes(api_server):
    seed_app_only(api_server)
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")
    stable = api_server.get("Deployment", NAMESPACE, SERVICE)
    stable["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "now"}
    AppsV1Api(api_server.api_client()).replace_namespaced_deployment(SERVICE, NAMESPACE, stable)
    api_server.requests.clear()

    with pytest.raises(InputError) as refused:
        make_platform(api_server, "gateway-api").deploy_canary(V2)

    message = str(refused.value)
    assert message.startswith(
        f"service.deployment: deployment {NAMESPACE}/{SERVICE} is rolling out"
    )
    assert "wait until `kubectl rollout status" in message
    assert api_server.writes() == []


def rolled_with_old_pods_terminating(server: FakeApiServer, draining_ready: bool) -> set[str]:
    """Stable rolled to a new template and finished (``kubectl rollout status``: every replica
    updated and available, ``status.replicas`` counting no old pod), while its old pods are
    still shutting down (``deletionTimestamp`` set): their names."""
    server.linger(NAMESPACE, SERVICE)
    stable = server.get("Deployment", NAMESPACE, SERVICE)
    stable["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "now"}
    AppsV1Api(server.api_client()).replace_namespaced_deployment(SERVICE, NAMESPACE, stable)
    terminating = {
        p["metadata"]["name"]: p
        for p in server.objects("Pod", NAMESPACE)
        if p["metadata"].get("deletionTimestamp")
    }
    if not draining_ready:
        for name, pod in terminating.items():
            status = copy.deepcopy(pod["status"])
            for container in status["containerStatuses"]:
                container["ready"] = False
            server.set_pod_status(NAMESPACE, name, status)
    status = server.get("Deployment", NAMESPACE, SERVICE)["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (
        3,
        3,
        3,
    )
    assert len(terminating) == 3
    return set(terminating)


@pytest.mark.parametrize(
    "draining_ready", [True, False], ids=["draining-ready", "draining-unready"]
)
@pytest.mark.parametrize("kind", ["gateway-api", "smi", "istio"])
def test_old_pods_still_terminating_after_a_finished_roll_do_not_stop_the_canary(
    api_server, kind, draining_ready
):
    """A rollout is complete as ``kubectl rollout status`` judges it (k8s.io/kubectl
    ``pkg/polymorphichelpers/rollout_status.go``, ``DeploymentStatusViewer.Status``), whatever
    pods are still terminating: ``deploy-canary`` starts, and stable's share goes to the new
    ReplicaSet's pods, never to one that is shutting down."""
    extra = [copy.deepcopy(VIRTUAL_SERVICE)] if kind == "istio" else []
    seed_app_only(api_server, *extra)
    terminating = rolled_with_old_pods_terminating(api_server, draining_ready)

    make_platform(api_server, kind).deploy_canary(V2)

    assert api_server.get("Deployment", NAMESPACE, CANARY) is not None
    if kind == "istio":
        rule = api_server.get("DestinationRule", NAMESPACE, f"{SERVICE}-canaryflow")
        stable_labels = rule["spec"]["subsets"][0]["labels"]
        behind_stable = [
            p
            for p in api_server.objects("Pod", NAMESPACE)
            if stable_labels.items() <= p["metadata"]["labels"].items()
        ]
    else:
        behind_stable = selected(api_server, STABLE)
    names = {p["metadata"]["name"] for p in behind_stable}
    assert len(names) == 3 and not names & terminating
    assert all(ready(p) and not is_canary(p) for p in behind_stable)


def test_a_service_named_like_the_owned_one_that_is_the_users_is_refused(api_server):
    theirs = copy.deepcopy(STABLE_SERVICE)
    theirs["metadata"]["name"] = STABLE
    seed_app_only(api_server, theirs)
    api_server.requests.clear()

    with pytest.raises(InputError, match=rf"^service\.name: service {NAMESPACE}/{STABLE} exists"):
        make_platform(api_server, "gateway-api").deploy_canary(V2)
    assert api_server.writes() == []
    assert api_server.get("Service", NAMESPACE, STABLE)["spec"] == theirs["spec"]


def test_a_stable_rolled_during_the_release_is_followed_before_the_next_weight(api_server):
    """A GitOps tool's self-heal or a hand edit rolls stable mid-release: its new ReplicaSet
    has another hash, so the next weight first points checkout-stable at it."""
    seed_app_only(api_server)
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(10)
    before = api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"]["pod-template-hash"]
    stable = api_server.get("Deployment", NAMESPACE, SERVICE)
    stable["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "mid-release"}
    AppsV1Api(api_server.api_client()).replace_namespaced_deployment(SERVICE, NAMESPACE, stable)

    platform.router.set_weight(20)

    behind_stable = selected(api_server, STABLE)
    assert len(behind_stable) == 3 and all(ready(p) and not is_canary(p) for p in behind_stable)
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in behind_stable} != {before}
    assert managed_refs(api_server)[0]["weight"] == 80
    assert "StableServiceFollowed" in [e["reason"] for e in api_server.objects("Event", NAMESPACE)]


def test_istios_stable_subset_follows_a_stable_rolled_during_the_release(api_server):
    seed_app_only(api_server)
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    api_server.seed(vs)
    platform = make_platform(api_server, "istio")
    platform.deploy_canary(V2)
    platform.router.set_weight(10)
    stable = api_server.get("Deployment", NAMESPACE, SERVICE)
    stable["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "mid-release"}
    AppsV1Api(api_server.api_client()).replace_namespaced_deployment(SERVICE, NAMESPACE, stable)
    (rolled,) = {
        p["metadata"]["labels"]["pod-template-hash"]
        for p in api_server.objects("Pod", NAMESPACE)
        if not is_canary(p)
    }

    platform.router.set_weight(20)

    rule = api_server.get("DestinationRule", NAMESPACE, f"{SERVICE}-canaryflow")
    assert rule["spec"]["subsets"][0] == {"name": "stable", "labels": {"pod-template-hash": rolled}}


# -- a promotion that fails after stable rolled: the old ReplicaSet must come back first --------


def interrupted_in_the_drain(
    server: FakeApiServer, termination_grace_s: float = TERMINATION_GRACE_S
) -> KubernetesPlatform:
    """A gateway-api platform whose promote is stopped (SIGTERM: ``argo stop``) in the drain,
    after stable rolled out the promoted image (its old pods are gone); from then on stable's
    pods come up Pending, as a kubelet starting containers reports them."""

    def sigterm(seconds: float) -> None:
        server.set_rollout(NAMESPACE, SERVICE, "kubelet")
        raise KeyboardInterrupt

    client = server.api_client()
    router = make_router("gateway-api", client, NAMESPACE, SERVICE, retry=FAST_RETRY)
    return KubernetesPlatform(
        client,
        NAMESPACE,
        SERVICE,
        router,
        canary_replicas=2,
        timeouts=Timeouts(
            verify_weight_s=1,
            canary_scale_s=1,
            poll_s=0.02,
            termination_grace_s=termination_grace_s,
        ),
        retry=FAST_RETRY,
        drain_s=1,
        sleep=sigterm,
    )


class LateKubelet(threading.Thread):
    """Reports stable's restored pods (the recorded image) ready some polls after they appear,
    one by one; ``readied`` is the request count at which the last one became ready."""

    def __init__(self, server: FakeApiServer):
        super().__init__(daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.readied: int | None = None

    def run(self) -> None:
        while not self.stop.wait(0.1):
            pending = [
                p
                for p in self.server.objects("Pod", NAMESPACE)
                if p["spec"]["containers"][0]["image"] == STABLE_IMAGE and not ready(p)
            ]
            for pod in pending:
                report_ready(self.server, pod)
                self.readied = len(self.server.requests)


def at_half_interrupted_in_the_drain(
    server: FakeApiServer, **timeouts: float
) -> tuple[KubernetesPlatform, EmptySelections]:
    """V2 released to 50 % by a platform whose promote is interrupted in the drain
    (``interrupted_in_the_drain``), and a watch for a share sent to an empty selection."""
    platform = interrupted_in_the_drain(server, **timeouts)
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    watch = EmptySelections()
    server.observe = watch
    return platform, watch


def only_stable_behind_the_users_service(server: FakeApiServer) -> list[dict]:
    """Check the release's end as the user sees it: the route back on the user's Service alone
    and its three pods all ready on stable's image; return those pods."""
    assert managed_refs(server) == [{"name": SERVICE, "port": 80}]
    pods = selected(server, SERVICE)
    assert len(pods) == 3
    assert all(ready(p) and p["spec"]["containers"][0]["image"] == STABLE_IMAGE for p in pods)
    return pods


def report_ready(server: FakeApiServer, pod: dict) -> None:
    """What the kubelet reports once the pod's containers run and pass readiness."""
    status = copy.deepcopy(pod["status"])
    status["phase"] = "Running"
    for container in status["containerStatuses"]:
        container |= {"ready": True, "state": {"running": {"startedAt": "now"}}}
    server.set_pod_status(NAMESPACE, pod["metadata"]["name"], status)


def test_a_promotion_failing_after_stable_rolled_sends_stable_back_to_its_old_pods_once_available(
    api_server,
):
    """The drain is interrupted after the promoted rollout finished: the recorded ReplicaSet
    has no pod left. Restoring stable's template scales it up again, Pending at first;
    checkout-stable keeps selecting every pod of the service until that ReplicaSet is available
    (``kubectl rollout status``), then selects it by hash: at no moment does a share of the
    route meet a selection without a ready pod, and the release ends with stable serving 100 %
    from its old, available pods."""
    seed_app_only(api_server)
    platform, watch = at_half_interrupted_in_the_drain(api_server)
    before = api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"]
    kubelet = LateKubelet(api_server)
    kubelet.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            platform.promote(V2)
    finally:
        kubelet.stop.set()
        kubelet.join()

    assert watch.seen == []
    assert kubelet.readied is not None  # the restored pods did start late
    narrowed = [
        i
        for i, r in enumerate(api_server.requests)
        if r.kind == "Service"
        and r.name == STABLE
        and r.method != "GET"
        and "pod-template-hash" in (r.body or {}).get("spec", {}).get("selector", {})
    ]
    assert narrowed and narrowed[-1] > kubelet.readied - 1
    assert managed_refs(api_server) == [
        {"name": STABLE, "port": 80, "weight": 100},
        {"name": CANARY, "port": 80, "weight": 0},
    ]
    assert api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"] == before
    behind_stable = selected(api_server, STABLE)
    assert len(behind_stable) == 3
    assert all(
        ready(p) and p["spec"]["containers"][0]["image"] == STABLE_IMAGE for p in behind_stable
    )
    assert platform.current_state().phase == Phase.PROMOTION_FAILED


def test_a_stable_that_cannot_come_back_in_time_fails_loudly_with_the_canary_at_zero(api_server):
    """The restored pods never become ready: the restore ends at the Deployment's progress
    deadline with a PlatformError (exit 1) that says so, the canary's weight at 0 and
    stable's share still on ready pods (every pod of the service), never on the empty hash."""
    seed_app_only(api_server)
    platform, watch = at_half_interrupted_in_the_drain(api_server)

    with pytest.raises(PlatformError) as failure:
        platform.promote(V2)

    message = str(failure.value)
    assert message.startswith("promotion failed (interrupted) and stable could not be fully")
    assert "did not roll back to the recorded template: ProgressDeadlineExceeded" in message
    assert watch.seen == []
    assert managed_refs(api_server)[1] == {"name": CANARY, "port": 80, "weight": 0}
    assert (
        "pod-template-hash" not in api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"]
    )
    assert any(map(ready, selected(api_server, STABLE)))


def test_an_interrupted_promotion_restores_no_longer_than_the_pods_termination_grace(api_server):
    """SIGTERM, then SIGKILL once the pod's ``terminationGracePeriodSeconds`` is over: the
    restore after the signal ends inside that grace although the Deployment's progress
    deadline is far later. What it leaves is safe (the canary at 0, stable's share on ready
    pods) and still recorded, so the exit handler's ``rollback`` finishes the restore."""
    seed_app_only(api_server)
    AppsV1Api(api_server.api_client()).patch_namespaced_deployment(
        SERVICE, NAMESPACE, {"spec": {"progressDeadlineSeconds": 60}}
    )
    platform, watch = at_half_interrupted_in_the_drain(
        api_server, termination_grace_s=EXIT_MARGIN_S + 0.5
    )
    before = api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"]

    with pytest.raises(PlatformError) as failure:
        platform.promote(V2)

    message = str(failure.value)
    assert message.startswith("promotion failed (interrupted) and stable could not be fully")
    assert "did not roll back to the recorded template within the task pod's termination" in message
    assert "run `canaryflow rollback`" in message
    progressing = api_server.get("Deployment", NAMESPACE, SERVICE)["status"]["conditions"][0]
    assert progressing["reason"] != "ProgressDeadlineExceeded"  # ended before the deadline
    assert watch.seen == []
    assert managed_refs(api_server)[1] == {"name": CANARY, "port": 80, "weight": 0}
    assert any(map(ready, selected(api_server, STABLE)))
    assert recorded(api_server.get("Deployment", NAMESPACE, CANARY)) is not None  # kept

    for pod in api_server.objects("Pod", NAMESPACE):  # the kubelet starts the restored pods
        if not ready(pod):
            report_ready(api_server, pod)
    make_platform(api_server, "gateway-api").rollback()  # the exit handler, in its own pod

    assert watch.seen == []
    behind_users_service = only_stable_behind_the_users_service(api_server)
    assert before["pod-template-hash"] in {
        p["metadata"]["labels"]["pod-template-hash"] for p in behind_users_service
    }


def test_a_sigterm_while_stable_rolls_out_takes_the_canary_off_before_restoring_stable(
    api_server,
):
    """``argo stop`` (a real SIGTERM, turned into an interrupt as the CLI does) while stable
    rolls the promoted image out: the first write after it sets the canary's weight to 0,
    and only then does stable's template go back; the restore completes and the process exits
    as interrupted (130)."""
    import os
    import signal

    from canaryflow.cli import _sigterm_as_interrupt

    seed_app_only(api_server)
    AppsV1Api(api_server.api_client()).patch_namespaced_deployment(
        SERVICE, NAMESPACE, {"spec": {"progressDeadlineSeconds": 60}}
    )
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")  # the promoted pods never get ready
    rolling = threading.Event()
    signalled_at: list[int] = []

    def watch(server: FakeApiServer, request: RecordedRequest) -> None:
        body = json.dumps(request.body or {})
        if request.kind == "Deployment" and request.name == SERVICE and V2.image in body:
            rolling.set()

    def argo_stop() -> None:
        if rolling.wait(60):
            signalled_at.append(len(api_server.requests))
            os.kill(os.getpid(), signal.SIGTERM)

    api_server.observe = watch
    stopper = threading.Thread(target=argo_stop, daemon=True)
    stopper.start()
    with _sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        platform.promote(V2)
    stopper.join()

    (mark,) = signalled_at
    writes = [r for r in api_server.requests[mark:] if r.method != "GET" and r.status < 400]
    canary_off = next(i for i, r in enumerate(writes) if canary_weight_written(r) == 0)
    stable_back = next(
        i for i, r in enumerate(writes) if r.kind == "Deployment" and r.name == SERVICE
    )
    assert canary_off < stable_back
    stable = api_server.get("Deployment", NAMESPACE, SERVICE)
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == STABLE_IMAGE
    assert platform.current_state().phase == Phase.PROMOTION_FAILED


def rollback_stopped_while_stable_comes_back(
    server: FakeApiServer, termination_grace_s: float, kubelet: bool
) -> tuple[int, BaseException | None]:
    """A promotion interrupted in the drain left its record (stable's restored pods still
    Pending); the exit handler's ``rollback``, in its own pod, is then stopped itself (a real
    SIGTERM, as ``argo stop`` or the deadline sends, turned into an interrupt as the CLI does)
    while it waits for stable's restored rollout. With ``kubelet`` the restored pods are
    reported ready after the signal. Returns the request count at the signal and what the
    rollback raised."""
    import os
    import signal

    from canaryflow.cli import _sigterm_as_interrupt

    seed_app_only(server)
    AppsV1Api(server.api_client()).patch_namespaced_deployment(
        SERVICE, NAMESPACE, {"spec": {"progressDeadlineSeconds": 60}}
    )
    promoting = interrupted_in_the_drain(server, termination_grace_s=EXIT_MARGIN_S + 0.5)
    promoting.deploy_canary(V2)
    promoting.router.set_weight(50)
    with pytest.raises(PlatformError, match="within the task pod's termination grace"):
        promoting.promote(V2)
    assert recorded(server.get("Deployment", NAMESPACE, CANARY)) is not None

    client = server.api_client()
    router = make_router("gateway-api", client, NAMESPACE, SERVICE, retry=FAST_RETRY)
    timeouts = Timeouts(
        verify_weight_s=1, canary_scale_s=1, poll_s=0.02, termination_grace_s=termination_grace_s
    )
    platform = KubernetesPlatform(
        client, NAMESPACE, SERVICE, router, canary_replicas=2, timeouts=timeouts, retry=FAST_RETRY
    )
    waiting = threading.Event()
    signalled_at: list[int] = []
    started = len(server.requests)

    def watch(_: FakeApiServer, request: RecordedRequest) -> None:
        # The rollback's first list of stable's pods is its wait for the restored rollout.
        if request.kind == "Pod" and request.method == "GET" and not request.name:
            waiting.set()

    def argo_stop() -> None:
        if waiting.wait(60):
            signalled_at.append(len(server.requests))
            os.kill(os.getpid(), signal.SIGTERM)
            if kubelet:
                LateKubelet(server).start()

    server.observe = watch
    stopper = threading.Thread(target=argo_stop, daemon=True)
    stopper.start()
    raised = None
    try:
        with _sigterm_as_interrupt():
            platform.rollback()
    except BaseException as error:  # what the rollback let through is the point
        raised = error
    stopper.join()
    server.observe = None
    (mark,) = signalled_at
    assert mark > started
    return mark, raised


def test_a_sigterm_while_rollback_waits_for_stable_takes_traffic_off_first_and_restores_in_grace(
    api_server,
):
    """The stopped rollback does what a stopped promotion does: the first write after the
    signal is the canary's weight 0 (stable 100), verified; then it goes on waiting for
    stable's restored rollout inside the task pod's termination grace, puts the recorded
    selection back once that rollout is complete, and exits as interrupted. Nothing is
    drained or removed: the canary stays at 0 with the record, for the next rollback."""
    mark, raised = rollback_stopped_while_stable_comes_back(
        api_server, termination_grace_s=EXIT_MARGIN_S + 20, kubelet=True
    )

    assert isinstance(raised, KeyboardInterrupt)
    after = api_server.requests[mark:]
    first = next((i for i, r in enumerate(after) if r.method != "GET" and r.status < 400), None)
    assert first is not None, "the stopped rollback went on"
    # Weight 0 set on the route (already 0: unchanged, not rewritten) and recorded, before
    # stable's Deployment or any Service is touched.
    assert (after[first].kind, after[first].name) == ("Deployment", CANARY)
    assert after[first].body["metadata"]["annotations"]["canaryflow.dev/weight"] == "0"
    assert any(r.kind == "HTTPRoute" for r in after[:first])
    assert managed_refs(api_server) == [
        {"name": STABLE, "port": 80, "weight": 100},
        {"name": CANARY, "port": 80, "weight": 0},
    ]
    selector = api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"]
    assert "pod-template-hash" in selector, "narrowed to the restored ReplicaSet again"
    behind_stable = selected(api_server, STABLE)
    assert behind_stable and all(
        ready(p) and p["spec"]["containers"][0]["image"] == STABLE_IMAGE for p in behind_stable
    )
    progressing = api_server.get("Deployment", NAMESPACE, SERVICE)["status"]["conditions"][0]
    assert progressing["reason"] != "ProgressDeadlineExceeded"
    assert recorded(api_server.get("Deployment", NAMESPACE, CANARY)) is not None  # not removed


def test_a_stopped_rollback_waits_no_longer_than_the_pods_termination_grace(api_server):
    """Stable's restored pods never come up: the stopped rollback ends inside the grace, long
    before the Deployment's progress deadline, with the canary at 0 and stable's share on
    every ready pod of the service; a Warning Event says what is left and to run it again."""
    _, raised = rollback_stopped_while_stable_comes_back(
        api_server, termination_grace_s=EXIT_MARGIN_S + 0.5, kubelet=False
    )

    assert isinstance(raised, KeyboardInterrupt), "exit 130, never retried in the stopped pod"
    progressing = api_server.get("Deployment", NAMESPACE, SERVICE)["status"]["conditions"][0]
    assert progressing["reason"] != "ProgressDeadlineExceeded"  # ended before the deadline
    assert managed_refs(api_server)[1] == {"name": CANARY, "port": 80, "weight": 0}
    assert (
        "pod-template-hash"
        not in (api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"])
    )
    assert any(map(ready, selected(api_server, STABLE)))
    (event,) = [
        e for e in api_server.objects("Event", NAMESPACE) if e["reason"] == "RollbackInterrupted"
    ]
    assert "did not roll back to the recorded template within the task pod's" in event["message"]
    assert event["message"].endswith("run `canaryflow rollback` again")
    assert api_server.get("Deployment", NAMESPACE, CANARY) is not None


def test_a_rollback_stopped_before_it_took_traffic_off_the_canary_does_that_first(api_server):
    """The promote pod was killed outright after recording stable (the canary still at 50 %);
    the exit handler's rollback is itself stopped (SIGTERM) as it starts restoring stable: on
    its way out it sets the canary's weight to 0 and stable's to 100, verified, instead of
    leaving users on the canary."""
    import os
    import signal

    from canaryflow.cli import _sigterm_as_interrupt

    seed_app_only(api_server)
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    stable = api_server.get("Deployment", NAMESPACE, SERVICE)
    platform._record_stable(stable)  # then the promote pod died (SIGKILL, node loss)
    signalled_at: list[int] = []

    def argo_stop(server: FakeApiServer, request: RecordedRequest) -> None:
        # The rollback's first step (stable's share widened): stopped right there, before it
        # reaches the route, whatever the machine's load.
        widening = request.kind == "Service" and request.name == STABLE and request.method != "GET"
        if widening and not signalled_at:
            signalled_at.append(len(server.requests))
            os.kill(os.getpid(), signal.SIGTERM)

    api_server.observe = argo_stop
    with _sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        make_platform(api_server, "gateway-api").rollback()
        time.sleep(5)  # main's rollback may finish before the signal lands: let it land
    api_server.observe = None

    (mark,) = signalled_at
    zero = [r for r in api_server.requests[mark:] if r.kind == "HTTPRoute" and r.method != "GET"]
    assert zero and canary_weight_written(zero[0]) == 0
    assert managed_refs(api_server) == [
        {"name": STABLE, "port": 80, "weight": 100},
        {"name": CANARY, "port": 80, "weight": 0},
    ]


@pytest.mark.parametrize(
    ("environ", "grace"),
    [({}, TERMINATION_GRACE_S), ({"CANARYFLOW_TERMINATION_GRACE_S": "90"}, 90.0)],
    ids=["default", "configured"],
)
def test_the_termination_grace_is_the_default_unless_the_task_pod_names_its_own(
    api_server, environ, grace
):
    plan = ReleasePlan.model_validate({"service": {"name": SERVICE, "namespace": NAMESPACE}})

    platform = platform_for(plan, api_server.api_client(), environ)

    assert platform.timeouts.termination_grace_s == grace


@pytest.mark.parametrize("value", ["thirty", "-1", "nan", "inf"])
def test_a_termination_grace_that_is_no_number_of_seconds_is_refused(api_server, value):
    plan = ReleasePlan.model_validate({"service": {"name": SERVICE, "namespace": NAMESPACE}})

    with pytest.raises(InputError) as refused:
        platform_for(plan, api_server.api_client(), {"CANARYFLOW_TERMINATION_GRACE_S": value})

    assert str(refused.value).startswith(
        f"CANARYFLOW_TERMINATION_GRACE_S: {value!r} is not a number of seconds"
    )


# -- a stable rolled mid-window: followed within a round ---------------------------------------


class WorldClock(SteppingClock):
    """The analysis loop's clock; each of its sleeps lets the cluster move on (``world``)."""

    def __init__(self, world):
        super().__init__()
        self.world = world

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.world(len(self.sleeps))


def test_a_stable_rolled_during_a_window_is_followed_within_a_round(api_server):
    """Argo CD's self-heal rolls stable while the canary holds 20 % and a window runs: its new
    pods start beside the old ones, and the old go once the new are ready. The next analysis
    round widens checkout-stable before the old pods go, and the round after the rollout
    finished selects the new ReplicaSet: no moment, including the kubelet's report that ends
    the old pods, has a share of the route on a selection with no ready pod."""
    seed_app_only(api_server)
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(20)
    api_server.set_rollout(NAMESPACE, SERVICE, "kubelet")
    watch = EmptySelections()
    api_server.observe = watch
    rolled: list[str] = []

    def world(sleeps: int) -> None:
        if sleeps == 1:  # self-heal: the template from Git
            stable = api_server.get("Deployment", NAMESPACE, SERVICE)
            stable["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "self-heal"}
            AppsV1Api(api_server.api_client()).replace_namespaced_deployment(
                SERVICE, NAMESPACE, stable
            )
        if sleeps == 2:  # the kubelet: the new pods ready, so the old ones go
            for pod in api_server.objects("Pod", NAMESPACE):
                if not ready(pod):
                    rolled.append(pod["metadata"]["labels"]["pod-template-hash"])
                    report_ready(api_server, pod)
            watch.check(api_server, "kubelet: new pods ready, old pods gone")

    run = AnalysisRun(spec(), TableSource(healthy()), SERVICE, NAMESPACE, clock=WorldClock(world))
    window = AnalysisWindows(run, liveness=None, upkeep=platform.follow_stable).run_window(
        30, on_round=lambda batch: None
    )

    assert window.verdict is Outcome.PASS
    assert rolled and watch.moments > 3
    assert watch.seen == []
    behind_stable = selected(api_server, STABLE)
    assert len(behind_stable) == 3
    assert all(ready(p) and not is_canary(p) for p in behind_stable)
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in behind_stable} == set(rolled)
    assert managed_refs(api_server)[0] == {"name": STABLE, "port": 80, "weight": 80}


def restart_one_pod(server: FakeApiServer, pod: dict) -> None:
    unready = copy.deepcopy(pod["status"])
    unready["containerStatuses"][0]["ready"] = False
    server.set_pod_status(NAMESPACE, pod["metadata"]["name"], unready)


def leave_a_terminating_pod_of_a_past_roll(server: FakeApiServer, pod: dict) -> None:
    old = copy.deepcopy(pod)
    old["metadata"] = {
        "name": f"{SERVICE}-0ld0ld0ld-0",
        "namespace": NAMESPACE,
        "labels": {**pod["metadata"]["labels"], "pod-template-hash": "0ld0ld0ld"},
        "annotations": {"fake.dev/deployment": "(terminating)"},
        "ownerReferences": [
            {**pod["metadata"]["ownerReferences"][0], "name": f"{SERVICE}-0ld0ld0ld"}
        ],
        "deletionTimestamp": "2026-12-07T03:00:00Z",
    }
    for container in old["status"]["containerStatuses"]:  # as a kubelet reports a running one
        container["imageID"] = container["image"]
        container["containerID"] = "containerd://0ld"
    server.seed(old)


@pytest.mark.parametrize(
    "no_roll",
    [restart_one_pod, leave_a_terminating_pod_of_a_past_roll],
    ids=["a-pod-restarting", "an-old-pod-terminating"],
)
def test_what_is_no_roll_leaves_the_selection_alone(api_server, no_roll):
    """One stable pod not ready (a restart, a node drain), or an old pod of a past roll still
    terminating (``deletionTimestamp``), is not a rollout: checkout-stable keeps its hash
    rather than taking in the canary's pods. (Guards the per-round following, which widens
    as soon as stable rolls.)"""
    seed_app_only(api_server)
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(20)
    before = api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"]
    no_roll(api_server, next(p for p in api_server.objects("Pod", NAMESPACE) if not is_canary(p)))
    api_server.requests.clear()

    platform.follow_stable()

    assert api_server.get("Service", NAMESPACE, STABLE)["spec"]["selector"] == before
    assert api_server.writes() == []


def test_the_analyze_pod_follows_stable_each_round_when_it_may_write_the_routes():
    """The workflow's analyze pod (``--fail-safe``: it holds the platform) runs the same
    upkeep each round, before the round is shown; a failed read is a warning, not a verdict."""
    from types import SimpleNamespace

    from canaryflow.commands.analyze import _each_round

    calls: list[str] = []

    def follow() -> None:
        calls.append("follow")
        if len(calls) == 3:
            raise PlatformError("the API server did not answer")

    safety = SimpleNamespace(platform=SimpleNamespace(follow_stable=follow))
    each_round = _each_round(lambda batch, verdict: calls.append("shown"), safety)
    for _ in range(2):
        each_round([], None)

    assert calls == ["follow", "shown", "follow", "shown"]
    each_round([], None)
    assert calls[-2:] == ["follow", "shown"]
    assert _each_round(None, None) is None  # no cluster access: nothing to follow


def test_a_rollback_after_a_promote_pod_killed_past_the_rollout_waits_for_stable_to_come_back(
    api_server,
):
    """The promote pod died after stable rolled out the canary's image (SIGKILL: nothing of
    its own undo ran). ``rollback`` restores from the record the same way: the old
    ReplicaSet comes back Pending, stable's share stays on every ready pod until it is
    available, and the route leads to the user's Service again with the old pods serving."""
    seed_app_only(api_server)
    platform = make_platform(api_server, "gateway-api")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    platform._record_stable(api_server.get("Deployment", NAMESPACE, SERVICE))
    platform.widen_stable_service()
    stable = api_server.get("Deployment", NAMESPACE, SERVICE)
    stable["spec"]["template"]["spec"]["containers"][0]["image"] = V2.image
    AppsV1Api(api_server.api_client()).replace_namespaced_deployment(SERVICE, NAMESPACE, stable)
    assert not any(
        p["spec"]["containers"][0]["image"] == STABLE_IMAGE
        for p in api_server.objects("Pod", NAMESPACE)
    )
    api_server.set_rollout(NAMESPACE, SERVICE, "kubelet")
    watch = EmptySelections()
    api_server.observe = watch
    kubelet = LateKubelet(api_server)
    kubelet.start()
    try:
        outcome = platform.rollback()
    finally:
        kubelet.stop.set()
        kubelet.join()

    assert outcome.startswith("promotion of v2 failed, stable restored")
    assert kubelet.readied is not None
    assert watch.seen == []
    only_stable_behind_the_users_service(api_server)
