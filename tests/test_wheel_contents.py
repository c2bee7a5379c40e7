"""The wheel ships what an installed ``canaryflow`` needs without a checkout, read from the wheel.

``make test``'s share of tests/test_installed_wheel.py (marked ``e2e``: it installs the wheel
into a fresh virtualenv and runs the demo from it): the same files and metadata, read from the
built wheel's archive, with no virtualenv and no release.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from canaryflow.build.sample import SAMPLE_SERVICE_DIR
from canaryflow.commands.demo import DEFAULT_PLAN

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "tasks"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Built from a copy of the checkout's sources: a build/lib left by an earlier build would
    still hold a file the sources lost."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")
    for name in ("pyproject.toml", "README.md", "LICENSE", "tasks", "workflows"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", out, source], check=True, cwd=out)
    [path] = out.glob("canaryflow-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_the_wheel_ships_the_sample_services_sources_and_the_demo_plan(wheel):
    names = set(wheel.namelist())
    sample = SAMPLE_SERVICE_DIR.relative_to(TASKS).as_posix()
    assert f"{sample}/go.mod" in names
    assert {p.relative_to(TASKS).as_posix() for p in SAMPLE_SERVICE_DIR.glob("*.go")} <= names
    assert DEFAULT_PLAN.relative_to(TASKS).as_posix() in names


def test_the_wheel_is_typed_and_licensed_by_an_spdx_expression(wheel):
    names = set(wheel.namelist())
    assert {"canaryflow/py.typed", "canaryflow_workflows/py.typed"} <= names
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert Parser().parsestr(wheel.read(metadata).decode())["License-Expression"] == "Apache-2.0"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
