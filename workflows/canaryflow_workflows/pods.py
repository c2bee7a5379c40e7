"""How every task pod looks: non-root, read-only root, no privileges, sized, retried on purpose.

Kept apart from the task list so a reviewer checks the hardening once: every template in the
library is built from these pieces, and the tests assert it on every compiled container.
"""

from __future__ import annotations

import json

from hera.workflows import Env, RetryStrategy
from hera.workflows import models as m

from canaryflow.kubernetes.grace import TERMINATION_GRACE_ENV
from canaryflow_workflows.settings import WorkflowSettings

NONROOT_UID = 65532
WORKSPACE_VOLUME = "workspace"
WORKSPACE = "/workspace"
TMP_VOLUME = "tmp"
GO_CACHE_VOLUME = "go-cache"
GO_CACHE = "/cache"
REGISTRY_VOLUME = "registry-auth"
REGISTRY_AUTH = "/var/run/canaryflow/registry"
# Exit code 2 is bad input (see canaryflow.errors): running it again cannot help.
RETRY_UNLESS_BAD_INPUT = "lastRetry.exitCode != '2'"


def pod_security_context() -> m.PodSecurityContext:
    return m.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=NONROOT_UID,
        run_as_group=NONROOT_UID,
        fs_group=NONROOT_UID,
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context() -> m.SecurityContext:
    return m.SecurityContext(
        run_as_non_root=True,
        run_as_user=NONROOT_UID,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities=m.Capabilities(drop=["ALL"]),
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def tmp_volume() -> m.Volume:
    """The one writable scratch directory a read-only root filesystem leaves (HOME too)."""
    return m.Volume(name=TMP_VOLUME, empty_dir=m.EmptyDirVolumeSource(size_limit="1Gi"))


def go_cache_volume(settings: WorkflowSettings) -> m.Volume:
    """GOCACHE and GOMODCACHE survive between releases on a claim, so a warm build only links;
    without one, a per-pod emptyDir (every build cold, nothing to provision)."""
    if settings.go_cache_pvc is None:
        empty = m.EmptyDirVolumeSource(size_limit=settings.go_cache_empty_dir_limit)
        return m.Volume(name=GO_CACHE_VOLUME, empty_dir=empty)
    claim = m.PersistentVolumeClaimVolumeSource(claim_name=settings.go_cache_pvc)
    return m.Volume(name=GO_CACHE_VOLUME, persistent_volume_claim=claim)


def build_pod_identity(settings: WorkflowSettings) -> dict[str, object]:
    """go-test and go-build run the repository's own code: no service-account token in their
    container. Argo's executor still reports the outputs, with the same account's token mounted
    into its own containers only (``executor.serviceAccountName``)."""
    return tokenless_pod_identity(settings)


def tokenless_pod_identity(settings: WorkflowSettings) -> dict[str, object]:
    """A pod whose container holds no service-account token: the build account (no Role of its
    own), ``automountServiceAccountToken: false``, the executor on that account. For tasks
    that run or read what a repository pushed (its code, its plan)."""
    return {
        "service_account_name": settings.build_service_account,
        "automount_service_account_token": False,
        "executor": m.ExecutorConfig(service_account_name=settings.build_service_account),
    }


def registry_auth_volume(settings: WorkflowSettings) -> m.Volume:
    """The registry's docker config; optional, for registries that take anonymous pushes."""
    secret = m.SecretVolumeSource(secret_name=settings.registry_secret, optional=True)
    return m.Volume(name=REGISTRY_VOLUME, secret=secret)


def mount(volume: str, path: str, read_only: bool = False) -> m.VolumeMount:
    return m.VolumeMount(name=volume, mount_path=path, read_only=read_only or None)


def idempotent_retry(settings: WorkflowSettings) -> RetryStrategy:
    """For steps that converge on a desired state: running them twice is the same as once."""
    return RetryStrategy(
        limit=str(settings.retry_limit),
        retry_policy="Always",
        expression=RETRY_UNLESS_BAD_INPUT,
        backoff=m.Backoff(duration=settings.retry_backoff, factor="2", max_duration="5m"),
    )


def infrastructure_retry(settings: WorkflowSettings) -> RetryStrategy:
    """Only when the pod itself broke (eviction, node loss), never when the step said no."""
    return RetryStrategy(
        limit="1",
        retry_policy="OnError",
        backoff=m.Backoff(duration=settings.retry_backoff, factor="2", max_duration="5m"),
    )


def termination_grace_patch(settings: WorkflowSettings) -> str:
    """The task pod's ``terminationGracePeriodSeconds``, as the template's ``podSpecPatch``
    (Argo Workflows ``io.argoproj.workflow.v1alpha1.Template.podSpecPatch``, a strategic merge
    patch of the pod spec, a string; checked against the v4.0.5 schema in shared/schemas, and
    older than v3.6, the oldest Argo canaryflow supports): the template has no field of its own
    for it. On the template, not the Workflow's spec: a WorkflowTemplate's
    spec-level podSpecPatch does not reach the pods of the templates it references
    (argoproj/argo-workflows discussion #12729)."""
    grace = {"terminationGracePeriodSeconds": settings.termination_grace_seconds}
    return json.dumps(grace, separators=(",", ":"))  # as Helm's toJson writes it (the chart)


def termination_grace_env(settings: WorkflowSettings) -> list[Env]:
    """The same grace, told to the verb (``canaryflow.kubernetes.grace``): what a stopped
    promotion or rollback has from the SIGTERM to make traffic safe before the SIGKILL."""
    return [Env(name=TERMINATION_GRACE_ENV, value=str(settings.termination_grace_seconds))]
