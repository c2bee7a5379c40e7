"""The released digest lands in the field the plan names, and the rest of the file stays:
in place (comments and all) when the field exists, re-dumped with keys and order kept when
the file's structure must change."""

from __future__ import annotations

import copy
import textwrap

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.errors import InputError
from canaryflow.kubernetes.gitops.image_field import ImageTarget, write_image

REPO = "registry.local/checkout"
DIGEST = "sha256:" + "2" * 64
REFERENCE = f"{REPO}@{DIGEST}"
OLD = "registry.local/checkout@sha256:" + "1" * 64


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


KUSTOMIZATION = dedent(
    f"""
    # the checkout overlay
    apiVersion: kustomize.config.k8s.io/v1beta1
    kind: Kustomization
    resources:
      - deployment.yaml   # the stable Deployment
    images:
      - name: {REPO}
        newName: {REPO}
        digest: sha256:{"1" * 64}   # set by the release pipeline
      - name: redis
        newTag: "7.2"
    """
)


def test_a_kustomization_digest_is_rewritten_in_place_keeping_comments():
    written = write_image(KUSTOMIZATION, ImageTarget("kustomization", "checkout"), REFERENCE, "k")

    assert written.in_place
    assert written.text == KUSTOMIZATION.replace("1" * 64, "2" * 64)
    assert "# set by the release pipeline" in written.text


def test_a_kustomization_tag_gives_way_to_the_digest_with_keys_and_order_kept():
    text = dedent(
        f"""
        resources: [deployment.yaml]
        images:
        - name: {REPO}
          newTag: v1
        - name: redis
          newTag: '7.2'
        """
    )
    written = write_image(text, ImageTarget("kustomization", "checkout"), REFERENCE, "k")

    assert not written.in_place  # a key removed: PyYAML dumps the file again
    data = yaml.safe_load(written.text)
    assert data["images"] == [
        {"name": REPO, "digest": DIGEST},
        {"name": "redis", "newTag": "7.2"},
    ]
    assert list(data) == ["resources", "images"]


def test_a_kustomization_without_the_image_gets_an_entry_named_by_the_plan():
    text = "resources:\n- deployment.yaml\nimages:\n- name: redis\n  newTag: '7.2'\n"
    target = ImageTarget("kustomization", "checkout", image="checkout")

    data = yaml.safe_load(write_image(text, target, REFERENCE, "k").text)

    assert data["images"][-1] == {"name": "checkout", "newName": REPO, "digest": DIGEST}


VALUES = dedent(
    f"""
    replicaCount: 3
    image:
      repository: {REPO}
      # pinned by canaryflow
      digest: "sha256:{"1" * 64}"
    ingress:
      enabled: false
    """
)


def test_a_helm_values_key_keeps_its_quoting_and_the_comments_around_it():
    target = ImageTarget("helm-values", "checkout", key="image.digest", value="digest")

    written = write_image(VALUES, target, REFERENCE, "values.yaml")

    assert written.in_place
    assert written.text == VALUES.replace("1" * 64, "2" * 64)


def test_a_missing_helm_values_key_is_created_with_the_whole_reference():
    target = ImageTarget("helm-values", "checkout", key="checkout.image")

    data = yaml.safe_load(write_image(VALUES, target, REFERENCE, "values.yaml").text)

    assert data["checkout"] == {"image": REFERENCE}
    assert data["image"]["digest"] == "sha256:" + "1" * 64
    assert list(data) == ["replicaCount", "image", "ingress", "checkout"]


def test_a_helm_values_key_that_is_a_mapping_is_refused():
    target = ImageTarget("helm-values", "checkout", key="image")

    with pytest.raises(InputError, match=r"^promotion.gitops.path: values.yaml image holds"):
        write_image(VALUES, target, REFERENCE, "values.yaml")


MANIFESTS = dedent(
    f"""
    apiVersion: v1
    kind: Service
    metadata: {{name: checkout}}
    spec:
      ports: [{{port: 80}}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: checkout
    spec:
      template:
        spec:
          containers:
            - name: proxy
              image: envoy:1.30
            - name: checkout
              image: {OLD}  # stable
    """
)


