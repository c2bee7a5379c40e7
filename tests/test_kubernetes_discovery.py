"""A router API version the cluster does not serve is named as such (discovery), never reported
as a missing object, with the release that brings it; nothing changes.

The fake API server serves discovery (``/api``, ``/apis``) for the group versions it is given
and answers 404 for the resources of any other, as a real API server does.
"""

from __future__ import annotations

import pytest
from kube.fake_apiserver import KINDS, FakeApiServer
from kube.fixtures import (
    CANARY_IMAGE,
    STABLE_DEPLOYMENT,
    STABLE_SERVICE,
    write_kubeconfig,
)
from test_kubernetes_platform import V2, make_platform
from test_release_verbs import plan_file, verb

from canaryflow.errors import InputError

SERVED = frozenset(api_version for api_version, _ in KINDS)


def serving(without: str, extra: tuple[str, ...] = ()) -> FakeApiServer:
    """A fake API server with the user's stable objects, not serving ``without``."""
    server = FakeApiServer(served=(SERVED - {without}) | set(extra))
    server.__enter__()
    for obj in (STABLE_DEPLOYMENT, STABLE_SERVICE):
        server.seed(obj)
    return server


CASES = [
    (
        "istio",
        "networking.istio.io/v1",
        ("networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"),
        "router.kind: this cluster serves only networking.istio.io/v1alpha3, "
        "networking.istio.io/v1beta1; canaryflow needs Istio ≥ 1.22 (networking.istio.io/v1): "
        "upgrade it, or choose another router.kind",
    ),
    (
        "gateway-api",
        "gateway.networking.k8s.io/v1",
        ("gateway.networking.k8s.io/v1beta1",),
        "router.kind: this cluster serves only gateway.networking.k8s.io/v1beta1; canaryflow "
        "needs Gateway API ≥ v1.0 (gateway.networking.k8s.io/v1): upgrade it, or choose "
        "another router.kind",
    ),
    (
        "smi",
        "split.smi-spec.io/v1alpha4",
        (),
        "router.kind: this cluster does not serve split.smi-spec.io at all; canaryflow needs "
        "SMI TrafficSplit v1alpha4 (e.g. Open Service Mesh ≥ 1.0) (split.smi-spec.io/v1alpha4): "
        "upgrade it, or choose another router.kind",
    ),
]


@pytest.mark.parametrize(("kind", "missing", "extra", "message"), CASES)
def test_an_unserved_router_version_is_named_with_the_minimum_release(
    kind, missing, extra, message
):
    server = serving(missing, extra)
    try:
        server.requests.clear()
        with pytest.raises(InputError) as refused:
            make_platform(server, kind).deploy_canary(V2)
        assert str(refused.value) == message
        assert server.writes() == []
    finally:
        server.stop()


def test_deploy_canary_exits_2_naming_the_version(tmp_path, capsys):
    server = serving("networking.istio.io/v1", ("networking.istio.io/v1beta1",))
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        plan = plan_file(tmp_path, "istio")
        artifact = ["--image", CANARY_IMAGE, "--version", "v2"]

        assert verb("deploy-canary", plan, kubeconfig, *artifact) == 2

        error = capsys.readouterr().err
        assert "serves only networking.istio.io/v1beta1" in error and "not found" not in error
        assert server.writes() == []
    finally:
        server.stop()


def test_the_stand_in_lists_what_it_serves_and_404s_the_rest(tmp_path):
    server = serving("networking.istio.io/v1", ("networking.istio.io/v1beta1",))
    try:
        api = make_platform(server).api
        served = api.served_versions()
        assert served["networking.istio.io"] == ["v1beta1"]
        assert served["apps"] == ["v1"]
        status, _, _ = server.handle(
            "GET", "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/x", {}, "", b""
        )
        assert status == 404
    finally:
        server.stop()
