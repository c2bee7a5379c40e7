"""Flag documents, bucketing, rollout specs and flag stores: what a flag rollout writes."""

from __future__ import annotations

import hashlib
import json

import pytest
from kube import schemas
from kube.fake_apiserver import FakeApiServer
from pydantic import ValidationError
from test_sample_service import FRACTIONAL_CASES

from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.errors import InputError, PlatformError
from canaryflow.flags.bucketing import fractional_bucket, murmur3_32, serves_on
from canaryflow.flags.document import (
    Everyone,
    Percent,
    UserRange,
    Variants,
    document_digest,
    encode_document,
    flag_off,
    flag_state,
    segment_document,
    validate_document,
    with_flag,
)
from canaryflow.flags.spec import FlagRolloutSpec
from canaryflow.flags.store import FileFlagStore, replace_with
from canaryflow.flags.variant_analysis import variant_gates, variant_subject
from canaryflow.kubernetes.flag_store import ConfigMapFlagStore
from canaryflow.plan.load import load_plan, plan_from_dict

KEY = "new-checkout"


# --- bucketing ------------------------------------------------------------------------------


def test_bucketing_agrees_with_the_go_service_cases_and_murmur3_vectors():
    assert murmur3_32(b"") == 0
    assert murmur3_32(b"hello") == 0x248BFA47
    assert {u: fractional_bucket(KEY, u) for u in FRACTIONAL_CASES} == FRACTIONAL_CASES
    assert serves_on(KEY, "user-4", 5) and not serves_on(KEY, "user-0", 25)


def test_a_percentage_exposes_about_that_share_of_users():
    users = [f"user-{n}" for n in range(2000)]
    share = sum(serves_on(KEY, u, 20) for u in users) / len(users)
    assert 0.17 < share < 0.23


# --- documents ------------------------------------------------------------------------------


def test_numeric_user_range_is_two_comparisons_on_user_id():
    flag = segment_document(KEY, UserRange(0, 999))["flags"][KEY]
    assert flag["defaultVariant"] == "off"
    assert flag["targeting"] == {
        "if": [
            {"and": [{">=": [{"var": "userId"}, 0]}, {"<=": [{"var": "userId"}, 999]}]},
            "on",
            "off",
        ]
    }


def test_prefixed_user_range_lists_the_ids():
    flag = segment_document(KEY, UserRange(3, 5, "user-"))["flags"][KEY]
    assert flag["targeting"] == {
        "if": [{"in": [{"var": "userId"}, ["user-3", "user-4", "user-5"]]}, "on", "off"]
    }


def test_percent_is_fractional_on_the_targeting_key_and_everyone_is_the_default():
    flag = segment_document(KEY, Percent(5), Variants("v2", "v1"))["flags"][KEY]
    assert flag["targeting"] == {"fractional": [["on", 5], ["off", 95]]}
    assert flag["variants"] == {"on": "v2", "off": "v1"}
    everyone = segment_document(KEY, Everyone())
    assert flag_state(everyone, KEY) == "on" and "targeting" not in everyone["flags"][KEY]
    assert flag_state(flag_off(KEY), KEY) == "off"
    assert flag_state(segment_document(KEY, Percent(5)), KEY) == "partial"


def test_every_built_document_is_valid():
    for segment in (UserRange(0, 9), UserRange(0, 9, "u"), Percent(50), Everyone()):
        assert validate_document(segment_document(KEY, segment))


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (
            {"defaultVariant": "maybe"},
            "flags.new-checkout.defaultVariant: 'maybe' is not a variant",
        ),
        ({"state": "ON"}, "flags.new-checkout.state: 'ON' is not ENABLED or DISABLED"),
        ({"variants": {}}, "flags.new-checkout.variants: empty"),
        ({"targeting": {"regex": ["a"]}}, "flags.new-checkout.targeting: operator 'regex'"),
    ],
)
def test_a_bad_document_names_the_field(flag, expected):
    document = flag_off(KEY)
    document["flags"][KEY].update(flag)
    with pytest.raises(InputError) as error:
        validate_document(document)
    assert str(error.value).startswith(expected)


def test_a_document_without_flags_says_what_one_looks_like():
    with pytest.raises(InputError, match=r"^flags: missing; a flagd document is"):
        validate_document({"flag": {}})


# --- spec -----------------------------------------------------------------------------------


