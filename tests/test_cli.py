"""The command line as a user meets it: exit codes, messages, and a light start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from canaryflow.cli import main

ROOT = Path(__file__).parent.parent
PLANS = sorted((ROOT / "examples" / "plans").glob("*.yaml"))


def test_validate_exits_0_on_a_good_plan(capsys):
    assert main(["validate", str(PLANS[0]), "--offline"]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_exits_2_and_names_each_mistake_without_a_traceback(tmp_path, capsys):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: Checkout}\nsteps: [{weight: 0, duration: 1m}]\n")
    assert main(["validate", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "error: service.name: 'Checkout' is not a valid name" in err
    assert "error: steps[0].weight: 0 is below the minimum 1" in err
    assert "Traceback" not in err


def test_validate_of_a_missing_file_is_an_input_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read the plan" in capsys.readouterr().err


def test_validate_writes_the_resolved_plan_for_later_tasks(tmp_path):
    out = tmp_path / "resolved.yaml"
    plan = tmp_path / "p.yaml"
    plan.write_text("service: {name: checkout}\n")
    assert main(["validate", str(plan), "--resolved-out", str(out)]) == 0
    resolved = yaml.safe_load(out.read_text())
    assert resolved["steps"][0] == {"weight": 5, "duration": "1m", "approve": None}
    assert resolved["analysis"]["gates"], "defaults are written out in full"


def test_the_json_schema_accepts_the_example_plans_and_rejects_unknown_keys(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    validator = jsonschema.Draft202012Validator(schema)
    for path in PLANS:
        validator.validate(yaml.safe_load(path.read_text()))
    errors = list(validator.iter_errors({"service": {"name": "x"}, "colour": "blue"}))
    assert any("colour" in error.message for error in errors)


def test_help_does_not_import_hera_or_the_kubernetes_client():
    code = (
        "import sys; from canaryflow.cli import main\n"
        "try: main(['--help'])\n"
        "except SystemExit: pass\n"
        "heavy = [m for m in ('hera', 'kubernetes', 'prometheus_api_client', 'pydantic')"
        " if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_validate_checks_the_workflow_parameters_against_the_plan(tmp_path, capsys):
    plan = tmp_path / "p.yaml"
    plan.write_text("service: {name: checkout, namespace: shop}\n")
    args = ["validate", str(plan), "--service", "payments", "--namespace", "shop"]
    assert main(args) == 2
    assert "service.name: the plan says 'checkout'" in capsys.readouterr().err
    assert main(["validate", str(plan), "--router-kind", "linkerd"]) == 2


def test_validate_applies_a_router_kind_override_to_the_resolved_plan(tmp_path):
    plan, out = tmp_path / "p.yaml", tmp_path / "resolved.yaml"
    plan.write_text("service: {name: checkout}\nrouter: {kind: istio}\n")
    args = ["validate", str(plan), "--router-kind", "gateway-api", "--resolved-out", str(out)]
    assert main([*args, "--service", "checkout", "--namespace", "default"]) == 0
    assert yaml.safe_load(out.read_text())["router"]["kind"] == "gateway-api"
