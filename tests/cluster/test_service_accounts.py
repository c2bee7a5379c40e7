"""Go pods start only with their executor's token Secret, as on Kubernetes 1.24+ with Argo.

Upstream: workflowpod.go ``setupServiceAccount`` (v3.6.19 ~1141-1181; same in v3.5.15, v3.7,
v4.1) mounts ``TokenNameForServiceAccount(executor account)`` into the executor, and
docs/service-account-secrets.md: on 1.24+ that Secret is created by hand. The kubelet keeps a
pod with a missing Secret volume in ContainerCreating (FailedMount). The chart's go-test and
go-build set ``executor.serviceAccountName``; the chart must ship the Secret.
"""

from __future__ import annotations

import os
import time

import pytest
from chart_validation import NAMESPACE, objects, of_kind

from .argo.controller import WorkflowController
from .argo.pods import PodRunner
from .argo.serviceaccounts import (
    SERVICE_ACCOUNT_ANNOTATION,
    TOKEN_TYPE,
    executor_volumes,
    token_controller,
    token_name_for,
)
from .argo.templates import TemplateStore

BUILD = {
    "name": "build",
    "serviceAccountName": "canaryflow-build",
    "automountServiceAccountToken": False,
    "executor": {"serviceAccountName": "canaryflow-build"},
    "container": {"image": "x", "command": ["true"]},
}


def run_build(tmp_path, secrets: dict, accounts: dict, deadline: int = 2):
    runner = PodRunner(
        tmp_path / "nodes",
        image_env={"PATH": os.environ["PATH"]},
        cluster_env={},
        secrets=lambda ns, name: secrets.get((ns, name)),
        mount_retry_s=0.05,
    )
    controller = WorkflowController(
        TemplateStore(), runner, tmp_path, lambda ns, name: accounts.get((ns, name))
    )
    spec = {"entrypoint": "build", "activeDeadlineSeconds": deadline, "templates": [BUILD]}
    workflow = controller.submit({"metadata": {"name": "wf", "namespace": "argo"}, "spec": spec})
    return controller, controller.wait(workflow.name, 30)


ACCOUNT = {("argo", "canaryflow-build"): {"metadata": {"name": "canaryflow-build"}}}


def test_without_the_executors_token_secret_the_pod_never_starts(tmp_path):
    _, workflow = run_build(tmp_path, secrets={}, accounts=ACCOUNT)

    (pod,) = workflow.pods()
    assert workflow.phase == "Failed" and pod.phase == "Failed"
    assert "FailedMount" in pod.message
    assert 'secret "canaryflow-build.service-account-token" not found' in pod.message
    assert pod.pod is not None and pod.pod.argv == []  # no container ever ran


def test_with_the_token_secret_the_pod_runs(tmp_path):
    secrets = {("argo", "canaryflow-build.service-account-token"): {"token": b"t"}}

    _, workflow = run_build(tmp_path, secrets=secrets, accounts=ACCOUNT)

    assert workflow.phase == "Succeeded", [n.message for n in workflow.pods()]


def test_a_secret_that_appears_later_lets_the_waiting_pod_start(tmp_path):
    """The kubelet retries the mount: a Secret created while the pod waits unblocks it."""
    secrets: dict = {}
    runner = PodRunner(
        tmp_path / "nodes",
        image_env={"PATH": os.environ["PATH"]},
        cluster_env={},
        secrets=lambda ns, name: secrets.get((ns, name)),
        mount_retry_s=0.05,
    )
    controller = WorkflowController(
        TemplateStore(), runner, tmp_path, lambda ns, name: ACCOUNT.get((ns, name))
    )
    spec = {"entrypoint": "build", "activeDeadlineSeconds": 20, "templates": [BUILD]}
    workflow = controller.submit({"metadata": {"name": "wf", "namespace": "argo"}, "spec": spec})
    controller.wait_for("wf", lambda wf: wf.pods() and wf.pods()[0].phase == "Running", 10)
    time.sleep(0.3)
    assert workflow.phase == "Running"
    secrets[("argo", "canaryflow-build.service-account-token")] = {"token": b"t"}

    assert controller.wait("wf", 20).phase == "Succeeded"


def test_a_missing_executor_account_errors_the_node(tmp_path):
    _, workflow = run_build(tmp_path, secrets={}, accounts={})

    (pod,) = workflow.pods()
    assert pod.phase == "Error" and pod.message == 'serviceaccounts "canaryflow-build" not found'


def test_no_token_and_no_executor_account_is_refused_as_upstream():
    template = {k: v for k, v in BUILD.items() if k != "executor"}
    with pytest.raises(ValueError, match=r"executor\.serviceAccountName must not be empty"):
        executor_volumes(template, {}, "argo", lambda ns, name: None)


@pytest.mark.parametrize(
    ("account", "secret"),
    [
        ({"metadata": {"name": "sa"}, "secrets": [{"name": "legacy"}]}, "legacy"),
        (
            {
                "metadata": {
                    "name": "sa",
                    "annotations": {"workflows.argoproj.io/service-account-token.name": "mine"},
                }
            },
            "mine",
        ),
        ({"metadata": {"name": "sa"}}, "sa.service-account-token"),
    ],
)
def test_the_token_secret_is_found_as_token_name_for_service_account_does(account, secret):
    assert token_name_for(account) == secret


@pytest.mark.parametrize("values", [{}, {"buildServiceAccount": {"name": "go-builder"}}])
def test_the_chart_ships_the_token_secret_every_executor_account_needs(values):
    """Every chart template naming an executor account gets a filled token Secret: the
    account and the Secret the controller would mount both exist in the release namespace."""
    rendered = objects(values)
    accounts = {(NAMESPACE, a["metadata"]["name"]): a for a in of_kind(rendered, "ServiceAccount")}
    secrets = {s["metadata"]["name"]: s for s in of_kind(rendered, "Secret")}
    templates = [
        t
        for wt in of_kind(rendered, "WorkflowTemplate")
        + of_kind(rendered, "ClusterWorkflowTemplate")
        for t in wt["spec"]["templates"]
        if (t.get("executor") or {}).get("serviceAccountName")
    ]

    assert {t["name"] for t in templates} >= {"go-test", "go-build"}
    for template in templates:
        (volume,) = executor_volumes(
            template, {}, NAMESPACE, lambda ns, name: accounts.get((ns, name))
        )
        secret = secrets[volume["secret"]["secretName"]]
        assert secret["type"] == TOKEN_TYPE
        account = secret["metadata"]["annotations"][SERVICE_ACCOUNT_ANNOTATION]
        assert account == template["executor"]["serviceAccountName"]
        filled = token_controller(secret, lambda ns, name: accounts.get((ns, name)), NAMESPACE)
        assert "token" in filled
