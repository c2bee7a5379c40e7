"""The chart refuses an Argo Workflows controller that cannot run its templates (older than v3.6).

v3.5.15's ``Synchronization`` (pkg/apis/workflow/v1alpha1/workflow_types.go) has only ``mutex``
and ``semaphore``: the release's ``synchronization.mutexes`` decodes to an empty lock and
workflow/sync/lock_name.go fails the Workflow ("cannot get LockName for a Sync of Unknown
type"). The version comes from ``argoWorkflows.version`` or, at install, from the controller
Deployment's image (Helm ``lookup``, which is empty without a cluster, as here).
"""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_validation import objects

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
