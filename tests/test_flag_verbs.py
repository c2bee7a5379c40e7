"""``flag-off`` and ``flag-rollout`` as the workflow's pods run them: CLI, kubeconfig, exit codes.

The real kubernetes client talks to the fake API server; nothing here needs Prometheus, since
bad input must be refused before anything is written or measured.
"""

from __future__ import annotations

import json

import pytest
import yaml
from kube import schemas
from kube.fixtures import write_kubeconfig

from canaryflow.cli import main
from canaryflow.flags.document import Percent, encode_document, flag_off, segment_document

KEY = "new-checkout"
PLAN = {
    "service": {"name": "checkout", "namespace": "shop"},
    "flag": {"key": KEY, "steps": [{"percent": 5, "duration": "1m"}]},
}


@pytest.fixture
def exposed(api_server):
    """A ConfigMap whose flag is on for 5 % of users, beside another flag of the team's."""
    theirs = {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}
    document = segment_document(KEY, Percent(5))
    document["flags"]["theirs"] = theirs
    api_server.seed(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "checkout-flags", "namespace": "shop"},
            "data": {"flags.json": encode_document(document)},
        }
    )
    return api_server


def verb(tmp_path, server, name, plan=PLAN, *extra):
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    cluster = ["--platform", "kubernetes", "--kubeconfig", str(kubeconfig)]
    return main([name, "--plan", str(plan_path), *cluster, *extra])


def stored(server, key="flags.json"):
    return json.loads(server.get("ConfigMap", "shop", "checkout-flags")["data"][key])


def test_flag_off_switches_only_the_plan_flag_off_and_twice_keeps_the_exposure(tmp_path, exposed):
    for _ in range(2):
        assert verb(tmp_path, exposed, "flag-off", PLAN, "--configmap", "checkout-flags") == 0

    assert stored(exposed)["flags"][KEY] == flag_off(KEY)["flags"][KEY]
    assert stored(exposed)["flags"]["theirs"]["defaultVariant"] == "a"
    assert stored(exposed, "flags.json.previous")["flags"][KEY]["targeting"] == {
        "fractional": [["on", 5], ["off", 95]]
    }
    assert len(exposed.writes("ConfigMap")) == 1, "the second run had nothing to change"
    schemas.validate(exposed.get("ConfigMap", "shop", "checkout-flags"))


@pytest.mark.parametrize(
    ("plan", "extra", "message"),
    [
        ({"service": {"name": "checkout"}}, ["--configmap", "checkout-flags"], "flag: the plan"),
        (PLAN, [], "--configmap: name the ConfigMap"),
        ({**PLAN, "flag": {"key": KEY, "steps": []}}, ["--configmap", "x"], "flag.steps"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(
    tmp_path, exposed, capsys, plan, extra, message
):
    for name in ("flag-off", "flag-rollout"):
        assert verb(tmp_path, exposed, name, plan, *extra) == 2
        assert message in capsys.readouterr().err
    assert exposed.writes() == []


def test_a_missing_config_map_fails_without_creating_one(tmp_path, api_server, capsys):
    code = verb(tmp_path, api_server, "flag-off", PLAN, "--configmap", "nowhere")

    assert code == 1
    assert "configmap shop/nowhere does not exist" in capsys.readouterr().err
    assert api_server.writes() == []
