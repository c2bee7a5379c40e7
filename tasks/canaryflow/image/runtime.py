"""The canaryflow runtime image (every task's ``canaryflow <verb>``), built by canaryflow itself.

Why not the Dockerfile: a ``docker build`` of ``python:3.11-slim`` with ``pip --upgrade`` gives
different bytes every week. Here the inputs are pinned (the base: Debian packages by SHA-256
from ``images/runtime/debian.lock``, or a registry image by digest; a hash-locked requirements
file; this checkout's wheel) and the assembly is ``oci``'s reproducible layer, so the same
inputs give the same manifest digest, and ``push`` puts it in a registry by digest with no
daemon and no root.

Layout in the image (``/opt/canaryflow``): ``lib`` holds the wheel and its locked dependencies
(``pip install --target``, no byte code), ``bin`` their console scripts with the base's
interpreter as shebang (``/usr/bin/python3`` on the Debian base, ``/usr/local/bin/python3`` in
the official python images); ``PYTHONPATH`` names ``lib``. Run as
``python -m canaryflow.image.runtime`` (``make image``).

One image per platform of ``PLATFORMS`` (linux/amd64 and linux/arm64), each from the same
inputs (its architecture's Debian packages and wheels, the same checkout wheel), pushed by
digest under one OCI image index (``push.push_images``, the path the services' multi-platform
images take), so an arm64 node (Graviton, Ampere) pulls the same reference as an amd64 one.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canaryflow.errors import (
    EXIT_INPUT,
    EXIT_RELEASE_FAILED,
    EXIT_UNREACHABLE,
    FieldError,
    InputError,
    PlatformError,
    UnreachableError,
)
from canaryflow.image.auth import DockerConfig
from canaryflow.image.debian import DebianError, debian_base, parse_lock
from canaryflow.image.debian_lock import fetch_packages
from canaryflow.image.oci import (
    CONFIG,
    DEFAULT_PATH,
    EPOCH,
    MANIFEST,
    NONROOT_USER,
    BaseImage,
    Descriptor,
    Image,
    Layer,
    Platform,
    canonical_json,
    files_layer,
)
from canaryflow.image.push import (
    REVISION_LABEL,
    SOURCE_LABEL,
    VERSION_LABEL,
    PushedImage,
    fetch_base,
    push_images,
)
from canaryflow.image.reference import check_tag, parse_reference, parse_repository
from canaryflow.image.registry import RegistryClient

PREFIX = "opt/canaryflow"
INTERPRETER = "/usr/local/bin/python3"
"""The official python images' interpreter (a registry base's)."""
DEBIAN_INTERPRETER = "/usr/bin/python3"
"""The Debian base's (``debian.extra_entries`` links it to python3.11)."""
BASE_FILE = "images/runtime/base.txt"
DEBIAN_CACHE = "build/debian"
"""Where the locked ``.deb`` files are kept once fetched and checked (beside build/wheelhouse)."""
PLACEHOLDER = "UNPINNED"
"""A registry base nobody pinned yet: refused."""
SOURCE_DATE_EPOCH = "0"
# pip's platform tags for each image architecture. The keys are the OCI image index's
# `architecture` (Go's GOARCH names: opencontainers/image-spec image-index.md), which Debian
# also uses for these two (amd64, arm64: dpkg's cputable); the tags name the machine as
# `uname -m` does (x86_64, aarch64): PEP 600's `manylinux_<glibc major>_<minor>_<arch>` and
# PEP 599's `manylinux2014_<arch>` (= manylinux_2_17), the tags PyPI's wheels carry. The
# Debian base is bookworm (glibc 2.36); python:3.11-slim is 3.11.x-slim-trixie (Debian 13,
# glibc 2.41; docker-library/official-images, library/python): wheels up to manylinux_2_28
# run on either. requirements.lock pins every file of each version (pip-compile
# --generate-hashes), so one lock pins both architectures' wheels.
PIP_PLATFORMS = {
    "amd64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}
PLATFORMS = tuple(f"linux/{architecture}" for architecture in PIP_PLATFORMS)
"""What ``make image`` builds by default, in the index's order. No ``variant`` for arm64:
opencontainers/image-spec image-index.md makes ``variant`` optional (``v8`` for arm64 when
given), containerd's platform matching normalizes arm64/v8 to arm64 (its platforms package's
``normalizeArch``), and the services' images (``build.platforms``) write none either."""
RUNTIME_ENV = (
    f"PYTHONPATH=/{PREFIX}/lib",
    "HOME=/tmp",
    "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONUNBUFFERED=1",
    "CGO_ENABLED=0",
    "GOTOOLCHAIN=local",
)
_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "tasks", "workflows")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")


