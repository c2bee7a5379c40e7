"""GitOps mode with ``mode: merge-request``: the promotion is a merge request on the forge.

End to end against a real Git server (``git daemon``), the fake API server, Argo CD's stand-in
syncing ``main``, and a stand-in for GitHub's and GitLab's merge request APIs
(``forge_standin.py``, shapes from the providers' documentation) whose reviewer merges,
closes, or never answers. Promote pushes the branch, opens the request, and waits for the
Deployment to run the digest; a request nobody merges in time is closed, the canary removed,
stable left serving 100 %.
"""

from __future__ import annotations

import copy
import time

import pytest
import yaml
from forge_standin import ForgeStandIn
from git_server import git
from kube.fixtures import (
    CANARY_IMAGE,
    HTTP_ROUTE,
    NAMESPACE,
    SERVICE,
    STABLE_IMAGE,
    api_server,
    write_kubeconfig,
)
from test_gitops_promotion import (
    MANIFESTS,
    PLAN,
    argocd,
    canaryflow_writes_to_stable,
    daemon,
    no_git_on_path,
    plan_with,
    stable_image,
)
from test_kubernetes_platform import FAST_RETRY, V2, event_reasons

from canaryflow.errors import InputError, PlatformError
from canaryflow.kubernetes.gitops.forge import (
    ForgeError,
    GitHub,
    GitLab,
    default_api_url,
    default_project,
)
from canaryflow.kubernetes.gitops.promotion import GitOpsPromotion
from canaryflow.kubernetes.platform import KubernetesPlatform, Timeouts
from canaryflow.kubernetes.routers import make_router
from canaryflow.plan.load import load_plan
from canaryflow.plan.model import ReleasePlan

__all__ = ["api_server", "daemon", "no_git_on_path"]

PROJECT = "platform/config"
TOKEN = "glpat-s3cr3t-forge-token"
BRANCH = f"canaryflow/{SERVICE}/v2"
PROVIDERS = ["github", "gitlab"]


def mr_plan(provider: str, **gitops) -> ReleasePlan:
    return plan_with(**{"mode": "merge-request", "provider": provider, "project": PROJECT} | gitops)


@pytest.fixture
def credentials(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "username").write_text("deploy-bot\n")
    (secret / "password").write_text(TOKEN + "\n")
    return secret


def forge_standin(daemon, provider: str, reviewer: str, token: str = TOKEN) -> ForgeStandIn:
    return ForgeStandIn(provider, daemon.base / "config.git", PROJECT, token, reviewer)


def mr_platform(api, daemon, plan, forge: ForgeStandIn, credentials) -> KubernetesPlatform:
    client = api.api_client()
    promotion = GitOpsPromotion(
        plan.promotion.gitops,
        daemon.url("config.git"),
        credentials,
        api_url=forge.api,
        poll_s=0.05,
        forge_poll_s=0.1,
    )
    return KubernetesPlatform(
        client,
        NAMESPACE,
        SERVICE,
        make_router("gateway-api", client, NAMESPACE, SERVICE, retry=FAST_RETRY),
        canary_replicas=1,
        timeouts=Timeouts(verify_weight_s=2, canary_scale_s=2, poll_s=0.02),
        retry=FAST_RETRY,
        gitops=promotion,
    )


def event_messages(api) -> list[str]:
    return [e["message"] for e in api.objects("Event", NAMESPACE)]


def branch_exists(daemon, branch: str) -> bool:
    heads = git("for-each-ref", "--format=%(refname)", "refs/heads", cwd=daemon.base / "config.git")
    return f"refs/heads/{branch}" in heads.split()


