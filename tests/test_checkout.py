"""checkout: the exact revision of a real git repository; hostile revisions stay arguments."""

from __future__ import annotations

import subprocess

import pytest

from canaryflow.cli import main


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
