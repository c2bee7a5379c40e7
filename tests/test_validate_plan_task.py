"""``canaryflow validate`` as the workflow's validate-plan task: the repository's own plan (or
the chart's default for a repository without one), and the outputs that drive the step walk."""

from __future__ import annotations

import json

import yaml

from canaryflow.cli import main

OWN = (
    "service: {name: checkout, namespace: shop}\n"
    "steps:\n"
    "  - {weight: 10, duration: 90s}\n"
    "  - {approve: {message: 'Half way. Go on?', timeout: 30m}}\n"
    "  - {weight: 100, duration: 2m}\n"
    "promotion: {auto: false}\n"
)
DEFAULT = "steps: [{weight: 20, duration: 1m}, {weight: 100, duration: 1m}]\n"


def validate(tmp_path, *extra: str) -> int:
    return main(
        [
            "validate",
            str(tmp_path / "canaryflow.yaml"),
            "--offline",
            "--service",
            "checkout",
            "--namespace",
            "shop",
            "--resolved-out",
            str(tmp_path / "resolved.yaml"),
            "--workflow-outputs",
            str(tmp_path / "outputs"),
            *extra,
        ]
    )


def outputs(tmp_path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (tmp_path / "outputs").iterdir()}


def test_the_repositorys_plan_becomes_the_steps_the_workflow_walks(tmp_path):
    (tmp_path / "canaryflow.yaml").write_text(OWN)

    assert validate(tmp_path) == 0

    written = outputs(tmp_path)
    assert json.loads(written["steps"]) == [
        {"kind": "traffic", "weight": "10", "duration": "1m30s", "message": "", "timeout": ""},
        {
            "kind": "approve",
            "weight": "",
            "duration": "",
            "message": "Half way. Go on?",
            "timeout": "1800",
        },
        {"kind": "traffic", "weight": "100", "duration": "2m", "message": "", "timeout": ""},
    ]
    assert (written["last-step"], written["promotion"]) == ("2", "approve")


def test_the_default_plan_is_only_for_a_repository_without_one(tmp_path):
    (tmp_path / "default.yaml").write_text(DEFAULT)
    (tmp_path / "canaryflow.yaml").write_text(OWN)

    assert validate(tmp_path, "--default-plan", str(tmp_path / "default.yaml")) == 0
    assert json.loads(outputs(tmp_path)["steps"])[0]["weight"] == "10"  # the repository's

    (tmp_path / "canaryflow.yaml").unlink()
    assert validate(tmp_path, "--default-plan", str(tmp_path / "default.yaml")) == 0
    resolved = yaml.safe_load((tmp_path / "resolved.yaml").read_text())
    assert resolved["service"]["name"] == "checkout" and resolved["service"]["namespace"] == "shop"
    assert [s["weight"] for s in resolved["steps"]] == [20, 100]
    assert outputs(tmp_path)["promotion"] == "auto"


def test_no_plan_and_an_empty_default_is_an_input_error(tmp_path, capsys):
    (tmp_path / "default.yaml").write_text("")

    assert validate(tmp_path, "--default-plan", str(tmp_path / "default.yaml")) == 2
    assert "cannot read the plan" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()


def test_a_service_mismatch_writes_no_outputs(tmp_path):
    (tmp_path / "canaryflow.yaml").write_text(OWN.replace("checkout", "cart"))

    assert validate(tmp_path) == 2
    assert not (tmp_path / "outputs").exists()


def test_a_plan_longer_than_the_walk_can_nest_is_refused_before_anything_runs(tmp_path, capsys):
    steps = "".join(f"  - {{weight: {i}, duration: 1s}}\n" for i in range(1, 92))
    (tmp_path / "canaryflow.yaml").write_text(
        "service: {name: checkout, namespace: shop}\nsteps:\n" + steps
    )

    assert validate(tmp_path) == 2
    assert "steps: 91 steps; a release workflow walks at most 90" in capsys.readouterr().err
    assert not (tmp_path / "resolved.yaml").exists() and not (tmp_path / "outputs").exists()


REGISTERED = '{"shop/checkout": ["gateway-api"], "shop/cart": ["istio"]}'


def test_a_plan_whose_router_is_not_the_one_its_service_is_registered_with_is_refused(
    tmp_path, capsys
):
    """The release account's Role names only the registered router's objects: another kind
    would fail at the first router call, after deploy-canary. validate-plan refuses it first."""
    (tmp_path / "canaryflow.yaml").write_text(OWN + "router: {kind: istio}\n")

    assert validate(tmp_path, "--registered-routers", REGISTERED) == 2

    err = capsys.readouterr().err
    assert (
        "router.kind: plan says 'istio' but the service is registered with router 'gateway-api'"
        in err
    )
    assert "set router.kind: gateway-api in the plan" in err
    assert "events.services.<repository>.router" in err
    assert not (tmp_path / "resolved.yaml").exists() and not (tmp_path / "outputs").exists()


def test_the_registered_router_the_override_or_an_unregistered_service_pass(tmp_path):
    (tmp_path / "canaryflow.yaml").write_text(OWN + "router: {kind: gateway-api}\n")
    assert validate(tmp_path, "--registered-routers", REGISTERED) == 0

    # the workflow's router-kind parameter replaces the plan's before the check
    (tmp_path / "canaryflow.yaml").write_text(OWN + "router: {kind: istio}\n")
    assert (
        validate(tmp_path, "--registered-routers", REGISTERED, "--router-kind", "gateway-api") == 0
    )
    assert validate(tmp_path, "--registered-routers", "") == 0  # nothing registered: no check
    other = '{"shop/cart": ["istio"]}'  # checkout is not registered: not this check's to refuse
    (tmp_path / "canaryflow.yaml").write_text(OWN + "router: {kind: nginx-ingress}\n")
    assert validate(tmp_path, "--registered-routers", other) == 0


def test_a_registered_router_among_several_passes_and_the_message_names_them_all(tmp_path, capsys):
    both = '{"shop/checkout": ["gateway-api", "istio"]}'
    (tmp_path / "canaryflow.yaml").write_text(OWN + "router: {kind: istio}\n")
    assert validate(tmp_path, "--registered-routers", both) == 0

    (tmp_path / "canaryflow.yaml").write_text(OWN + "router: {kind: nginx-ingress}\n")
    assert validate(tmp_path, "--registered-routers", both) == 2
    assert "registered with router 'gateway-api' or 'istio'" in capsys.readouterr().err


def test_a_malformed_registry_is_an_input_error(tmp_path, capsys):
    (tmp_path / "canaryflow.yaml").write_text(OWN)
    for given in ("{", '["shop/checkout"]', '{"shop/checkout": ["linkerd"]}', '{"a/b": []}'):
        assert validate(tmp_path, "--registered-routers", given) == 2, given
        assert "--registered-routers: " in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()