# -- the whole promotion ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_promotion_opens_a_merge_request_and_waits_until_the_merge_is_rolled_out(
    api_server, daemon, credentials, provider
):
    plan = mr_plan(provider)
    with forge_standin(daemon, provider, "merge") as forge, argocd(api_server, daemon, plan):
        platform = mr_platform(api_server, daemon, plan, forge, credentials)
        platform.deploy_canary(V2)
        platform.router.set_weight(50)
        api_server.requests.clear()
        started = time.monotonic()

        platform.promote(V2)

        print(f"{provider}: merge-request promotion took {time.monotonic() - started:.2f}s")

    (request,) = forge.requests
    assert (request.head, request.base, request.state) == (BRANCH, "main", "merged")
    assert request.title == f"canaryflow: promote {SERVICE} to v2"
    assert CANARY_IMAGE in request.body
    # opened before anything reached main; main got it only through the merge
    assert CANARY_IMAGE not in daemon.show("config.git", MANIFESTS, ref=request.base_at_open)
    assert CANARY_IMAGE in daemon.show("config.git", MANIFESTS)
    assert all(call.authorized for call in forge.calls)
    assert stable_image(api_server) == CANARY_IMAGE
    assert canaryflow_writes_to_stable(api_server) == []
    assert api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
    reasons = event_reasons(api_server)
    assert reasons.index("GitOpsMergeRequestOpened") < reasons.index("Promoted")
    assert not any(TOKEN in message for message in event_messages(api_server))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_merge_request_nobody_merges_is_closed_and_stable_keeps_serving(
    api_server, daemon, credentials, provider
):
    """Closed by canaryflow, and its branch deleted: nobody reopens it and merges the digest
    later with no canary left to compare."""
    plan = mr_plan(provider, timeout="1s")
    with forge_standin(daemon, provider, "never") as forge, argocd(api_server, daemon, plan):
        platform = mr_platform(api_server, daemon, plan, forge, credentials)
        platform.deploy_canary(V2)
        platform.router.set_weight(50)
        api_server.requests.clear()

        with pytest.raises(PlatformError) as failed:
            platform.promote(V2)

    assert str(failed.value).startswith("gitops promotion not merged: ")
    assert "was not merged within 1s, so canaryflow closed it" in str(failed.value)
    assert f"the branch {daemon.url('config.git')} {BRANCH} pushed for it was deleted" in str(
        failed.value
    )
    assert "serves 100 %" in str(failed.value)
    (request,) = forge.requests
    assert request.state == "closed"
    assert not branch_exists(daemon, BRANCH)
    assert [c.method for c in forge.calls if c.method in ("PATCH", "PUT")] == [
        "PATCH" if provider == "github" else "PUT"
    ]
    assert CANARY_IMAGE not in daemon.show("config.git", MANIFESTS)
    assert stable_image(api_server) == STABLE_IMAGE
    assert canaryflow_writes_to_stable(api_server) == []
    assert api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None
    route = api_server.get("HTTPRoute", NAMESPACE, SERVICE)
    assert route["spec"]["rules"] == HTTP_ROUTE["spec"]["rules"]  # weight back to stable
    assert "GitOpsPromotionNotObserved" in event_reasons(api_server)
    assert "Promoted" not in event_reasons(api_server)


def test_a_merge_request_closed_by_a_reviewer_ends_the_wait_without_closing_it_again(
    api_server, daemon, credentials
):
    plan = mr_plan("github", timeout="10m")
    with forge_standin(daemon, "github", "close") as forge, argocd(api_server, daemon, plan):
        platform = mr_platform(api_server, daemon, plan, forge, credentials)
        platform.deploy_canary(V2)

        with pytest.raises(PlatformError, match="was closed without merging"):
            platform.promote(V2)

    assert [c.method for c in forge.calls if c.method == "PATCH"] == []
    assert forge.requests[0].state == "closed"
    assert not branch_exists(daemon, BRANCH)  # the branch pushed for it goes with it
    assert stable_image(api_server) == STABLE_IMAGE
    assert api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_promotion_stopped_while_it_waits_for_the_merge_closes_the_request_and_its_branch(
    api_server, daemon, credentials, provider
):
    """``argo stop`` while promote waits for a reviewer: the exit handler's rollback removes
    the canary, so the request must not stay open to be merged later with no canary."""
    plan = mr_plan(provider, timeout="10m")
    with forge_standin(daemon, provider, "never") as forge, argocd(api_server, daemon, plan):
        platform = mr_platform(api_server, daemon, plan, forge, credentials)
        platform.deploy_canary(V2)

        def sigterm(seconds: float) -> None:
            raise KeyboardInterrupt("signal 15")

        platform.gitops.sleep = sigterm
        with pytest.raises(KeyboardInterrupt):
            platform.promote(V2)

    (request,) = forge.requests
    assert request.state == "closed"
    assert not branch_exists(daemon, BRANCH)
    assert stable_image(api_server) == STABLE_IMAGE


