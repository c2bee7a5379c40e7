"""The compiled templates match the reviewed YAML under tests/golden/argo/.

A change to the generated Argo objects must be deliberate: regenerate with
``CANARYFLOW_UPDATE_GOLDEN=1 pytest tests/test_workflow_golden.py`` and review the diff.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from canaryflow.commands.compile import render_yaml
from canaryflow_workflows import WorkflowSettings, compile_documents

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests/golden/argo"
UPDATE = os.environ.get("CANARYFLOW_UPDATE_GOLDEN") == "1"
DOCUMENTS = compile_documents(WorkflowSettings())


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_compiled_template_matches_its_golden_file(name):
    actual = render_yaml(DOCUMENTS[name])
    golden = GOLDEN / name
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    assert golden.exists(), (
        f"no golden file: run with CANARYFLOW_UPDATE_GOLDEN=1 to create {golden}"
    )
    expected = golden.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"golden/{name}",
            f"compiled/{name}",
        )
    )
    assert not diff, f"compiled YAML differs from the golden file:\n{diff}"


def test_compiling_twice_gives_the_same_yaml():
    again = compile_documents(WorkflowSettings())
    assert {n: render_yaml(d) for n, d in again.items()} == {
        n: render_yaml(d) for n, d in DOCUMENTS.items()
    }
