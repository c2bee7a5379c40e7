"""The reusable task library: one template per task verb, callable by ``templateRef``.

The same templates are published twice from this one definition: as the ClusterWorkflowTemplate
``canaryflow-tasks`` (``clusterScope: true``) and as a namespaced WorkflowTemplate of the same
name, for clusters where teams may not install cluster-scoped objects.

Every container runs ``canaryflow <verb>`` with each parameter as its own argv element (see the
task verbs contract); nothing passes through a shell, so a revision such as ``main; rm -rf /``
reaches the verb as one harmless string. Callers provide a volume named ``workspace`` (the
release workflow creates it from a volumeClaimTemplate); the library brings its own ``/tmp``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hera.workflows import (
    Artifact,
    ClusterWorkflowTemplate,
    Container,
    Env,
    Parameter,
    RawArtifact,
    RetryStrategy,
    SecretEnv,
    Suspend,
    WorkflowTemplate,
)
from hera.workflows import models as m

from canaryflow.plan.gitops import (
    API_URL_ENV,
    BRANCH_ENV,
    CREDENTIALS_DIR,
    CREDENTIALS_ENV,
    REPOSITORY_ENV,
)
from canaryflow.release.walk import LAST_STEP, PROMOTION, STEPS
from canaryflow_workflows import pods
from canaryflow_workflows.graph import DEPLOYABLE_IMAGE
from canaryflow_workflows.pods import WORKSPACE
from canaryflow_workflows.settings import PodResources, WorkflowSettings

SOURCE_DIR = f"{WORKSPACE}/src"
RESOLVED_PLAN = f"{WORKSPACE}/plan.yaml"
BINARY = f"{WORKSPACE}/bin/service"
PLATFORMS_FILE = f"{BINARY}.platforms.json"
OUTPUTS = "/tmp/outputs"
INLINE_PLAN = "/inputs/plan-inline.yaml"
NOTIFICATIONS_VOLUME = "notifications"
NOTIFICATIONS = "/var/run/canaryflow/notifications"
GITOPS_VOLUME = "gitops-credentials"


@dataclass(frozen=True)
class Input:
    name: str
    description: str
    default: str | None = None
    enum: Sequence[str] | None = None

    def parameter(self) -> Parameter:
        optional = {"default": self.default, "enum": list(self.enum or []) or None}
        given = {key: value for key, value in optional.items() if value is not None}
        return Parameter(name=self.name, description=self.description, **given)


PLAN = Input("plan", "Path of the resolved release plan.", RESOLVED_PLAN)


def ref(name: str) -> str:
    """``{{inputs.parameters.<name>}}``: how a template reads its input."""
    return "{{inputs.parameters." + name + "}}"


class TaskLibrary:
    """Builds the library's templates from the settings; one method per task verb."""

    def __init__(self, settings: WorkflowSettings):
        self.settings = settings

    def templates(self) -> list:
        return [
            self.validate_plan(),
            self.check_contract(),
            self.checkout(),
            self.go_test(),
            self.go_build(),
            self.image_push(),
            self.deploy_canary(),
            self.health_gate(),
            self.set_weight(),
            self.set_weight(header_route=True),
            self.analyze(),
            self.approve(),
            self.promote(),
            self.rollback(),
            self.flag_rollout(),
            self.flag_off(),
            self.notify(),
        ]

    def _container(
        self,
        name: str,
        summary: str,
        inputs: Sequence[Input],
        args: Sequence[str],
        *,
        go: bool = False,
        retry: RetryStrategy | None = None,
        outputs: Sequence[Parameter] = (),
        artifacts: Sequence[Artifact] = (),
        volumes: Sequence[m.Volume] = (),
        mounts: Sequence[m.VolumeMount] = (),
        env: Sequence[Env] = (),
        working_dir: str | None = None,
        identity: dict[str, object] | None = None,
    ) -> Container:
        resources: PodResources = (
            self.settings.go_resources if go else self.settings.light_resources
        )
        return Container(
            name=name,
            annotations={"workflows.argoproj.io/description": summary},
            image=self.settings.go_toolchain_image if go else self.settings.runtime_image,
            image_pull_policy=self.settings.image_pull_policy,
            command=["canaryflow"],
            args=list(args),
            inputs=[i.parameter() for i in inputs] + list(artifacts),
            outputs=list(outputs) or None,
            env=[Env(name="HOME", value="/tmp"), *pods.termination_grace_env(self.settings), *env],
            working_dir=working_dir,
            resources=m.ResourceRequirements(**resources.as_dict()),
            security_context=pods.container_security_context(),
            pod_security_context=pods.pod_security_context(),
            volumes=[pods.tmp_volume(), *volumes],
            volume_mounts=[
                pods.mount(pods.TMP_VOLUME, "/tmp"),
                pods.mount(pods.WORKSPACE_VOLUME, WORKSPACE),
                *mounts,
            ],
            retry_strategy=retry,
            pod_spec_patch=pods.termination_grace_patch(self.settings),
            **(identity or {}),
        )

    def _output(
        self, name: str, description: str, file: str, global_name: str | None = None
    ) -> Parameter:
        return Parameter(
            name=name,
            description=description,
            value_from=m.ValueFrom(path=f"{OUTPUTS}/{file}"),
            global_name=global_name,
        )

    def validate_plan(self) -> Container:
        inline = RawArtifact(name="plan-inline", path=INLINE_PLAN, data=ref("plan-inline"))
        return self._container(
            "validate-plan",
            "Validate the release plan and write it, fully defaulted, for the later tasks.",
            [
                Input("plan", "Plan file, relative to source-dir.", "canaryflow.yaml"),
                Input(
                    "plan-inline",
                    "Default plan as YAML text, for a repository without the plan file; its "
                    "service name and namespace come from the parameters.",
                    "",
                ),
                Input("source-dir", "The checked-out repository.", SOURCE_DIR),
                Input("service", "Service the release is for; must match the plan."),
                Input("namespace", "Namespace of the service; must match the plan."),
                Input("router-kind", "Overrides the plan's router kind; empty keeps it.", ""),
                Input(
                    "registered-routers",
                    "The router kinds each registered service may use, as JSON "
                    '{"namespace/service": [kind]} (the chart\'s events.services): a plan for '
                    "one with another router.kind is refused; empty: no check.",
                    "",
                ),
                Input("resolved-out", "Where the resolved plan is written.", RESOLVED_PLAN),
            ],
            [
                "validate",
                "--default-plan",
                INLINE_PLAN,
                "--resolved-out",
                ref("resolved-out"),
                "--service",
                ref("service"),
                "--namespace",
                ref("namespace"),
                "--router-kind",
                ref("router-kind"),
                "--registered-routers",
                ref("registered-routers"),
                "--workflow-outputs",
                OUTPUTS,
                "--offline",  # a pushed plan decides no network call (issue 23, item 8)
                "--",  # the plan path is never read as an option, whatever it says
                ref("plan"),
            ],
            artifacts=[inline],
            working_dir=ref("source-dir"),
            # It reads a pushed plan, so it holds no token: nothing in the plan can reach the
            # API with the release's rights (the executor reports outputs on its own account).
            identity=pods.tokenless_pod_identity(self.settings),
            outputs=[
                self._output(
                    STEPS,
                    "The plan's steps as JSON: kind, weight, duration, message, timeout (strings).",
                    STEPS,
                ),
                self._output(LAST_STEP, "Index of the plan's last step.", LAST_STEP),
                self._output(PROMOTION, "auto, or approve to ask a person first.", PROMOTION),
            ],
        )

    def check_contract(self) -> Container:
        return self._container(
            "check-contract",
            "Check the service's Deployment, Service and pod labels in the cluster against the "
            "resolved plan (validate --cluster), before anything is built.",
            [PLAN],
            # validate-plan holds no token (it reads a pushed plan); this reads the plan it
            # resolved and only reads the cluster, with the release's account, as deploy-canary
            # will. Offline: the resolved plan decides no call to Prometheus here.
            ["validate", "--cluster", "--offline", "--", ref("plan")],
            retry=pods.idempotent_retry(self.settings),
        )

    def checkout(self) -> Container:
        return self._container(
            "checkout",
            "Clone the repository and check out exactly the revision.",
            [
                Input("repo", "Git URL of the service's repository."),
                Input("revision", "Commit, tag or branch to release."),
                Input("dest", "Directory to check out into.", SOURCE_DIR),
            ],
            [
                "checkout",
                "--repo",
                ref("repo"),
                "--revision",
                ref("revision"),
                "--dest",
                ref("dest"),
            ],
            retry=pods.idempotent_retry(self.settings),
        )

    def _go_env(self) -> list[Env]:
        cache = pods.GO_CACHE
        # Module settings (GOPROXY, GOPRIVATE, ...) are Go's defaults, then the chart's go.env,
        # then the plan's build.go (canaryflow.build.settings); only the caches are ours.
        return [
            Env(name="CGO_ENABLED", value="0"),
            Env(name="GOCACHE", value=f"{cache}/go-build"),
            Env(name="GOMODCACHE", value=f"{cache}/go-mod"),
            Env(name="GOPATH", value=f"{cache}/go"),
        ]

    def _go_container(self, name, summary, inputs, args, **kwargs) -> Container:
        return self._container(
            name,
            summary,
            inputs,
            args,
            go=True,
            env=self._go_env(),
            volumes=[pods.go_cache_volume(self.settings)],
            mounts=[pods.mount(pods.GO_CACHE_VOLUME, pods.GO_CACHE)],
            identity=pods.build_pod_identity(self.settings),
            **kwargs,
        )

    def go_test(self) -> Container:
        # No retry: a flaky test is a finding, not an infrastructure hiccup.
        return self._go_container(
            "go-test",
            "Run the module's tests (go vet runs with them).",
            [Input("source-dir", "The Go module's directory.", SOURCE_DIR), PLAN],
            ["go-test", "--dir", ref("source-dir"), "--plan", ref("plan")],
        )

    def go_build(self) -> Container:
        return self._go_container(
            "go-build",
            "Build a static (CGO_ENABLED=0), -trimpath binary stamped with the version.",
            [
                Input("source-dir", "The Go module's directory.", SOURCE_DIR),
                Input("version", "Stamped into the binary as main.version (the revision)."),
                Input("package", "Main package to build.", "."),
                Input("out", "Path of the binary to write.", BINARY),
                Input(
                    "platforms-file",
                    "Where to write {os/arch: binary} of the plan's build.platforms.",
                    PLATFORMS_FILE,
                ),
                PLAN,
            ],
            [
                "go-build",
                "--dir",
                ref("source-dir"),
                "--plan",
                ref("plan"),
                "--out",
                ref("out"),
                "--version",
                ref("version"),
                "--package",
                ref("package"),
                "--platforms-from-plan",  # build.platforms: one binary each, one OCI index
                "--platforms-file",
                ref("platforms-file"),
                "--output-file",
                f"{OUTPUTS}/sha256",
            ],
            retry=pods.infrastructure_retry(self.settings),
            outputs=[self._output("sha256", "sha256 of the built binary.", "sha256")],
        )

    def image_push(self) -> Container:
        auth = f"{pods.REGISTRY_AUTH}/.dockerconfigjson"
        return self._container(
            "image-push",
            "Push the binary as an OCI image; outputs the reference pinned by digest.",
            [
                Input(
                    "platforms-file",
                    "go-build's {os/arch: binary}: one image each, under one OCI index.",
                    PLATFORMS_FILE,
                ),
                Input("repository", "Image repository, HOST/REPO."),
                Input("tag", "Tag, the commit being released."),
                PLAN,
            ],
            [
                "image-push",
                "--plan",  # build.image: a prebuilt image is checked and released instead
                ref("plan"),
                "--platforms-file",
                ref("platforms-file"),
                "--repository",
                ref("repository"),
                "--tag",
                ref("tag"),
                "--docker-config",
                auth,
                "--docker-config-optional",  # the Secret is mounted optional: anonymous push
                "--digest-file",
                f"{OUTPUTS}/image",
            ],
            retry=pods.idempotent_retry(self.settings),
            # Global: the exit handler's safety net runs only once an image could be deployed.
            outputs=[
                self._output("image", "HOST/REPO@sha256:... as pushed.", "image", DEPLOYABLE_IMAGE)
            ],
            volumes=[pods.registry_auth_volume(self.settings)],
            mounts=[pods.mount(pods.REGISTRY_VOLUME, pods.REGISTRY_AUTH, read_only=True)],
        )

    def deploy_canary(self) -> Container:
        return self._artifact_verb(
            "deploy-canary", "Create or update the canary Deployment; it gets no traffic yet."
        )

    def _artifact_verb(self, verb: str, description: str, **pod: Sequence) -> Container:
        """A release verb that acts on the canary's pinned image: deploy-canary, promote."""
        return self._container(
            verb,
            description,
            [PLAN, Input("image", "Image pinned by digest."), Input("version", "Version label.")],
            [verb, "--plan", ref("plan"), "--image", ref("image"), "--version", ref("version")],
            retry=pods.idempotent_retry(self.settings),
            **pod,
        )

    def health_gate(self) -> Container:
        return self._container(
            "health-gate",
            "Wait until the canary is ready and its health endpoint answers.",
            [PLAN],
            ["health-gate", "--plan", ref("plan")],
        )

    def set_weight(self, header_route: bool = False) -> Container:
        args = ["set-weight", "--plan", ref("plan"), "--weight", ref("weight")]
        if header_route:
            return self._container(
                "set-weight-with-header-route",
                "Open the canary: the plan's header route, then the first weight.",
                [PLAN, Input("weight", "Percent of traffic on the canary.")],
                [*args, "--header-route"],
                retry=pods.idempotent_retry(self.settings),
            )
        return self._container(
            "set-weight",
            "Send this percent of traffic to the canary and verify the router applied it.",
            [PLAN, Input("weight", "Percent of traffic on the canary.")],
            args,
            retry=pods.idempotent_retry(self.settings),
        )

    def analyze(self) -> Container:
        # No retry: a window that failed must end the release, not get a second chance.
        return self._container(
            "analyze",
            "Run the plan's gates for one step's window (its duration from the plan); at the "
            "first deciding breach or an error set the canary weight to 0, verify, exit 1.",
            [PLAN, Input("step", "Index of the step in the plan.")],
            [
                "analyze",
                "--plan",
                ref("plan"),
                "--step",
                ref("step"),
                # One test per gate for the whole release, carried pod to pod on the canary.
                "--carry-evidence",
                "--fail-safe",
                "--report-file",
                f"{OUTPUTS}/report.json",
                "--verdict-file",
                f"{OUTPUTS}/verdict",
            ],
            outputs=[
                Parameter(
                    name="verdict",
                    description="pass, fail, inconclusive or error; error when the task died "
                    "before deciding.",
                    value_from=m.ValueFrom(path=f"{OUTPUTS}/verdict", default="error"),
                ),
                Parameter(
                    name="report",
                    description="The window's report as JSON; its verdict field says "
                    "pass, fail or inconclusive, failSafe how fast weight 0 was verified.",
                    value_from=m.ValueFrom(path=f"{OUTPUTS}/report.json", default="{}"),
                ),
            ],
        )

    def approve(self) -> Suspend:
        """Waits for a person; a timeout rejects. The one way to answer (README, chart
        README, NOTES.txt and the runbook say the same), with NODE the waiting node's name:
        ``approve`` (a plan step), ``hold`` (an inconclusive step under ``onInconclusive:
        hold``) or ``approve-promotion`` (``promotion.auto: false``):

        Approve: ``argo node set WF --node-field-selector displayName=NODE
        --output-parameter approver=<you>`` then ``argo resume WF --node-field-selector
        displayName=NODE``. Reject: ``argo node set WF --node-field-selector
        displayName=NODE --phase Failed --message <why>``. Both act only on the suspended node
        (Argo's ``SetWorkflow``/``ResumeWorkflow`` skip nodes that are not active suspends), so
        the approvals of earlier steps are never touched. ``approver`` has no default, so a
        suspend that times out cannot be filled in and Argo marks the node Errored
        (argo-workflows#12960): a silent approval by the clock is impossible.
        """
        return Suspend(
            name="approve",
            annotations={"workflows.argoproj.io/description": "Wait for a person's yes."},
            duration=ref("timeout"),
            inputs=[
                Input("message", "What the approver is asked.", "Promote?").parameter(),
                Input("timeout", "Seconds to wait; empty waits forever.", "").parameter(),
            ],
            outputs=[
                Parameter(
                    name="approver",
                    description="Who approved; must be supplied to resume.",
                    value_from=m.ValueFrom(supplied=m.SuppliedValueFrom()),
                )
            ],
        )

    def promote(self) -> Container:
        """In GitOps mode (the plan's promotion.gitops) it pushes to the configuration
        repository: its URL from the chart, the credentials from an optional Secret mounted as
        files (read by canaryflow, never put in the environment)."""
        settings = self.settings
        secret = m.SecretVolumeSource(secret_name=settings.gitops_credentials_secret, optional=True)
        return self._artifact_verb(
            "promote",
            "Make the canary's image the stable one (or commit it to the GitOps repository and "
            "wait for the rollout), then remove the canary.",
            volumes=[m.Volume(name=GITOPS_VOLUME, secret=secret)],
            mounts=[pods.mount(GITOPS_VOLUME, CREDENTIALS_DIR, read_only=True)],
            env=[
                Env(name=REPOSITORY_ENV, value=settings.gitops_repository),
                Env(name=BRANCH_ENV, value=settings.gitops_branch),
                Env(name=API_URL_ENV, value=settings.gitops_api_url),
                Env(name=CREDENTIALS_ENV, value=CREDENTIALS_DIR),
            ],
        )

    def rollback(self) -> Container:
        return self._container(
            "rollback",
            "All traffic back on stable (verified), then remove the canary.",
            [PLAN, Input("reason", "Why, for the record and the notification.")],
            ["rollback", "--plan", ref("plan"), "--reason", ref("reason")],
            retry=pods.idempotent_retry(self.settings),
        )

    def _flag_inputs(self) -> list[Input]:
        return [
            PLAN,
            Input("configmap", "ConfigMap holding the flagd document the service mounts."),
            Input("configmap-key", "Its data key.", "flags.json"),
        ]

    def _flag_args(self, verb: str) -> list[str]:
        return [
            verb,
            "--plan",
            ref("plan"),
            "--platform",
            "kubernetes",
            "--configmap",
            ref("configmap"),
            "--configmap-key",
            ref("configmap-key"),
        ]

    def flag_rollout(self) -> Container:
        # No retry: a rollout that switched its flag off must end, not start over.
        return self._container(
            "flag-rollout",
            "Widen the plan's feature flag step by step, flag-on judged against flag-off; "
            "off again at the first failing gate.",
            self._flag_inputs(),
            self._flag_args("flag-rollout"),
        )

    def flag_off(self) -> Container:
        return self._container(
            "flag-off",
            "Switch the plan's feature flag off for everyone; the exposure is kept as previous.",
            [*self._flag_inputs(), Input("reason", "Why, for the log.")],
            [*self._flag_args("flag-off"), "--reason", ref("reason")],
            retry=pods.idempotent_retry(self.settings),
        )

    def notify(self) -> Container:
        """Webhooks and the commit status; credentials only from optional Secrets: the
        notifications Secret mounted as files (keys named by plans), the tokens as env."""
        settings = self.settings
        secret = m.Volume(
            name=NOTIFICATIONS_VOLUME,
            secret=m.SecretVolumeSource(secret_name=settings.notifications_secret, optional=True),
        )
        tokens = [
            SecretEnv(
                name=env,
                secret_name=settings.git_token_secret,
                secret_key=key,
                optional=True,
            )
            for env, key in (("GITHUB_TOKEN", "github-token"), ("GITLAB_TOKEN", "gitlab-token"))
        ]
        return self._container(
            "notify",
            "Tell the webhooks and the commit how the release is going; never fails it.",
            [
                PLAN,
                Input("event", "started or step; empty: decided from status (exit handler).", ""),
                Input("status", "Workflow status: Succeeded, Failed or Error.", ""),
                Input("workflow", "Workflow name.", ""),
                Input("version", "The revision being released.", ""),
                Input("step", "Plan step a step event is about.", ""),
                Input("failures", "JSON list of the failed nodes.", "[]"),
                Input("traffic-tasks", "Tasks whose failure means a rollback (comma list).", ""),
                Input("safety-net", "Phase of the exit handler's rollback (or flag-off).", ""),
                Input("commit-status-url", "Commit status API URL; empty: none.", ""),
                Input("git-provider", "github or gitlab.", "github"),
                Input("service", "The workflow's service, for when the plan never arrived.", ""),
                Input("namespace", "Its namespace, likewise.", ""),
            ],
            [
                "notify",
                "--plan",
                ref("plan"),
                "--event",
                ref("event"),
                "--status",
                ref("status"),
                "--workflow",
                ref("workflow"),
                "--version",
                ref("version"),
                "--step",
                ref("step"),
                "--failures",
                ref("failures"),
                "--traffic-tasks",
                ref("traffic-tasks"),
                "--safety-net",
                ref("safety-net"),
                "--commit-status-url",
                ref("commit-status-url"),
                "--git-provider",
                ref("git-provider"),
                "--service",
                ref("service"),
                "--namespace",
                ref("namespace"),
                "--secrets-dir",
                NOTIFICATIONS,
            ],
            retry=pods.idempotent_retry(self.settings),
            env=tokens,
            volumes=[secret],
            mounts=[pods.mount(NOTIFICATIONS_VOLUME, NOTIFICATIONS, read_only=True)],
        )


def cluster_task_library(settings: WorkflowSettings) -> ClusterWorkflowTemplate:
    return ClusterWorkflowTemplate(
        name=settings.cluster_tasks_name,
        labels=_labels(),
        templates=TaskLibrary(settings).templates(),
    )


def namespaced_task_library(settings: WorkflowSettings) -> WorkflowTemplate:
    return WorkflowTemplate(
        name=settings.cluster_tasks_name,
        namespace=settings.namespace,
        labels=_labels(),
        templates=TaskLibrary(settings).templates(),
    )


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": "canaryflow", "app.kubernetes.io/component": "tasks"}