def test_a_closed_requests_branch_someone_pushed_to_is_left_as_it_is(
    api_server, daemon, credentials
):
    """Only the commit this promotion pushed is deleted: a branch a person pushed to while
    the request was open is theirs now."""
    plan = mr_plan("github", timeout="2s")
    bare = daemon.base / "config.git"
    main = git("rev-parse", "refs/heads/main", cwd=bare).strip()
    with forge_standin(daemon, "github", "never") as forge, argocd(api_server, daemon, plan):
        platform = mr_platform(api_server, daemon, plan, forge, credentials)
        platform.deploy_canary(V2)

        def someone_pushes(seconds: float) -> None:
            if forge.requests and branch_exists(daemon, BRANCH):
                git("update-ref", f"refs/heads/{BRANCH}", main, cwd=bare)
            time.sleep(seconds)

        platform.gitops.sleep = someone_pushes
        with pytest.raises(PlatformError) as failed:
            platform.promote(V2)

    assert f"the branch {daemon.url('config.git')} {BRANCH} moved on since the push" in str(
        failed.value
    )
    assert forge.requests[0].state == "closed"
    assert git("rev-parse", f"refs/heads/{BRANCH}", cwd=bare).strip() == main


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_merge_request_the_forge_refuses_to_open_leaves_no_branch_behind(
    api_server, daemon, credentials, provider
):
    """The token may push but not open a request: the branch pushed for it is deleted again
    (a push deleting the ref), main is untouched, and the failure says both."""
    plan = mr_plan(provider)
    main_before = git("rev-parse", "refs/heads/main", cwd=daemon.base / "config.git")
    with forge_standin(daemon, provider, "merge") as forge, argocd(api_server, daemon, plan):
        forge.refuse_open = 403
        platform = mr_platform(api_server, daemon, plan, forge, credentials)
        platform.deploy_canary(V2)

        with pytest.raises(PlatformError) as failed:
            platform.promote(V2)

    message = str(failed.value)
    assert message.startswith("gitops merge request not opened: ")
    assert "HTTP 403" in message
    assert f"the branch {daemon.url('config.git')} {BRANCH} pushed for it was deleted" in message
    assert [c.method for c in forge.calls if c.method == "POST"] == ["POST"]
    assert forge.requests == []
    assert not branch_exists(daemon, BRANCH)
    assert git("rev-parse", "refs/heads/main", cwd=daemon.base / "config.git") == main_before
    assert stable_image(api_server) == STABLE_IMAGE
    assert TOKEN not in message


def test_a_branch_someone_moved_after_the_push_is_not_deleted(daemon, credentials):
    """Only the commit this promotion pushed is deleted: a branch that moved on is not ours."""
    from canaryflow.kubernetes.gitops.git import GitCheckout

    bare = daemon.base / "config.git"
    with GitCheckout(daemon.url("config.git"), "main", credentials) as checkout:
        checkout.clone()
        checkout.commit(MANIFESTS, "# edited\n", "an edit")
        checkout.push(BRANCH)
        pushed = checkout.head()
    main = git("rev-parse", "refs/heads/main", cwd=bare).strip()
    git("update-ref", f"refs/heads/{BRANCH}", main, cwd=bare)  # someone else's push

    with GitCheckout(daemon.url("config.git"), "main", credentials) as checkout:
        assert checkout.delete_branch(BRANCH, pushed) is False
        assert branch_exists(daemon, BRANCH)
        git("update-ref", f"refs/heads/{BRANCH}", pushed, cwd=bare)
        assert checkout.delete_branch(BRANCH, pushed) is True
    assert not branch_exists(daemon, BRANCH)


# -- credentials and refusals -------------------------------------------------------------------


def test_without_a_token_nothing_is_pushed_and_no_forge_is_called(api_server, daemon, tmp_path):
    plan = mr_plan("gitlab")
    empty = tmp_path / "empty-secret"
    empty.mkdir()
    with forge_standin(daemon, "gitlab", "merge") as forge, argocd(api_server, daemon, plan):
        platform = mr_platform(api_server, daemon, plan, forge, empty)
        platform.deploy_canary(V2)
        api_server.requests.clear()

        with pytest.raises(InputError, match=r"^gitops.credentialsSecret: no token"):
            platform.promote(V2)

    assert forge.calls == []
    assert not branch_exists(daemon, BRANCH)
    assert api_server.writes() == []


