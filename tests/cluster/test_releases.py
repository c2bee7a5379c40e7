"""A push to Git releases a service through the cluster in a box, for every router kind.

Each scenario starts at a Git push: the provider's webhook payload goes through the rendered
Sensor, the Workflow it creates runs the chart's templates with Argo's semantics, every task is
the real ``canaryflow`` verb, Deployments run the pushed image's binary, Prometheus scrapes them
through the PodMonitor relabeling, and nginx routes a real load as the router object says.
Plans are CI-sized (windows of 2 s judged every second). Independent services release side by
side in three phases (good, bad, people); the module takes about 4 minutes on 2 cores.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from canaryflow.plan.load import load_plan
from canaryflow.plan.routers import THREE_WAY, can
from canaryflow.platform.split import split_for

from . import observe
from .argo.controller import Workflow
from .bed import FAULTY_SOURCE, ServiceUnderTest, short_plan
from .conftest import ROUTERS, STEPS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # `make test-e2e`, not `make test`

CHART_PLAN = Path(__file__).resolve().parents[2] / "charts" / "canaryflow" / "files" / "plan.yaml"
RELEASE_TIMEOUT_S = 480
"""A bound on a hung release, not a speed claim: three routers' releases run at once, each
about ten task pods of a Python process, so a loaded 2-core machine took over 180 s (every step
had succeeded, the last still running)."""
PROVIDER = {"istio": "github", "nginx-ingress": "gitlab", "gateway-api": "github"}


def release(service: ServiceUnderTest, message: str, files=None, **push) -> Workflow:
    workflow = service.push(message, files, **push)
    assert workflow is not None, "the push started no release"
    return service.bed.controller.wait(workflow.name, RELEASE_TIMEOUT_S)


def all_at_once(jobs: dict) -> dict:
    """Run the releases of several services side by side (independent namespaces and locks)."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


# -- a good release of the service's own plan --------------------------------------------------


@pytest.fixture(scope="module")
def good(service_for) -> dict[str, tuple[ServiceUnderTest, Workflow, float]]:
    services = {router: service_for(router) for router in ROUTERS}

    def job(router: str):
        service = services[router]
        started = time.time()
        workflow = release(service, "v2: a good change", provider=PROVIDER[router])
        return service, workflow, started

    return all_at_once({router: (lambda r=router: job(r)) for router in ROUTERS})


@pytest.mark.parametrize("router", ROUTERS)
def test_a_good_release_runs_the_repositorys_own_plan_and_is_promoted(good, router):
    service, workflow, started = good[router]
    default_weights = [s.weight for s in load_plan(CHART_PLAN).traffic_steps]
    own_weights = [str(step["weight"]) for step in STEPS]

    assert workflow.phase == "Succeeded", workflow.message
    assert observe.step_inputs(workflow, "set-weight", "weight") == own_weights
    assert own_weights != [str(w) for w in default_weights]
    assert observe.step_inputs(workflow, "analyze", "step") == ["0", "1"]
    assert observe.ran(workflow, "promote") and not observe.ran(workflow, "rollback")
    (contract,) = observe.pods(workflow, "check-contract")  # the cluster, before any build
    (test,) = observe.pods(workflow, "go-test")
    assert contract.finished_at <= test.started_at
    # The router really carried the plan's splits until promotion, and 0 after it.
    (promote,) = observe.pods(workflow, "promote")
    served = service.dataplane.weights(started, promote.started_at)
    assert [weight for weight in served if weight] == [int(w) for w in own_weights]
    assert service.dataplane.weights(started)[-1] == 0
    # A fresh baseline (the plan's default) took its share where the router splits three ways.
    shares = [split_for(int(w), can(router, THREE_WAY)).baseline for w in own_weights]
    expected = [share for i, share in enumerate(shares) if share and shares[i - 1 : i] != [share]]
    baseline = service.dataplane.baseline_weights(started, promote.started_at)
    assert [share for share in baseline if share] == expected, router
    assert service.dataplane.baseline_weights(started)[-1] == 0
    # No user request failed while traffic went back to stable and the canary went (drain).
    promoting = (promote.started_at, promote.finished_at + 1.0)
    assert service.load.counters(*promoting).total > 0
    assert service.load.failures(*promoting) == []
    assert any(r.header is not None for at, r in service.dataplane.history if at > started)
    assert service.load.counters(started).by_track.get("canary", 0) > 0
    # Stable now runs the image pushed by digest, and serves the pushed commit.
    (pushed,) = observe.pods(workflow, "image-push")
    assert service.stable_image() == pushed.outputs["image"]
    assert "@sha256:" in pushed.outputs["image"]
    assert observe.served_version(service) == service.pushes[-1]
    assert not observe.canary_exists(service)


