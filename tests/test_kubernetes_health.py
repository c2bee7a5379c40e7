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
    progress = rollout_progress(deployment(replicas=2, updatedReplicas=1, readyReplicas=1))

    assert not progress.done
    assert "1 old pods pending termination" in progress.describe()


def test_a_rollout_is_done_once_the_old_pod_is_gone_and_the_new_one_ready():
    progress = rollout_progress(deployment(replicas=1, updatedReplicas=1, readyReplicas=1))

    assert progress.done
