"""Go builds and tests for the task pods and the local engine: static, offline, reproducible."""

from canaryflow.build.go import (
    BuildResult,
    GoBuildError,
    GoTestResult,
    GoToolchain,
    go_build,
    go_test,
)
from canaryflow.build.sample import SAMPLE_SERVICE_DIR, build_sample_service, source_hash

__all__ = [
    "SAMPLE_SERVICE_DIR",
    "BuildResult",
    "GoBuildError",
    "GoTestResult",
    "GoToolchain",
    "build_sample_service",
    "go_build",
    "go_test",
    "source_hash",
]
