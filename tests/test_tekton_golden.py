"""The compiled Tekton objects match the reviewed YAML under tests/golden/tekton/.

Regenerate with ``CANARYFLOW_UPDATE_GOLDEN=1 pytest tests/test_tekton_golden.py`` and review
the diff; never edit the files by hand. Same plan as the Argo golden files (checkout.yaml).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from canaryflow.commands.compile import render_yaml
from canaryflow.plan.load import load_plan
from canaryflow_workflows import WorkflowSettings
from canaryflow_workflows.tekton.documents import compile_tekton_documents

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests/golden/tekton"
UPDATE = os.environ.get("CANARYFLOW_UPDATE_GOLDEN") == "1"
PLAN = load_plan(REPO / "examples/plans/checkout.yaml")
DOCUMENTS = compile_tekton_documents(PLAN, WorkflowSettings())


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_compiled_tekton_object_matches_its_golden_file(name):
    actual = render_yaml(DOCUMENTS[name])
    golden = GOLDEN / name
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    assert golden.exists(), (
        f"no golden file: run with CANARYFLOW_UPDATE_GOLDEN=1 to create {golden}"
    )
    diff = "".join(
        difflib.unified_diff(
            golden.read_text().splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"golden/{name}",
            f"compiled/{name}",
        )
    )
    assert not diff, f"compiled YAML differs from the golden file:\n{diff}"


def test_no_golden_file_is_left_over_from_an_object_that_is_gone():
    assert {p.name for p in GOLDEN.glob("*.yaml")} == set(DOCUMENTS)


def test_compile_engine_tekton_writes_the_same_objects(tmp_path):
    from canaryflow.cli import main

    plan = REPO / "examples/plans/checkout.yaml"
    assert main(["compile", "--engine", "tekton", "--out", str(tmp_path), "--plan", str(plan)]) == 0
    written = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert written == {name: render_yaml(document) for name, document in DOCUMENTS.items()}
