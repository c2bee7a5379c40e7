"""The configuration repository through dulwich, with no git binary where canaryflow runs.

Real servers on loopback: ``git daemon`` (git://) and ``git http-backend`` behind basic auth
(``git_http_server.py``). The servers are real git; canaryflow's side runs with a PATH that
holds no git, as in the runtime image. Credentials come from the Secret's
files, arrive as basic auth at the repository's server, and are nowhere in the clone; a push
that lost a race is refused before it overwrites anyone's commit; URLs git would treat as a
program or a secret are refused before anything connects.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys

import pytest
from git_http_server import GitHttpServer
from git_server import git
from http_stub import LoopbackServer, QuietHandler
from kube.fixtures import CANARY_IMAGE, SERVICE
from listeners import unconnectable
from test_gitops_promotion import MANIFESTS, PLAN, daemon

from canaryflow.errors import PlatformError, UnreachableError
from canaryflow.kubernetes.gitops.git import AUTHOR, GitCheckout, PushRejected

__all__ = ["daemon"]

USER, PASSWORD = "deploy-bot", "s3cr3t-push-token"

# One promotion's Git step (GitOpsPromotion.write: clone, edit, commit, push) in a fresh
# process: argv is the plan's JSON and the repository URL; prints the branch and commit.
PUSH = """
import json, sys
from canaryflow.kubernetes.gitops.promotion import GitOpsPromotion
from canaryflow.plan.model import ReleasePlan
from canaryflow.platform.protocol import Artifact
plan = ReleasePlan.model_validate(json.loads(sys.argv[1]))
change = GitOpsPromotion(plan.promotion.gitops, sys.argv[2]).write(
    plan.service.name, None, Artifact("v2", sys.argv[3])
)
print(change.branch, change.commit)
"""


@pytest.fixture
def no_git(tmp_path, monkeypatch):
    """This process's PATH holds no program at all (the servers name their own PATH)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def secret(tmp_path, **files: str):
    folder = tmp_path / "secret"
    folder.mkdir()
    for key, value in files.items():
        (folder / key).write_text(value + "\n")
    return folder


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def colleague_pushes(daemon, path: str = "apps/payments.yaml") -> str:
    """Someone else's commit on main, pushed with real git; returns its id."""
    other = daemon.base / "colleague"
    git("clone", "--quiet", daemon.url("config.git"), str(other), cwd=daemon.base)
    (other / path).parent.mkdir(parents=True, exist_ok=True)
    (other / path).write_text("kind: Namespace\n")
    git("add", "--all", cwd=other)
    git("commit", "--quiet", "--message=payments app", cwd=other)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=other)
    return git("rev-parse", "HEAD", cwd=other).strip()


def tip(daemon, ref: str = "main") -> str:
    return git("rev-parse", "--verify", ref, cwd=daemon.base / "config.git").strip()


