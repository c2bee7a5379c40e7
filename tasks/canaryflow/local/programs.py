"""What the local platform runs for stable and canary: the plan's programs, or the sample.

A program is a command line (``{port}`` where its listen port goes) or a Go main package that
is built static and version-stamped first, exactly as the workflow's go-build task builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from canaryflow.build.go import go_build
from canaryflow.build.sample import build_sample_service
from canaryflow.plan.model import ProgramSpec
from canaryflow.platform.protocol import Artifact

LISTEN = ("-listen", "127.0.0.1:{port}")


def sample_service(version: str, build_dir: Path, faults: Sequence[str] = ()) -> Artifact:
    """The sample Go service stamped ``version``, with fault flags such as ``-error-rate 0.3``."""
    binary = build_sample_service(build_dir, version)
    return Artifact(version=version, command=(str(binary), *LISTEN, *faults))


def program_artifact(
    spec: ProgramSpec | None, default_version: str, build_dir: Path, base_dir: Path
) -> Artifact:
    """The artifact for a plan's ``local.stable`` or ``local.canary`` (relative to the plan)."""
    if spec is None:
        return sample_service(default_version, build_dir)
    version = spec.version or default_version
    if spec.command is not None:
        return Artifact(version=version, command=tuple(spec.command))
    package = (base_dir / spec.go_package).resolve()
    output = build_dir / f"{package.name}-{version}"
    result = go_build(package, output, version)
    return Artifact(version=version, command=(str(result.path), *LISTEN))
