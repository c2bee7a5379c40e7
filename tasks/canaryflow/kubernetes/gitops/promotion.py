"""Promotion in GitOps mode: the digest goes to Git, Argo CD / Flux roll stable, we watch.

canaryflow never writes the stable Deployment or its Service here: with self-heal (Argo CD) or
drift correction (Flux) a live patch would be reverted at the next sync, and the repository
would still name the old image. Instead:

1. the released reference is written into the file the plan names (``image_field``) and
   committed to the followed branch, or pushed to ``canaryflow/<service>/<version>`` for a
   merge request, which the forge's API then opens (``forge.py``, with ``provider``); a push
   that lost a race is redone on the new tip (three attempts);
2. promote waits, up to ``promotion.gitops.timeout``, until the stable Deployment's template
   runs that digest and its rollout is complete (what Argo CD's sync and Flux's apply lead to);
   a merge request closed without merging ends the wait at once;
3. either way the canary then leaves: weight 0 and no header route (verified), the drain,
   canaryflow's routes removed, the canary Deployment and Service deleted. When the rollout
   was not observed in time, stable is left exactly as Git and the GitOps tool have it and
   the release fails with "gitops promotion not observed": never a promotion claimed on an
   image nobody saw running. A merge request still open then is closed ("gitops promotion
   not merged"): merged later, it would roll the digest out to every pod with no canary
   left to compare and nobody watching; to promote that version, release it again. Once the
   request is closed unmerged (by a reviewer or by us) its branch is deleted while it is still
   at the commit we pushed, as when the forge refuses to open the request. A promote stopped
   while it waits (SIGTERM: ``argo stop``) closes an open request and deletes its branch the
   same way, since the exit handler then removes the canary.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from canaryflow import transport
from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.kubernetes import canary_objects as objects
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.gitops.forge import (
    Forge,
    ForgeError,
    MergeRequest,
    State,
    default_api_url,
    default_project,
    make_forge,
    read_token,
)
from canaryflow.kubernetes.gitops.git import GitCheckout, PushRejected
from canaryflow.kubernetes.gitops.image_field import ImageTarget, split_reference, write_image
from canaryflow.kubernetes.health import rollout_progress
from canaryflow.kubernetes.resources import DEPLOYMENT
from canaryflow.plan.gitops import API_URL, REPOSITORY_URL, GitOpsSpec
from canaryflow.platform.protocol import Artifact
from canaryflow.platform.state import Phase, ReleaseState

log = logging.getLogger(__name__)
Obj = dict[str, Any]
PUSH_ATTEMPTS = 3
NOT_OBSERVED = "gitops promotion not observed"
NOT_MERGED = "gitops promotion not merged"
FORGE_POLL_S = 10.0  # the merge request's state: well inside GitHub's 5000 requests an hour


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
    chart_repository: str = ""
    """The chart's gitops.repository: the credentials Secret serves its host only."""
    chart_branch: str | None = None
    """The chart's gitops.branch: the followed branch when the plan names none."""
    api_url: str | None = None
    """The forge's REST API (chart value gitops.apiUrl); default from the repository URL."""
    poll_s: float = 2.0
    forge_poll_s: float = FORGE_POLL_S
    sleep: Callable[[float], None] = time.sleep
    forge: Forge | None = None
    """The forge client; built from the plan, the chart and the Secret when None."""

    @property
    def base_branch(self) -> str:
        return self.spec.branch_or(self.chart_branch)

    # -- the whole promotion -------------------------------------------------------------------

    def promote(self, platform: KubernetesPlatform, artifact: Artifact) -> None:
        objects.check_artifact(artifact.image, artifact.version)
        self.check_repository()
        forge = self.merge_request_forge()
        image = artifact.image or ""
        state = platform.current_state()
        platform.record(Phase.PROMOTING, state.weight if state else 0)
        platform.widen_stable_service()  # the GitOps tool will change stable's ReplicaSet
        canary = platform.api.get(DEPLOYMENT, platform.canary)
        change = self.write(platform.service, platform.container, artifact, canary is not None)
        where = f"{self.repository} {change.branch}"
        if canary is not None:
            what = f"{change.commit[:12]} pushed to" if change.commit else "already on"
            platform.event(canary, "GitOpsCommitted", f"{artifact.version}: {what} {where}")
        request = None
        if forge is not None and change.commit is not None:
            try:
                request = forge.open(
                    change.branch,
                    self.base_branch,
                    f"canaryflow: promote {platform.service} to {artifact.version}",
                    f"The canary of {artifact.version} passed its analysis; merging this rolls "
                    f"`{image}` out as stable. canaryflow waits {self.spec.timeout:g}s for "
                    "the merge, then closes this and removes the canary.",
                )
            except BaseException as error:  # a refusal, a forge down, SIGTERM: no branch left
                left = self.remove_branch(change)
                if isinstance(error, Exception):
                    raise PlatformError(
                        f"gitops merge request not opened: {error}; {left}; stable and the "
                        "canary unchanged"
                    ) from error
                raise
            where = request.url or f"{forge.provider} merge request {request.number}"
            if canary is not None:
                platform.event(canary, "GitOpsMergeRequestOpened", f"{artifact.version}: {where}")
        _, digest = split_reference(image)
        try:
            pending, merge = self.wait_observed(platform, digest, request)
        except BaseException:  # SIGTERM (argo stop), an error: the canary goes, the request too
            if request is not None:
                self.abandon(request, change)
            raise
        platform.retire_canary()
        stable = platform.api.get(DEPLOYMENT, platform.service)
        if pending is not None:
            if request is not None and merge != "merged":
                message = self.withdraw(artifact, request, merge, change)
            else:
                message = (
                    f"{NOT_OBSERVED}: deployment {platform.namespace}/{platform.service} did "
                    f"not run {digest[:19]}... within {self.spec.timeout:g}s ({pending}); "
                    f"{where} names it. stable was left as the GitOps tool has it and the "
                    f"canary was removed: check the {self.spec.tool} application's sync status"
                )
            if stable is not None:
                platform.event(stable, "GitOpsPromotionNotObserved", message, warning=True)
            raise PlatformError(message)
        if stable is not None:
            message = f"stable now runs {artifact.version} ({image}), rolled out from {where}"
            platform.event(stable, "Promoted", message)

    def withdraw(
        self,
        artifact: Artifact,
        request: MergeRequest,
        merge: State | None,
        change: GitChange,
    ) -> str:
        """Close the merge request nobody merged in time; once it is closed (by a reviewer or
        by us) the branch pushed for it goes too (``remove_branch``), as when the forge
        refused to open it: a closed request is not reopened on a deleted branch. What
        happened, for the release."""
        assert self.forge is not None
        name = request.url or f"merge request {request.number}"
        left = (
            f"stable keeps running what it ran and serves 100 %, the canary was removed: "
            f"release {artifact.version} again to promote it"
        )
        if merge == "closed":
            branch = self.remove_branch(change)
            return f"{NOT_MERGED}: {name} was closed without merging; {branch}; {left}"
        try:
            self.forge.close(request)
        except ForgeError as error:
            return (
                f"{NOT_MERGED}: {name} was not merged within {self.spec.timeout:g}s and could "
                f"not be closed ({error}): close it by hand, merged now it would promote "
                f"{artifact.version} with no canary; {left}"
            )
        branch = self.remove_branch(change)
        return (
            f"{NOT_MERGED}: {name} was not merged within {self.spec.timeout:g}s, so canaryflow "
            f"closed it; {branch}; {left}"
        )

    def abandon(self, request: MergeRequest, change: GitChange) -> None:
        """The wait for the merge ended early (SIGTERM, an error): the exit handler's rollback
        removes the canary, so a request left open, merged later, would promote with none.
        It is closed (unless merged meanwhile) and its branch deleted, as ``withdraw`` does;
        what fails is logged, never raised over the cause."""
        assert self.forge is not None
        try:
            state = self.forge.state(request)
            if state == "merged":
                return
            if state != "closed":
                self.forge.close(request)
        except ForgeError as error:
            log.warning("merge request %s left open: %s: close it by hand", request.number, error)
            return
        log.warning("merge request %s closed; %s", request.number, self.remove_branch(change))

    def remove_branch(self, change: GitChange) -> str:
        """The branch pushed for a merge request that was never opened, or was closed
        unmerged, goes again (while it is still at the pushed commit): nobody would review
        it, and merged later by hand it would promote with no canary. What happened, for the
        message."""
        assert change.commit is not None
        where = f"{self.repository} {change.branch}"
        try:
            with GitCheckout(self.repository, self.base_branch, self.credentials) as git:
                deleted = git.delete_branch(change.branch, change.commit)
        except PlatformError as error:
            return f"the branch pushed for it could not be deleted ({error}): delete {where}"
        if not deleted:
            return f"the branch {where} moved on since the push, so it was left as it is"
        return f"the branch {where} pushed for it was deleted"

    def merge_request_forge(self) -> Forge | None:
        """The forge client when the plan asks for a merge request through its API; InputError
        (nothing pushed yet) when its URL, token or project cannot be found or is refused."""
        if self.spec.mode != "merge-request" or self.spec.provider is None:
            return None
        if self.forge is not None:
            return self.forge
        provider = self.spec.provider
        api = self.api_url or default_api_url(provider, self.repository)
        if api is None or not re.fullmatch(API_URL, api):
            raise InputError(
                FieldError(
                    "gitops.apiUrl",
                    f"no usable {provider} API URL for {self.repository[:60]!r}: set the chart "
                    "value gitops.apiUrl (e.g. https://gitlab.example.com/api/v4)",
                )
            )
        project = self.spec.project or default_project(self.repository)
        if provider == "github" and project.count("/") != 1:
            raise InputError(
                FieldError(
                    "promotion.gitops.project",
                    f"{project[:60]!r} is not owner/repo: name the GitHub repository",
                )
            )
        forge = make_forge(provider, api, project, read_token(self.credentials))
        forge.check()
        self.forge = forge
        return forge

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
        if self.chart_repository and not transport.same_origin(
            self.repository, self.chart_repository
        ):
            # A plan is written by the service's developers; the Secret's token belongs to the
            # platform's configuration host and must not be handed to a host a plan names.
            host = transport.origin(self.repository)[1]
            raise InputError(
                FieldError(
                    "promotion.gitops.repository",
                    f"{host!r} is not the host of the chart's gitops.repository, and the "
                    "credentials Secret is only used there: remove promotion.gitops.repository "
                    "from the plan, or name a repository on that host",
                )
            )

    # -- 1. the change in Git ------------------------------------------------------------------

    def write(
        self,
        service: str,
        container: str | None,
        artifact: Artifact,
        canary_running: bool = True,
    ) -> GitChange:
        """Commit the released reference (or find it there already). Without a running canary
        nothing new is pushed: a retried promote pod after the promotion ended (not merged,
        not observed: the canary was removed) must not open a promotion nobody can compare."""
        target = ImageTarget(
            format=self.spec.format,
            deployment=service,
            image=self.spec.image,
            key=self.spec.key,
            value=self.spec.value,
            container=self.spec.container or container,
        )
        merge_request = self.spec.mode == "merge-request"
        branch = f"canaryflow/{service}/{artifact.version}" if merge_request else self.base_branch
        message = f"canaryflow: promote {service} to {artifact.version}\n\n{artifact.image}\n"
        with GitCheckout(self.repository, self.base_branch, self.credentials) as git:
            git.clone()
            for attempt in range(1, PUSH_ATTEMPTS + 1):
                text = git.read(self.spec.path)
                if text is None:
                    raise InputError(
                        FieldError(
                            "promotion.gitops.path",
                            f"{self.spec.path} is not in {self.repository} on branch "
                            f"{self.base_branch}: name the file Argo CD / Flux read",
                        )
                    )
                written = write_image(text, target, artifact.image or "", self.spec.path)
                if not written.in_place:
                    log.warning("%s rewritten by PyYAML: its comments are lost", self.spec.path)
                if written.text != text and not canary_running:
                    raise PlatformError(
                        f"nothing pushed: the canary of {artifact.version} is not running (its "
                        f"promotion already ended and the canary was removed) and "
                        f"{self.spec.path} on {self.base_branch} does not name its digest: "
                        "release the version again"
                    )
                if not git.commit(self.spec.path, written.text, message):
                    return GitChange(self.base_branch, None)
                try:
                    git.push(branch, force=merge_request)
                    return GitChange(branch, git.head())
                except PushRejected:
                    if attempt == PUSH_ATTEMPTS:
                        raise
                    git.refresh()
        raise AssertionError("unreachable")  # pragma: no cover

    # -- 2. the rollout in the cluster ---------------------------------------------------------

    def wait_observed(
        self, platform: KubernetesPlatform, digest: str, request: MergeRequest | None = None
    ) -> tuple[str | None, State | None]:
        """(None once stable runs ``digest``, rolled out; else what was last seen, and the
        merge request's last known state). A merge request closed unmerged ends the wait."""
        deadline = time.monotonic() + self.spec.timeout
        merge: State | None = None
        asked = float("-inf")
        while True:
            deployment = platform.api.get(DEPLOYMENT, platform.service)
            pending = observation(deployment, platform.service, platform.container, digest)
            if pending is None:
                return None, merge
            now = time.monotonic()
            if request is not None and self.forge is not None and now - asked >= self.forge_poll_s:
                asked = now
                try:
                    merge = self.forge.state(request)
                except ForgeError as error:  # the Deployment decides; the forge only informs
                    log.warning("merge request %s: state not read: %s", request.number, error)
                if merge == "closed":
                    return f"merge request {request.number} closed", merge
            if now >= deadline:
                if request is not None and self.forge is not None:
                    try:
                        merge = self.forge.state(request)
                    except ForgeError as error:
                        log.warning("merge request %s: state not read: %s", request.number, error)
                return pending, merge
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
