"""An installed wheel is the whole product: ``canaryflow demo`` works without a checkout.

The wheel is built from this repository, installed into a fresh virtualenv, and the demo runs
from a directory outside the repository, so the sample service's Go sources and the example
plans can only come from the package data. The short plan of test_demo keeps it under a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from test_demo import SHORT_PLAN

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # `make test-e2e`, not `make test`

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel (and its ``go`` extra) installed; its bin folder."""
    root = tmp_path_factory.mktemp("wheel")
    wheels = root / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", wheels, REPO], check=True, cwd=root)
    [wheel] = wheels.glob("canaryflow-*.whl")
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    bin_dir = root / "venv" / "bin"
    install = [bin_dir / "python", "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    subprocess.run([*install, f"{wheel}[go]"], check=True, cwd=root)
    return bin_dir


def test_the_wheel_ships_the_sample_service_and_the_example_plans(installed: Path, tmp_path):
    probe = (
        "from canaryflow.build.sample import SAMPLE_SERVICE_DIR as s;"
        "from canaryflow.commands.demo import DEFAULT_PLAN as p;"
        "print(s); print(p); assert (s / 'go.mod').is_file() and p.is_file()"
    )
    result = subprocess.run(
        [installed / "python", "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    sample, plan = result.stdout.split()
    assert "site-packages" in sample and "site-packages" in plan
    assert not sample.startswith(str(REPO)) and not plan.startswith(str(REPO))


def test_an_installed_demo_promotes_the_healthy_release_and_rolls_back_the_faulty_one(
    installed: Path, tmp_path
):
    plan = tmp_path / "plan.yaml"
    plan.write_text(SHORT_PLAN)
    env = {**os.environ, "PATH": f"{installed}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    demo = [installed / "canaryflow", "demo", "--json", "--plan", plan, "--out", tmp_path / "out"]
    result = subprocess.run(
        demo, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert [r["phase"] for r in summary["releases"]] == ["promoted", "rolled-back"]


def test_the_wheel_is_typed_and_licensed_by_an_spdx_expression(installed: Path, tmp_path):
    probe = (
        "import importlib.metadata as m, importlib.resources as r;"
        "meta = m.metadata('canaryflow');"
        "print(meta['License-Expression']);"
        "print(any(f.name == 'LICENSE' for f in m.files('canaryflow')));"
        "print(r.files('canaryflow').joinpath('py.typed').is_file());"
        "print(r.files('canaryflow_workflows').joinpath('py.typed').is_file())"
    )
    result = subprocess.run(
        [installed / "python", "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Apache-2.0", "True", "True", "True"]