@dataclass(frozen=True)
class RuntimeRequest:
    project: Path
    lock: Path
    wheelhouse: Path
    """Where the locked wheels are (``download_locked``); the install reads nothing else."""
    repository: str
    tag: str
    base: str
    platforms: tuple[str, ...] = PLATFORMS
    """``os/arch`` each, of ``PLATFORMS``: one is pushed as an image manifest, several as an
    OCI index of one manifest each."""
    docker_config: Path | None = None
    insecure: bool = False
    source: str | None = None
    debian_cache: Path | None = None
    """Where the Debian base's packages are cached (default: the project's build/debian)."""


HOW_TO_PIN = (
    "get the digest of the official image's multi-platform index on a machine that reaches "
    "Docker Hub (`crane digest docker.io/library/python:3.11-slim`, or the Digest: line of "
    "`docker buildx imagetools inspect docker.io/library/python:3.11-slim`) and pass "
    "BASE=docker.io/library/python:3.11-slim@sha256:<digest> to make image, or write that "
    "reference in images/runtime/base.txt"
)


def read_base(path: Path) -> str:
    """The first non-comment line of ``base.txt``; refuses the placeholder."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return check_base(next((line for line in lines if line and not line.startswith("#")), ""))


def _base_line(path: Path) -> str:
    try:
        return read_base(path)
    except InputError:
        return ""


def is_debian_lock(base: str) -> bool:
    """A base ending in ``.lock`` is a Debian lock (a path, relative to the project), which
    ``debian.debian_base`` assembles; anything else is a registry image."""
    return base.endswith(".lock") and "@" not in base


def check_base(base: str) -> str:
    """``base`` unless it is empty or the placeholder: a base nobody pinned is never built on,
    and the refusal says where a real digest comes from (no command here can reach Docker
    Hub to look it up, and a made-up digest would only fail later, at the registry)."""
    if is_debian_lock(base):
        return base
    if not base or PLACEHOLDER in base:
        raise InputError(
            FieldError("base", f"{base or 'the base'} is not a real digest: {HOW_TO_PIN}")
        )
    return base


def check_platforms(given: Sequence[str]) -> tuple[Platform, ...]:
    """Each of ``given`` parsed, once, and one the locks pin (``PLATFORMS``): every mistake
    at once, before anything is fetched or pushed."""
    errors: list[FieldError] = []
    platforms: list[Platform] = []
    supported = " and ".join(PLATFORMS)
    for text in given:
        if text not in PLATFORMS:
            errors.append(
                FieldError(
                    "platform",
                    f"{text!r}: the runtime image is built for {supported} only (the platforms "
                    "images/runtime/requirements.lock and debian.lock pin): name one or both",
                )
            )
        elif any(str(seen) == text for seen in platforms):
            errors.append(FieldError("platform", f"{text} is given twice: once each"))
        else:
            platforms.append(Platform.parse(text))
    if not given:
        errors.append(FieldError("platform", f"no platform given: name {supported}"))
    if errors:
        raise InputError(errors)
    return tuple(platforms)


def download_locked(
    lock: Path,
    wheelhouse: Path,
    *,
    offline: bool = False,
    architectures: Sequence[str] = tuple(PIP_PLATFORMS),
) -> None:
    """Fetch every locked wheel for CPython 3.11 on each of ``architectures`` (pip checks each
    hash; a pure-Python wheel both need is fetched once); ``offline``: only check that
    ``wheelhouse`` already holds them all."""
    local = ["--no-index", "--find-links", str(wheelhouse)] if offline else []
    for architecture in architectures:
        _pip("download", *local, "--dest", str(wheelhouse), *_locked_args(lock, architecture))


def build_checkout_wheel(project: Path, wheels: Path) -> None:
    """This checkout's wheel into ``wheels``, built from a copy of its sources (no build
    leftovers, no egg-info): once per build, every platform's image installs the same file."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch, "src")
        source.mkdir()
        for name in _SOURCES:
            item = project / name
            if item.is_dir():
                shutil.copytree(item, source / name, ignore=_IGNORE)
            else:
                shutil.copy2(item, source / name)
        _pip("wheel", "--no-deps", "--wheel-dir", str(wheels), str(source))


