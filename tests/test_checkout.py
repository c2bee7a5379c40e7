"""checkout: the exact revision of a real git repository, fetched alone (shallow) over git://
and smart HTTP from real git servers on loopback, with no git binary; hostile revisions and
URLs are refused before anything connects."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass

import pytest
from dulwich.repo import Repo
from git_http_server import GitHttpServer
from git_server import GitDaemon
from git_server import git as server_git
from hypothesis import given
from hypothesis import strategies as st
from listeners import closed_port, silent, unconnectable

from canaryflow.cli import main
from canaryflow.commands.checkout import Want, choose_want
from canaryflow.errors import PlatformError


def git(*argv, cwd):
    return subprocess.run(["git", *argv], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def origin(tmp_path):
    repo = tmp_path / "origin"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    for text in ("v1", "v2"):
        (repo / "VERSION").write_text(text)
        git("add", "VERSION", cwd=repo)
        git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", text, cwd=repo)
    first = git("rev-list", "--max-parents=0", "HEAD", cwd=repo).stdout.strip()
    return repo, first


def test_checks_out_the_exact_commit(tmp_path, origin, capsys):
    repo, first = origin
    dest = tmp_path / "work"
    assert main(["checkout", "--repo", str(repo), "--revision", first, "--dest", str(dest)]) == 0
    assert (dest / "VERSION").read_text() == "v1"
    assert capsys.readouterr().out.strip() == first


@pytest.mark.parametrize("revision", ["main; rm -rf /", "$(touch pwned)", "`id`", "a..b", "-rf"])
def test_a_hostile_revision_is_refused_before_git_runs(tmp_path, origin, revision, capsys):
    repo, _ = origin
    dest = tmp_path / "work"
    assert (
        main(["checkout", "--repo", str(repo), f"--revision={revision}", "--dest", str(dest)]) == 2
    )
    assert not (tmp_path / "pwned").exists() and not dest.exists()
    assert "--revision: " in capsys.readouterr().err


def test_an_unknown_revision_is_a_git_error(tmp_path, origin, capsys):
    repo, _ = origin
    dest = tmp_path / "work"
    assert main(["checkout", "--repo", str(repo), "--revision", "nope", "--dest", str(dest)]) == 1
    assert "invalid reference: nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    "repo", ["ext::sh -c touch% pwned", "fd::3", "--upload-pack=touch pwned", "a\nb", "nowhere"]
)
def test_a_clone_url_that_would_run_a_program_is_refused(tmp_path, repo, capsys):
    dest = tmp_path / "work"
    assert main(["checkout", f"--repo={repo}", "--revision", "main", "--dest", str(dest)]) == 2
    assert "--repo: " in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and not dest.exists()


def test_an_option_shaped_revision_is_refused_before_git_runs(tmp_path, origin):
    repo, _ = origin
    args = ["checkout", "--repo", str(repo), "--revision=--upload-pack=x", "--dest", "d"]
    assert main(args) == 2


# --- Over the network, without a git binary (the runtime image has none) -------------------


@pytest.fixture
def served(tmp_path):
    """One bare repository with three commits (VERSION v1..v3), an annotated tag on v2 and a
    branch ``release`` at v1, served by a real ``git daemon`` and by ``git http-backend``."""
    root = tmp_path / "served"
    root.mkdir()
    with GitDaemon(root) as daemon:
        daemon.create("svc.git", {"VERSION": "v1"})
        seed = root / "svc.git.seed"
        for text in ("v2", "v3"):
            (seed / "VERSION").write_text(text)
            server_git("commit", "--quiet", "--all", f"--message={text}", cwd=seed)
        server_git("tag", "--annotate", "--message=two", "v2.0.0", "HEAD~1", cwd=seed)
        server_git("branch", "release", "HEAD~2", cwd=seed)
        server_git("push", "--quiet", "--tags", str(root / "svc.git"), "main", "release",
                   cwd=seed)  # fmt: skip
        commits = server_git("rev-list", "main", cwd=seed).split()[::-1]
        http = GitHttpServer(root)
        try:
            yield Served(daemon.url("svc.git"), http.url_of("svc.git"), commits)
        finally:
            http.stop()


@dataclass
class Served:
    git_url: str
    http_url: str
    commits: list[str]
    """v1, v2, v3 (oldest first); v3 is main's tip."""


def checkout_without_git(repo, revision, dest, cwd):
    """``canaryflow checkout`` in a process whose PATH has no git (and nothing else)."""
    empty = cwd / "empty-bin"
    empty.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", "checkout", "--repo", repo, "--revision", revision,
         "--dest", str(dest)],
        env={"PATH": str(empty), "HOME": str(cwd)}, cwd=cwd,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def shallow_commits(dest) -> set[str]:
    return set((dest / ".git/shallow").read_text().split())


