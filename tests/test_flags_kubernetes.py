"""A flag rollout as the workflow's task runs it: ``canaryflow flag-rollout --platform
kubernetes`` edits a ConfigMap through the real kubernetes client (against the fake API
server), a kubelet stand-in copies the ConfigMap's key into the file the real sample service
reads, and a real Prometheus judges flag-on against flag-off requests.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest
import yaml
from kube import schemas
from kube.fake_apiserver import FakeApiServer
from kube.fixtures import write_kubeconfig

from canaryflow.cli import main
from canaryflow.flags.document import encode_document, flag_off, flag_state
from canaryflow.local.flag_demo import DEMO_PLAN
from canaryflow.local.programs import sample_service
from canaryflow.local.stack import LocalStack
from canaryflow.plan.model import ReleasePlan

pytestmark = pytest.mark.slow
KEY = "new-checkout"
NAMESPACE = DEMO_PLAN["service"]["namespace"]
CONFIG_MAP = "checkout-flags"


class Kubelet(threading.Thread):
    """Copies the ConfigMap's key into the mounted file, as kubelet does on its pod sync."""

    def __init__(self, api_server: FakeApiServer, mounted: Path, period_s: float = 0.3):
        super().__init__(daemon=True)
        self.api_server, self.mounted, self.period_s = api_server, mounted, period_s
        self.stopped = threading.Event()

    def sync(self) -> None:
        data = self.api_server.get("ConfigMap", NAMESPACE, CONFIG_MAP)["data"]
        if not self.mounted.exists() or self.mounted.read_text() != data["flags.json"]:
            temp = self.mounted.with_suffix(".tmp")
            temp.write_text(data["flags.json"])
            temp.replace(self.mounted)

    def run(self) -> None:
        while not self.stopped.wait(self.period_s):
            self.sync()


def rollout(tmp_path: Path, api_server: FakeApiServer, faults: tuple[str, ...] = ()):
    document = copy.deepcopy(DEMO_PLAN)
    document["flag"]["steps"] = [
        {"users": "0-199", "duration": "3s"},
        {"percent": 50, "duration": "3s"},
    ]
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(document))
    api_server.seed(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
            "data": {"flags.json": encode_document(flag_off(KEY)), "app.yaml": "theirs: 1\n"},
        }
    )
    kubelet = Kubelet(api_server, tmp_path / "mounted-flags.json")
    kubelet.sync()
    kubelet.start()
    flag_args = ("-flags-file", str(kubelet.mounted), "-flag-key", KEY, *faults)
    stable = sample_service("v1", tmp_path / "build", flag_args)
    try:
        with LocalStack(ReleasePlan.model_validate(document), stable, tmp_path / "stack") as stack:
            assert stack.prometheus is not None
            code = main(
                [
                    "flag-rollout",
                    "--plan", str(plan_path),
                    "--platform", "kubernetes",
                    "--configmap", CONFIG_MAP,
                    "--kubeconfig", str(write_kubeconfig(tmp_path / "kubeconfig", api_server.url)),
                    "--prometheus", stack.prometheus.url,
                    "--record", str(tmp_path / "record.json"),
                ]
            )  # fmt: skip
    finally:
        kubelet.stopped.set()
        kubelet.join()
    config_map = api_server.get("ConfigMap", NAMESPACE, CONFIG_MAP)
    return code, config_map, json.loads((tmp_path / "record.json").read_text())


def test_a_healthy_feature_reaches_everyone_through_the_config_map(tmp_path, api_server):
    code, config_map, record = rollout(tmp_path, api_server)

    assert code == 0
    assert flag_state(json.loads(config_map["data"]["flags.json"]), KEY) == "on"
    assert config_map["data"]["app.yaml"] == "theirs: 1\n", "the rest of the ConfigMap is kept"
    for write in api_server.writes("ConfigMap"):
        schemas.validate(write.body)
    applied = [e for e in record["events"] if e["kind"] == "flag-applied"]
    assert [e["segment"] for e in applied] == [
        "users user-0..user-199",
        "50% of users",
        "everyone",
    ]


def test_a_failing_feature_is_switched_off_in_the_config_map(tmp_path, api_server):
    code, config_map, record = rollout(
        tmp_path, api_server, ("-error-rate", "0.3", "-flag-on-only")
    )

    assert code == 1
    assert json.loads(config_map["data"]["flags.json"]) == flag_off(KEY)
    previous = json.loads(config_map["data"]["flags.json.previous"])
    assert flag_state(previous, KEY) == "partial", "the exposure switched off is kept"
    kinds = [e["kind"] for e in record["events"]]
    assert "flag-off-applied" in kinds, "the service confirmed it serves off again"
