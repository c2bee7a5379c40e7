"""GitOps mode, end to end: a real Git server (``git daemon`` on loopback), the fake API server,
and a stand-in for Argo CD (auto-sync, self-heal, prune, label tracking, ignoreDifferences by
JSON pointer; ``argocd_standin.py``) syncing the service from that repository.

Promotion writes the digest to Git and waits for the sync to roll stable; canaryflow never
writes stable itself. The canary is never pruned, the router weights survive self-heal once
the generated ``ignoreDifferences`` is applied (and do not without it), and a promotion
nobody rolls out in time ends with the canary gone and "gitops promotion not observed".
"""

from __future__ import annotations

import copy
import subprocess
import threading
import time

import pytest
import yaml
from argocd_standin import FLUX_NAME, INSTANCE_LABEL, ArgoCdStandIn, FluxStandIn
from git_server import GIT_ENV, GitDaemon, git
from kube.fixtures import (
    CANARY_IMAGE,
    HTTP_ROUTE,
    NAMESPACE,
    SERVICE,
    STABLE_DEPLOYMENT,
    STABLE_IMAGE,
    STABLE_SERVICE,
    api_server,
    write_kubeconfig,
)
from test_kubernetes_platform import FAST_RETRY, V2, event_reasons

from canaryflow.errors import InputError, PlatformError
from canaryflow.kubernetes import canary_objects
from canaryflow.kubernetes.canary_objects import HealthCheck
from canaryflow.kubernetes.gitops.git import GitCheckout
from canaryflow.kubernetes.gitops.promotion import GitOpsPromotion
from canaryflow.kubernetes.gitops.snippet import snippet
from canaryflow.kubernetes.health import rollout_progress
from canaryflow.kubernetes.platform import KubernetesPlatform, Timeouts
from canaryflow.kubernetes.resources import DEPLOYMENT
from canaryflow.kubernetes.routers import make_router
from canaryflow.plan.load import load_plan
from canaryflow.plan.model import ReleasePlan

__all__ = ["api_server"]

APP_PATH = "apps/checkout"
MANIFESTS = f"{APP_PATH}/manifests.yaml"
PLAN = {
    "service": {"name": SERVICE, "namespace": NAMESPACE},
    "router": {"kind": "gateway-api"},
    "promotion": {"gitops": {"path": MANIFESTS, "format": "manifest", "timeout": "20s"}},
}


def plan_with(**gitops) -> ReleasePlan:
    plan = copy.deepcopy(PLAN)
    plan["promotion"]["gitops"].update(gitops)
    return ReleasePlan.model_validate(plan)


def in_git(obj: dict) -> dict:
    """The object as the platform team keeps it in Git (no namespace: the Application's)."""
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("namespace", None)
    return obj


