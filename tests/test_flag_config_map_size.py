"""A flag rollout whose documents cannot fit a ConfigMap is refused at validate, naming the key
to change; a write that would overflow the user's ConfigMap is refused before it is sent.

The API server's rule (``ValidateConfigMap``, pkg/apis/core/validation/validation.go): the bytes
of every ``data`` / ``binaryData`` value, keys not counted, at most 1 MiB (``MaxSecretSize``).
Each write keeps the previous document beside the new one, so a pair must fit.
"""

from __future__ import annotations

import pytest
import yaml
from kube.fixtures import NAMESPACE, api_server

from canaryflow.cli import main
from canaryflow.errors import InputError, PlatformError
from canaryflow.flags.document import MAX_CONFIG_MAP_BYTES, flag_off
from canaryflow.kubernetes.flag_store import ConfigMapFlagStore
from canaryflow.plan.load import plan_from_dict

__all__ = ["api_server"]


def flag_plan(on="x", prefix="", users="0-999") -> dict:
    return {
        "service": {"name": "checkout", "namespace": NAMESPACE},
        "flag": {
            "key": "new-checkout",
            "variants": {"on": on, "off": "y"},
            "userIdPrefix": prefix,
            "steps": [{"users": users, "duration": "1m"}, {"percent": 5, "duration": "1m"}],
        },
    }


def largest_fitting_value() -> int:
    """The longest ``on`` value whose documents still fit, found by bisection on the plan."""

    def fits(n: int) -> bool:
        try:
            plan_from_dict(flag_plan(on="a" * n))
        except InputError:
            return False
        return True

    low, high = 0, MAX_CONFIG_MAP_BYTES
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def test_a_rollout_too_large_for_a_config_map_is_refused_at_validate(tmp_path, capsys):
    """10,000 prefixed user IDs listed in each of two documents: about 1.2 MB of data."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(flag_plan(prefix="customer-of-the-northern-region-" * 3, users="0-9999"))
    )

    assert main(["validate", str(plan), "--offline"]) == 2

    error = capsys.readouterr().err
    assert "flag.steps[0]: the flag document and its previous copy would take" in error
    assert f"more than the {MAX_CONFIG_MAP_BYTES} bytes (1 MiB) the API server accepts" in error
    assert "use a percent step" in error


def test_variants_too_large_name_the_variants():
    """A plan file cannot hold such values (256 KiB), a plan built in memory can."""
    with pytest.raises(InputError, match=r"^flag\.variants: .*shorten the variant values"):
        plan_from_dict(flag_plan(on="a" * 600_000))


def test_the_limit_is_the_api_servers_exactly_two_documents_of_values():
    """A pair of documents of exactly 1 MiB fits, one byte more does not (as the server)."""
    n = largest_fitting_value()

    assert 500_000 < n < MAX_CONFIG_MAP_BYTES // 2
    plan_from_dict(flag_plan(on="a" * n))
    with pytest.raises(InputError):
        plan_from_dict(flag_plan(on="a" * (n + 1)))


def test_a_write_that_would_overflow_the_users_config_map_is_refused_before_it_is_sent(
    api_server,
):
    api_server.seed(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "checkout-flags", "namespace": NAMESPACE},
            "data": {"flags.json": '{"flags": {}}\n', "catalogue.json": "c" * (1024 * 1024 - 40)},
        }
    )
    store = ConfigMapFlagStore(api_server.api_client(), NAMESPACE, "checkout-flags")
    api_server.requests.clear()

    with pytest.raises(PlatformError, match=r"nothing was written"):
        store.update(lambda document: flag_off("new-checkout"))
    assert api_server.writes() == []
