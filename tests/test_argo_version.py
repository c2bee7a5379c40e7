"""The chart refuses an Argo Workflows controller that cannot run its templates (older than v3.6).

v3.5.15's ``Synchronization`` (pkg/apis/workflow/v1alpha1/workflow_types.go) has only ``mutex``
and ``semaphore``: the release's ``synchronization.mutexes`` decodes to an empty lock and
workflow/sync/lock_name.go fails the Workflow ("cannot get LockName for a Sync of Unknown
type"). The version comes from ``argoWorkflows.version`` or, at install, from the controller
Deployment's image (Helm ``lookup``, which is empty without a cluster). The lookup tests render
with Helm's engine cluster-aware (helm-python-sdk's ``Config.render``) against the fake API
server on loopback, so the ``lookup`` call, its discovery and its GET are real.
"""

from __future__ import annotations

import helm_python as helm
import pytest
import yaml
from chart_validation import CHART, NAMESPACE, objects
from kube.fake_apiserver import FakeApiServer

from canaryflow_workflows import WorkflowSettings, compile_documents


@pytest.mark.parametrize("version", ["v3.5.15", "v3.5.0", "3.4.16", "v3.5.15-rc1"])
def test_a_controller_older_than_v3_6_is_refused_with_the_fix(version):
    with pytest.raises(helm.HelmError) as raised:
        objects({"argoWorkflows": {"version": version}})
    message = str(raised.value)
    assert f"argoWorkflows.version: Argo Workflows {version}" in message
    assert "synchronization.mutexes" in message and "v3.6 or newer" in message


@pytest.mark.parametrize(
    "version", ["v3.6.0", "v3.6.19", "3.7.1", "v4.1.2", "v3.6.0-rc1", "latest"]
)
def test_v3_6_and_newer_or_an_unjudgeable_tag_install(version):
    assert objects({"argoWorkflows": {"version": version}})


def test_without_a_cluster_to_look_the_controller_up_nothing_is_refused():
    assert objects({})


def test_tekton_installs_are_not_judged_by_argo_versions():
    assert objects({"engine": "tekton", "argoWorkflows": {"version": "v3.5.15"}})


def test_the_reason_is_real_the_release_locks_with_mutexes_only():
    release = compile_documents(WorkflowSettings())["go-canary-release.workflowtemplate.yaml"]
    assert set(release["spec"]["synchronization"]) == {"mutexes"}


SIDECAR = {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"}


def controller(*containers: dict, name: str = "workflow-controller") -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "argo"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": list(containers)}},
        },
    }


def render_in_cluster(api: FakeApiServer, values: dict) -> list[dict]:
    """``helm install``'s rendering: ``lookup`` reads the (fake) cluster."""
    with helm.Chart.load(CHART) as chart, helm.Config(kube_apiserver=api.url) as config:
        manifests = config.render(chart, values, name="cf", namespace=NAMESPACE, is_install=True)
    texts = [text for path, text in manifests.items() if path.endswith(".yaml")]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def controller_reads(api: FakeApiServer) -> list[tuple[str, str]]:
    return [(r.namespace, r.name) for r in api.requests if r.plural == "deployments"]


@pytest.mark.parametrize(
    "image",
    [
        "quay.io/argoproj/workflow-controller:v3.5.15",
        "registry.example.com:5000/mirror/workflow-controller:v3.4.16@sha256:" + "a" * 64,
    ],
)
def test_an_old_controller_found_by_lookup_is_refused_naming_the_deployment(image):
    with FakeApiServer() as api:
        api.seed(controller(SIDECAR, {"name": "controller", "image": image}))
        with pytest.raises(helm.HelmError) as raised:
            render_in_cluster(api, {})
        assert controller_reads(api) == [("argo", "workflow-controller")]
    message = str(raised.value)
    assert f"the image of Deployment argo/workflow-controller ({image})" in message
    assert "v3.6 or newer" in message


@pytest.mark.parametrize(
    "image",
    [
        "quay.io/argoproj/workflow-controller:v3.6.19",
        "quay.io/argoproj/workflow-controller:latest",
        "quay.io/argoproj/workflow-controller@sha256:" + "b" * 64,
    ],
)
def test_a_current_or_unjudgeable_controller_found_by_lookup_installs(image):
    with FakeApiServer() as api:
        api.seed(controller({"name": "controller", "image": image}))
        assert of_kinds(render_in_cluster(api, {}), "WorkflowTemplate")
        assert controller_reads(api) == [("argo", "workflow-controller")]


def test_a_version_given_in_the_values_wins_and_nothing_is_looked_up():
    with FakeApiServer() as api:
        api.seed(controller({"name": "c", "image": "quay.io/argoproj/workflow-controller:v3.5.15"}))
        assert render_in_cluster(api, {"argoWorkflows": {"version": "v3.6.2"}})
        assert controller_reads(api) == []


def test_an_empty_controller_namespace_skips_the_lookup():
    with FakeApiServer() as api:
        api.seed(controller({"name": "c", "image": "quay.io/argoproj/workflow-controller:v3.5.15"}))
        assert render_in_cluster(api, {"argoWorkflows": {"controller": {"namespace": ""}}})
        assert controller_reads(api) == []


def test_a_controller_deployment_that_is_not_there_refuses_nothing():
    with FakeApiServer() as api:
        assert render_in_cluster(api, {})
        assert controller_reads(api) == [("argo", "workflow-controller")]


def of_kinds(rendered: list[dict], kind: str) -> list[dict]:
    return [obj for obj in rendered if obj.get("kind") == kind]
