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


def flag_plan(on="x", prefix="", users="0-999", off="y") -> dict:
    return {
        "service": {"name": "checkout", "namespace": NAMESPACE},
        "flag": {
            "key": "new-checkout",
            "variants": {"on": on, "off": off},
            "userIdPrefix": prefix,
            "steps": [{"users": users, "duration": "1m"}, {"percent": 5, "duration": "1m"}],
        },
    }


LONG_LIST = {"prefix": "c" * 66, "users": "0-9999"}
"""10,000 prefixed IDs: about 900 kB of document, which fits with the default variants."""


def text_of(n: int) -> list[str]:
    """A variant value of ``n`` characters, as strings of at most 8,000 (a plan's limit for
    one text is 8,192)."""
    return ["a" * 8000] * (n // 8000) + ["a" * (n % 8000)]


def largest_fitting_value() -> int:
    """The longest ``on`` value (beside ``LONG_LIST``) whose documents still fit, by
    bisection on the plan."""

    def fits(n: int) -> bool:
        try:
            plan_from_dict(flag_plan(on=text_of(n), off=text_of(n), **LONG_LIST))
        except InputError:
            return False
        return True

    low, high = 0, 60_000
    assert fits(low) and not fits(high)
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


def test_variants_that_tip_the_documents_over_name_the_variants():
    """A list that fits with plain variants, and variants of 60 kB that do not."""
    with pytest.raises(InputError, match=r"^flag\.variants: .*shorten the variant values"):
        plan_from_dict(flag_plan(on=text_of(60_000), off=text_of(60_000), **LONG_LIST))


def test_the_limit_is_the_api_servers_to_the_byte():
    """One character per variant past the largest that fits is refused, and the refusal counts
    just over 1 MiB: both values appear in both documents of the pair (the new one and its
    previous copy), 4 bytes per character."""
    n = largest_fitting_value()

    assert plan_from_dict(flag_plan(on=text_of(n), off=text_of(n), **LONG_LIST)).flag is not None
    with pytest.raises(InputError) as refused:
        plan_from_dict(flag_plan(on=text_of(n + 1), off=text_of(n + 1), **LONG_LIST))
    size = int(str(refused.value).split("would take ")[1].split(" bytes")[0])
    assert MAX_CONFIG_MAP_BYTES < size <= MAX_CONFIG_MAP_BYTES + 4


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