# -- no git where canaryflow runs ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["commit", "merge-request"])
def test_a_promotion_pushes_with_no_git_installed(tmp_path, daemon, mode):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    plan = json.loads(json.dumps(PLAN))
    plan["promotion"]["gitops"]["mode"] = mode
    before = tip(daemon)

    done = subprocess.run(
        [sys.executable, "-c", PUSH, json.dumps(plan), daemon.url("config.git"), CANARY_IMAGE],
        env={"PATH": str(empty), "HOME": str(tmp_path)}
        | {k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    branch, commit = done.stdout.split()
    expected = "main" if mode == "commit" else f"canaryflow/{SERVICE}/v2"
    assert branch == expected
    assert tip(daemon, branch) == commit
    assert CANARY_IMAGE in daemon.show("config.git", MANIFESTS, ref=branch)
    # the commit sits on the branch it was made from, by canaryflow's identity
    assert git("rev-parse", f"{commit}^", cwd=daemon.base / "config.git").strip() == before
    assert (
        daemon.log("config.git", ref=branch)[0]
        == f"{AUTHOR[0]}|canaryflow: promote {SERVICE} to v2"
    )
    if mode == "merge-request":
        assert tip(daemon) == before  # main is left to the reviewer


# -- credentials --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "user"),
    [({"username": USER, "password": PASSWORD}, USER), ({"token": PASSWORD}, "x-access-token")],
)
def test_credentials_from_the_secret_arrive_as_basic_auth_and_stay_out_of_the_clone(
    tmp_path, daemon, no_git, files, user
):
    server = GitHttpServer(daemon.base, credentials=(user, PASSWORD))
    try:
        with GitCheckout(server.url_of("config.git"), "main", secret(tmp_path, **files)) as repo:
            repo.clone()
            assert repo.commit(MANIFESTS, f"image: {CANARY_IMAGE}\n", "canaryflow: promote")
            repo.push("main")
            pushed = repo.head()
            clone_files = [p for p in repo.git_dir.rglob("*") if p.is_file()]
            leaked = [p for p in clone_files if PASSWORD.encode() in p.read_bytes()]
            config = (repo.git_dir / "config").read_text()
    finally:
        server.stop()

    assert server.auth.seen and set(server.auth.seen) == {basic(user, PASSWORD)}
    assert tip(daemon) == pushed
    assert leaked == [] and PASSWORD not in config and user not in config


def test_refused_credentials_fail_naming_the_secret_and_not_its_value(tmp_path, daemon, no_git):
    server = GitHttpServer(daemon.base, credentials=(USER, "the-right-one"))
    try:
        with (
            GitCheckout(
                server.url_of("config.git"), "main", secret(tmp_path, password=PASSWORD)
            ) as repo,
            pytest.raises(PlatformError) as failed,
        ):
            repo.clone()
    finally:
        server.stop()

    assert "refused the credentials of the Secret gitops.credentialsSecret" in str(failed.value)
    assert PASSWORD not in str(failed.value)
    assert server.auth.seen == [basic("x-access-token", PASSWORD)]


def test_a_redirect_to_another_host_does_not_carry_the_credentials(tmp_path, daemon, no_git):
    elsewhere = GitHttpServer(daemon.base, credentials=(USER, PASSWORD))  # another origin

    class Redirect(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", elsewhere.url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

    configured = LoopbackServer(Redirect)
    folder = secret(tmp_path, username=USER, password=PASSWORD)
    try:
        with (
            GitCheckout(configured.url + "/config.git", "main", folder) as repo,
            pytest.raises(PlatformError),
        ):
            repo.clone()
    finally:
        configured.stop()
        elsewhere.stop()

    assert elsewhere.auth.seen  # the redirect was followed, without the Secret
    assert basic(USER, PASSWORD) not in elsewhere.auth.seen


# -- a race with another pusher -----------------------------------------------------------------


def test_a_push_after_someone_else_pushed_is_rejected_and_overwrites_nothing(daemon, no_git):
    with GitCheckout(daemon.url("config.git"), "main") as repo:
        repo.clone()
        theirs = colleague_pushes(daemon)
        repo.commit(MANIFESTS, f"image: {CANARY_IMAGE}\n", "canaryflow: promote")

        with pytest.raises(PushRejected, match="fetch first"):
            repo.push("main")
        assert tip(daemon) == theirs  # git daemon would have taken a forced update: we did not

        repo.refresh()
        assert repo.read("apps/payments.yaml") == "kind: Namespace\n"
        repo.commit(MANIFESTS, f"image: {CANARY_IMAGE}\n", "canaryflow: promote")
        repo.push("main")

    assert git("rev-parse", "main^", cwd=daemon.base / "config.git").strip() == theirs
    assert daemon.show("config.git", MANIFESTS) == f"image: {CANARY_IMAGE}\n"


def test_a_merge_request_branch_is_replaced_whatever_it_held(daemon, no_git):
    branch = f"canaryflow/{SERVICE}/v2"
    git("branch", branch, "main", cwd=daemon.base / "config.git")  # a previous attempt
    colleague_pushes(daemon)
    with GitCheckout(daemon.url("config.git"), "main") as repo:
        repo.clone()
        repo.commit(MANIFESTS, f"image: {CANARY_IMAGE}\n", "canaryflow: promote")
        repo.push(branch, force=True)
        pushed = repo.head()

    assert tip(daemon, branch) == pushed


# -- timeouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_a_server_that_never_answers_fails_the_clone_after_the_read_timeout(scheme, no_git):
    with socket.socket() as silent:  # the kernel completes the connection; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}/config.git"
        with (
            GitCheckout(url, "main", timeout_s=0.3) as repo,
            pytest.raises(PlatformError) as failed,
        ):
            repo.clone()

    assert str(failed.value) == f"git clone {url}: the server did not answer within 0.3s"


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_a_closed_port_is_unreachable_not_a_read_timeout(scheme, no_git):
    """Refused: exit 3 ("try again"), still a PlatformError (promotion's restore holds)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"{scheme}://127.0.0.1:{closed.getsockname()[1]}/config.git"
    with GitCheckout(url, "main", timeout_s=2) as repo, pytest.raises(PlatformError) as failed:
        repo.clone()

    assert isinstance(failed.value, UnreachableError)
    assert str(failed.value).startswith(
        "promotion.gitops.repository: git remote 127.0.0.1:"
    ) and "did not answer (connection refused)" in str(failed.value)


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_a_connect_that_times_out_is_unreachable_not_a_read_timeout(scheme, no_git):
    """No connection at all (the SYN dropped): exit 3, while a server that took the connection
    and said nothing (above) is a failed promotion step, exit 1."""
    with unconnectable() as port:
        url = f"{scheme}://127.0.0.1:{port}/config.git"
        with (
            GitCheckout(url, "main", timeout_s=0.5) as repo,
            pytest.raises(PlatformError) as failed,
        ):
            repo.clone()

    assert isinstance(failed.value, UnreachableError)
    assert str(failed.value).startswith(
        f"promotion.gitops.repository: git remote 127.0.0.1:{port} did not answer ("
    )


# -- nothing read from a git configuration, nothing from the URL run ----------------------------


def test_no_git_configuration_is_read(tmp_path, daemon, no_git, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    # would send every git:// request for the daemon to a port nobody listens on
    gitconfig.write_text(f'[url "git://127.0.0.1:9/"]\n\tinsteadOf = {daemon.url("")}\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    with GitCheckout(daemon.url("config.git"), "main") as repo:
        repo.clone()
        repo.commit(MANIFESTS, "kind: List\n", "canaryflow: promote")
        repo.push("main")
        assert tip(daemon) == repo.head()


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/canaryflow-pwned",
        "file:///etc",
        "ssh://git@example.com/org/config.git",
        "git@example.com:org/config.git",
        "https://bot:token@git.example.com/org/config.git",
        "https://-oProxyCommand=touch/config.git",
        "--upload-pack=touch /tmp/x",
    ],
)
def test_urls_that_are_programs_local_files_or_secrets_are_refused(url, no_git):
    with pytest.raises(PlatformError, match="not a configuration repository URL") as refused:
        GitCheckout(url, "main")
    assert "token@" not in str(refused.value)