@pytest.fixture(autouse=True)
def no_git_on_path(tmp_path, monkeypatch):
    """canaryflow runs with a PATH that holds no git, as in the runtime image; the servers and
    stand-ins (real git) name their own PATH."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def daemon(tmp_path):
    base = tmp_path / "git"
    base.mkdir()
    with GitDaemon(base) as server:
        text = yaml.safe_dump_all(
            [in_git(o) for o in (STABLE_DEPLOYMENT, STABLE_SERVICE, HTTP_ROUTE)],
            sort_keys=False,
        )
        server.create("config.git", {MANIFESTS: "# checkout, as deployed\n" + text})
        yield server


def argocd(api, daemon, plan: ReleasePlan | None, paused: bool = False) -> ArgoCdStandIn:
    """Argo CD following the repository; with the plan's generated ignoreDifferences applied
    (``plan``), or none at all (None)."""
    ignore, respect = [], False
    if plan is not None:
        application = yaml.safe_load(snippet(plan, "argocd"))["spec"]
        ignore = application["ignoreDifferences"]
        respect = "RespectIgnoreDifferences=true" in application["syncPolicy"]["syncOptions"]
    standin = ArgoCdStandIn(
        api,
        daemon.url("config.git"),
        APP_PATH,
        SERVICE,
        NAMESPACE,
        ignore_differences=ignore,
        respect_ignore_differences=respect,
    )
    standin.paused = paused
    return standin


def gitops_platform(api, daemon, plan: ReleasePlan, credentials=None) -> KubernetesPlatform:
    client = api.api_client()
    router = make_router("gateway-api", client, NAMESPACE, SERVICE, retry=FAST_RETRY)
    promotion = GitOpsPromotion(
        plan.promotion.gitops, daemon.url("config.git"), credentials, poll_s=0.05
    )
    timeouts = Timeouts(verify_weight_s=2, canary_scale_s=2, poll_s=0.02)
    return KubernetesPlatform(
        client,
        NAMESPACE,
        SERVICE,
        router,
        canary_replicas=1,
        timeouts=timeouts,
        retry=FAST_RETRY,
        gitops=promotion,
    )


def stable_image(api) -> str:
    stable = api.get("Deployment", NAMESPACE, SERVICE)
    return stable["spec"]["template"]["spec"]["containers"][0]["image"]


def canaryflow_writes_to_stable(api) -> list:
    return [w for w in api.writes() if w.name == SERVICE and w.kind in ("Deployment", "Service")]


# -- promotion through Git ----------------------------------------------------------------------


def test_promotion_commits_the_digest_and_waits_for_the_sync_to_roll_stable(api_server, daemon):
    plan = plan_with()
    with argocd(api_server, daemon, plan) as standin:
        platform = gitops_platform(api_server, daemon, plan)
        platform.deploy_canary(V2)
        platform.router.set_weight(50)
        standin.wait_syncs()
        api_server.requests.clear()

        platform.promote(V2)

    manifests = list(yaml.safe_load_all(daemon.show("config.git", MANIFESTS)))
    deployment = manifests[0]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == CANARY_IMAGE
    assert manifests[1:] == [in_git(STABLE_SERVICE), in_git(HTTP_ROUTE)]
    assert daemon.show("config.git", MANIFESTS).startswith("# checkout, as deployed\n")
    assert daemon.log("config.git")[0] == f"canaryflow|canaryflow: promote {SERVICE} to v2"
    assert stable_image(api_server) == CANARY_IMAGE
    assert canaryflow_writes_to_stable(api_server) == []
    assert api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
    assert {"GitOpsCommitted", "Promoted"} <= set(event_reasons(api_server))


def test_a_promotion_nobody_rolls_out_removes_the_canary_and_says_so(api_server, daemon):
    plan = plan_with(timeout="1s")
    with argocd(api_server, daemon, plan) as standin:
        platform = gitops_platform(api_server, daemon, plan)
        platform.deploy_canary(V2)
        platform.router.set_weight(50)
        standin.paused = True  # Argo CD down, or the Application not auto-syncing
        api_server.requests.clear()

        with pytest.raises(PlatformError, match=r"^gitops promotion not observed: deployment"):
            platform.promote(V2)

    assert stable_image(api_server) == STABLE_IMAGE
    assert canaryflow_writes_to_stable(api_server) == []
    assert api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
    route = api_server.get("HTTPRoute", NAMESPACE, SERVICE)
    assert route["spec"]["rules"] == HTTP_ROUTE["spec"]["rules"]
    assert "GitOpsPromotionNotObserved" in event_reasons(api_server)
    assert "Promoted" not in event_reasons(api_server)


def test_a_merge_request_branch_is_promoted_once_someone_merges_it(api_server, daemon):
    plan = plan_with(mode="merge-request")
    branch = f"canaryflow/{SERVICE}/v2"
    bare = daemon.base / "config.git"

    def merge_when_pushed() -> None:  # the reviewer
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                cwd=bare,
                env=GIT_ENV,
                capture_output=True,
                text=True,
            )
            if found.returncode == 0:
                assert "sha256:" + "1" * 64 in daemon.show("config.git", MANIFESTS)  # not yet
                git("update-ref", "refs/heads/main", found.stdout.strip(), cwd=bare)
                return
            time.sleep(0.05)

    with argocd(api_server, daemon, plan):
        platform = gitops_platform(api_server, daemon, plan)
        platform.deploy_canary(V2)
        reviewer = threading.Thread(target=merge_when_pushed)
        reviewer.start()
        platform.promote(V2)
        reviewer.join()

    assert daemon.log("config.git", branch)[0].endswith(f"promote {SERVICE} to v2")
    assert stable_image(api_server) == CANARY_IMAGE


def test_a_rerun_after_the_commit_landed_pushes_nothing_new(api_server, daemon):
    plan = plan_with()
    with argocd(api_server, daemon, plan):
        platform = gitops_platform(api_server, daemon, plan)
        platform.deploy_canary(V2)
        platform.promote(V2)
        platform.deploy_canary(V2)  # the workflow step retried
        platform.promote(V2)

    assert len(daemon.log("config.git")) == 2  # the seed and one promotion


def test_a_retried_promote_after_not_observed_is_truthful_either_way(api_server, daemon):
    """Argo retries the promote step that exited 1 ("not observed"); by then the canary is gone
    and the commit is on main. The retry pushes nothing: while nobody syncs it fails the same
    way, and once Argo CD rolled stable it says promoted, but only when every pod is available
    (ready for ``minReadySeconds``), as ``kubectl rollout status`` judges a rollout."""
    with GitCheckout(daemon.url("config.git"), "main") as checkout:
        checkout.clone()
        documents = list(yaml.safe_load_all(checkout.read(MANIFESTS)))
        documents[0]["spec"]["minReadySeconds"] = 1
        text = yaml.safe_dump_all(documents, sort_keys=False)
        checkout.commit(MANIFESTS, text, "stable: minReadySeconds")
        checkout.push("main")
    plan = plan_with(timeout="3s")
    with argocd(api_server, daemon, plan) as standin:
        platform = gitops_platform(api_server, daemon, plan)
        standin.wait_syncs()
        deadline = time.monotonic() + 20
        while not rollout_progress(platform.api.get(DEPLOYMENT, SERVICE)).done:
            assert time.monotonic() < deadline, "stable never became available"
            time.sleep(0.05)
        platform.deploy_canary(V2)
        platform.router.set_weight(50)
        standin.paused = True
        with pytest.raises(PlatformError, match=r"^gitops promotion not observed") as first:
            platform.promote(V2)

        with pytest.raises(PlatformError) as retried:  # nobody synced yet
            platform.promote(V2)
        standin.paused = False
        standin.wait_syncs()
        platform.promote(V2)  # Argo CD synced: the pods are ready, not yet available
        status = api_server.get("Deployment", NAMESPACE, SERVICE)["status"]

    assert str(retried.value) == str(first.value)
    assert stable_image(api_server) == CANARY_IMAGE
    assert (status["readyReplicas"], status.get("availableReplicas", 0)) == (3, 3)
    assert len(daemon.log("config.git")) == 3  # the seed, minReadySeconds, one promotion
    assert event_reasons(api_server).count("Promoted") == 1


# -- what self-heal and prune do to the canary and the routes ----------------------------------


@pytest.mark.parametrize("ignored", [True, False], ids=["ignoreDifferences", "none"])
def test_self_heal_keeps_the_router_weights_only_with_the_generated_ignore_differences(
    api_server, daemon, ignored
):
    plan = plan_with()
    with argocd(api_server, daemon, plan if ignored else None) as standin:
        platform = gitops_platform(api_server, daemon, plan)
        standin.paused = True  # the edits land between two syncs
        platform.deploy_canary(V2)
        platform.router.set_weight(25)
        assert platform.router.verify_weight(25)
        standin.paused = False
        standin.wait_syncs()

        assert platform.router.verify_weight(25) is ignored
        rules = api_server.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
        assert (rules == HTTP_ROUTE["spec"]["rules"]) is not ignored


@pytest.mark.parametrize("flux_object", ["kustomization", "ssa-annotation", None])
def test_flux_drift_correction_keeps_the_router_weights_only_with_the_generated_snippet(
    api_server, daemon, flux_object
):
    plan = plan_with(tool="flux")
    spec = yaml.safe_load(snippet(plan, "flux", flux_object))["spec"] if flux_object else {}
    standin = FluxStandIn(
        api_server,
        daemon.url("config.git"),
        APP_PATH,
        SERVICE,
        NAMESPACE,
        patches=spec.get("patches", []),
        ignore=spec.get("ignore", []),
    )
    patched = flux_object is not None
    with standin:
        stable = api_server.get("Deployment", NAMESPACE, SERVICE)
        assert stable["metadata"]["labels"][FLUX_NAME] == SERVICE
        platform = gitops_platform(api_server, daemon, plan)
        standin.paused = True
        platform.deploy_canary(V2)
        platform.router.set_weight(25)
        standin.paused = False
        standin.wait_syncs()

        assert platform.router.verify_weight(25) is patched
        canary = api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary")
        assert canary is not None and FLUX_NAME not in canary["metadata"]["labels"]


def test_flux_rolls_out_the_promotion_commit(api_server, daemon):
    plan = plan_with(tool="flux")
    ignore = yaml.safe_load(snippet(plan, "flux"))["spec"]["ignore"]
    standin = FluxStandIn(
        api_server, daemon.url("config.git"), APP_PATH, SERVICE, NAMESPACE, ignore=ignore
    )
    with standin:
        platform = gitops_platform(api_server, daemon, plan)
        platform.deploy_canary(V2)
        platform.router.set_weight(50)
        platform.promote(V2)

    assert stable_image(api_server) == CANARY_IMAGE
    assert canaryflow_writes_to_stable(api_server) == []
    assert (
        api_server.get("HTTPRoute", NAMESPACE, SERVICE)["spec"]["rules"]
        == (HTTP_ROUTE["spec"]["rules"])
    )


def test_the_canary_is_not_pruned_while_an_object_carrying_the_tracking_label_is(
    api_server, daemon
):
    plan = plan_with()
    with argocd(api_server, daemon, plan) as standin:
        stable = api_server.get("Deployment", NAMESPACE, SERVICE)
        assert stable["metadata"]["labels"][INSTANCE_LABEL] == SERVICE  # tracked by label
        platform = gitops_platform(api_server, daemon, plan)
        platform.deploy_canary(V2)
        impostor = copy.deepcopy(STABLE_DEPLOYMENT)
        impostor["metadata"]["name"] = "checkout-copy"
        impostor["metadata"]["labels"] = {"app": SERVICE, INSTANCE_LABEL: SERVICE}
        api_server.seed(impostor)
        standin.wait_syncs()

        assert api_server.get("Deployment", NAMESPACE, "checkout-copy") is None
        canary = api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary")
        assert canary is not None and INSTANCE_LABEL not in canary["metadata"]["labels"]
        assert api_server.get("Service", NAMESPACE, f"{SERVICE}-canary") is not None


def test_canary_objects_leave_argocd_and_flux_tracking_keys_behind():
    stable = copy.deepcopy(STABLE_DEPLOYMENT)
    stable["metadata"]["labels"] |= {
        INSTANCE_LABEL: "shop",
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
        "team": "payments",
    }
    template = stable["spec"]["template"]["metadata"]
    template["labels"] |= {INSTANCE_LABEL: "shop", "helm.toolkit.fluxcd.io/name": "checkout"}
    template["annotations"] = {
        "argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/checkout",
        "prometheus.io/scrape": "true",
    }
    service = copy.deepcopy(STABLE_SERVICE)
    service["metadata"]["labels"] = {"helm.toolkit.fluxcd.io/namespace": "flux", "team": "pay"}

    canary = canary_objects.canary_deployment(stable, SERVICE, CANARY_IMAGE, "v2", 1, HealthCheck())
    canary_service = canary_objects.canary_service(service, SERVICE)

    assert canary["metadata"]["labels"] == {
        "app": SERVICE,
        "team": "payments",
        "version": "v2",
        "canaryflow.dev/track": "canary",
        "app.kubernetes.io/managed-by": "canaryflow",
    }
    pod = canary["spec"]["template"]["metadata"]
    # a pod is owned by its ReplicaSet, never an Argo CD root; Services may select on it
    assert pod["labels"][INSTANCE_LABEL] == "shop"
    assert "helm.toolkit.fluxcd.io/name" not in pod["labels"]
    assert pod["annotations"] == {"prometheus.io/scrape": "true"}
    assert canary_service["metadata"]["labels"]["team"] == "pay"
    assert not any("fluxcd" in key for key in canary_service["metadata"]["labels"])


# -- nothing from the plan is an option or a secret ---------------------------------------------


@pytest.mark.parametrize(
    ("gitops", "field"),
    [
        ({"branch": "--upload-pack=touch /tmp/x"}, "promotion.gitops.branch"),
        ({"path": "-rf.yaml"}, "promotion.gitops.path"),
        ({"path": "apps/../../etc/x.yaml"}, "promotion.gitops.path"),
        ({"repository": "https://bot:token@git.example.com/org/config.git"}, "repository"),
        ({"repository": "ext::sh -c touch% /tmp/x"}, "promotion.gitops.repository"),
        ({"format": "helm-values"}, "promotion.gitops.key"),
        ({"key": "image.digest"}, "promotion.gitops.key"),
    ],
)
def test_plan_values_that_git_could_read_as_options_or_secrets_are_refused(gitops, field):
    plan = copy.deepcopy(PLAN)
    plan["promotion"]["gitops"].update(gitops)

    with pytest.raises(InputError) as refused:
        load_plan(yaml.safe_dump({"apiVersion": "canaryflow.dev/v1alpha1", **plan}))

    assert any(field in error.path for error in refused.value.errors), refused.value


def test_a_push_that_lost_a_race_is_redone_on_the_new_tip(api_server, daemon, monkeypatch):
    plan = plan_with()
    commit = GitCheckout.commit
    raced = []

    def someone_pushes_first(self, path, text, message):  # between our clone and our push
        if not raced:
            other = daemon.base / "colleague"
            git("clone", "--quiet", daemon.url("config.git"), str(other), cwd=daemon.base)
            (other / "apps/payments.yaml").write_text("kind: Namespace\n")
            git("add", "--all", cwd=other)
            git("commit", "--quiet", "--message=payments app", cwd=other)
            git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=other)
            raced.append(True)
        return commit(self, path, text, message)

    monkeypatch.setattr(GitCheckout, "commit", someone_pushes_first)
    with argocd(api_server, daemon, plan):
        platform = gitops_platform(api_server, daemon, plan)
        platform.deploy_canary(V2)
        platform.promote(V2)

    subjects = [line.split("|", 1)[1] for line in daemon.log("config.git")]
    assert subjects[:2] == [f"canaryflow: promote {SERVICE} to v2", "payments app"]
    assert CANARY_IMAGE in daemon.show("config.git", MANIFESTS)
    assert stable_image(api_server) == CANARY_IMAGE


def test_a_kustomization_image_is_promoted_through_kustomizes_images_transformer(
    api_server, tmp_path
):
    base = tmp_path / "git"
    base.mkdir()
    repository = CANARY_IMAGE.split("@")[0]
    kustomization = (
        "# checkout overlay\nresources:\n  - manifests.yaml\nimages:\n"
        f"  - name: {repository}\n    newTag: v1  # the first release\n"
    )
    manifests = yaml.safe_dump_all(
        [in_git(o) for o in (STABLE_DEPLOYMENT, STABLE_SERVICE, HTTP_ROUTE)], sort_keys=False
    )
    plan = plan_with(path=f"{APP_PATH}/kustomization.yaml", format="kustomization")
    with GitDaemon(base) as server:
        server.create(
            "config.git",
            {f"{APP_PATH}/kustomization.yaml": kustomization, MANIFESTS: manifests},
        )
        with argocd(api_server, server, plan):
            assert stable_image(api_server) == f"{repository}:v1"  # the tag, as kustomize sets
            platform = gitops_platform(api_server, server, plan)
            platform.deploy_canary(V2)
            platform.promote(V2)
        written = yaml.safe_load(server.show("config.git", f"{APP_PATH}/kustomization.yaml"))

    assert written["images"] == [{"name": repository, "digest": CANARY_IMAGE.split("@")[1]}]
    assert stable_image(api_server) == CANARY_IMAGE


CHART_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicaCount }}
  selector: {matchLabels: {app: {{ .Release.Name }}, version: v1}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}, version: v1}}
    spec:
      containers:
        - name: {{ .Release.Name }}
          image: "{{ .Values.image.repository }}@{{ .Values.image.digest }}"
"""


