"""The Kubernetes platform: a canary Deployment beside the stable one, traffic via a router.

The stable Deployment and Service are named after the service and only read, except at promotion
where the stable container image becomes the canary's digest. Routers that split by Service send
stable's share to ``<service>-stable``, a Service canaryflow creates for the release
(``owned_services``), so the user's Service may select ``app`` alone. The release state lives in
annotations on the canary Deployment and every decision is a core/v1 Event, so each workflow step
(its own pod) can pick up where the last one stopped.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import config
from kubernetes.client import ApiClient, Configuration

from canaryflow.analysis.fleet_sample import rank
from canaryflow.analysis.source import flat_lines
from canaryflow.errors import CanaryflowError, FieldError, InputError, PlatformError
from canaryflow.input_file import read_input_file
from canaryflow.kubernetes import baseline as baselines
from canaryflow.kubernetes import canary_objects as objects
from canaryflow.kubernetes import owned_services as owned
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.canary_objects import HealthCheck
from canaryflow.kubernetes.capacity import canary_replicas_for, stable_replicas
from canaryflow.kubernetes.contract import resolve
from canaryflow.kubernetes.events import decision_event
from canaryflow.kubernetes.gitops.promotion import GitOpsPromotion
from canaryflow.kubernetes.grace import (
    EXIT_MARGIN_S,
    TERMINATION_GRACE_S,
)
from canaryflow.kubernetes.health import (
    assess,
    pod_ready,
    progress_deadline_s,
    rollout_progress,
    terminating,
)
from canaryflow.kubernetes.resources import DEPLOYMENT, HPA, POD, SERVICE
from canaryflow.kubernetes.retry import DEFAULT_RETRY, RetryPolicy
from canaryflow.kubernetes.routers import KubernetesRouter, make_router
from canaryflow.kubernetes.routers.backends import Backends
from canaryflow.kubernetes.stable_record import (
    ANNOTATION,
    StableRecord,
    record_of,
    recorded,
    restored_deployment,
    restored_service,
)
from canaryflow.plan.routers import HASH_SUBSET, OWNED_SERVICE, THREE_WAY
from canaryflow.platform.protocol import Artifact, HeaderRoute, HealthReport
from canaryflow.platform.state import Phase, ReleaseState
from canaryflow.platform.weights import POLL_S, VERIFY_WEIGHT_TIMEOUT_S
from canaryflow.progress import waiting

log = logging.getLogger(__name__)
Obj = dict[str, Any]


@dataclass(frozen=True)
class Timeouts:
    stable_rollout_grace_s: float = 60.0
    """How long past the stable Deployment's own ``progressDeadlineSeconds`` without any
    progress a promotion still waits for the controller to report it (a controller that is
    down reports nothing); the Deployment's deadline itself is what ends a stuck rollout."""
    verify_weight_s: float = VERIFY_WEIGHT_TIMEOUT_S
    canary_scale_s: float = 300.0
    poll_s: float = 2.0
    termination_grace_s: float = TERMINATION_GRACE_S
    """The task pod's ``terminationGracePeriodSeconds``: what an interrupted promotion has,
    from the signal, to restore stable before it is killed (less ``EXIT_MARGIN_S``)."""


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_HEALTH_CHECK = HealthCheck()

RESTORED = (Phase.PROMOTION_FAILED, Phase.ROLLED_BACK)
"""The phases written only once stable is back as recorded (``_abort_promotion`` with nothing
left undone, ``rollback`` after ``_reselect_stable``): a canary in one of them may go with its
record. Any other phase beside a record (``Promoting``; ``Progressing`` at 0, which taking
traffic off writes; ``RollingBack``) is a promotion or rollback stopped before that."""


STABLE_LOG_PODS = 5
"""Stable pods whose log a comparing logs gate reads each round: a sample, not the fleet."""


