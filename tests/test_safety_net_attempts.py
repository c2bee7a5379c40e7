"""The exit handler's safety nets try again themselves, since Argo will not after a stop.

Argo's ``processNodeRetries`` (operator.go v3.6.19:995-1003) gives a failed exit-handler task
no second attempt once the workflow is stopped or past its deadline; ``rollback`` and
``flag-off`` therefore repeat their idempotent action inside one pod (``commands.attempts``).
"""

from __future__ import annotations

import pytest
import yaml
from kube.fixtures import NAMESPACE, SERVICE, write_kubeconfig

from canaryflow.cli import main
from canaryflow.commands.attempts import until_done
from canaryflow.errors import InputError, PlatformError


def test_a_platform_failure_is_tried_again_until_the_action_succeeds():
    calls, pauses = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise PlatformError("API server 503")
        return "done"

    assert until_done(flaky, "rollback", (1.0, 2.0), pauses.append) == "done"
    assert len(calls) == 3 and pauses == [1.0, 2.0]


def test_the_attempts_are_bounded_and_the_last_failure_is_raised():
    calls = []

    def broken():
        calls.append(1)
        raise PlatformError(f"attempt {len(calls)}")

    with pytest.raises(PlatformError, match="attempt 3"):
        until_done(broken, "rollback", (0.0, 0.0), lambda s: None)
    assert len(calls) == 3


def test_bad_input_is_never_tried_again():
    calls = []

    def bad():
        calls.append(1)
        raise InputError("--plan: missing")

    with pytest.raises(InputError):
        until_done(bad, "rollback", (0.0, 0.0), lambda s: None)
    assert calls == [1]


def test_rollback_outlasts_an_api_outage_longer_than_the_clients_own_retries(
    tmp_path, cluster, capsys
):
    """Six failed requests exhaust one call's five tries: the verb's second attempt succeeds,
    where the old verb exited 1 and, after ``argo stop``, Argo would not have run it again."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {"service": {"name": SERVICE, "namespace": NAMESPACE}, "router": {"kind": "istio"}}
        )
    )
    cluster.fail_next(6, 503)

    code = main(["rollback", "--plan", str(plan), "--kubeconfig", str(kubeconfig)])

    assert code == 0
    assert "rollback, attempt 1 of 3" in capsys.readouterr().err