def test_one_install_without_a_registry_secret_releases_every_router_kind(good):
    """The chart's defaults: no ``release.routerKind`` (each plan picks its router) and no
    ``canaryflow-registry`` Secret (the bed's registry is anonymous: image-push goes without)."""
    installs = {service.chart.namespace for service, _, _ in good.values()}
    (namespace,) = installs
    bed = next(iter(good.values()))[0].bed

    assert (namespace, "canaryflow-registry") not in bed.secrets
    for router, (service, workflow, started) in good.items():
        assert workflow.parameters["router-kind"] == "", router
        own_plan = yaml.safe_load((service.checkout / "canaryflow.yaml").read_text())
        assert own_plan["router"]["kind"] == router
        assert observe.ran(workflow, "image-push") and workflow.phase == "Succeeded"
        # the weights were served by this router kind's object (the data plane reads only it)
        assert max(service.dataplane.weights(started)) > 0, router


def test_the_task_pods_ran_the_containers_exact_argv_and_env(good):
    service, workflow, _ = good["istio"]
    (build,) = observe.pods(workflow, "go-build")
    tasks = service.bed.templates.get(service.chart.namespace, "canaryflow-tasks", False)
    (template,) = [t for t in tasks["spec"]["templates"] if t["name"] == "go-build"]
    container = template["container"]

    assert build.pod.argv[:2] == [*container["command"], container["args"][0]]
    assert "/workspace/bin/service" in build.pod.argv  # the container's path, not the host's
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert plain.items() <= build.pod.env.items()
    assert build.pod.env["CGO_ENABLED"] == "0" and build.pod.env["HOME"] == "/tmp"
    assert "GOFLAGS" not in build.pod.env  # Go's defaults and the user's settings (issue 12)


# -- a bad release ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad(good, service_for) -> dict[str, tuple[ServiceUnderTest, Workflow, str]]:
    def job(router: str):
        service = service_for(router)
        stable = service.stable_image()
        faulty = {"release_fault.go": FAULTY_SOURCE}
        workflow = release(service, "v3: half the requests fail", faulty, provider=PROVIDER[router])
        service.commit("v4: the fault reverted", {"release_fault.go": None})
        return service, workflow, stable

    return all_at_once({router: (lambda r=router: job(r)) for router in ROUTERS})


@pytest.mark.parametrize("router", ROUTERS)
def test_a_bad_release_is_made_safe_by_its_analyze_pod_before_the_rollback_branch(bad, router):
    service, workflow, stable = bad[router]

    assert workflow.phase == "Failed"
    (analyze,) = observe.pods(workflow, "analyze")
    assert analyze.phase == "Failed" and analyze.outputs["verdict"] == "fail"
    safety = observe.safety(service, workflow)
    assert safety is not None, "no failing measurement, or the router never went back to 0"
    # Safe at once: the router objects asked for no canary traffic -- weight 0 *and* the header
    # route withdrawn -- before the rollback pod even started, so the analyze pod's fail-safe did
    # it, not the rollback branch. Ordered on when the data plane read the objects: nginx's
    # reload after it is the stand-in's time (0.4 s under CI load once let the rollback pod start
    # between the read and the reload), not canaryflow's.
    (rollback,) = observe.pods(workflow, "rollback")[:1]
    assert rollback.started_at is not None
    asked = service.dataplane.no_canary_route_asked_after(safety.failing_at)
    assert asked is not None and asked <= rollback.started_at, (asked, safety)
    print(f"{router}: first failing measurement to weight 0 served: {safety.seconds:.2f}s")
    # The analyze pod verified both on the router object before it exited, and the data plane
    # then served both.
    (analyze_pod,) = observe.pods(workflow, "analyze")
    fail_safe = json.loads(analyze_pod.outputs["report"])["failSafe"]
    assert fail_safe["verified"] and fail_safe["headerRouteWithdrawn"]
    assert fail_safe["weightZeroVerifiedAt"] <= rollback.started_at, fail_safe
    assert service.dataplane.no_canary_route_after(safety.failing_at) is not None
    assert observe.ran(workflow, "rollback") and not observe.ran(workflow, "promote")
    assert observe.notified(workflow) == "rolled-back"  # Argo's quoted workflow.failures read
    assert service.stable_image() == stable
    assert not observe.canary_exists(service)
    assert service.dataplane.current.weight == 0 and service.dataplane.current.header is None


# -- approvals --------------------------------------------------------------------------------

APPROVAL_STEPS = [
    {"weight": 20, "duration": "2s"},
    {"approve": {"message": "Looks good at 20 %?"}},
    {"weight": 60, "duration": "2s"},
]


def release_with_approval(service: ServiceUnderTest, answer) -> Workflow:
    plan = short_plan(service.spec, service.bed.prometheus.url, APPROVAL_STEPS)
    files = {"canaryflow.yaml": yaml.safe_dump(plan, sort_keys=False)}
    workflow = service.push("v5: needs a person", files)
    assert workflow is not None
    controller = service.bed.controller

    def waiting(wf: Workflow) -> bool:
        return any(n.type == "Suspend" and n.phase == "Running" for n in wf.nodes.values())

    controller.wait_for(workflow.name, waiting, RELEASE_TIMEOUT_S, "waiting for approval")
    answer(controller, workflow.name)
    return controller.wait(workflow.name, RELEASE_TIMEOUT_S)