def test_a_helm_values_digest_is_promoted_through_the_rendered_chart(api_server, tmp_path):
    base = tmp_path / "git"
    base.mkdir()
    repository, digest = CANARY_IMAGE.split("@")
    values = (
        "replicaCount: 2\nimage:\n  repository: registry.local/checkout\n"
        f"  # written by canaryflow\n  digest: {STABLE_IMAGE.split('@')[1]}\n"
    )
    files = {
        f"{APP_PATH}/Chart.yaml": "apiVersion: v2\nname: checkout\nversion: 0.1.0\n",
        f"{APP_PATH}/values.yaml": values,
        f"{APP_PATH}/templates/deployment.yaml": CHART_DEPLOYMENT,
        f"{APP_PATH}/templates/rest.yaml": yaml.safe_dump_all(
            [in_git(STABLE_SERVICE), in_git(HTTP_ROUTE)], sort_keys=False
        ),
    }
    plan = plan_with(
        path=f"{APP_PATH}/values.yaml", format="helm-values", key="image.digest", value="digest"
    )
    with GitDaemon(base) as server:
        server.create("config.git", files)
        with argocd(api_server, server, plan):
            assert stable_image(api_server) == STABLE_IMAGE
            platform = gitops_platform(api_server, server, plan)
            platform.deploy_canary(V2)
            platform.router.set_weight(50)
            platform.promote(V2)
        written = server.show("config.git", f"{APP_PATH}/values.yaml")

    assert written == values.replace(STABLE_IMAGE.split("@")[1], digest)  # comment kept
    assert stable_image(api_server) == f"{repository}@{digest}"
    assert canaryflow_writes_to_stable(api_server) == []


