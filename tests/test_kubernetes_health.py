"""A rollout is done as ``kubectl rollout status`` says: all pods updated, ready, none old left."""

from __future__ import annotations

from canaryflow.kubernetes.health import rollout_progress


def deployment(**status) -> dict:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 2, **status},
    }


def test_a_rolling_update_whose_old_pod_still_serves_is_not_done():
    # The Deployment controller's counts while the new pod starts beside the ready old one.
    progress = rollout_progress(
        deployment(replicas=2, updatedReplicas=1, readyReplicas=1, availableReplicas=1)
    )

    assert not progress.done
    assert "1 old pods pending termination" in progress.describe()


def test_a_rollout_is_done_once_the_old_pod_is_gone_and_the_new_one_ready():
    progress = rollout_progress(
        deployment(replicas=1, updatedReplicas=1, readyReplicas=1, availableReplicas=1)
    )

    assert progress.done


def test_while_old_pods_remain_only_the_new_templates_ready_pods_are_called_ready():
    """The controller's ``readyReplicas`` counts old and new pods: 4 ready old pods beside 4
    new ones that are not ready is "0/4 new pods ready", never "4/4 pods ready"."""
    stable = {
        "metadata": {"generation": 2},
        "spec": {
            "replicas": 4,
            "template": {
                "metadata": {"labels": {"app": "checkout", "version": "v2"}},
                "spec": {"containers": [{"name": "checkout", "image": "new@sha256:2"}]},
            },
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 8,
            "updatedReplicas": 4,
            "readyReplicas": 4,
        },
    }

    def pod(version: str, image: str, ready: bool) -> dict:
        return {
            "metadata": {
                "labels": {"app": "checkout", "version": version, "pod-template-hash": "x"}
            },
            "spec": {"containers": [{"name": "checkout", "image": image}]},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]},
        }

    pods = [pod("v1", "old@sha256:1", True)] * 4 + [pod("v2", "new@sha256:2", False)] * 4

    progress = rollout_progress(stable, pods)

    assert progress.describe() == "0/4 new pods ready, 4 old pods pending termination"
    assert not progress.done


def test_ready_pods_not_yet_available_for_min_ready_seconds_are_not_a_finished_rollout():
    """``kubectl rollout status`` waits for ``availableReplicas`` (ready for the Deployment's
    ``minReadySeconds``), not ``readyReplicas``: until then stable is not called rolled out."""
    counts = {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}

    progress = rollout_progress(deployment(**counts))  # 0 is left out of the status (omitempty)

    assert not progress.done
    assert progress.describe() == "1/1 pods ready, 0 available"
    assert not rollout_progress(deployment(**counts, availableReplicas=0)).done
    assert rollout_progress(deployment(**counts, availableReplicas=1)).done