def approve(argo, name: str) -> None:
    argo.node_set(name, "displayName=approve", output_parameters={"approver": "alice"})
    argo.resume(name, "displayName=approve")


def refuse(argo, name: str) -> None:
    argo.node_set(name, "displayName=approve", phase="Failed", message="not today")


def stop_first_while_second_waits(service: ServiceUnderTest):
    """Push A (a long step), then B (the short plan); stop A mid-step; B then runs."""
    stable = service.stable_image()
    url = service.bed.prometheus.url
    long_plan = short_plan(service.spec, url, [{"weight": 20, "duration": "60s"}])
    first = service.push("v6: a long step", {"canaryflow.yaml": yaml.safe_dump(long_plan)})
    short = yaml.safe_dump(short_plan(service.spec, url, STEPS))
    second = service.push("v7: the short plan again", {"canaryflow.yaml": short})
    assert first is not None and second is not None
    controller = service.bed.controller

    def analysing(wf: Workflow) -> bool:
        return any(n.display_name == "analyze" and n.phase == "Running" for n in wf.nodes.values())

    controller.wait_for(first.name, analysing, RELEASE_TIMEOUT_S, "analysing")
    time.sleep(1.0)
    queued = (second.phase, second.message)
    weight_before_stop = service.dataplane.current.weight
    controller.stop(first.name)
    controller.wait(first.name, RELEASE_TIMEOUT_S)
    controller.wait(second.name, RELEASE_TIMEOUT_S)
    return service, first, second, stable, queued, weight_before_stop


@pytest.fixture(scope="module")
def people(bad, service_for) -> dict:
    """Side by side: an approval given (Istio), one refused (NGINX), argo stop + mutex (Gateway)."""
    istio, nginx = service_for("istio"), service_for("nginx-ingress")
    stable_before_refusal = nginx.stable_image()
    results = all_at_once(
        {
            "approved": lambda: release_with_approval(istio, approve),
            "refused": lambda: release_with_approval(nginx, refuse),
            "stopped": lambda: stop_first_while_second_waits(service_for("gateway-api")),
        }
    )
    results["refused"] = (nginx, results["refused"], stable_before_refusal)
    results["approved"] = (istio, results["approved"])
    return results


def test_an_approved_step_resumes_the_release_to_promotion(people):
    service, workflow = people["approved"]

    assert workflow.phase == "Succeeded", workflow.message
    (approval,) = [n for n in workflow.nodes.values() if n.type == "Suspend"]
    assert approval.phase == "Succeeded" and approval.outputs["approver"] == "alice"
    assert observe.step_inputs(workflow, "set-weight", "weight") == ["20", "60"]
    assert service.stable_image() == observe.pods(workflow, "image-push")[0].outputs["image"]


def test_a_refused_step_rolls_back(people):
    service, workflow, stable = people["refused"]

    assert workflow.phase == "Failed"
    (approval,) = [n for n in workflow.nodes.values() if n.type == "Suspend"]
    assert approval.phase == "Failed" and approval.message == "not today"
    assert observe.step_inputs(workflow, "set-weight", "weight") == ["20"]
    assert observe.ran(workflow, "rollback") and not observe.ran(workflow, "promote")
    assert service.stable_image() == stable and not observe.canary_exists(service)
    assert service.dataplane.current.weight == 0
    assert observe.notified(workflow) == "rolled-back"


def test_argo_stop_mid_step_leaves_stable_at_100_percent(people):
    service, first, _, stable, _, weight_before_stop = people["stopped"]

    assert weight_before_stop == 20
    assert first.phase == "Failed" and "Stop" in first.message
    (analyze,) = observe.pods(first, "analyze")
    assert analyze.phase == "Failed"
    exit_rollback = [n for n in first.pods() if n.on_exit and n.display_name.startswith("rollback")]
    assert exit_rollback and exit_rollback[-1].phase == "Succeeded"
    assert not observe.ran(first, "promote")
    assert observe.notified(first) == "rolled-back"
    assert service.dataplane.weight_zero_after(first.finished_at) is not None
    assert not observe.canary_exists(service) or service.stable_image() != stable


def test_a_second_push_of_one_service_waits_for_the_first(people):
    service, first, second, _, queued, _ = people["stopped"]
    phase, message = queued

    assert phase == "Pending" and "Waiting for" in message and "Mutex" in message
    assert second.started_at >= first.finished_at
    assert second.phase == "Succeeded", second.message
    assert observe.served_version(service) == service.pushes[-1]


# -- pushes that start nothing -----------------------------------------------------------------


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_a_push_to_an_unlisted_branch_starts_nothing(service_for, provider):
    service = service_for("istio")
    before = len(service.bed.controller.workflows)

    started = service.push("wip", branch="feature/cart", provider=provider)

    assert started is None
    assert len(service.bed.controller.workflows) == before