def plan(flag: dict) -> dict:
    return {"service": {"name": "checkout"}, "flag": flag}


def test_a_plan_carries_a_flag_rollout():
    loaded = plan_from_dict(
        plan(
            {
                "key": KEY,
                "steps": [{"users": "0-99", "duration": "30s"}, {"percent": 25, "duration": "1m"}],
            }
        )
    )
    assert loaded.flag is not None
    assert loaded.flag.segments() == [UserRange(0, 99), Percent(25)]
    assert loaded.flag.steps[1].duration == 60


@pytest.mark.parametrize(
    ("steps", "path", "fragment"),
    [
        ([{"users": "9-0", "duration": "1s"}], "flag.steps[0].users", "starts after it ends"),
        ([{"users": "a-b", "duration": "1s"}], "flag.steps[0].users", "first-last"),
        ([{"percent": 100, "duration": "1s"}], "flag.steps[0].percent", "drop this step"),
        ([{"percent": 5, "users": "0-1", "duration": "1s"}], "flag.steps[0]", "exactly one"),
        (
            [{"percent": 20, "duration": "1s"}, {"percent": 10, "duration": "1s"}],
            "flag.steps[1]",
            "does not rise",
        ),
        (
            [{"users": "0-99", "duration": "1s"}, {"users": "100-199", "duration": "1s"}],
            "flag.steps[1]",
            "contain and exceed",
        ),
        (
            [{"percent": 5, "duration": "1s"}, {"users": "0-99", "duration": "1s"}],
            "flag.steps[1]",
            "cannot follow a percentage",
        ),
    ],
)
def test_bad_steps_name_the_step_and_the_fix(steps, path, fragment):
    with pytest.raises(InputError) as error:
        plan_from_dict(plan({"key": KEY, "steps": steps}))
    message = str(error.value)
    assert path in message and fragment in message


def test_unquoted_on_and_off_keys_say_how_yaml_read_them():
    text = "service: {name: checkout}\nflag:\n  key: f\n  variants: {on: 1, off: 0}\n"
    text += "  steps: [{percent: 5, duration: 1m}]\n"
    with pytest.raises(InputError) as error:
        load_plan(text)
    assert "flag.variants: YAML 1.1 reads the keys on and off as true and false" in str(error.value)


def test_a_prefixed_range_too_wide_to_list_is_refused():
    with pytest.raises(ValidationError, match="more than 10000 prefixed IDs"):
        FlagRolloutSpec.model_validate(
            {"key": KEY, "userIdPrefix": "user-", "steps": [{"users": "0-20000", "duration": 1}]}
        )


# --- analysis per variant ----------------------------------------------------------------


def test_only_http_gates_judge_a_flag_and_tracks_become_variants():
    spec = AnalysisSpec.model_validate(
        {"gates": [{"metric": "error-rate"}, {"metric": "goroutines"}, {"metric": "latency-p99"}]}
    )
    kept, skipped = variant_gates(spec)
    assert [g.name for g in kept.gates] == ["error-rate", "latency-p99"]
    assert skipped == ["goroutines"]
    subject = variant_subject("checkout", "shop")
    assert subject.selector("canary") == 'app="checkout",namespace="shop",variant="on"'
    assert subject.selector("stable") == 'app="checkout",namespace="shop",variant="off"'


# --- stores ---------------------------------------------------------------------------------

# Someone else's flag, with an operator this evaluator does not know: ours to keep, not judge.
THEIRS = {
    "state": "ENABLED",
    "variants": {"a": 1, "b": 2},
    "defaultVariant": "a",
    "targeting": {"if": [{"sem_ver": [{"var": "version"}, ">=", "1.2.0"]}, "b", "a"]},
}
SHARED = {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {"theirs": THEIRS}}


def put(segment) -> object:
    """The edit a rollout step makes: our flag's rule, the rest of the document kept."""
    return lambda document: with_flag(document, KEY, segment_document(KEY, segment))


def test_a_rollout_edits_only_its_own_flag_in_a_shared_document():
    merged = with_flag(SHARED, KEY, segment_document(KEY, Percent(5)))
    assert merged["flags"]["theirs"] == THEIRS and merged["$schema"] == SHARED["$schema"]
    assert merged["flags"][KEY] == segment_document(KEY, Percent(5))["flags"][KEY]
    assert SHARED["flags"].keys() == {"theirs"}, "the input is not modified"