@pytest.mark.parametrize("transport", ["git", "http"])
def test_an_old_commit_is_fetched_alone_and_checked_out_with_no_git_installed(
    tmp_path, served, transport
):
    url = served.git_url if transport == "git" else served.http_url
    first = served.commits[0]
    dest = tmp_path / "work"
    done = checkout_without_git(url, first, dest, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == first
    assert (dest / "VERSION").read_text() == "v1"
    # One revision, shallow: the commit itself is the history's edge, and the newer commits
    # (which the server lists as main) were never fetched.
    assert shallow_commits(dest) == {first}
    assert (dest / ".git/HEAD").read_text().strip() == first
    assert "v3" not in {p.read_text() for p in dest.rglob("VERSION")}
    with Repo(str(dest)) as repo:
        assert served.commits[2].encode() not in repo.object_store


@pytest.mark.parametrize(
    ("revision", "version"),
    [("v2.0.0", "v2"), ("release", "v1"), ("main", "v3"), ("refs/heads/release", "v1")],
)
def test_a_tag_or_branch_is_the_commit_the_server_lists_under_that_name(
    tmp_path, served, revision, version
):
    dest = tmp_path / "work"
    done = checkout_without_git(served.http_url, revision, dest, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (dest / "VERSION").read_text() == version
    assert done.stdout.strip() == served.commits[["v1", "v2", "v3"].index(version)]
    assert len(shallow_commits(dest)) == 1


def test_an_abbreviated_commit_is_resolved_among_the_fetched_history(tmp_path, served):
    dest = tmp_path / "work"
    assert main(["checkout", "--repo", served.git_url, "--revision", served.commits[1][:9],
                 "--dest", str(dest)]) == 0  # fmt: skip
    assert (dest / "VERSION").read_text() == "v2"


def test_a_rerun_into_the_same_folder_moves_the_work_tree_to_the_new_revision(tmp_path, served):
    dest = tmp_path / "work"
    for commit, version in zip(served.commits, ("v1", "v2", "v3"), strict=True):
        assert main(["checkout", "--repo", served.git_url, "--revision", commit,
                     "--dest", str(dest)]) == 0  # fmt: skip
        assert (dest / "VERSION").read_text() == version


@pytest.mark.parametrize("missing", ["0" * 40, "1234abcd" * 5])
def test_a_commit_the_server_does_not_have_fails_and_leaves_no_folder(
    tmp_path, served, capsys, missing
):
    dest = tmp_path / "work"
    assert main(["checkout", "--repo", served.git_url, "--revision", missing,
                 "--dest", str(dest)]) == 1  # fmt: skip
    assert f"the server has no commit {missing}" in capsys.readouterr().err
    assert not dest.exists()


def test_a_destination_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path, served, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for dest in (taken, foreign):
        args = ["checkout", "--repo", served.git_url, "--revision", "main", "--dest", str(dest)]
        assert main(args) == 2
        assert "--dest: " in capsys.readouterr().err
    assert taken.read_text() == "mine" and [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_a_server_that_is_not_there_is_unreachable_exit_3(tmp_path, capsys):
    """Connection refused: "try again" (exit 3), not "the repository is wrong" (1)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dest = tmp_path / "work"
    url = f"git://127.0.0.1:{port}/svc.git"
    assert main(["checkout", "--repo", url, "--revision", "main", "--dest", str(dest)]) == 3
    err = capsys.readouterr().err
    assert f"error: --repo: git remote 127.0.0.1:{port} did not answer (connection refused)" in err
    assert not dest.exists()


STAND_IN_SSH = """#!/bin/sh
# A stand-in for ssh: records its argv, then runs the remote command as sshd's login shell
# would (with SetEnv GIT_PROTOCOL=... exported), on this machine: the "server" has git, the
# client's PATH has only this ssh.
printf '%s\\n' "$@" > "$SSH_ARGV"
while [ $# -gt 1 ]; do
  case "$1" in
    -o) case "$2" in "SetEnv GIT_PROTOCOL="*) export GIT_PROTOCOL="${2#SetEnv GIT_PROTOCOL=}";; esac
        shift 2;;
    *) shift;;
  esac
done
PATH=/usr/bin:/bin exec /bin/sh -c "$1"
"""


@pytest.mark.parametrize("form", ["ssh-url", "scp-like"])
def test_an_ssh_clone_runs_ssh_with_the_host_as_one_argument_and_the_path_quoted(
    tmp_path, served, form
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(STAND_IN_SSH)
    (bin_dir / "ssh").chmod(0o755)
    bare = tmp_path / "served/svc.git"
    repo = f"ssh://git@127.0.0.1{bare}" if form == "ssh-url" else f"git@127.0.0.1:{bare}"
    dest = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "canaryflow", "checkout", "--repo", repo,
         "--revision", served.commits[1], "--dest", str(dest)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path),  # ssh, and no git
             "SSH_ARGV": str(tmp_path / "argv")},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (dest / "VERSION").read_text() == "v2"
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[-2:] == ["git@127.0.0.1", f"git-upload-pack '{bare}'"]


def test_without_an_ssh_client_an_ssh_clone_says_to_use_https(tmp_path, served):
    done = checkout_without_git(
        f"ssh://git@127.0.0.1{tmp_path}/served/svc.git", "main", tmp_path / "work", tmp_path
    )
    assert done.returncode == 1
    assert "ssh is not installed in this image: use an https:// clone URL" in done.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(
    "repo", ["ssh://-oProxyCommand=touch%20pwned/x", "-oProxyCommand@host:x", "-x@host:repo"]
)
def test_an_ssh_host_that_reads_as_an_option_is_refused(tmp_path, repo, capsys):
    dest = tmp_path / "work"
    assert main(["checkout", f"--repo={repo}", "--revision", "main", "--dest", str(dest)]) == 2
    assert "--repo: " in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and not dest.exists()


refs = {
    b"HEAD": b"c" * 40,
    b"refs/heads/main": b"c" * 40,
    b"refs/heads/v1": b"a" * 40,
    b"refs/tags/v1": b"b" * 40,
    b"refs/tags/v1^{}": b"d" * 40,
}


@pytest.mark.parametrize(
    ("revision", "want"),
    [
        ("main", Want((b"c" * 40,), 1)),
        ("HEAD", Want((b"c" * 40,), 1)),
        ("v1", Want((b"b" * 40,), 1)),  # a tag before a branch, as gitrevisions(7) reads
        ("heads/v1", Want((b"a" * 40,), 1)),
        ("e" * 40, Want((b"e" * 40,), 1)),
        ("abc1234", Want((b"a" * 40, b"b" * 40, b"c" * 40), None)),
    ],
)
def test_the_revision_chooses_what_is_fetched_and_how_deep(revision, want):
    assert choose_want(revision, refs) == want


@given(name=st.from_regex(r"[a-z][a-z0-9._-]{0,20}", fullmatch=True), sha=st.sampled_from("ab"))
def test_a_name_the_server_lists_is_always_one_commit_deep(name, sha):
    listed = {f"refs/heads/{name}".encode(): sha.encode() * 40}
    assert choose_want(name, listed) == Want((sha.encode() * 40,), 1)


def test_a_name_the_server_does_not_list_is_an_invalid_reference():
    with pytest.raises(PlatformError, match="invalid reference: nope"):
        choose_want("nope", refs)


# -- remotes that never answered: exit 3; one that answered nothing in time: 1 -------------------


@pytest.fixture
def short_timeout(monkeypatch):
    monkeypatch.setattr("canaryflow.commands.checkout.GIT_TIMEOUT_S", 1)


def checkout(repo: str, dest) -> int:
    return main(["checkout", "--repo", repo, "--revision", "main", "--dest", str(dest)])


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_a_connect_that_times_out_is_unreachable_exit_3_not_a_read_timeout(
    tmp_path, scheme, short_timeout, capsys
):
    with unconnectable() as port:
        assert checkout(f"{scheme}://127.0.0.1:{port}/svc.git", tmp_path / "work") == 3
    err = capsys.readouterr().err
    assert f"--repo: git remote 127.0.0.1:{port} did not answer (" in err
    assert "no connection within the timeout" in err or "timed out" in err
    assert not (tmp_path / "work").exists()


def test_a_server_that_accepts_and_never_answers_is_a_read_timeout_exit_1(
    tmp_path, short_timeout, capsys
):
    """It took the connection: not "never answered" (README "Exit codes"), a failed fetch."""
    with silent() as port:
        assert checkout(f"git://127.0.0.1:{port}/svc.git", tmp_path / "work") == 1
    assert "did not answer (" not in capsys.readouterr().err


needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client here")


@needs_ssh
@pytest.mark.parametrize(
    ("where", "form", "reason"),
    [
        ("closed", "ssh-url", "connection refused"),
        ("silent", "ssh-url", "no SSH greeting within the timeout"),
        ("unresolvable", "ssh-url", "the host name does not resolve"),
        ("unresolvable", "scp-like", "the host name does not resolve"),  # no port: 22
    ],
)
def test_an_ssh_remote_that_cannot_be_reached_is_unreachable_exit_3(
    tmp_path, where, form, reason, short_timeout, capsys
):
    """The real ssh client: refused, a server that accepts and never sends its greeting (ssh's
    ConnectTimeout ends the wait, which had none), a host name that does not resolve."""
    with contextlib.ExitStack() as stack:
        host, port = "127.0.0.1", 22
        if where == "closed":
            port = closed_port()
        elif where == "silent":
            port = stack.enter_context(silent())
        else:
            host = "no-such-host.invalid"
        repo = f"ssh://git@{host}:{port}/srv/svc.git" if form == "ssh-url" else f"git@{host}:svc"
        assert checkout(repo, tmp_path / "work") == 3
    err = capsys.readouterr().err
    assert f"error: --repo: git remote {host}" in err and f"did not answer ({reason})" in err
    assert "git@" not in err.split("did not answer")[0]  # the user is not the host
    assert not (tmp_path / "work").exists()
