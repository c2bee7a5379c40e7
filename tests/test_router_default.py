"""The default router is Gateway API; nginx-ingress and SMI still work, with a warning.

ingress-nginx was retired upstream in March 2026 and the SMI specification is archived (Flagger
is removing it): a plan naming either still validates (exit 0: releases that work today keep
working) and ``validate`` says why and where to move.
"""

from __future__ import annotations

import pytest

from canaryflow.cli import main
from canaryflow.plan.load import plan_from_dict


def test_a_plan_without_a_router_uses_gateway_api():
    assert plan_from_dict({"service": {"name": "checkout"}}).router.kind == "gateway-api"


@pytest.mark.parametrize(
    ("kind", "header", "moves_to"),
    [("nginx-ingress", "{}", "gateway-api"), ("smi", "null", "gateway-api")],
)
def test_deprecated_routers_validate_with_a_warning(tmp_path, capsys, kind, header, moves_to):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text(f"service: {{name: checkout}}\nrouter: {{kind: {kind}, header: {header}}}\n")
    assert main(["validate", str(plan), "--offline"]) == 0
    out = capsys.readouterr()
    assert "valid" in out.out
    assert f"warning: router.kind: {kind} is deprecated" in out.err
    assert moves_to in out.err.split("deprecated", 1)[1]

    current = tmp_path / "current.yaml"
    current.write_text("service: {name: checkout}\nrouter: {kind: istio}\n")
    assert main(["validate", str(current), "--offline"]) == 0
    assert "deprecated" not in capsys.readouterr().err, "only the deprecated kinds warn"
