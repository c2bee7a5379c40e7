"""Linting and packaging the chart with Helm's own engine (helm-python-sdk, no helm binary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canaryflow.errors import InputError

SEVERITY_WARNING = 2


def lint_findings(chart: Path, values: dict[str, Any] | None = None) -> list[str]:
    """Every warning or error ``helm lint --strict`` reports, as ``path: message``."""
    import helm_python as helm

    report = helm.lint(chart, values, strict=True, kube_version="v1.33.0")
    findings = [
        f"{message['path']}: {message['error']}"
        for message in report["messages"]
        if message["severity"] >= SEVERITY_WARNING
    ]
    return findings + list(report.get("errors") or [])


def package_chart(chart: Path, destination: Path) -> Path:
    """Lint strictly, then write ``<destination>/canaryflow-<version>.tgz``."""
    import helm_python as helm

    findings = lint_findings(chart)
    if findings:
        raise InputError([f"helm lint: {finding}" for finding in findings])
    destination.mkdir(parents=True, exist_ok=True)
    return Path(helm.package(chart, destination=destination))