class KubernetesPlatform:
    """``canaryflow.platform.protocol.Platform`` on a Kubernetes namespace."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        service: str,
        router: KubernetesRouter,
        canary_replicas: int = 1,
        health: HealthCheck = DEFAULT_HEALTH_CHECK,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        container: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        canary_after_rollback: str = "delete",
        drain_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        deployment: str | None = None,
        service_object: str | None = None,
        selector: dict[str, str] | None = None,
        app_label: str | None = None,
        gitops: GitOpsPromotion | None = None,
    ):
        self.api = ClusterApi(api_client, namespace, retry)
        self.namespace = namespace
        self.service = service
        self.deployment = deployment or service
        """The stable Deployment (the plan's ``service.deployment``, default the service)."""
        self.service_object = service_object or service
        """The Service in front of the stable pods (``service.service``)."""
        self.selector = selector
        """The service's pods' labels (``service.selector``); None: found from the Deployment
        at ``deploy_canary`` (``canaryflow.kubernetes.contract``)."""
        self.app_label = app_label or service
        self.canary = objects.canary_name(service)
        self.baseline = baselines.baseline_name(service)
        self.canary_replicas = canary_replicas
        self.health = health
        self.timeouts = timeouts
        self.container = container
        self.canary_after_rollback = canary_after_rollback
        """``delete`` or ``scale-to-zero`` (the plan's ``rollback.canary``)."""
        self.drain_s = drain_s
        """Seconds between no traffic verified on the router object and the canary's removal;
        ``platform_for`` passes the plan's ``router.drain`` (the one default, 10 s)."""
        self._sleep = sleep
        self.gitops = gitops
        """GitOps mode (the plan's ``promotion.gitops``): promote writes to Git and waits."""
        self._router = router
        self._recorded_router = RecordedRouter(router, self)

    @classmethod
    def connect(
        cls,
        namespace: str,
        service: str,
        router_kind: str,
        router_settings: dict[str, Any] | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        **settings: Any,
    ) -> KubernetesPlatform:
        """In a pod, the service account; elsewhere the kubeconfig (``context`` or current)."""
        client = api_client_from_environment(kubeconfig, context)
        router = make_router(router_kind, client, namespace, service, **(router_settings or {}))
        return cls(client, namespace, service, router, **settings)

    @property
    def router(self) -> RecordedRouter:
        return self._recorded_router

    # -- Platform -----------------------------------------------------------------------------

    def deploy_canary(self, artifact: Artifact) -> None:
        objects.check_artifact(artifact.image, artifact.version)
        stable, stable_service = self._stable_objects()
        self._check_no_unfinished_record()  # before stable is judged: it may be mid-restore
        identity = self._identity(stable, stable_service)
        canary = objects.canary_deployment(
            stable,
            self.service,
            artifact.image or "",
            artifact.version,
            self.canary_replicas,
            self.health,
            self.container,
            identity,
        )
        canary_service = objects.canary_service(stable_service, self.service, identity)
        stable_hash = self._stable_hash(stable)
        backends = Backends(
            stable_service=self.owned_stable or self.service_object,
            canary_service=self.canary,
            port=stable_service["spec"]["ports"][0]["port"],
            stable_version=objects.stable_version(stable),
            canary_version=artifact.version,
            stable_hash=stable_hash,
        )
        self._check_split(stable_service, canary)
        self._router.preflight(backends)
        existing = self._replace_stale_canary(artifact.version)
        if existing is not None:  # a re-run keeps the capacity its weight was given
            replicas = existing["spec"].get("replicas", 1)
            canary["spec"]["replicas"] = max(canary["spec"]["replicas"], replicas)

        stored = self.api.apply(canary)
        self.api.apply(canary_service)
        if self.owned_stable and stable_hash:
            self.api.apply(
                owned.stable_service(stable_service, self.service, identity, stable_hash)
            )
        self._router.prepare(backends)
        if self.current_state() is None:
            self.record(Phase.DEPLOYED, 0, artifact.version)
        self.event(stored, "CanaryDeployed", f"canary {artifact.version} ({artifact.image})")

    # -- BaselinePlatform ----------------------------------------------------------------------

    def baseline_problem(self) -> str | None:
        """A fresh baseline needs a router that splits three ways (Gateway API, Istio, SMI)."""
        if THREE_WAY in self._router.capabilities:
            return None
        return f"the {type(self._router).__name__} splits two ways (stable and canary)"

    def deploy_baseline(self) -> None:
        """``<service>-baseline``: stable's template and image, the canary's replica count, its
        own Service (``canaryflow.kubernetes.baseline``), available before it gets a share.
        Applied before anything can fail, so rollback and promotion always find it to remove.
        """
        stable, stable_service = self._stable_objects()
        identity = self._identity(stable, stable_service)
        canary = self.api.get(DEPLOYMENT, self.canary)
        replicas = (canary or {}).get("spec", {}).get("replicas", self.canary_replicas)
        deployment = baselines.baseline_deployment(
            stable, self.service, max(1, replicas), self.health, self.container, identity
        )
        stored = self.api.apply(deployment)
        self.api.apply(baselines.baseline_service(stable_service, self.service, identity))
        self.event(stored, "BaselineDeployed", f"baseline of stable, {max(1, replicas)} pods")
        self._wait_baseline_available()

    def baseline_running(self) -> bool:
        """True while a baseline Deployment exists (a workflow step in its own pod asks)."""
        return self.api.get(DEPLOYMENT, self.baseline) is not None

    def _baseline_pods(self) -> list[Obj]:
        baseline = self.api.get(DEPLOYMENT, self.baseline)
        selector = (baseline or {}).get("spec", {}).get("selector", {}).get("matchLabels")
        return self.api.list(POD, selector) if selector else []

    def _wait_baseline_available(self) -> None:
        """Until every baseline pod passes its readiness probe; a crash-looping baseline (or
        none at all) raises, and the release rolls back (taking the baseline with it)."""

        def pending() -> str | None:
            deployment = self.api.get(DEPLOYMENT, self.baseline)
            if deployment is None:
                return "baseline deployment gone"
            report = assess(deployment, self._baseline_pods())
            if report is not None and not report.healthy:
                raise PlatformError(f"baseline {self._name(self.baseline)}: {report.detail}")
            return None if report is not None else rollout_progress(deployment).describe()

        what = self._name(self.baseline)
        last = _poll(pending, self.timeouts.canary_scale_s, self.timeouts.poll_s, what)
        if last is not None:
            raise PlatformError(
                f"baseline {self._name(self.baseline)} not available within "
                f"{self.timeouts.canary_scale_s:g}s ({last})"
            )

    def _remove_baseline(self) -> None:
        self.api.delete(SERVICE, self.baseline)
        self.api.delete(DEPLOYMENT, self.baseline)

    def wait_healthy(self, timeout_s: float) -> HealthReport:
        """Until the canary Deployment is available: its pods pass the readiness probe (the
        plan's health check). Crash-looping or unpullable pods end the wait at once."""
        deadline = time.monotonic() + timeout_s
        while True:
            deployment = self.api.get(DEPLOYMENT, self.canary)
            if deployment is None:
                return HealthReport(False, f"deployment {self._name(self.canary)} not found")
            report = assess(deployment, self._canary_pods())
            if report is None and time.monotonic() >= deadline:
                progress = rollout_progress(deployment).describe()
                report = HealthReport(
                    False, f"canary not available after {timeout_s:g}s: {progress}"
                )
            if report is not None:
                state = self.current_state()
                phase = Phase.HEALTHY if report.healthy else Phase.UNHEALTHY
                self.record(phase, state.weight if state else 0)
                reason = "CanaryHealthy" if report.healthy else "CanaryUnhealthy"
                self.event(deployment, reason, report.detail, warning=not report.healthy)
                return report
            waiting(self._name(self.canary), rollout_progress(deployment).describe(), timeout_s)
            time.sleep(min(self.timeouts.poll_s, max(0.0, deadline - time.monotonic())))

    def promote(self, artifact: Artifact) -> None:
        """Stable runs the canary's digest, its pods labelled with the released version: a
        transaction.

        Before the first change, what stable was (template, selector, labels, the selectors of
        the Services that pick stable pods, the stable version) is recorded on the canary
        Deployment (``stable_record``). The rollout is judged by the Deployment's own progress
        deadline (``ProgressDeadlineExceeded``), not a fixed time. Any failure until the canary
        is deleted (the commit) puts stable back exactly as recorded and the canary at weight 0,
        and raises "promotion failed, stable restored"; ``rollback`` does the same from the
        record when the promote pod itself died.

        Relabelling moves stable pods out of whatever selects them by version (a stable Service
        selector, an SMI backend, Istio's stable subset). So that no request meets an empty
        selection, stable is first selected by every pod of the service (the canary runs the
        very same image), rolls, and is then selected by the new version. A version pinned by
        the Deployment's selector cannot change: it is kept and a Warning Event says so. The
        rollout also changes stable's ReplicaSet, which ``<service>-stable`` and Istio's stable
        subset select by ``pod-template-hash``: they are widened the same way first
        (``widen_stable_service``); after the rollout the weight goes to 0, the user's route
        comes back, and only then do the canary and ``<service>-stable`` go. In GitOps mode the
        digest goes to Git (after the same widening) and stable is only watched
        (``gitops/promotion.py``).
        """
        objects.check_artifact(artifact.image, artifact.version)
        canary = self.api.get(DEPLOYMENT, self.canary)
        if self.gitops is not None:
            if canary is not None:  # only the canary's digest goes to Git either
                objects.check_promotable(canary, artifact, self.service, self.container, self._name)
            return self.gitops.promote(self, artifact)
        stable, _ = self._stable_objects()
        if canary is None and self._runs(stable, artifact.image):
            return  # promoted already: a re-run after the commit
        objects.check_promotable(canary, artifact, self.service, self.container, self._name)
        state = self.current_state()
        if state is not None and state.phase == Phase.PROMOTION_FAILED:
            # A retried promote pod: stable was put back once; it is not rolled again.
            raise PlatformError(
                f"the promotion of {state.version} already failed and stable was restored; "
                "it is not tried again: roll back, and release again once the cause is fixed"
            )
        record = recorded(canary) or self._record_stable(stable)
        try:
            self._promote(artifact, record)
        except Exception as error:
            self._abort_promotion(record, artifact.version, error)
            raise PlatformError(f"promotion failed, stable restored: {error}") from error
        except BaseException as error:  # a signal: put stable back before the process goes
            # The handler raised at once (``cli._sigterm_as_interrupt``): the grace runs from now.
            until = time.monotonic() + self.timeouts.termination_grace_s - EXIT_MARGIN_S
            self._abort_promotion(record, artifact.version, error, until)
            raise

    def _record_stable(self, stable: Obj) -> StableRecord:
        """Write what stable is now onto the canary Deployment, with the Promoting phase."""
        services = [s for n in self._stable_services() if (s := self.api.get(SERVICE, n))]
        record = record_of(
            stable, services, objects.stable_version(stable), self._stable_hash(stable)
        )
        state = self.current_state()
        annotations = record.annotation()
        if state is not None:
            annotations |= ReleaseState.now(
                Phase.PROMOTING, state.weight, state.version
            ).annotations()
        patched = self.api.merge_patch(
            DEPLOYMENT, self.canary, {"metadata": {"annotations": annotations}}
        )
        if recorded(patched) != record:
            raise PlatformError(
                f"deployment {self._name(self.canary)}: the record of stable was not stored; "
                "nothing was changed, promote again"
            )
        return record

    def _promote(self, artifact: Artifact, record: StableRecord) -> None:
        image = artifact.image or ""
        stable, _ = self._stable_objects()
        previous = record.version
        relabel = previous not in (None, artifact.version) and not objects.version_pinned(stable)
        by_version = [
            name
            for name, selector in record.services.items()
            if objects.VERSION_LABEL in selector and len(selector) > 1
        ]
        if relabel:
            self._select_stable(None, artifact.version, by_version)
        self.widen_stable_service()

        def edit(stable: Obj) -> Obj:
            return objects.promoted(
                stable, self.service, image, artifact.version, self.container, self.health.port
            )

        stable = self.api.update(DEPLOYMENT, self.deployment, edit)
        self._wait_stable_rollout()
        if relabel:
            self._select_stable(artifact.version, artifact.version, by_version)
        self._check_stable_served(list(record.services))
        self.make_traffic_safe()
        self._drain()
        self._router.remove_managed_routes()
        self._report_reverted()
        self._remove_canary()
        self.event(stable, "Promoted", f"stable now runs {artifact.version} ({image})")
        if previous not in (None, artifact.version) and not relabel:
            self.event(
                stable,
                "VersionLabelKept",
                f"stable pods keep {objects.VERSION_LABEL}={previous}: spec.selector of "
                f"deployment {self._name(self.deployment)} pins it and is immutable; drop "
                f"{objects.VERSION_LABEL} from the selector to have promotions relabel them",
                warning=True,
            )

    def _abort_promotion(
        self,
        record: StableRecord,
        version: str,
        error: BaseException,
        until: float | None = None,
    ) -> None:
        """Stable as recorded and no request to the canary; every step is tried, and a step
        that fails is reported with the others' outcome. The order keeps every share on ready
        pods: stable's template goes back first (its old ReplicaSet scales up again), the
        canary's weight goes to 0 while stable's share still reaches every pod of the service,
        and stable's share is narrowed to the recorded selection only once that ReplicaSet is
        available again (``_reselect_stable``).

        After a signal the pod is killed at the end of its termination grace, which may come
        long before the Deployment's progress deadline: the canary's weight goes to 0 first
        (stable's share is still on every ready pod of the service, as the promotion widened
        it), then stable's template, and nothing waits past ``until`` (a
        ``time.monotonic()``). What is not done by then is left safe and reported; the record
        stays on the canary Deployment, so the exit handler's ``rollback`` restores the rest."""
        problems = []

        def safe() -> None:
            left = None if until is None else max(0.0, until - time.monotonic())
            self.make_traffic_safe(
                None if left is None else min(self.timeouts.verify_weight_s, left)
            )

        roll_back = (lambda: self._roll_stable_back(record), safe)
        steps = (
            *(roll_back if until is None else reversed(roll_back)),  # a signal: traffic first
            lambda: self._reselect_stable(record, version, until),
        )
        for step in steps:
            try:
                step()
            except (CanaryflowError, OSError) as problem:
                problems.append(str(problem))
        if problems:
            cause = "interrupted" if isinstance(error, KeyboardInterrupt) else error
            raise PlatformError(
                f"promotion failed ({cause}) and stable could not be fully restored: "
                + "; ".join(problems)
                + ": run `canaryflow rollback` (it restores stable from the record on the "
                "canary Deployment)"
            ) from error
        self.record(Phase.PROMOTION_FAILED, 0)
        stable = self.api.get(DEPLOYMENT, self.deployment)
        if stable is not None:
            cause = "interrupted" if isinstance(error, KeyboardInterrupt) else error
            message = f"promotion failed, stable restored: {cause}"
            self.event(stable, "PromotionFailed", message, warning=True)

    def _roll_stable_back(self, record: StableRecord) -> None:
        """Stable's template and labels as recorded: its old ReplicaSet scales up again. What
        selects stable's pods is left selecting every pod of the service (as the promotion
        widened it) until ``_reselect_stable``: the recorded ReplicaSet may have no ready pod
        yet (the promoted rollout had finished, or scaled it down part way)."""
        self.widen_stable_service()
        self.api.update(DEPLOYMENT, self.deployment, lambda d: restored_deployment(d, record))

    def _reselect_stable(
        self, record: StableRecord, canary_version: str, until: float | None = None
    ) -> None:
        """Once stable rolled back to the recorded template and that rollout is complete as
        ``kubectl rollout status`` judges it (every replica updated and *available*, no old
        pod left; ``health.RolloutProgress.done``): the Service selectors, ``<service>-stable``
        and the Istio stable subset as recorded. Not in time (the Deployment's own progress
        deadline): a ``PlatformError``, with stable's share left on every ready pod of the
        service rather than on a selection with none; the same at ``until`` (an interrupted
        promotion's termination grace, ``_abort_promotion``)."""
        self._wait_stable_rollout("roll back to the recorded template", until)
        stable = self.api.get(DEPLOYMENT, self.deployment)
        if stable is None or stable["spec"]["template"] != record.template:
            raise PlatformError(
                f"deployment {self._name(self.deployment)} no longer has the recorded "
                "template (changed again during the restore): stable's share is left on every "
                "pod of the service; compare it with `kubectl rollout history` and roll back again"
            )
        rolled_back = (
            self._rolled_back_hash(stable, record)
            if self._selection in (OWNED_SERVICE, HASH_SUBSET)
            else None
        )
        for name, selector in record.services.items():
            if name == self.owned_stable and rolled_back is not None:
                selector = {**selector, owned.POD_TEMPLATE_HASH: rolled_back}
            if self.api.get(SERVICE, name) is not None:
                self.api.update(
                    SERVICE, name, lambda s, selector=selector: restored_service(s, selector)
                )
        if self._selection == HASH_SUBSET and rolled_back is not None:
            self._router.select_stable_hash(rolled_back)  # type: ignore[attr-defined]
        else:
            self._router.select_stable(record.version, canary_version)

    def _rolled_back_hash(self, stable: Obj, record: StableRecord) -> str:
        """The ``pod-template-hash`` stable serves from after rolling back: the recorded one
        (the controller takes back the ReplicaSet whose template equals the restored one), or
        the one ReplicaSet with ready pods if that was deleted meanwhile (a new one, same
        template). Pods being deleted (``deletionTimestamp``) are leaving, never chosen."""
        pods = self.api.list(POD, stable["spec"]["selector"].get("matchLabels") or {})
        serving = [
            value
            for value, of_hash in owned.pods_of_deployment(stable, pods).items()
            if any(pod_ready(p) and not p["metadata"].get("deletionTimestamp") for p in of_hash)
        ]
        if record.pod_template_hash in serving:
            return record.pod_template_hash
        if len(serving) == 1:
            return serving[0]
        raise PlatformError(
            f"deployment {self._name(self.deployment)} rolled back, but no one ReplicaSet "
            f"serves it ({owned.POD_TEMPLATE_HASH} with ready pods: {sorted(serving) or 'none'}):"
            " stable's share is left on every pod of the service; roll back again"
        )

    def _stable_services(self) -> list[str]:
        """The Services that carry stable's share: the stable Service and the router's."""
        owned_stable = [self.owned_stable] if self.owned_stable else []
        return list(
            dict.fromkeys([self.service_object, *owned_stable, *self._router.stable_backends()])
        )

    def _check_stable_served(self, services: list[str]) -> None:
        """Each Service stable's share goes to selects at least one ready pod."""
        for name in services:
            service = self.api.get(SERVICE, name)
            selector = (service or {}).get("spec", {}).get("selector") or {}
            if not selector:
                continue  # no selector (endpoints of its own): not canaryflow's to judge
            if not any(pod_ready(p) for p in self.api.list(POD, selector)):
                raise PlatformError(
                    f"service {self._name(name)} selects no ready pod ({selector}) after the "
                    "promotion, so its traffic would fail (a selector of the version label "
                    "alone cannot be moved: add the app label to it)"
                )

    def _runs(self, stable: Obj, image: str | None) -> bool:
        container = objects.main_container(
            stable["spec"]["template"]["spec"], self.service, self.container
        )
        return container.get("image") == image

    def _select_stable(self, version: str | None, canary_version: str, services: list[str]) -> None:
        """Point what selects stable pods by version at ``version`` (None: every pod of the
        service): the ``services`` whose selectors name the version, and the router's side."""

        def edit(service: Obj) -> Obj:
            selector = service["spec"]["selector"]
            selector.pop(objects.VERSION_LABEL, None)
            if version is not None:
                selector[objects.VERSION_LABEL] = version
            return service

        for name in services:
            self.api.update(SERVICE, name, edit)
        self._router.select_stable(version, canary_version)

    def rollback(self) -> str:
        """Weight 0 and no header route (verified), the drain, the canary scaled to zero, the
        managed routes gone, then the canary deleted, or kept at zero (``rollback.canary:
        scale-to-zero``) for ``kubectl describe`` and its Events, as Flagger does; the next
        release replaces it. After the analysis fail-safe (traffic already safe) it does the
        same: every step converges, so running it twice is running it once. A promotion that
        did not complete (its record is on the canary) is undone first: stable as recorded.
        A signal (SIGTERM) before the canary's removal is bounded by the task pod's
        termination grace, as in a promotion (``_interrupted_rollback``).
        Returns what it did, for the record and the notification."""
        state = self.current_state()
        record = recorded(self.api.get(DEPLOYMENT, self.canary))
        version = state.version if state else "canary"
        self.record(Phase.ROLLING_BACK, state.weight if state else 0)
        try:
            if record is not None:
                self._roll_stable_back(record)
            self.make_traffic_safe()
            if record is not None:
                self._reselect_stable(record, version)
        except Exception:
            self._left_rolling_back()
            raise
        except BaseException as error:  # a signal: traffic safe first, within the pod's grace
            # The handler raised at once (``cli._sigterm_as_interrupt``): the grace runs from now.
            until = time.monotonic() + self.timeouts.termination_grace_s - EXIT_MARGIN_S
            self._interrupted_rollback(record, version, error, until)
            raise
        self._drain()
        # The canary goes before the user's own route comes back: with Istio that route names
        # the host without a subset, and the host's Service selects the canary pods as well.
        self.api.merge_patch(DEPLOYMENT, self.canary, {"spec": {"replicas": 0}})
        self._router.remove_managed_routes()
        reverted = self._report_reverted()
        if self.canary_after_rollback == "scale-to-zero":
            self._remove_owned_stable()
            self._remove_baseline()  # nothing to look into: it ran stable's version
            self.record(Phase.ROLLED_BACK, 0)
            if record is not None:
                patch = {"metadata": {"annotations": {ANNOTATION: None}}}
                self.api.merge_patch(DEPLOYMENT, self.canary, patch)
        else:
            self._remove_canary()
        outcome = (
            f"promotion of {version} failed, stable restored"
            if record is not None
            else f"{version} removed from traffic, all traffic on stable"
        )
        stable = self.api.get(DEPLOYMENT, self.deployment)
        if stable is not None:
            kept = " (scaled to zero)" if self.canary_after_rollback == "scale-to-zero" else ""
            self.event(stable, "RolledBack", f"{outcome}{kept}", True)
        return "; ".join([outcome, *(f"reverted: {line}" for line in reverted)])

    def _interrupted_rollback(
        self, record: StableRecord | None, version: str, error: BaseException, until: float
    ) -> None:
        """A rollback stopped by a signal (``argo stop``, the deadline, the pod's deletion), as
        an interrupted promotion (``_abort_promotion``): the canary's weight goes to 0 and
        stable's share to 100 first (verified), then stable's recorded template, and the wait
        for its restored rollout goes on only until ``until`` (a ``time.monotonic()``: the
        task pod's termination grace less ``EXIT_MARGIN_S``), never to the Deployment's
        progress deadline. Nothing is drained or removed: the canary stays at weight 0 with
        the record on it, so the next ``canaryflow rollback`` finishes the rest. A step that
        cannot be done in time is reported with the others' outcome (a warning and a Warning
        Event ``RollbackInterrupted``), and the interrupt goes on: the verb exits as
        interrupted (130) and is never retried in the stopped pod (``commands.attempts``
        retries a ``PlatformError`` only)."""

        def safe() -> None:
            left = max(0.0, until - time.monotonic())
            self.make_traffic_safe(min(self.timeouts.verify_weight_s, left))

        steps: list[Callable[[], None]] = [safe]
        if record is not None:
            steps += [
                lambda: self._roll_stable_back(record),
                lambda: self._reselect_stable(record, version, until),
            ]
        problems = []
        for step in steps:
            try:
                step()
            except (CanaryflowError, OSError) as problem:
                problems.append(str(problem))
        self._left_rolling_back()
        done = "the canary at weight 0 and stable's share on ready pods"
        if problems:
            done = "not all of it done: " + "; ".join(problems)
        message = (
            f"rollback interrupted ({error or type(error).__name__}); within the task pod's "
            f"termination grace ({self.timeouts.termination_grace_s:g}s, {EXIT_MARGIN_S:g}s of "
            f"it kept to exit): {done}; the canary is not removed yet: run `canaryflow "
            "rollback` again"
        )
        log.warning("%s", message)  # the interrupt itself goes on (exit 130): never retried
        stable = self.api.get(DEPLOYMENT, self.deployment)
        if stable is not None:
            self.event(stable, "RollbackInterrupted", message, warning=True)

    def _left_rolling_back(self) -> None:
        """A rollback that stopped short says so on the canary: ``RollingBack`` at the weight it
        left (taking traffic off goes through ``set_weight``, which writes ``Progressing``: a
        release under way, which it is not). Best effort: the error that stopped it is the
        one reported."""
        try:
            state = self.current_state()
            if state is not None and state.phase != Phase.ROLLING_BACK:
                self.record(Phase.ROLLING_BACK, state.weight)
        except (CanaryflowError, OSError) as problem:
            log.warning("could not record the phase %s: %s", Phase.ROLLING_BACK, problem)

    def _report_reverted(self) -> list[str]:
        """Each mid-release edit of the user's that removing the managed routes took back, as
        a Warning Event on the stable Deployment (which outlives the canary)."""
        reverted = self._router.reverted_edits()
        stable = self.api.get(DEPLOYMENT, self.deployment) if reverted else None
        for line in reverted:
            if stable is not None:
                self.event(stable, "RouteEditReverted", line, warning=True)
        return reverted

    def retire_canary(self) -> None:
        """No request reaches the canary (verified), the drain, canaryflow's routes removed,
        the canary Deployment and Service deleted; stable is not touched."""
        self.make_traffic_safe()
        self._drain()
        self._router.remove_managed_routes()
        self._remove_canary()

    def make_traffic_safe(self, timeout_s: float | None = None) -> None:
        """No request reaches the canary: weight 0 and the header route withdrawn, both
        verified on the router object; the canary's pods and the user's route are left as
        they are (with Istio, restoring the user's route while the canary runs would send the
        host's share of canary endpoints there). Never waits for a drain: the analysis
        fail-safe calls it from its own pod, promote and rollback before ``_drain``."""
        timeout_s = self.timeouts.verify_weight_s if timeout_s is None else timeout_s
        self.router.set_weight(0)
        self.router.withdraw_header_route()

        def pending() -> str | None:
            if not self._router.verify_weight(0):
                return "weight not 0"
            return None if self._router.header_route_withdrawn() else "header route still on"

        last = _poll(pending, timeout_s, POLL_S, "the router to send the canary nothing")
        if last is not None:
            raise PlatformError(
                f"the router does not confirm that no request reaches the canary ({last} after "
                f"{timeout_s:g}s); it is left running so no request is dropped: check the "
                "router object and roll back again"
            )

    def _drain(self) -> None:
        """Wait ``drain_s`` with no traffic verified on the router object, before the canary's
        pods go: proxies that still apply the last change and requests in flight finish on
        them instead of failing (502). Nothing to drain when no canary runs."""
        canary = self.api.get(DEPLOYMENT, self.canary)
        if canary is None or not canary["spec"].get("replicas", 1) or self.drain_s <= 0:
            return
        self.event(canary, "Draining", f"{self.drain_s:g}s before the canary is removed")
        self._sleep(self.drain_s)

    def ensure_capacity(self, weight: int) -> None:
        """Before the canary gets ``weight`` %: scale it to carry it and wait until those pods
        are available. Never scales down (a lower weight needs no fewer pods than it has)."""
        if weight <= 0:  # the safe direction: never delayed by a read
            return
        canary = self.api.get(DEPLOYMENT, self.canary)
        if canary is None:
            return
        stable = self.api.get(DEPLOYMENT, self.deployment)
        stable_size = stable_replicas(stable, self.api.list(HPA, {})) if stable else 0
        wanted = canary_replicas_for(stable_size, weight, self.canary_replicas)
        if canary["spec"].get("replicas", 1) < wanted:
            self.api.merge_patch(DEPLOYMENT, self.canary, {"spec": {"replicas": wanted}})
            message = f"canary scaled to {wanted} pods for {weight}% (stable: {stable_size})"
            self.event(canary, "CanaryScaled", message)
        self._wait_canary_available(weight)
        self._match_baseline(max(wanted, canary["spec"].get("replicas", 1)))

    def _match_baseline(self, replicas: int) -> None:
        """A fresh baseline keeps the canary's size (its share is never larger)."""
        baseline = self.api.get(DEPLOYMENT, self.baseline)
        if baseline is None or baseline["spec"].get("replicas", 1) >= replicas:
            return
        self.api.merge_patch(DEPLOYMENT, self.baseline, {"spec": {"replicas": replicas}})
        self._wait_baseline_available()

    def _wait_canary_available(self, weight: int) -> None:
        def pending() -> str | None:
            deployment = self.api.get(DEPLOYMENT, self.canary)
            if deployment is None:
                return "canary deployment gone"
            report = assess(deployment, self._canary_pods())
            if report is not None and not report.healthy:
                raise PlatformError(f"{report.detail}; not shifting {weight}% to it")
            return None if report is not None else rollout_progress(deployment).describe()

        what = self._name(self.canary)
        last = _poll(pending, self.timeouts.canary_scale_s, self.timeouts.poll_s, what)
        if last is not None:
            raise PlatformError(
                f"canary {self._name(self.canary)} not available for {weight}% within "
                f"{self.timeouts.canary_scale_s:g}s ({last}): traffic not shifted"
            )

    def canary_logs(self, since: float) -> list[str]:
        """The application container's lines of every canary pod (``canary_logs_by_pod``)."""
        return flat_lines(self.canary_logs_by_pod(since))

    def canary_logs_by_pod(self, since: float) -> dict[str, list[str]]:
        """The application container's lines of every canary pod by pod name (never a
        sidecar's: a pod with several containers has no log without a container name); a pod
        not started yet has none."""
        return {pod: text.splitlines() for pod, text in self._canary_logs(since).items()}

    def _canary_logs(self, since: float, timestamps: bool = False) -> dict[str, str]:
        since_seconds = max(1, math.ceil(time.time() - since))
        canary = self.api.get(DEPLOYMENT, self.canary)
        if canary is None:
            return {}
        template = canary["spec"]["template"]["spec"]
        app = objects.main_container(template, self.service, self.container, self.health.port)
        texts: dict[str, str] = {}
        for pod in self._canary_pods():
            name = pod["metadata"]["name"]
            texts[name] = self.api.pod_log(name, since_seconds, app["name"], timestamps)
        return texts

    def logs_by_pod_stamped(
        self, track: str, since: float, pods: Sequence[str] | None = None
    ) -> tuple[dict[str, list[tuple[float, str]]], float]:
        """``canary_logs_by_pod``, ``stable_logs_by_pod`` or (``track`` "fleet")
        ``fleet_logs_by_pod``, each line with the time the container runtime wrote it
        (``timestamps=true``), from ``since`` on exactly (``sinceSeconds`` is whole seconds,
        rounded up: the lines of the second before ``since`` are left out here). The runtime's
        clock is the node's, Prometheus' scrape times its own: NTP keeps them within a
        fraction of a second, which moves a line across a scrape now and then, not often."""
        if track == "canary":
            texts, share = self._canary_logs(since, timestamps=True), 1.0
        elif track == "stable":
            texts, share = self._reference_logs(since, timestamps=True)
        else:
            texts, share = self._fleet_logs(since, timestamps=True, pods=pods)
        return {pod: stamped_lines(text, since) for pod, text in texts.items()}, share

    def stable_logs(self, since: float) -> tuple[list[str], float]:
        """The reference's lines of the pods ``stable_logs_by_pod`` reads, and their share."""
        by_pod, share = self.stable_logs_by_pod(since)
        return flat_lines(by_pod), share

    def stable_logs_by_pod(self, since: float) -> tuple[dict[str, list[str]], float]:
        """The application container's lines of up to ``STABLE_LOG_PODS`` stable pods by pod
        name (the fresh baseline's while one runs: the reference), and the share of those pods
        they are (a large fleet is sampled, its requests scaled). Pods being deleted
        (``deletionTimestamp``: the old ones still draining after stable rolled) are never
        read nor counted: they no longer get the requests their lines would be judged against."""
        texts, share = self._reference_logs(since)
        return {pod: text.splitlines() for pod, text in texts.items()}, share

    def _reference_logs(
        self, since: float, timestamps: bool = False
    ) -> tuple[dict[str, str], float]:
        baseline = self.api.get(DEPLOYMENT, self.baseline)
        stable = baseline or self.api.get(DEPLOYMENT, self.deployment)
        tracks = ("baseline",) if baseline is not None else (None, "stable")
        return self._track_logs_by_pod(stable, tracks, since, timestamps)

    def fleet_logs_by_pod(
        self, since: float, pods: Sequence[str] | None = None
    ) -> tuple[dict[str, list[str]], float]:
        """The stable fleet's lines by pod (up to ``STABLE_LOG_PODS``, never the baseline's):
        what a comparing logs gate learns the lines' over-dispersion from while a fresh
        baseline is the reference, and the share of the fleet's pods read. ``pods``: the
        sample the fleet's metrics are read from (``analysis.fleet_sample``), read first."""
        texts, share = self._fleet_logs(since, pods=pods)
        return {pod: text.splitlines() for pod, text in texts.items()}, share

    def _fleet_logs(
        self, since: float, timestamps: bool = False, pods: Sequence[str] | None = None
    ) -> tuple[dict[str, str], float]:
        stable = self.api.get(DEPLOYMENT, self.deployment)
        return self._track_logs_by_pod(stable, (None, "stable"), since, timestamps, pods or ())

    def _track_logs_by_pod(
        self,
        stable: Obj | None,
        tracks: tuple[str | None, ...],
        since: float,
        timestamps: bool = False,
        first: Sequence[str] = (),
    ) -> tuple[dict[str, str], float]:
        since_seconds = max(1, math.ceil(time.time() - since))
        if stable is None:
            return {}, 1.0
        selector = stable["spec"]["selector"].get("matchLabels") or {}
        pods = [  # a pod being deleted (an old one draining after a roll) serves no share
            pod
            for pod in self.api.list(POD, selector)
            if (pod["metadata"].get("labels") or {}).get(objects.TRACK_LABEL) in tracks
            and not terminating(pod)
        ]
        if not pods:
            return {}, 1.0
        template = stable["spec"]["template"]["spec"]
        app = objects.main_container(template, self.service, self.container, self.health.port)
        # The pods ``first`` names (the metrics' sample), then the others, each in the fleet
        # sample's order (a hash of the name): the same pods round after round, and the
        # sample's own while it stands.
        chosen = {name: index for index, name in enumerate(first)}
        read = sorted(
            pods,
            key=lambda pod: (
                chosen.get(pod["metadata"]["name"], len(chosen)),
                rank(pod["metadata"]["name"]),
            ),
        )[:STABLE_LOG_PODS]
        texts: dict[str, str] = {}
        for pod in read:
            name = pod["metadata"]["name"]
            texts[name] = self.api.pod_log(name, since_seconds, app["name"], timestamps)
        return texts, len(read) / len(pods)

    # -- release state ------------------------------------------------------------------------

    def current_state(self) -> ReleaseState | None:
        """The state recorded on the canary Deployment; None when no canary exists."""
        canary = self.api.get(DEPLOYMENT, self.canary)
        if canary is None:
            return None
        return ReleaseState.from_annotations(canary["metadata"].get("annotations") or {})

    def record(self, phase: Phase, weight: int, version: str | None = None) -> None:
        """Write the state onto the canary Deployment (nothing to write on when it is gone)."""
        if version is None:
            state = self.current_state()
            if state is None:
                return
            version = state.version
        annotations = ReleaseState.now(phase, weight, version).annotations()
        self.api.merge_patch(DEPLOYMENT, self.canary, {"metadata": {"annotations": annotations}})

    def event(self, involved: Obj, reason: str, message: str, warning: bool = False) -> None:
        """Best effort: a lost Event must not fail the release it describes."""
        try:
            self.api.create(decision_event(involved, reason, message, warning))
        except PlatformError as error:
            log.warning("could not record event %s: %s", reason, error)

    # -- steps --------------------------------------------------------------------------------

    def _stable_objects(self) -> tuple[Obj, Obj]:
        stable = self.api.get(DEPLOYMENT, self.deployment)
        if stable is None:
            raise InputError(
                FieldError(
                    "service.name",
                    f"deployment {self._name(self.deployment)} not found: deploy the stable "
                    "version first or fix service.name/namespace",
                )
            )
        stable_service = self.api.get(SERVICE, self.service_object)
        if stable_service is None or not stable_service["spec"].get("ports"):
            raise InputError(
                FieldError(
                    "service.name",
                    f"service {self._name(self.service_object)} not found or without ports: "
                    "create the stable Service (named like the Deployment) or fix "
                    "service.name/namespace",
                )
            )
        return stable, stable_service

    def _identity(self, stable: Obj, stable_service: Obj) -> dict[str, str]:
        """The labels the canary copies to be one of the service's pods, once the contract
        (``canaryflow.kubernetes.contract``) holds; the plan's selector, else the Deployment's."""
        contract = resolve(
            self.namespace,
            self.deployment,
            self.service_object,
            self.selector,
            self.app_label,
            stable,
            stable_service,
        )
        return contract.selector

    @property
    def _selection(self) -> str | None:
        """The router's row of ``plan.routers.STABLE_SELECTION`` (None: a router without one)."""
        return getattr(self._router, "stable_selection", None)

    @property
    def owned_stable(self) -> str | None:
        """``<service>-stable`` when the router sends stable's share to a Service canaryflow
        owns (``plan.routers.STABLE_SELECTION``), else None."""
        if self._selection != OWNED_SERVICE:
            return None
        return owned.stable_service_name(self.service)

    def _stable_hash(self, stable: Obj) -> str | None:
        """Stable's ReplicaSet hash, for routers that select stable by it; read-only, and
        refused (nothing changed) while stable is rolling out. A Service of that name that
        canaryflow did not create is refused too: it is the user's, never overwritten."""
        if self._selection not in (OWNED_SERVICE, HASH_SUBSET):
            return None
        if self.owned_stable is not None:
            existing = self.api.get(SERVICE, self.owned_stable)
            owned.check_name_free(existing, self.namespace, self.service)
        selector = stable["spec"]["selector"].get("matchLabels") or {}
        return owned.stable_pod_template_hash(stable, self.api.list(POD, selector))

    def _check_split(self, stable_service: Obj, canary: Obj) -> None:
        """Routers that split by the user's Service need it to miss the canary pods, as must
        the Services the router sends stable's share to (a user's SMI backend). Routers with a
        stable Service of canaryflow's own (``owned_stable``) need nothing of the user's."""
        if not self._router.splits_by_service or self.owned_stable is not None:
            return
        canary_labels = canary["spec"]["template"]["metadata"]["labels"]
        for name in self._router.stable_backends() or [self.service_object]:
            service = stable_service if name == self.service_object else self.api.get(SERVICE, name)
            if service is None:
                raise InputError(
                    FieldError(
                        "router.route",
                        f"service {self._name(name)}, the stable backend of the split, does "
                        "not exist: create it (selecting the stable pods by version) or fix "
                        "the TrafficSplit",
                    )
                )
            selector = service["spec"].get("selector") or {}
            if objects.selects(selector, canary_labels):
                raise InputError(
                    FieldError(
                        "service.name" if name == self.service_object else "router.route",
                        f"service {self._name(name)} selects {selector}, which also matches "
                        "the canary pods, so its share would reach the canary too: add the "
                        "stable pods' version label to its selector",
                    )
                )
            if name != self.service_object and not any(
                pod_ready(p) for p in (self.api.list(POD, selector) if selector else [])
            ):
                raise InputError(
                    FieldError(
                        "router.route",
                        f"service {self._name(name)}, the split's stable backend, selects no "
                        f"ready pod ({selector or 'no selector'}): point its selector at the "
                        "stable pods",
                    )
                )

    def _check_no_unfinished_record(self) -> None:
        """``deploy_canary``'s first check once stable is read: a canary that still holds
        stable's record without stable restored from it (its phase not in ``RESTORED``) is a
        promotion, or the rollback after one, that was stopped (SIGKILL; SIGTERM past what the
        pod's grace allowed, ``_abort_promotion`` and ``_interrupted_rollback``). Deleting that
        canary would delete the only record of stable's template and selection, and stable
        may still be half-promoted or rolling back. Refused with nothing changed, before
        stable is judged (a rollout under way is refused too, asking to wait for it, when it
        may never finish), for ``canaryflow rollback`` to finish: exit 1, not 2, since the
        input is fine and the cluster is not ready for it (a retry goes on once it ran)."""
        existing = self.api.get(DEPLOYMENT, self.canary)
        if existing is None or recorded(existing) is None:
            return
        state = ReleaseState.from_annotations(existing["metadata"].get("annotations") or {})
        if state is not None and state.phase in RESTORED:
            return
        phase = f", {state.phase} at {state.weight}%" if state else ""
        raise PlatformError(
            f"a promotion of {state.version if state else 'the canary'} did not finish and no "
            f"rollback restored stable yet (deployment {self._name(self.canary)} keeps stable's "
            f"record{phase}; stable may be half-promoted or half-restored): run `canaryflow "
            "rollback`, which restores stable as recorded and removes that canary, then deploy "
            "again",
            "artifact.version",
        )

    def _replace_stale_canary(self, version: str) -> Obj | None:
        """A canary of another version left by an aborted run, one a rollback scaled to zero,
        or one whose promotion failed (stable restored) goes, unless it takes traffic; one
        still holding stable's record was refused before (``_check_no_unfinished_record``).
        The canary of this very release is returned."""
        state = self.current_state()
        existing = self.api.get(DEPLOYMENT, self.canary)
        if existing is None:
            return None
        labels = existing["spec"]["selector"].get("matchLabels", {})
        finished = state is not None and state.phase in RESTORED
        if labels.get(objects.VERSION_LABEL) == version and not finished:
            return existing
        if state is not None and state.weight > 0:
            raise InputError(
                FieldError(
                    "artifact.version",
                    f"a release of {state.version} is in flight ({state.phase}, "
                    f"{state.weight}% of traffic): roll it back or promote it first",
                )
            )
        self.api.delete(DEPLOYMENT, self.canary)
        return None

    def _wait_stable_rollout(
        self, what: str = "roll out the promoted image", until: float | None = None
    ) -> None:
        """Until the stable Deployment rolled out (``RolloutProgress.done``), or its controller
        reports ``ProgressDeadlineExceeded`` (the Deployment's ``progressDeadlineSeconds``
        without progress), or it made no progress for that long plus
        ``stable_rollout_grace_s`` with no report at all (a controller that is down), or
        ``until`` (a ``time.monotonic()``: the end of an interrupted pod's grace)."""
        seen: tuple | None = None
        since = time.monotonic()
        while True:
            stable = self.api.get(DEPLOYMENT, self.deployment)
            if stable is None:
                raise PlatformError(f"deployment {self._name(self.deployment)} was deleted")
            selector = stable["spec"]["selector"].get("matchLabels") or {}
            progress = rollout_progress(stable, self.api.list(POD, selector))
            if progress.done:
                return
            waiting(self._name(self.deployment), progress.describe())
            deadline = progress_deadline_s(stable)
            if progress.timed_out and progress.observed:  # not a stale condition
                raise PlatformError(
                    f"deployment {self._name(self.deployment)} did not {what}: "
                    f"ProgressDeadlineExceeded after its progressDeadlineSeconds "
                    f"({deadline:g}s): {progress.timed_out} ({progress.describe()})"
                )
            counts = (progress.updated, progress.ready, progress.pods, progress.new_ready)
            if counts != seen:
                seen, since = counts, time.monotonic()
            elif time.monotonic() - since > deadline + self.timeouts.stable_rollout_grace_s:
                raise PlatformError(
                    f"deployment {self._name(self.deployment)} did not {what}: no progress "
                    f"for {deadline + self.timeouts.stable_rollout_grace_s:g}s and its "
                    f"controller reported nothing ({progress.describe()})"
                )
            if until is not None and time.monotonic() >= until:
                raise PlatformError(
                    f"deployment {self._name(self.deployment)} did not {what} within the "
                    f"task pod's termination grace ({self.timeouts.termination_grace_s:g}s "
                    f"from the signal, {EXIT_MARGIN_S:g}s of it kept to exit; "
                    f"{progress.describe()}): stable's share is left on every ready pod of "
                    "the service"
                )
            pause = self.timeouts.poll_s
            time.sleep(pause if until is None else max(0.0, min(pause, until - time.monotonic())))

    def follow_stable(self) -> None:
        """``<service>-stable`` on stable's ReplicaSet when stable rolled during the release
        (a GitOps tool's self-heal, a hand edit): Argo Rollouts' controller reconciles its
        ``stableService`` the same way (``ensureSVCTargets``). Called before each non-zero
        weight and each analysis round (``AnalysisWindows.upkeep``, the analyze pod's
        ``--fail-safe``), so it follows within a round, not a step.

        As soon as stable is rolling (pods of two templates, or the rollout not finished) the
        selection is widened to every pod of the service (the canary's too: better than a
        hash whose pods are going away), before the old ReplicaSet's pods go; once the
        rollout finished, the new hash. Never called for weight 0 by ``set_weight``, so
        neither the fail-safe nor a promotion (which widens on its own) waits for it. Istio's
        stable subset, which selects the same hash, follows the same way."""
        by_hash, current = self._stable_hash_selected()
        stable = self.api.get(DEPLOYMENT, self.deployment) if by_hash else None
        if stable is None:
            return
        pods = [  # pods being deleted are leaving: the terminating old pods of a past roll
            p
            for p in self.api.list(POD, stable["spec"]["selector"].get("matchLabels") or {})
            if not p["metadata"].get("deletionTimestamp")
        ]
        if current is not None and set(owned.pods_of_deployment(stable, pods)) == {current}:
            return  # stable's one ReplicaSet, as selected (a pod restarting is no roll)
        state = self.current_state()
        if state is None or state.phase in (Phase.PROMOTING, Phase.PROMOTION_FAILED):
            return  # no release, or a promotion's own selection: not this method's to move
        try:
            now = owned.stable_pod_template_hash(stable, pods)
        except InputError:
            now = None  # rolling (or no pod): every pod of the service until it finished
        if now == current:
            return
        if self.owned_stable:

            def edit(service: Obj) -> Obj:
                if now is None:
                    return owned.widened(service)
                service["spec"]["selector"][owned.POD_TEMPLATE_HASH] = now
                return service

            self.api.update(SERVICE, self.owned_stable, edit)
            what = f"service {self.owned_stable}"
        else:
            self._router.select_stable_hash(now)  # type: ignore[attr-defined]
            what = "the stable subset"
        where = f"now {owned.POD_TEMPLATE_HASH}={now}" if now else "every pod, while it rolls"
        self.event(stable, "StableServiceFollowed", f"stable rolled: {what} selects {where}")

    def _stable_hash_selected(self) -> tuple[bool, str | None]:
        """Whether stable's share is selected by ``pod-template-hash`` now, and which (None:
        widened): ``<service>-stable``'s selector, or Istio's stable subset."""
        if self.owned_stable:
            service = self.api.get(SERVICE, self.owned_stable)
            if not owned.is_owned(service):
                return False, None
            return True, (service or {})["spec"].get("selector", {}).get(owned.POD_TEMPLATE_HASH)
        if self._selection == HASH_SUBSET:
            return self._router.stable_hash_selected()  # type: ignore[attr-defined]
        return False, None

    def widen_stable_service(self) -> None:
        """Before stable's ReplicaSet changes (a promotion, here or by a GitOps tool):
        ``<service>-stable``, or the Istio stable subset, selects every pod of the service
        (``owned_services.widened``), so stable's share never meets an empty selection while
        the old ReplicaSet's pods go."""
        if self.owned_stable and self.api.get(SERVICE, self.owned_stable) is not None:
            self.api.update(SERVICE, self.owned_stable, owned.widened)
        if self._selection == HASH_SUBSET:
            self._router.select_stable_hash(None)  # type: ignore[attr-defined]

    def _remove_canary(self) -> None:
        """The canary and, with it, a fresh baseline (both after traffic left them)."""
        self._remove_baseline()
        self.api.delete(SERVICE, self.canary)
        self.api.delete(DEPLOYMENT, self.canary)
        self._remove_owned_stable()

    def _remove_owned_stable(self) -> None:
        """Once the user's route leads to their own Service again (``remove_managed_routes``
        ran first), never before: ``<service>-stable`` carried stable's share until then."""
        if self.owned_stable and owned.is_owned(self.api.get(SERVICE, self.owned_stable)):
            self.api.delete(SERVICE, self.owned_stable)

    def _canary_pods(self) -> list[Obj]:
        """The canary's pods, not those being deleted: a rolled-back canary's pods carry the
        same track and identity while they terminate, and must not judge the next one."""
        selector = {objects.TRACK_LABEL: "canary", **self._canary_identity()}
        return [pod for pod in self.api.list(POD, selector) if not terminating(pod)]

    def _canary_identity(self) -> dict[str, str]:
        """The identity the canary Deployment was given (its selector, less the track and
        version), so later steps in their own pods find its pods without the stable's."""
        canary = self.api.get(DEPLOYMENT, self.canary)
        labels = dict((canary or {}).get("spec", {}).get("selector", {}).get("matchLabels") or {})
        for label in (objects.TRACK_LABEL, objects.VERSION_LABEL):
            labels.pop(label, None)
        return labels or objects.identity(self.service, self.selector)

    def _name(self, name: str) -> str:
        return f"{self.namespace}/{name}"


class RecordedRouter:
    """The platform's router, with every weight and header change recorded as state and Event."""

    def __init__(self, router: KubernetesRouter, platform: KubernetesPlatform):
        self.inner = router
        self.platform = platform

    def set_weight(self, canary_percent: int, baseline_percent: int = 0) -> None:
        """Capacity first, then the weight: the canary never takes a share it cannot carry
        (nor the baseline, kept at the canary's size). Before a share goes to the canary,
        ``<service>-stable`` follows stable's ReplicaSet if stable rolled during the release
        (``follow_stable``)."""
        if canary_percent > 0:
            self.platform.follow_stable()
        self.platform.ensure_capacity(canary_percent)
        if baseline_percent:
            self.inner.set_weight(canary_percent, baseline_percent)
        else:
            self.inner.set_weight(canary_percent)
        self.platform.record(Phase.PROGRESSING, canary_percent)
        share = f", baseline {baseline_percent}%" if baseline_percent else ""
        self._event("WeightSet", f"canary weight {canary_percent}%{share}")

    def verify_weight(self, canary_percent: int, baseline_percent: int = 0) -> bool:
        if baseline_percent:
            return self.inner.verify_weight(canary_percent, baseline_percent)
        return self.inner.verify_weight(canary_percent)

    def set_header_route(self, route: HeaderRoute) -> None:
        self.inner.set_header_route(route)
        self._event("HeaderRouteSet", f"requests with {route.name}: {route.value} go to the canary")

    def withdraw_header_route(self) -> None:
        if not self.inner.header_route_withdrawn():
            self.inner.withdraw_header_route()
            self._event("HeaderRouteWithdrawn", "the header route no longer reaches the canary")

    def header_route_withdrawn(self) -> bool:
        return self.inner.header_route_withdrawn()

    def remove_managed_routes(self) -> None:
        self.inner.remove_managed_routes()

    def _event(self, reason: str, message: str) -> None:
        canary = self.platform.api.get(DEPLOYMENT, self.platform.canary)
        if canary is not None:
            self.platform.event(canary, reason, message)


MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")


def rfc3339_seconds(text: str) -> float | None:
    """Unix seconds of an RFC 3339 time as the kubelet stamps log lines (``2026-12-07T12:00:
    00.123456789Z``: nine decimals, more than ``datetime`` parses); None if it is not one."""
    found = _RFC3339.fullmatch(text)
    if found is None:
        return None
    zone = "+00:00" if found[3] == "Z" else found[3]
    try:
        whole = datetime.fromisoformat(found[1] + zone).timestamp()
    except ValueError:
        return None
    return whole + (float(found[2]) if found[2] else 0.0)


def stamped_lines(text: str, since: float) -> list[tuple[float, str]]:
    """A log read with ``timestamps=true`` as ``(seconds, line)``, the lines written before
    ``since`` left out. A line without a stamp (none is expected) takes its predecessor's."""
    lines: list[tuple[float, str]] = []
    last = since
    for raw in text.splitlines():
        stamp, _, line = raw.partition(" ")
        when = rfc3339_seconds(stamp)
        if when is None:
            when, line = last, raw
        last = when
        if when >= since:
            lines.append((when, line))
    return lines


def api_client_from_environment(kubeconfig: str | None = None, context: str | None = None):
    """The service account's client inside a pod, else the kubeconfig's."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return ApiClient(configuration)
    if kubeconfig is not None:  # bounded, never a device or FIFO (the client reads it whole)
        try:
            read_input_file(Path(kubeconfig), MAX_KUBECONFIG_BYTES, "kubeconfig")
        except InputError as error:
            raise InputError(FieldError("--kubeconfig", str(error))) from None
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except config.ConfigException as error:
        raise InputError(
            FieldError("kubeconfig", f"{error}: point --kubeconfig/--context at a cluster")
        ) from None


def _poll(
    pending: Callable[[], str | None], timeout_s: float, poll_s: float, what: str = ""
) -> str | None:
    """Call ``pending`` until it returns None or the deadline passes; returns its last answer.
    Each answer meanwhile is progress on ``what`` (``canaryflow.progress``)."""
    deadline = time.monotonic() + timeout_s
    while (answer := pending()) is not None and time.monotonic() < deadline:
        waiting(what, answer, timeout_s)
        time.sleep(poll_s)
    return answer