@pytest.mark.parametrize(
    ("router", "tool", "says"),
    [
        ("gateway-api", "argocd", "/spec/rules"),
        ("istio", "argocd", "/spec/http"),
        ("smi", "flux", "- /spec/backends"),
        ("nginx-ingress", "argocd", "nothing to add"),
    ],
)
def test_gitops_snippet_prints_what_the_tool_needs_for_each_router(
    tmp_path, capsys, router, tool, says
):
    from canaryflow.cli import main

    plan = copy.deepcopy(PLAN)
    plan["router"] = {"kind": router, **({"header": None} if router == "smi" else {})}
    path = tmp_path / "canaryflow.yaml"
    path.write_text(yaml.safe_dump(plan))

    assert main(["gitops-snippet", "--plan", str(path), "--tool", tool]) == 0

    out = capsys.readouterr().out
    assert says in out
    document = yaml.safe_load(out)
    if tool == "argocd" and router != "nginx-ingress":
        (rule,) = document["spec"]["ignoreDifferences"]
        assert rule["namespace"] == NAMESPACE and rule["name"] == SERVICE
        assert "/metadata/annotations/canaryflow.dev~1original-route" in rule["jsonPointers"]
    if tool == "flux":
        (rule,) = document["spec"]["ignore"]
        assert rule["target"] == {
            "group": r"^split\.smi-spec\.io$",
            "kind": "TrafficSplit",
            "name": f"^{SERVICE}$",
            "namespace": f"^{NAMESPACE}$",
        }