def stage(
    project: Path,
    lock: Path,
    wheelhouse: Path,
    root: Path,
    interpreter: str = INTERPRETER,
    *,
    architecture: str = "amd64",
    checkout_wheels: Path | None = None,
) -> None:
    """``root/opt/canaryflow/{lib,bin}``: the locked wheels for ``architecture``, then this
    checkout's wheel (from ``checkout_wheels`` if built already); the console scripts run
    ``interpreter``, the base's."""
    lib = root / PREFIX / "lib"
    with tempfile.TemporaryDirectory() as scratch:
        wheels = checkout_wheels or Path(scratch, "wheels")
        if checkout_wheels is None:
            build_checkout_wheel(project, wheels)
        _pip(
            "install", "--no-index", "--find-links", str(wheelhouse), "--target", str(lib),
            "--no-compile", *_locked_args(lock, architecture),
        )  # fmt: skip
        # Before the next install: with --target --upgrade pip replaces lib/bin as a whole.
        _move_scripts(lib, root / PREFIX / "bin", interpreter)
        # By name from a directory, not by path: pip then records no direct_url.json (a path).
        _pip(
            "install", "--no-index", "--find-links", str(wheels), "--no-deps", "--no-compile",
            "--target", str(lib), "--upgrade", "canaryflow",
        )  # fmt: skip
    _move_scripts(lib, root / PREFIX / "bin", interpreter)


def _locked_args(lock: Path, architecture: str) -> list[str]:
    platforms = [arg for p in PIP_PLATFORMS[architecture] for arg in ("--platform", p)]
    return [
        "--require-hashes", "--no-deps", "--only-binary=:all:",
        *platforms, "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
        "-r", str(lock),
    ]  # fmt: skip


def _pip(*args: str) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PIP_NO_CACHE_DIR": "1"}
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    subprocess.run(command, check=True, env=env, stdin=subprocess.DEVNULL)


def _move_scripts(lib: Path, bin_dir: Path, interpreter: str) -> None:
    """pip writes ``lib/bin`` with this machine's interpreter in each shebang: move them to
    ``bin`` with the image's interpreter, and fix their hash lines in each ``RECORD``."""
    scripts = lib / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    rewritten: dict[str, bytes] = {}
    for script in sorted(scripts.iterdir()) if scripts.is_dir() else []:
        data = script.read_bytes()
        if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
            data = f"#!{interpreter}\n".encode() + data.split(b"\n", 1)[1]
        (bin_dir / script.name).write_bytes(data)
        (bin_dir / script.name).chmod(0o755)
        rewritten[script.name] = data
        script.unlink()
    if scripts.is_dir():
        scripts.rmdir()
    for record in lib.glob("*.dist-info/RECORD"):
        rows = list(csv.reader(io.StringIO(record.read_text())))
        for row in rows:
            name = row[0].rsplit("/", 1)[-1] if row else ""
            if row and "bin/" in row[0] and name in rewritten:
                digest = hashlib.sha256(rewritten[name]).digest()
                hashed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                row[1:3] = [f"sha256={hashed}", str(len(rewritten[name]))]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        record.write_text(out.getvalue())


