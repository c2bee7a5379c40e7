"""The sample service the demos release, built once per version and source.

Builds are cached in the output directory under a name carrying the version and a hash of
the sources, the Go version and the target platform, so repeated demos and test sessions
reuse the binary and any edit to a ``.go`` file or ``go.mod`` builds afresh.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from canaryflow.build.go import GoToolchain, check_build_inputs, go_build

SAMPLE_SERVICE_DIR = Path(__file__).resolve().parents[1] / "examples" / "sample-service"

_SOURCE_PATTERNS = ("*.go", "go.mod", "go.sum")


def source_hash(source_dir: Path) -> str:
    """sha256 over every ``.go`` file, ``go.mod`` and ``go.sum`` (names and contents)."""
    source_dir = Path(source_dir)
    files = sorted({p for pattern in _SOURCE_PATTERNS for p in source_dir.rglob(pattern)})
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(source_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_sample_service(
    out_dir: Path,
    version: str,
    source_dir: Path = SAMPLE_SERVICE_DIR,
    goos: str | None = None,
    goarch: str | None = None,
    toolchain: GoToolchain | None = None,
) -> Path:
    """The sample service binary stamped ``version``, built unless a cached build fits."""
    check_build_inputs(version, (), goos, goarch)
    toolchain = toolchain or GoToolchain.find()
    key = hashlib.sha256(
        "\0".join([source_hash(source_dir), toolchain.version(), goos or "", goarch or ""]).encode()
    ).hexdigest()
    out_dir = Path(out_dir)
    binary = out_dir / f"sample-service-{version}-{key[:16]}"
    if binary.is_file():
        return binary
    partial = binary.with_name(f".{binary.name}.{os.getpid()}.partial")
    try:
        go_build(source_dir, partial, version, goos=goos, goarch=goarch, toolchain=toolchain)
        partial.replace(binary)
    finally:
        partial.unlink(missing_ok=True)
    return binary