def test_gitops_snippet_on_a_bad_plan_exits_2(tmp_path, capsys):
    from canaryflow.cli import main

    path = tmp_path / "canaryflow.yaml"
    path.write_text(yaml.safe_dump({"service": {"name": SERVICE}, "router": {"kind": "linkerd"}}))

    assert main(["gitops-snippet", "--plan", str(path)]) == 2
    assert "router.kind" in capsys.readouterr().err


def test_without_a_repository_from_plan_or_chart_promote_changes_nothing_and_says_where(
    api_server, daemon
):
    from canaryflow.kubernetes.from_plan import gitops_promotion

    plan = plan_with()
    for obj in (STABLE_DEPLOYMENT, STABLE_SERVICE, HTTP_ROUTE):
        api_server.seed(obj)
    platform = gitops_platform(api_server, daemon, plan)
    platform.gitops = gitops_promotion(plan, environ={})
    platform.deploy_canary(V2)
    api_server.requests.clear()

    with pytest.raises(InputError, match=r"^promotion.gitops.repository: not set: set it in"):
        platform.promote(V2)

    assert api_server.writes() == []
    chart = {"CANARYFLOW_GITOPS_REPOSITORY": "https://git.example.com/platform/config.git"}
    assert gitops_promotion(plan, environ=chart).repository == chart["CANARYFLOW_GITOPS_REPOSITORY"]