def tree_files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every regular file under ``root`` as ``oci.files_layer`` takes it: mode 0755 if
    executable by anyone, else 0644, whatever the umask was (wheels carry no symlinks)."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"{path}: a symlink; the runtime layer holds regular files only")
        if path.is_file():
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            files[path.relative_to(root).as_posix()] = (path.read_bytes(), mode)
    return files


def runtime_config(
    base: BaseImage, layers: Sequence[Layer], layer: Layer, platform: Platform, labels: Mapping
) -> dict[str, Any]:
    """Non-root 65532, ``canaryflow`` as entrypoint on a PATH that starts at our ``bin``."""
    runtime = base.config.get("config") or {}
    env = [e for e in runtime.get("Env") or [] if not e.startswith("PATH=")]
    path = next((e for e in runtime.get("Env") or [] if e.startswith("PATH=")), DEFAULT_PATH)
    env = [f"PATH=/{PREFIX}/bin:{path.removeprefix('PATH=')}", *env, *RUNTIME_ENV]
    return {
        **platform.to_json(),
        "created": EPOCH,
        "config": {
            "User": NONROOT_USER,
            "Entrypoint": ["canaryflow"],
            "Cmd": ["--help"],
            "Env": env,
            "WorkingDir": "/tmp",
            "Labels": {**(runtime.get("Labels") or {}), **labels},
        },
        "rootfs": {"type": "layers", "diff_ids": [item.diff_id for item in layers]},
        "history": [
            *(base.config.get("history") or []),
            {"created": EPOCH, "created_by": layer.created_by},
        ],
    }


def assemble(base: BaseImage, layer: Layer, platform: Platform, labels: Mapping) -> Image:
    layers = (*base.layers, layer)
    config = canonical_json(runtime_config(base, layers, layer, platform, labels))
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": Descriptor.of(CONFIG, config).to_json(),
            "layers": [item.descriptor.to_json() for item in layers],
        }
    )
    return Image(layers=layers, config=config, manifest=manifest)


def load_debian_base(request: RuntimeRequest, platform: Platform) -> BaseImage:
    """The base from a Debian lock: its packages for ``platform`` from the cache or their
    URLs, each checked against the lock's SHA-256, made into one layer."""
    path = request.project / request.base
    cache = request.debian_cache or request.project / DEBIAN_CACHE
    try:
        text = path.read_bytes()
        lock = parse_lock(text.decode())
        debs = fetch_packages(lock, platform.architecture, cache)
        return debian_base(debs, "sha256:" + hashlib.sha256(text).hexdigest())
    except OSError as error:
        raise InputError(FieldError("base", f"cannot read {path}: {error}")) from None
    except DebianError as error:
        raise PlatformError(f"the Debian base ({request.base}): {error}") from None