@pytest.mark.parametrize(
    ("token", "project", "field", "says"),
    [
        ("another-token", PROJECT, "gitops.credentialsSecret", "HTTP 401: Bad credentials"),
        (TOKEN, "platform/elsewhere", "promotion.gitops.project", "HTTP 404: Not Found"),
    ],
)
def test_a_refused_token_or_unknown_project_is_bad_input_before_anything_is_pushed(
    api_server, daemon, credentials, token, project, field, says
):
    plan = mr_plan("github", project=project)
    with (
        forge_standin(daemon, "github", "merge", token=token) as forge,
        argocd(api_server, daemon, plan),
    ):
        platform = mr_platform(api_server, daemon, plan, forge, credentials)
        platform.deploy_canary(V2)
        api_server.requests.clear()

        with pytest.raises(InputError) as refused:
            platform.promote(V2)

    message = str(refused.value)
    assert message.startswith(f"{field}: github API GET /repos/platform/") and says in message
    assert TOKEN not in message
    assert [c.method for c in forge.calls] == ["GET"]  # a 4xx is not tried again
    assert not branch_exists(daemon, BRANCH)
    assert api_server.writes() == [] and stable_image(api_server) == STABLE_IMAGE


@pytest.mark.parametrize("client", [GitHub, GitLab])
def test_opening_twice_finds_the_open_request_instead_of_a_second(daemon, client):
    provider = "github" if client is GitHub else "gitlab"
    bare = daemon.base / "config.git"
    git("branch", BRANCH, "main", cwd=bare)
    with forge_standin(daemon, provider, "never") as forge:
        forge_client = (
            GitHub(forge.api, TOKEN, owner_repo=PROJECT)
            if client is GitHub
            else GitLab(forge.api, TOKEN, project=PROJECT)
        )
        first = forge_client.open(BRANCH, "main", "promote", "")
        again = forge_client.open(BRANCH, "main", "promote", "")  # a retried promote pod

        assert again == first and len(forge.requests) == 1
        assert forge_client.state(first) == "open"
        forge_client.close(first)
        assert forge_client.state(first) == "closed"
    methods = [c.method for c in forge.calls]
    assert methods[:3] == ["POST", "POST", "GET"]


# -- where the API is, and the plan's rules -----------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "repository", "api"),
    [
        ("github", "https://github.com/platform/config.git", "https://api.github.com"),
        ("github", "https://ghe.example.com/platform/config", "https://ghe.example.com/api/v3"),
        (
            "gitlab",
            "https://gitlab.example.com:8443/a/b/c.git",
            "https://gitlab.example.com:8443/api/v4",
        ),
        ("gitlab", "git://127.0.0.1:9418/config.git", None),
    ],
)
def test_the_api_url_is_derived_from_the_repository(provider, repository, api):
    assert default_api_url(provider, repository) == api


def test_the_project_is_the_repository_path_without_git():
    assert default_project("https://gitlab.example.com/group/sub/config.git") == "group/sub/config"


@pytest.mark.parametrize(
    ("gitops", "field"),
    [
        ({"provider": "github"}, "promotion.gitops.provider"),  # mode commit
        ({"mode": "merge-request", "project": PROJECT}, "promotion.gitops.project"),
        (
            {"mode": "merge-request", "provider": "github", "project": "a/b/c"},
            "promotion.gitops.project",
        ),
        ({"mode": "merge-request", "provider": "gitlab", "project": "a/../b"}, "project"),
        ({"mode": "merge-request", "provider": "bitbucket"}, "promotion.gitops.provider"),
    ],
)
def test_merge_request_settings_that_do_not_fit_are_refused(gitops, field):
    plan = copy.deepcopy(PLAN)
    plan["promotion"]["gitops"].update(gitops)

    with pytest.raises(InputError) as refused:
        load_plan(yaml.safe_dump({"apiVersion": "canaryflow.dev/v1alpha1", **plan}))

    assert any(field in error.path for error in refused.value.errors), refused.value


def test_the_chart_api_url_reaches_the_promotion():
    from canaryflow.kubernetes.from_plan import gitops_promotion

    plan = mr_plan("gitlab")
    environ = {
        "CANARYFLOW_GITOPS_REPOSITORY": "https://gitlab.example.com/platform/config.git",
        "CANARYFLOW_GITOPS_API_URL": "https://gitlab.example.com/api/v4",
    }
    promotion = gitops_promotion(plan, environ=environ)
    assert promotion is not None and promotion.api_url == environ["CANARYFLOW_GITOPS_API_URL"]


