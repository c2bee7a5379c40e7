"""Session fixtures of the cluster in a box: one bed, one service per router kind.

The bed (registry, fake API server, kubelet, Prometheus, Argo stand-in) starts once per test
session with one chart install for every router kind (``release.routerKind`` left empty: each
service's own plan chooses its router) and no registry Secret (the bed's registry is anonymous);
each router kind has one service, created the first time a test asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .bed import ClusterInABox, ServiceSpec, ServiceUnderTest, short_plan

SERVICES = {
    "istio": ServiceSpec("checkout", "shop", "istio"),
    "nginx-ingress": ServiceSpec("cart", "shop", "nginx-ingress"),
    "gateway-api": ServiceSpec("search", "shop", "gateway-api"),
}
ROUTERS = tuple(SERVICES)
STEPS = [{"weight": 20, "duration": "2s"}, {"weight": 60, "duration": "2s"}]


@pytest.fixture(scope="session")
def bed(tmp_path_factory) -> Iterator[ClusterInABox]:
    with ClusterInABox(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="session")
def service_for(bed) -> Callable[[str], ServiceUnderTest]:
    """The service released through ``router``, installed on first use."""
    installed: dict[str, ServiceUnderTest] = {}
    chart = bed.install_for(list(SERVICES.values()), "canaryflow")

    def get(router: str) -> ServiceUnderTest:
        if router not in installed:
            spec = SERVICES[router]
            plan = short_plan(spec, bed.prometheus.url, STEPS)
            del plan["analysis"]["prometheus"]  # the chart's analysis.prometheus.url is used
            installed[router] = bed.install(spec, plan, chart)
        return installed[router]

    return get