def build_runtime_image(request: RuntimeRequest) -> PushedImage:
    """Per platform: its base (every platform's first, so a base lacking one fails before
    anything is staged or pushed), the staged wheels as one layer, the image; then
    ``push_images``: blobs, each manifest, and for several platforms the index, verified by
    digest."""
    repository = parse_repository(request.repository, "repository")
    check_tag(request.tag, "tag")
    debian = is_debian_lock(request.base)
    base_ref = None if debian else parse_reference(request.base, "base")
    if base_ref is not None and base_ref.digest is None:
        raise InputError(FieldError("base", f"{request.base} is not pinned: add @sha256:..."))
    platforms = check_platforms(request.platforms)
    config = DockerConfig.load(request.docker_config, optional=True)

    def client(repo) -> RegistryClient:
        insecure = request.insecure or repo.is_loopback
        return RegistryClient(repo.api_host, config.credentials_for(repo.host), insecure=insecure)

    target = client(repository)
    target.need_scope(repository.name, "pull,push")
    base_source = None
    if base_ref is None:
        bases = [load_debian_base(request, platform) for platform in platforms]
        interpreter = DEBIAN_INTERPRETER
    else:
        same = base_ref.repository.api_host == repository.api_host
        base_client = target if same else client(base_ref.repository)
        bases = [fetch_base(base_client, base_ref, platform) for platform in platforms]
        base_source, interpreter = (base_client, base_ref.repository.name), INTERPRETER
    labels = {REVISION_LABEL: request.tag, VERSION_LABEL: request.tag}
    if request.source:
        labels[SOURCE_LABEL] = request.source
    images = []
    with tempfile.TemporaryDirectory() as scratch:
        wheels = Path(scratch, "wheels")
        build_checkout_wheel(request.project, wheels)
        for platform, base in zip(platforms, bases, strict=True):
            root = Path(scratch, platform.architecture)
            stage(request.project, request.lock, request.wheelhouse, root, interpreter,
                  architecture=platform.architecture, checkout_wheels=wheels)  # fmt: skip
            layer = files_layer(tree_files(root), "canaryflow make image: /opt/canaryflow")
            shutil.rmtree(root)
            images.append((platform, assemble(base, layer, platform, labels)))
    return push_images(target, repository, request.tag, images, base_source)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m canaryflow.image.runtime")
    parser.add_argument("--repository", help="HOST/REPO to push to")
    parser.add_argument("--tag")
    parser.add_argument(
        "--base",
        help="a Debian lock (PATH.lock, relative to --project) or HOST/REPO@sha256:... "
        "(default: images/runtime/base.txt)",
    )
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--lock", type=Path, default=Path("images/runtime/requirements.lock"))
    parser.add_argument("--wheelhouse", type=Path, default=Path("build/wheelhouse"))
    parser.add_argument("--download", action="store_true", help="fetch the locked wheels first")
    parser.add_argument(
        "--download-only", action="store_true",
        help="only fetch the wheels (and the Debian base's packages, if the base is a lock)",
    )  # fmt: skip
    parser.add_argument(
        "--platform", action="append",
        help=f"os/arch to build, comma-separated or repeated (default: {','.join(PLATFORMS)}; "
        "one platform: an image manifest, several: an OCI index)",
    )  # fmt: skip
    parser.add_argument("--docker-config", type=Path)
    args = parser.parse_args(argv)
    given = [p for item in args.platform or [",".join(PLATFORMS)] for p in item.split(",") if p]
    try:
        platforms = check_platforms(given)
    except InputError as error:
        for item in error.errors:
            print(f"error: {item}", file=sys.stderr)
        return EXIT_INPUT
    architectures = [platform.architecture for platform in platforms]
    if args.download_only:
        download_locked(args.lock, args.wheelhouse, architectures=architectures)
        base = args.base or _base_line(args.project / BASE_FILE)
        if is_debian_lock(base):
            try:
                lock = parse_lock((args.project / base).read_text())
                for architecture in architectures:
                    fetch_packages(lock, architecture, args.project / DEBIAN_CACHE)
            except (OSError, DebianError) as error:
                print(f"error: the Debian base's packages: {error}", file=sys.stderr)
                return EXIT_RELEASE_FAILED
        return 0
    if not args.repository or not args.tag:
        parser.error("--repository and --tag are required to build and push")
    try:
        base = check_base(args.base) if args.base else read_base(args.project / BASE_FILE)
        if args.download:
            download_locked(args.lock, args.wheelhouse, architectures=architectures)
        request = RuntimeRequest(
            args.project, args.lock, args.wheelhouse, args.repository, args.tag, base,
            platforms=tuple(given), docker_config=args.docker_config,
        )  # fmt: skip
        pushed = build_runtime_image(request)
    except InputError as error:
        for item in error.errors:
            print(f"error: {item}", file=sys.stderr)
        return EXIT_INPUT
    except UnreachableError as error:  # a registry that never answered: try again (the CLI's 3)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except PlatformError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_RELEASE_FAILED
    print(pushed.reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
