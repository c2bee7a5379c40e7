"""A promotion is a transaction: what stable was is recorded in the cluster before anything
changes, the rollout is judged by the Deployment's own progress deadline, and a promotion that
does not complete leaves stable exactly as it was and the canary serving nothing, whether the
promote pod undoes it itself or dies and leaves it to ``rollback``.

The fake API server holds the new pods not ready (``unready``) and writes the ``Progressing``
condition as the Deployment controller does (see its module docstring for the upstream code).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kube.fixtures import (
    CANARY_IMAGE,
    NAMESPACE,
    SERVICE,
    STABLE_DEPLOYMENT,
    STABLE_IMAGE,
    USER_OBJECTS,
    api_server,
    write_kubeconfig,
)
from test_kubernetes_platform import FAST_RETRY, ROUTER_KINDS, V2, event_reasons, make_platform
from test_release_verbs import plan_file, verb

from canaryflow.errors import InputError, PlatformError
from canaryflow.kubernetes.platform import KubernetesPlatform, Timeouts
from canaryflow.kubernetes.resources import DEPLOYMENT
from canaryflow.kubernetes.routers import make_router
from canaryflow.kubernetes.stable_record import recorded
from canaryflow.platform.protocol import Artifact, HeaderRoute
from canaryflow.platform.state import Phase

__all__ = ["api_server"]

OTHER_DIGEST = "registry.local/checkout@sha256:" + "b" * 64
CANARY = f"{SERVICE}-canary"


def stable_with_deadline(seconds: int) -> dict:
    """Stable as most charts write it (selected by app alone), with a short progress deadline."""
    stable = copy.deepcopy(STABLE_DEPLOYMENT)
    stable["spec"]["selector"] = {"matchLabels": {"app": SERVICE}}
    stable["spec"]["progressDeadlineSeconds"] = seconds
    return stable


def seed(server, deadline_s: int = 2):
    for obj in USER_OBJECTS:
        server.seed(stable_with_deadline(deadline_s) if obj is STABLE_DEPLOYMENT else obj)
    return server


def stable_view(server) -> dict:
    """What a promotion may change and a failed one must put back."""
    stable = server.get("Deployment", NAMESPACE, SERVICE)
    service = server.get("Service", NAMESPACE, SERVICE)
    return {
        "template": stable["spec"]["template"],
        "selector": stable["spec"]["selector"],
        "labels": stable["metadata"].get("labels"),
        "service": service["spec"]["selector"],
    }


# -- the stand-in ---------------------------------------------------------------------------


def test_the_stand_in_reports_progress_deadline_exceeded_as_the_deployment_controller(
    api_server,
):
    seed(api_server, deadline_s=1)
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")
    client = make_platform(api_server).api

    def condition() -> dict:
        status = client.get(DEPLOYMENT, SERVICE)["status"]
        return next(c for c in status["conditions"] if c["type"] == "Progressing")

    assert condition()["reason"] == "NewReplicaSetAvailable"
    client.update(
        DEPLOYMENT,
        SERVICE,
        lambda d: {**d, "spec": {**d["spec"], "template": _with_image(d, CANARY_IMAGE)}},
    )
    assert (condition()["status"], condition()["reason"]) == ("True", "ReplicaSetUpdated")
    deadline = time.monotonic() + 10
    while condition()["reason"] != "ProgressDeadlineExceeded" and time.monotonic() < deadline:
        time.sleep(0.1)

    timed_out = condition()
    assert (timed_out["status"], timed_out["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert timed_out["message"].endswith("has timed out progressing.")


def _with_image(deployment: dict, image: str) -> dict:
    template = copy.deepcopy(deployment["spec"]["template"])
    template["spec"]["containers"][0]["image"] = image
    return template


# -- promote undoes itself --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ROUTER_KINDS)
def test_a_promotion_whose_new_pods_never_become_ready_ends_at_the_progress_deadline_and_puts_stable_back(  # noqa: E501
    api_server, kind
):
    seed(api_server)
    platform = make_platform(api_server, kind)
    platform.deploy_canary(V2)
    if kind != "smi":  # SMI routes no header
        platform.router.set_header_route(HeaderRoute("x-release-channel", "canary"))
    platform.router.set_weight(50)
    before = stable_view(api_server)
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")

    with pytest.raises(PlatformError) as failure:
        platform.promote(V2)

    message = str(failure.value)
    assert message.startswith("promotion failed, stable restored:")
    assert "ProgressDeadlineExceeded after its progressDeadlineSeconds (2s)" in message
    assert "0/3 new pods ready, 3 old pods pending termination" in message
    assert stable_view(api_server) == before
    assert platform.router.verify_weight(0) and platform.router.header_route_withdrawn()
    assert platform.current_state().phase == Phase.PROMOTION_FAILED
    assert "PromotionFailed" in event_reasons(api_server)
    if kind == "istio":
        rule = api_server.get("DestinationRule", NAMESPACE, f"{SERVICE}-canaryflow")
        (restored_hash,) = {
            p["metadata"]["labels"]["pod-template-hash"]
            for p in api_server.objects("Pod", NAMESPACE)
            if p["spec"]["containers"][0]["image"] == STABLE_IMAGE
        }
        assert rule["spec"]["subsets"][0] == {
            "name": "stable",
            "labels": {"pod-template-hash": restored_hash},
        }
    pods = api_server.objects("Pod", NAMESPACE)
    stable_images = {
        p["spec"]["containers"][0]["image"]
        for p in pods
        if p["metadata"]["labels"].get("canaryflow.dev/track") != "canary"
    }
    assert stable_images == {before["template"]["spec"]["containers"][0]["image"]}


def test_the_record_of_stable_is_written_before_anything_of_stable_changes(api_server):
    seed(api_server)
    platform = make_platform(api_server, "nginx-ingress")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    api_server.requests.clear()

    platform.promote(V2)

    writes = [(r.kind, r.name, r.method, r.body) for r in api_server.writes() if r.kind != "Event"]
    first_stable_change = next(i for i, (kind, name, *_) in enumerate(writes) if name == SERVICE)
    recorded = [
        i
        for i, (kind, name, method, body) in enumerate(writes)
        if (kind, name) == ("Deployment", CANARY)
        and "canaryflow.dev/stable-before-promotion"
        in ((body or {}).get("metadata", {}).get("annotations") or {})
    ]
    assert recorded and recorded[0] < first_stable_change


def test_a_retried_promote_after_a_failed_promotion_does_not_roll_stable_again(api_server):
    """Argo retries a promote pod that exited 1: stable, once restored, is left alone."""
    seed(api_server)
    platform = make_platform(api_server, "nginx-ingress")
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")
    with pytest.raises(PlatformError, match=r"^promotion failed, stable restored"):
        platform.promote(V2)
    api_server.requests.clear()

    with pytest.raises(PlatformError, match="already failed and stable was restored"):
        platform.promote(V2)

    assert [w for w in api_server.writes() if w.kind != "Event"] == []


# -- rollback after a failed promotion, in other processes ------------------------------------


def v2_deployed_by_the_verb(
    tmp_path, api_server, router: str, **seeded: float
) -> tuple[Path, Path, dict, list[str]]:
    """Stable seeded and V2's canary deployed by the ``deploy-canary`` verb, as a workflow pod
    runs it: the plan, the kubeconfig, stable's view before, and V2's verb arguments."""
    seed(api_server, **seeded)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_server.url)
    plan = plan_file(tmp_path, router)
    before = stable_view(api_server)
    v2 = ["--image", CANARY_IMAGE, "--version", "v2"]
    assert verb("deploy-canary", plan, kubeconfig, *v2) == 0
    return plan, kubeconfig, before, v2


def test_rollback_after_a_failed_promotion_says_so_and_the_next_release_deploys(
    tmp_path, api_server, capsys
):
    plan, kubeconfig, before, v2 = v2_deployed_by_the_verb(tmp_path, api_server, "nginx-ingress")
    assert verb("set-weight", plan, kubeconfig, "--weight", "50") == 0
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")
    assert verb("promote", plan, kubeconfig, *v2) == 1
    assert "promotion failed, stable restored" in capsys.readouterr().err

    assert verb("rollback", plan, kubeconfig, "--reason", "promote failed") == 0

    assert "promotion of v2 failed, stable restored" in capsys.readouterr().out
    assert stable_view(api_server) == before
    assert api_server.get("Deployment", NAMESPACE, CANARY) is None
    api_server.set_rollout(NAMESPACE, SERVICE, "available")
    v3 = ["--image", OTHER_DIGEST, "--version", "v3"]
    assert verb("deploy-canary", plan, kubeconfig, *v3) == 0


def test_a_promote_pod_killed_mid_rollout_is_undone_by_rollback_from_the_record(
    tmp_path, api_server, capsys
):
    plan, kubeconfig, before, v2 = v2_deployed_by_the_verb(
        tmp_path, api_server, "istio", deadline_s=600
    )
    assert verb("set-weight", plan, kubeconfig, "--weight", "100") == 0
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")
    argv = ["promote", "--plan", str(plan), "--kubeconfig", str(kubeconfig), *v2]
    promote = subprocess.Popen(
        [sys.executable, "-m", "canaryflow", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while stable_view(api_server)["template"] == before["template"]:
            assert time.monotonic() < deadline and promote.poll() is None
            time.sleep(0.05)
    finally:
        os.kill(promote.pid, signal.SIGKILL)
        promote.wait()
    assert stable_view(api_server) != before  # the promote pod died half-way

    assert verb("rollback", plan, kubeconfig) == 0

    assert "promotion of v2 failed, stable restored" in capsys.readouterr().out
    assert stable_view(api_server) == before
    rule = api_server.get("VirtualService", NAMESPACE, SERVICE)
    assert "canaryflow.dev/original-route" not in (rule["metadata"].get("annotations") or {})


@pytest.mark.parametrize(
    "left",
    [
        Phase.PROMOTING,  # the promote pod killed (SIGKILL, node loss) mid-way
        Phase.PROGRESSING,  # what taking traffic off writes: a stopped promotion or rollback
        Phase.ROLLING_BACK,  # a rollback killed before it took traffic off
        Phase.DEPLOYED,
        Phase.HEALTHY,
        Phase.UNHEALTHY,
        None,  # no phase readable beside the record
    ],
)
def test_a_deploy_after_a_promotion_that_never_finished_asks_for_the_rollback_first(
    api_server, left
):
    """Whatever phase a stopped promotion or rollback wrote last, a canary holding stable's
    record is refused (exit 1) with nothing changed: only ``PromotionFailed`` and
    ``RolledBack``, written once stable is back as recorded, let the next release replace it."""
    seed(api_server)
    platform = make_platform(api_server, "nginx-ingress")
    platform.deploy_canary(V2)
    platform._record_stable(api_server.get("Deployment", NAMESPACE, SERVICE))
    if left is None:
        annotations = {k: None for k in ("phase", "weight", "version", "updated-at")}
        patch = {f"canaryflow.dev/{k}": v for k, v in annotations.items()}
        platform.api.merge_patch(DEPLOYMENT, CANARY, {"metadata": {"annotations": patch}})
    else:
        platform.record(left, 0)
    api_server.requests.clear()

    with pytest.raises(PlatformError) as refused:
        platform.deploy_canary(Artifact("v3", OTHER_DIGEST))

    assert str(refused.value).startswith(
        f"artifact.version: a promotion of {'v2' if left else 'the canary'} did not finish "
        "and no rollback restored stable yet"
    )
    assert "run `canaryflow rollback`" in str(refused.value)
    assert api_server.writes() == []


@pytest.mark.parametrize("restored", [Phase.PROMOTION_FAILED, Phase.ROLLED_BACK])
def test_a_canary_whose_record_stable_was_restored_from_is_replaced_by_the_next_release(
    api_server, restored
):
    seed(api_server)
    platform = make_platform(api_server, "nginx-ingress")
    platform.deploy_canary(V2)
    platform._record_stable(api_server.get("Deployment", NAMESPACE, SERVICE))
    platform.record(restored, 0)

    platform.deploy_canary(Artifact("v3", OTHER_DIGEST))

    canary = api_server.get("Deployment", NAMESPACE, CANARY)
    assert canary["spec"]["selector"]["matchLabels"]["version"] == "v3"
    assert recorded(canary) is None


def ready(pod: dict) -> bool:
    statuses = pod["status"].get("containerStatuses") or []
    return bool(statuses) and all(c["ready"] for c in statuses)


class Killed(BaseException):
    """SIGKILL, node loss: the process is gone, no handler of its runs."""


def promote_killed_in_the_drain(server, kind: str) -> None:
    """A promotion that rolled stable out and moved its selection to v2, then lost its pod in
    the drain: nothing undone, the record left on the canary."""
    platform = make_platform(server, kind)
    platform.deploy_canary(V2)
    platform.router.set_weight(50)

    def killed(_: float) -> None:
        raise Killed

    platform.drain_s, platform._sleep = 1, killed
    platform._abort_promotion = lambda *_, **__: None  # type: ignore[method-assign]
    with pytest.raises(Killed):
        platform.promote(V2)


def rollback_stopped_mid_restore(server, kind: str) -> BaseException | None:
    """The exit handler's ``rollback`` restores stable's template, and is stopped (a real
    SIGTERM, as ``argo stop`` sends, turned into an interrupt as the CLI does) while it waits
    for the restored pods, which never get ready: it ends within the pod's grace, stable left
    mid-rollout and the record kept. Returns what the rollback raised."""
    from canaryflow.cli import _sigterm_as_interrupt
    from canaryflow.kubernetes.grace import EXIT_MARGIN_S

    server.set_rollout(NAMESPACE, SERVICE, "unready")
    client = server.api_client()
    router = make_router(kind, client, NAMESPACE, SERVICE, retry=FAST_RETRY)
    timeouts = Timeouts(
        verify_weight_s=1, canary_scale_s=1, poll_s=0.02, termination_grace_s=EXIT_MARGIN_S + 0.5
    )
    platform = KubernetesPlatform(
        client, NAMESPACE, SERVICE, router, canary_replicas=2, timeouts=timeouts, retry=FAST_RETRY
    )
    signalled: list[int] = []

    def argo_stop(_, request) -> None:
        # The first list of pods is the rollback's wait for stable's restored rollout.
        listing = request.kind == "Pod" and request.method == "GET" and not request.name
        if listing and not signalled:
            signalled.append(len(server.requests))
            os.kill(os.getpid(), signal.SIGTERM)

    server.observe = argo_stop
    raised = None
    try:
        with _sigterm_as_interrupt():
            platform.rollback()
            time.sleep(30)  # the signal lands inside the wait; never reached when it did
    except BaseException as error:  # what the rollback let through is the point
        raised = error
    finally:
        server.observe = None
    assert signalled, "the rollback never waited for stable"
    return raised


@pytest.mark.parametrize("kind", ["istio", "nginx-ingress"])
def test_the_next_release_keeps_stables_record_after_a_rollback_stopped_mid_restore(
    api_server, kind
):
    """The repro: a promote pod killed in the drain, then the exit handler's rollback stopped
    by SIGTERM while stable's restored pods come up. The next push's ``deploy-canary`` used to
    delete that canary, its record with it (the phase it found was Progressing, which taking
    traffic off writes, not Promoting; the stopped rollback now leaves RollingBack): stable
    stayed half-restored and the Service on the promoted version's pods, with nothing left to
    put it back from. Now it is refused with nothing changed, and ``rollback`` then restores
    stable as it was before the promotion."""
    seed(api_server, deadline_s=600)
    before = stable_view(api_server)
    promote_killed_in_the_drain(api_server, kind)
    assert stable_view(api_server)["service"] == {"app": SERVICE, "version": "v2"}

    raised = rollback_stopped_mid_restore(api_server, kind)

    assert isinstance(raised, KeyboardInterrupt)  # exit 130
    canary = api_server.get("Deployment", NAMESPACE, CANARY)
    record = recorded(canary)
    assert record is not None and record.services[SERVICE] == before["service"]
    stable_pods = [
        p
        for p in api_server.objects("Pod", NAMESPACE)
        if p["metadata"]["labels"].get("canaryflow.dev/track") != "canary"
    ]
    serving = {p["spec"]["containers"][0]["image"] for p in stable_pods if ready(p)}
    assert serving == {CANARY_IMAGE}  # mid-restore: stable's pods still the promoted ones
    state = make_platform(api_server, kind).current_state()
    assert (state.phase, state.weight) == (Phase.ROLLING_BACK, 0)  # main: Progressing
    api_server.requests.clear()

    with pytest.raises(PlatformError) as refused:
        make_platform(api_server, kind).deploy_canary(Artifact("v3", OTHER_DIGEST))

    assert str(refused.value).startswith("artifact.version: a promotion of v2 did not finish")
    assert "stable's record, RollingBack at 0%" in str(refused.value)
    assert "run `canaryflow rollback`" in str(refused.value)
    assert api_server.writes() == []
    assert recorded(api_server.get("Deployment", NAMESPACE, CANARY)) == record

    api_server.set_rollout(NAMESPACE, SERVICE, "available")
    make_platform(api_server, kind).rollback()
    assert stable_view(api_server) == before
    assert api_server.get("Deployment", NAMESPACE, CANARY) is None
    make_platform(api_server, kind).deploy_canary(Artifact("v3", OTHER_DIGEST))
    assert recorded(api_server.get("Deployment", NAMESPACE, CANARY)) is None


def test_a_rollback_that_failed_to_restore_stable_says_rolling_back_and_keeps_the_record(
    api_server,
):
    """Not a signal: stable's restored pods never get ready and its progress deadline ends the
    rollback (exit 1). The canary says RollingBack at 0 (main: Progressing) and the next push's
    deploy-canary leaves it, and its record, alone."""
    seed(api_server, deadline_s=2)
    promote_killed_in_the_drain(api_server, "nginx-ingress")
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")
    with pytest.raises(PlatformError, match="did not roll back to the recorded template"):
        make_platform(api_server, "nginx-ingress").rollback()
    platform = make_platform(api_server, "nginx-ingress")
    state = platform.current_state()
    assert (state.phase, state.weight) == (Phase.ROLLING_BACK, 0)
    record = recorded(api_server.get("Deployment", NAMESPACE, CANARY))
    api_server.requests.clear()

    with pytest.raises(PlatformError, match=r"^artifact\.version: a promotion of v2 did not"):
        platform.deploy_canary(Artifact("v3", OTHER_DIGEST))

    assert api_server.writes() == []
    assert record is not None
    assert recorded(api_server.get("Deployment", NAMESPACE, CANARY)) == record


def test_deploy_canary_over_an_unfinished_record_exits_1_naming_the_field_and_the_fix(
    tmp_path, api_server, capsys
):
    """The verb as a workflow pod runs it: exit 1 (so Argo's retry of the step, which skips
    exit 2, goes through once the record was used), ``field.path: what and how``."""
    plan, kubeconfig, before, _ = v2_deployed_by_the_verb(tmp_path, api_server, "nginx-ingress")
    make_platform(api_server, "nginx-ingress")._record_stable(
        api_server.get("Deployment", NAMESPACE, SERVICE)
    )
    capsys.readouterr()
    api_server.requests.clear()

    assert verb("deploy-canary", plan, kubeconfig, "--image", OTHER_DIGEST, "--version", "v3") == 1

    err = capsys.readouterr().err
    assert err.startswith("error: artifact.version: a promotion of v2 did not finish")
    assert "run `canaryflow rollback`" in err
    v3 = ["--image", OTHER_DIGEST, "--version", "v3", "--json"]
    assert verb("deploy-canary", plan, kubeconfig, *v3) == 1
    [error] = json.loads(capsys.readouterr().out)["errors"]
    assert error["path"] == "artifact.version"  # the field, for a CI annotation
    assert error["message"].startswith("a promotion of v2 did not finish")
    assert [w for w in api_server.writes() if w.kind != "Event"] == []
    # What that push's own exit handler then runs (its image was pushed): the old canary's
    # record is used and the canary goes; the next deploy-canary goes through.
    assert verb("rollback", plan, kubeconfig, "--reason", "deploy-canary refused") == 0
    assert "promotion of v2 failed, stable restored" in capsys.readouterr().out
    assert stable_view(api_server) == before
    assert verb("deploy-canary", plan, kubeconfig, "--image", OTHER_DIGEST, "--version", "v3") == 0


# -- only the canary's digest -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "version", "field"),
    [(OTHER_DIGEST, "v2", "artifact.image"), (CANARY_IMAGE, "v3", "artifact.version")],
)
def test_promote_refuses_what_is_not_the_running_canary_and_changes_nothing(
    tmp_path, api_server, capsys, image, version, field
):
    seed(api_server)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_server.url)
    plan = plan_file(tmp_path, "istio")
    assert verb("deploy-canary", plan, kubeconfig, "--image", CANARY_IMAGE, "--version", "v2") == 0
    assert verb("set-weight", plan, kubeconfig, "--weight", "20") == 0
    capsys.readouterr()
    api_server.requests.clear()

    assert verb("promote", plan, kubeconfig, "--image", image, "--version", version) == 2

    assert f"{field}: " in capsys.readouterr().err
    assert api_server.writes() == []


def test_promote_without_a_canary_refuses_unless_stable_already_runs_the_digest(api_server):
    seed(api_server)
    platform = make_platform(api_server, "nginx-ingress")

    with pytest.raises(InputError, match=r"^artifact\.image: no canary runs"):
        platform.promote(V2)
    assert api_server.writes() == []


def test_a_canary_kept_at_zero_after_a_failed_promotion_drops_the_record(api_server):
    """``rollback.canary: scale-to-zero`` keeps the canary for a post-mortem: without the
    record (JSON merge patch: null deletes the annotation), so a later rollback leaves stable
    alone and the next release replaces it."""
    seed(api_server)
    client = api_server.api_client()
    router = make_router("nginx-ingress", client, NAMESPACE, SERVICE, retry=FAST_RETRY)
    timeouts = Timeouts(verify_weight_s=1, canary_scale_s=1, poll_s=0.02)
    platform = KubernetesPlatform(
        client,
        NAMESPACE,
        SERVICE,
        router,
        canary_replicas=2,
        timeouts=timeouts,
        retry=FAST_RETRY,
        canary_after_rollback="scale-to-zero",
    )
    platform.deploy_canary(V2)
    platform.router.set_weight(50)
    before = stable_view(api_server)
    api_server.set_rollout(NAMESPACE, SERVICE, "unready")
    with pytest.raises(PlatformError):
        platform.promote(V2)

    assert platform.rollback().startswith("promotion of v2 failed, stable restored")

    canary = api_server.get("Deployment", NAMESPACE, CANARY)
    assert canary["spec"]["replicas"] == 0
    assert "canaryflow.dev/stable-before-promotion" not in canary["metadata"]["annotations"]
    assert platform.current_state().phase == Phase.ROLLED_BACK
    assert stable_view(api_server) == before
    assert platform.rollback().startswith("v2 removed from traffic")
    api_server.set_rollout(NAMESPACE, SERVICE, "available")
    platform.deploy_canary(Artifact("v3", OTHER_DIGEST))