@pytest.mark.parametrize(
    ("in_plan", "refused"),
    [
        ("https://git.example.com/platform/other.git", False),
        ("https://attacker.example.net/platform/config.git", True),
        ("http://git.example.com/platform/config.git", True),  # another scheme: another origin
    ],
)
def test_a_plan_cannot_send_the_chart_credentials_to_another_host(in_plan, refused):
    from canaryflow.kubernetes.from_plan import gitops_promotion

    plan = plan_with(repository=in_plan)
    chart = {"CANARYFLOW_GITOPS_REPOSITORY": "https://git.example.com/platform/config.git"}
    promotion = gitops_promotion(plan, environ=chart)
    assert promotion is not None

    if refused:
        with pytest.raises(InputError, match=r"^promotion.gitops.repository: .* is not the host"):
            promotion.check_repository()
    else:
        promotion.check_repository()


@pytest.mark.parametrize(("reviewer", "code"), [("merge", 0), ("never", 1)])
def test_the_promote_verb_opens_the_request_with_the_chart_settings(
    api_server, daemon, credentials, tmp_path, monkeypatch, capsys, reviewer, code
):
    from canaryflow.cli import main

    plan = copy.deepcopy(PLAN)
    plan["router"]["drain"] = 0
    plan["promotion"]["gitops"] |= {"mode": "merge-request", "provider": "github"}
    plan["promotion"]["gitops"] |= {"project": PROJECT, "timeout": "3s"}
    path = tmp_path / "canaryflow.yaml"
    path.write_text(yaml.safe_dump(plan))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_server.url)
    artifact = ["--image", CANARY_IMAGE, "--version", "v2"]
    cluster = ["--plan", str(path), "--kubeconfig", str(kubeconfig)]
    with (
        forge_standin(daemon, "github", reviewer) as forge,
        argocd(api_server, daemon, ReleasePlan.model_validate(plan)),
    ):
        monkeypatch.setenv("CANARYFLOW_GITOPS_REPOSITORY", daemon.url("config.git"))
        monkeypatch.setenv("CANARYFLOW_GITOPS_CREDENTIALS", str(credentials))
        monkeypatch.setenv("CANARYFLOW_GITOPS_API_URL", forge.api)
        assert main(["deploy-canary", *cluster, *artifact]) == 0

        assert main(["promote", *cluster, *artifact]) == code

    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    (request,) = forge.requests
    if code == 0:
        assert request.state == "merged" and stable_image(api_server) == CANARY_IMAGE
    else:
        assert "gitops promotion not merged" in err and request.state == "closed"
        assert stable_image(api_server) == STABLE_IMAGE
    assert api_server.get("Deployment", NAMESPACE, f"{SERVICE}-canary") is None


def test_a_retried_promote_after_the_request_was_closed_opens_nothing_new(
    api_server, daemon, credentials
):
    plan = mr_plan("github", timeout="1s")
    with forge_standin(daemon, "github", "never") as forge, argocd(api_server, daemon, plan):
        platform = mr_platform(api_server, daemon, plan, forge, credentials)
        platform.deploy_canary(V2)
        with pytest.raises(PlatformError, match="not merged"):
            platform.promote(V2)
        assert not branch_exists(daemon, BRANCH)
        calls = len(forge.calls)

        with pytest.raises(PlatformError, match=r"^nothing pushed: the canary of v2 is not"):
            platform.promote(V2)  # Argo's retry of the failed promote step

    assert not branch_exists(daemon, BRANCH)
    assert len(forge.calls) == calls and [r.state for r in forge.requests] == ["closed"]
    assert stable_image(api_server) == STABLE_IMAGE


def test_a_redirect_to_another_origin_is_not_followed_with_the_token():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            seen.append(self.headers.get("Authorization") or "")
            self.send_response(201)
            self.end_headers()

    class Redirecting(Elsewhere):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{other.server_address[1]}/pulls")
            self.send_header("Content-Length", "0")
            self.end_headers()

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Redirecting, Elsewhere)]
    api, other = servers
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        client = GitHub(f"http://127.0.0.1:{api.server_address[1]}", TOKEN, owner_repo=PROJECT)
        with pytest.raises(ForgeError, match="another origin") as refused:
            client.open(BRANCH, "main", "promote", "")
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=10)

    assert seen == [] and TOKEN not in str(refused.value)


def test_a_token_that_cannot_be_one_header_value_is_refused_without_printing_it(tmp_path):
    from canaryflow.kubernetes.gitops.forge import read_token

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_text("ghp_first\nX-Injected: ghp_second\n")

    with pytest.raises(InputError, match=r"^gitops.credentialsSecret: key token: the token") as no:
        read_token(secret)

    assert "ghp_" not in str(no.value)
    (secret / "token").unlink()
    (secret / "password").write_text(f"{TOKEN}\n")
    assert read_token(secret) == TOKEN  # the password git pushes with serves the API too