def test_the_promote_verb_takes_the_repository_from_the_chart_environment(
    api_server, daemon, tmp_path, monkeypatch, capsys
):
    from canaryflow.cli import main

    plan = copy.deepcopy(PLAN)
    plan["router"]["drain"] = 0
    path = tmp_path / "canaryflow.yaml"
    path.write_text(yaml.safe_dump(plan))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_server.url)
    monkeypatch.setenv("CANARYFLOW_GITOPS_REPOSITORY", daemon.url("config.git"))
    artifact = ["--image", CANARY_IMAGE, "--version", "v2"]
    with argocd(api_server, daemon, ReleasePlan.model_validate(plan)):
        cluster = ["--plan", str(path), "--kubeconfig", str(kubeconfig)]
        assert main(["deploy-canary", *cluster, *artifact]) == 0
        api_server.requests.clear()
        assert main(["promote", *cluster, *artifact]) == 0

    assert f"{SERVICE} now runs {CANARY_IMAGE}" in capsys.readouterr().out
    assert stable_image(api_server) == CANARY_IMAGE
    assert canaryflow_writes_to_stable(api_server) == []
    assert daemon.log("config.git")[0].startswith("canaryflow|")


def test_a_plan_without_a_branch_follows_the_charts_branch(api_server, tmp_path):
    from canaryflow.kubernetes.from_plan import gitops_promotion

    base = tmp_path / "git"
    base.mkdir()
    plan = plan_with()
    assert plan.promotion.gitops.branch is None
    chart = {"CANARYFLOW_GITOPS_BRANCH": "production"}
    assert gitops_promotion(plan_with(branch="main"), environ=chart).base_branch == "main"
    with GitDaemon(base) as server:
        text = yaml.safe_dump_all(
            [in_git(o) for o in (STABLE_DEPLOYMENT, STABLE_SERVICE, HTTP_ROUTE)], sort_keys=False
        )
        server.create("config.git", {MANIFESTS: text}, branch="production")
        with argocd(api_server, server, plan):
            platform = gitops_platform(api_server, server, plan)
            platform.gitops = gitops_promotion(
                plan, environ={**chart, "CANARYFLOW_GITOPS_REPOSITORY": server.url("config.git")}
            )
            platform.gitops.poll_s = 0.05
            platform.deploy_canary(V2)
            platform.promote(V2)
        log = server.log("config.git", "production")

    assert log[0] == f"canaryflow|canaryflow: promote {SERVICE} to v2"
    assert stable_image(api_server) == CANARY_IMAGE