def test_a_plain_manifest_gets_the_image_of_the_named_container_only():
    written = write_image(MANIFESTS, ImageTarget("manifest", "checkout"), REFERENCE, "m.yaml")

    assert written.in_place
    assert written.text == MANIFESTS.replace(OLD, REFERENCE)
    assert "image: envoy:1.30" in written.text


def test_a_manifest_without_the_deployment_or_the_container_is_refused():
    with pytest.raises(InputError, match="holds no Deployment named payments"):
        write_image(MANIFESTS, ImageTarget("manifest", "payments"), REFERENCE, "m.yaml")
    target = ImageTarget("manifest", "checkout", container="sidecar")
    with pytest.raises(InputError, match="has no container 'sidecar'"):
        write_image(MANIFESTS, target, REFERENCE, "m.yaml")


def test_a_file_already_naming_the_digest_is_left_byte_for_byte():
    text = KUSTOMIZATION.replace("1" * 64, "2" * 64)

    written = write_image(text, ImageTarget("kustomization", "checkout"), REFERENCE, "k")

    assert written.text == text


def test_an_anchored_value_is_edited_once_and_its_aliases_follow_as_after_a_hand_edit():
    text = f"defaults: &img\n  image: {OLD}\nother: *img\nservice:\n  image: {OLD}\n"
    target = ImageTarget("helm-values", "checkout", key="defaults.image")

    written = write_image(text, target, REFERENCE, "v")

    assert written.in_place and "&img" in written.text and "*img" in written.text
    data = yaml.safe_load(written.text)
    assert data["defaults"]["image"] == data["other"]["image"] == REFERENCE
    assert data["service"]["image"] == OLD


@given(
    comment=st.text(st.characters(codec="ascii", categories=["L", "N", "Zs"]), max_size=30),
    quote=st.sampled_from(["", "'", '"']),
    indent=st.integers(1, 6),
)
def test_in_place_edits_change_nothing_but_the_value(comment, quote, indent):
    pad = " " * indent
    text = f"# {comment}\nimage:\n{pad}digest: {quote}sha256:{'1' * 64}{quote}  # {comment}\n"
    target = ImageTarget("helm-values", "checkout", key="image.digest", value="digest")

    written = write_image(text, target, REFERENCE, "v")

    assert written.in_place
    assert written.text == text.replace("1" * 64, "2" * 64)


NAMES = st.text("abcdefgh_-", min_size=1, max_size=6).filter(lambda s: s[0] not in "-")
SCALARS = st.one_of(st.integers(), st.booleans(), st.none(), st.text("abc xyz:#'\"", max_size=8))
VALUES_FILES = st.recursive(
    SCALARS, lambda inner: st.dictionaries(NAMES, inner, max_size=4), max_leaves=12
).filter(lambda v: isinstance(v, dict))


@given(values=VALUES_FILES, key=st.lists(NAMES, min_size=1, max_size=3), flow=st.booleans())
def test_any_values_file_ends_with_the_key_set_and_everything_else_as_it_was(values, key, flow):
    text = yaml.safe_dump(values, sort_keys=False, default_flow_style=flow)
    target = ImageTarget("helm-values", "checkout", key=".".join(key), value="digest")
    expected = copy.deepcopy(values)
    node = expected
    for part in key[:-1]:
        if not isinstance(node.get(part), dict):
            if node.get(part) is not None:  # a scalar in the way: refused, file untouched
                with pytest.raises(InputError):
                    write_image(text, target, REFERENCE, "v")
                return
            node[part] = {}
        node = node[part]
    if isinstance(node.get(key[-1]), dict):
        with pytest.raises(InputError):
            write_image(text, target, REFERENCE, "v")
        return
    node[key[-1]] = DIGEST

    written = write_image(text, target, REFERENCE, "v")

    assert yaml.safe_load(written.text) == expected
    assert list(yaml.safe_load(written.text)) == list(expected)
