"""Promotion in GitOps mode: the digest goes to Git, Argo CD / Flux roll stable, we watch.

canaryflow never writes the stable Deployment or its Service here: with self-heal (Argo CD) or
drift correction (Flux) a live patch would be reverted at the next sync, and the repository
would still name the old image. Instead:

1. the released reference is written into the file the plan names (``image_field``) and
   committed to the followed branch, or pushed to ``canaryflow/<service>/<version>`` for a
   merge request; a push that lost a race is redone on the new tip (three attempts);
2. promote waits, up to ``promotion.gitops.timeout``, until the stable Deployment's template
   runs that digest and its rollout is complete (what Argo CD's sync and Flux's apply lead to);
3. either way the canary then leaves: weight 0 and no header route (verified), the drain,
   canaryflow's routes removed, the canary Deployment and Service deleted. When the rollout
   was not observed in time, stable is left exactly as Git and the GitOps tool have it and
   the release fails with "gitops promotion not observed": never a promotion claimed on an
   image nobody saw running.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.kubernetes import canary_objects as objects
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.gitops.git import GitCheckout, PushRejected
from canaryflow.kubernetes.gitops.image_field import ImageTarget, split_reference, write_image
from canaryflow.kubernetes.health import rollout_progress
from canaryflow.kubernetes.resources import DEPLOYMENT
from canaryflow.plan.gitops import REPOSITORY_URL, GitOpsSpec
from canaryflow.platform.protocol import Artifact
from canaryflow.platform.state import Phase, ReleaseState

log = logging.getLogger(__name__)
Obj = dict[str, Any]
PUSH_ATTEMPTS = 3
NOT_OBSERVED = "gitops promotion not observed"


class KubernetesPlatform(Protocol):
    """What promotion needs of ``kubernetes.platform.KubernetesPlatform`` (which imports this
    module, so it is named here by shape instead)."""

    api: ClusterApi
    namespace: str
    service: str
    canary: str
    container: str | None

    def current_state(self) -> ReleaseState | None: ...
    def record(self, phase: Phase, weight: int, version: str | None = None) -> None: ...
    def event(self, involved: Obj, reason: str, message: str, warning: bool = False) -> None: ...
    def retire_canary(self) -> None: ...
    def widen_stable_service(self) -> None: ...


@dataclass(frozen=True)
class GitChange:
    branch: str
    commit: str | None
    """The commit pushed, or None when the file already named the digest (a re-run)."""


@dataclass
class GitOpsPromotion:
    spec: GitOpsSpec
    repository: str
    credentials: Path | None = None
    poll_s: float = 2.0
    sleep: Callable[[float], None] = time.sleep

    # -- the whole promotion -------------------------------------------------------------------

    def promote(self, platform: KubernetesPlatform, artifact: Artifact) -> None:
        objects.check_artifact(artifact.image, artifact.version)
        self.check_repository()
        image = artifact.image or ""
        state = platform.current_state()
        platform.record(Phase.PROMOTING, state.weight if state else 0)
        platform.widen_stable_service()  # the GitOps tool will change stable's ReplicaSet
        change = self.write(platform.service, platform.container, artifact)
        canary = platform.api.get(DEPLOYMENT, platform.canary)
        where = f"{self.repository} {change.branch}"
        if canary is not None:
            what = f"{change.commit[:12]} pushed to" if change.commit else "already on"
            platform.event(canary, "GitOpsCommitted", f"{artifact.version}: {what} {where}")
        _, digest = split_reference(image)
        pending = self.wait_observed(platform, digest)
        platform.retire_canary()
        stable = platform.api.get(DEPLOYMENT, platform.service)
        if pending is not None:
            message = (
                f"{NOT_OBSERVED}: deployment {platform.namespace}/{platform.service} did not run "
                f"{digest[:19]}... within {self.spec.timeout:g}s ({pending}); {where} names it. "
                "stable was left as the GitOps tool has it and the canary was removed: check "
                f"the {self.spec.tool} application's sync status"
            )
            if stable is not None:
                platform.event(stable, "GitOpsPromotionNotObserved", message, warning=True)
            raise PlatformError(message)
        if stable is not None:
            message = f"stable now runs {artifact.version} ({image}), rolled out from {where}"
            platform.event(stable, "Promoted", message)

    def check_repository(self) -> None:
        if not re.fullmatch(REPOSITORY_URL, self.repository):
            where = "not set" if not self.repository else f"{self.repository[:60]!r} is not usable"
            raise InputError(
                FieldError(
                    "promotion.gitops.repository",
                    f"{where}: set it in the plan or the chart value gitops.repository "
                    "(https://host/org/config.git, without credentials: those go in the "
                    "Secret gitops.credentialsSecret)",
                )
            )

    # -- 1. the change in Git ------------------------------------------------------------------

    def write(self, service: str, container: str | None, artifact: Artifact) -> GitChange:
        target = ImageTarget(
            format=self.spec.format,
            deployment=service,
            image=self.spec.image,
            key=self.spec.key,
            value=self.spec.value,
            container=self.spec.container or container,
        )
        merge_request = self.spec.mode == "merge-request"
        branch = f"canaryflow/{service}/{artifact.version}" if merge_request else self.spec.branch
        message = f"canaryflow: promote {service} to {artifact.version}\n\n{artifact.image}\n"
        with GitCheckout(self.repository, self.spec.branch, self.credentials) as git:
            git.clone()
            for attempt in range(1, PUSH_ATTEMPTS + 1):
                text = git.read(self.spec.path)
                if text is None:
                    raise InputError(
                        FieldError(
                            "promotion.gitops.path",
                            f"{self.spec.path} is not in {self.repository} on branch "
                            f"{self.spec.branch}: name the file Argo CD / Flux read",
                        )
                    )
                written = write_image(text, target, artifact.image or "", self.spec.path)
                if not written.in_place:
                    log.warning("%s rewritten by PyYAML: its comments are lost", self.spec.path)
                if not git.commit(self.spec.path, written.text, message):
                    return GitChange(self.spec.branch, None)
                try:
                    git.push(branch, force=merge_request)
                    return GitChange(branch, git.head())
                except PushRejected:
                    if attempt == PUSH_ATTEMPTS:
                        raise
                    git.refresh()
        raise AssertionError("unreachable")  # pragma: no cover

    # -- 2. the rollout in the cluster ---------------------------------------------------------

    def wait_observed(self, platform: KubernetesPlatform, digest: str) -> str | None:
        """None once stable runs ``digest``, rolled out; else what was last seen."""
        deadline = time.monotonic() + self.spec.timeout
        while True:
            deployment = platform.api.get(DEPLOYMENT, platform.service)
            pending = observation(deployment, platform.service, platform.container, digest)
            if pending is None or time.monotonic() >= deadline:
                return pending
            self.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))


def observation(
    deployment: Obj | None, service: str, container: str | None, digest: str
) -> str | None:
    """What stands between ``deployment`` and "runs ``digest``, rollout complete" (None)."""
    if deployment is None:
        return "deployment not found"
    image = objects.main_container(deployment["spec"]["template"]["spec"], service, container)[
        "image"
    ]
    if split_reference(image)[1] != digest:
        return f"template image is still {image}"
    progress = rollout_progress(deployment)
    return None if progress.done else f"rolling out: {progress.describe()}"