def test_a_document_that_is_not_flagd_is_never_overwritten():
    with pytest.raises(PlatformError, match="will not overwrite what it cannot read"):
        with_flag({"flags": ["not", "a", "map"]}, KEY, flag_off(KEY))


def test_file_store_keeps_the_previous_document_and_leaves_no_temp_files(tmp_path):
    store = FileFlagStore(tmp_path / "flags.json")
    assert store.read() is None and store.previous() is None
    store.path.write_text(json.dumps(SHARED))  # the team's own file, written by hand
    store.update(put(Percent(10)))
    digest = store.update(put(Percent(10)))  # the same exposure again
    assert store.read() == with_flag(SHARED, KEY, segment_document(KEY, Percent(10)))
    assert store.previous() == SHARED, "an edit that changes nothing writes nothing"
    assert digest == document_digest(store.path.read_text())
    store.update(put(Percent(0.5)))
    store.update(lambda document: with_flag(document, KEY, flag_off(KEY)))
    assert flag_state(store.read(), KEY) == "off" and store.read()["flags"]["theirs"] == THEIRS
    assert store.previous()["flags"][KEY] == segment_document(KEY, Percent(0.5))["flags"][KEY]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.json", "flags.json.previous"]


def test_the_digest_is_of_the_exact_text_the_service_reads(tmp_path):
    store = FileFlagStore(tmp_path / "flags.json")
    digest = store.update(replace_with(flag_off(KEY)))
    text = store.path.read_text()
    assert text == encode_document(flag_off(KEY))
    # Independently of document_digest: what `sha256sum flags.json | cut -c1-16` prints.
    assert digest == hashlib.sha256(store.path.read_bytes()).hexdigest()[:16]


def test_file_store_refuses_an_invalid_document_and_changes_nothing(tmp_path):
    store = FileFlagStore(tmp_path / "flags.json")
    store.update(replace_with(flag_off(KEY)))
    before = store.path.read_bytes()
    with pytest.raises(InputError):
        store.update(replace_with({"flags": {KEY: {"state": "ENABLED"}}}))
    with pytest.raises(InputError):
        store.update(lambda doc: with_flag(doc, KEY, {"flags": {KEY: {"state": "ON"}}}))
    assert store.path.read_bytes() == before and store.previous() is None


def test_file_store_leaves_a_broken_file_for_a_person(tmp_path):
    store = FileFlagStore(tmp_path / "flags.json")
    store.path.write_text("{not json")
    with pytest.raises(PlatformError, match=r"is not JSON.*fix it by hand"):
        store.update(put(Percent(5)))
    assert store.path.read_text() == "{not json"


def config_map(data: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "checkout-flags", "namespace": "shop"},
        "data": data,
    }


def test_configmap_store_edits_the_document_and_keeps_the_previous(api_server: FakeApiServer):
    api_server.seed(config_map({"flags.json": json.dumps(SHARED), "other": "kept"}))
    store = ConfigMapFlagStore(api_server.api_client(), "shop", "checkout-flags")
    assert store.read() == SHARED
    store.update(put(Percent(5)))
    digest = store.update(lambda document: with_flag(document, KEY, flag_off(KEY)))
    store.update(lambda document: with_flag(document, KEY, flag_off(KEY)))  # the safety net
    stored = api_server.get("ConfigMap", "shop", "checkout-flags")
    schemas.validate(stored)
    assert stored["data"]["other"] == "kept"
    assert digest == document_digest(stored["data"]["flags.json"])
    assert store.read() == with_flag(SHARED, KEY, flag_off(KEY))
    assert store.previous() == with_flag(SHARED, KEY, segment_document(KEY, Percent(5)))
    assert [w.method for w in api_server.writes("ConfigMap")] == ["PUT", "PUT"]
    for write in api_server.writes("ConfigMap"):
        schemas.validate(write.body)
        ours = json.loads(write.body["data"]["flags.json"])["flags"][KEY]
        validate_document({"flags": {KEY: ours}})


def test_configmap_store_needs_the_configmap_to_exist(api_server: FakeApiServer):
    store = ConfigMapFlagStore(api_server.api_client(), "shop", "missing")
    with pytest.raises(PlatformError, match="configmap shop/missing does not exist: create"):
        store.update(replace_with(flag_off(KEY)))
    assert api_server.writes("ConfigMap") == []
