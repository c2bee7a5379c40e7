"""``canaryflow doctor`` against the project's fake API server, through the real ``kubernetes``
client (a kubeconfig pointing at it), and a real Prometheus scraping a simulated service.

Each test starts from a cluster that is ready for a first release and breaks one thing: the
finding names it and its fix, the exit code is 1; a ready cluster exits 0; bad input exits 2
having read nothing.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator

import pytest
from doctor_apiserver import CRDS, DoctorApiServer
from hypothesis import given
from hypothesis import strategies as st
from kube.fixtures import STABLE_DEPLOYMENT, STABLE_SERVICE, write_kubeconfig
from prom_fixtures import SimulatedService, Traffic

from canaryflow.cli import main
from canaryflow.doctor.checks import (
    ARGO_CRDS,
    EVENTS_CRDS,
    TEKTON_CRDS,
    ClusterFacts,
    Status,
    Workload,
    evaluate,
    image_tag,
    parse_version,
)
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import PrometheusServer

ARGO_IMAGE = "quay.io/argoproj/workflow-controller:v3.6.19"
EVENTS_IMAGE = "quay.io/argoproj/argo-events:v1.9.6"


def controller(name: str, namespace: str, container: str, image: str, labels=None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": container, "image": image}]},
            },
        },
    }


def event_source(name: str, conditions: list[dict]) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "EventSource",
        "metadata": {
            "name": name,
            "namespace": "argo",
            "labels": {"app.kubernetes.io/part-of": "canaryflow"},
        },
        "spec": {},
        "status": {"conditions": conditions},
    }


ACCEPTED = [
    {"type": "SourcesProvided", "status": "True"},
    {"type": "Deployed", "status": "True"},
]


def ready_argo(api: DoctorApiServer, argo_image: str = ARGO_IMAGE) -> None:
    for name in (*ARGO_CRDS, *EVENTS_CRDS):
        plural, group = name.split(".", 1)
        api.crd(plural, group, ("v1alpha1",))
    api.crd("virtualservices", "networking.istio.io", ("v1", "v1beta1"))
    api.seed(controller("workflow-controller", "argo", "workflow-controller", argo_image))
    api.seed(controller("controller-manager", "argo-events", "controller-manager", EVENTS_IMAGE))
    api.put("eventsources", event_source("canaryflow-git", ACCEPTED))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "canaryflow-build.service-account-token", "namespace": "argo"},
    }
    api.put("secrets", secret)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "canaryflow-go-cache", "namespace": "argo"},
        "status": {"phase": "Bound"},
    }
    api.put("persistentvolumeclaims", claim)
    api.seed(STABLE_DEPLOYMENT)
    api.seed(STABLE_SERVICE)


@pytest.fixture
def api() -> Iterator[DoctorApiServer]:
    with DoctorApiServer() as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    """A real Prometheus scraping one simulated checkout stable (app=checkout, shop)."""
    service = SimulatedService(Traffic()).start()
    workdir = tmp_path_factory.mktemp("doctor-prometheus")
    try:
        with ProcessGroup(workdir) as group:
            server = PrometheusServer(group, workdir, scrape_interval=1.0)
            labels = {"app": "checkout", "namespace": "shop", "track": "stable"}
            server.start([(service.address, labels)])
            server.wait_targets_up(1, timeout_s=20)
            yield server.url
    finally:
        service.stop()


def doctor(tmp_path, api, *args: str, capsys=None) -> tuple[int, dict]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    code = main(["doctor", "--kubeconfig", str(kubeconfig), "--json", *args])
    document = json.loads(capsys.readouterr().out) if capsys and code in (0, 1) else {}
    return code, document


def by_check(document: dict) -> dict[str, dict]:
    return {f["check"]: f for f in document["findings"]}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_ready_argo_cluster_passes_every_check(tmp_path, api, prometheus, capsys):
    ready_argo(api)
    code, document = doctor(
        tmp_path,
        api,
        "--events",
        "--router",
        "istio",
        "--prometheus",
        prometheus,
        "--service",
        "checkout",
        "--namespace",
        "shop",
        capsys=capsys,
    )
    statuses = {f["check"]: f["status"] for f in document["findings"]}
    assert code == 0, document
    assert document["ok"] is True
    assert set(statuses.values()) == {"ok"}
    assert {
        "argo-workflows",
        "argo-events",
        "crds/argo",
        "crds/events",
        "event-source/canaryflow-git",
        "executor-token",
        "go-cache",
        "router/istio",
        "prometheus",
        "service/deployment",
        "service/service",
        "service/metrics",
    } <= set(statuses)
    assert "v3.6.19" in by_check(document)["argo-workflows"]["detail"]


def test_argo_workflows_v3_5_is_refused_clearly(tmp_path, api, capsys):
    ready_argo(api, "quay.io/argoproj/workflow-controller:v3.5.15")
    code, document = doctor(tmp_path, api, capsys=capsys)
    finding = by_check(document)["argo-workflows"]
    assert code == 1 and document["ok"] is False
    assert finding["status"] == "fail"
    assert "v3.5.15" in finding["detail"] and "LockName" in finding["detail"]
    assert "upgrade Argo Workflows to v3.6" in finding["fix"]


def test_a_helm_installed_controller_is_found_by_its_label_and_versioned_by_it(
    tmp_path, api, capsys
):
    ready_argo(api)
    api._store = {k: v for k, v in api._store.items() if k[3] != "workflow-controller"}
    labels = {
        "app": "argo-workflows-workflow-controller",
        "app.kubernetes.io/component": "workflow-controller",
        "app.kubernetes.io/version": "v3.7.2",
    }
    digest = "quay.io/argoproj/workflow-controller@sha256:" + "a" * 64
    api.seed(controller("argo-workflows-workflow-controller", "argo", "controller", digest, labels))
    code, document = doctor(tmp_path, api, capsys=capsys)
    finding = by_check(document)["argo-workflows"]
    assert (code, finding["status"]) == (0, "ok")
    assert "v3.7.2" in finding["detail"]


def test_a_controller_image_without_a_version_is_a_warning_not_a_pass(tmp_path, api, capsys):
    ready_argo(api, "quay.io/argoproj/workflow-controller:latest")
    code, document = doctor(tmp_path, api, capsys=capsys)
    finding = by_check(document)["argo-workflows"]
    assert finding["status"] == "warn" and "pin the controller" in finding["fix"]
    assert code == 0


def test_an_eventsource_argo_events_refused_fails_with_its_message(tmp_path, api, capsys):
    ready_argo(api)
    refused = [
        {
            "type": "SourcesProvided",
            "status": "False",
            "reason": "InvalidEventSource",
            "message": "access token can't be nil",
        }
    ]
    api.put("eventsources", event_source("canaryflow-git", refused))
    code, document = doctor(tmp_path, api, "--events", capsys=capsys)
    finding = by_check(document)["event-source/canaryflow-git"]
    assert code == 1 and finding["status"] == "fail"
    assert "InvalidEventSource" in finding["detail"]
    assert "access token can't be nil" in finding["detail"]
    assert "Deployed=Unknown" in finding["detail"]
    assert "kubectl describe eventsource canaryflow-git" in finding["fix"]


def test_a_missing_executor_token_secret_is_named_with_how_to_create_it(tmp_path, api, capsys):
    ready_argo(api)
    del api._extra["/api/v1/namespaces/argo/secrets/canaryflow-build.service-account-token"]
    code, document = doctor(tmp_path, api, capsys=capsys)
    finding = by_check(document)["executor-token"]
    assert code == 1 and finding["status"] == "fail"
    assert "canaryflow-build.service-account-token" in finding["detail"]
    assert "kubernetes.io/service-account.name: canaryflow-build" in finding["fix"]


@pytest.mark.parametrize(
    ("phase", "status", "code"),
    [("Pending", "warn", 0), ("Lost", "fail", 1), (None, "fail", 1)],
)
def test_the_go_cache_claim_must_be_bound(tmp_path, api, capsys, phase, status, code):
    ready_argo(api)
    path = "/api/v1/namespaces/argo/persistentvolumeclaims/canaryflow-go-cache"
    if phase is None:
        del api._extra[path]
    else:
        api._extra[path]["status"]["phase"] = phase
    result, document = doctor(tmp_path, api, capsys=capsys)
    finding = by_check(document)["go-cache"]
    assert (result, finding["status"]) == (code, status)
    assert "kubectl describe pvc canaryflow-go-cache" in finding["fix"]


def test_a_router_whose_api_version_is_not_served_fails_naming_what_is(tmp_path, api, capsys):
    ready_argo(api)
    api._groups["networking.istio.io"] = ["v1beta1", "v1alpha3"]
    code, document = doctor(tmp_path, api, "--router", "istio", capsys=capsys)
    finding = by_check(document)["router/istio"]
    assert code == 1 and finding["status"] == "fail"
    assert (
        "networking.istio.io/v1" in finding["detail"] and "v1beta1, v1alpha3" in finding["detail"]
    )
    assert "Istio 1.22" in finding["fix"]


def test_every_router_given_is_checked_and_one_not_served_fails(tmp_path, api, capsys):
    ready_argo(api)
    api._groups["networking.istio.io"] = ["v1beta1"]
    api._groups["gateway.networking.k8s.io"] = ["v1", "v1beta1"]
    args = ("--router", "gateway-api", "--router", "istio", "--router", "gateway-api")
    code, document = doctor(tmp_path, api, *args, capsys=capsys)
    found = by_check(document)
    assert code == 1
    assert found["router/istio"]["status"] == "fail"
    assert "events.services.<repository>.router" in found["router/istio"]["fix"]
    assert found["router/gateway-api"]["status"] == "ok"
    assert "gateway.networking.k8s.io/v1 served" in found["router/gateway-api"]["detail"]


def test_a_prometheus_that_does_not_answer_fails(tmp_path, api, capsys):
    ready_argo(api)
    url = f"http://127.0.0.1:{closed_port()}"
    code, document = doctor(
        tmp_path,
        api,
        "--prometheus",
        url,
        "--service",
        "checkout",
        "--namespace",
        "shop",
        capsys=capsys,
    )
    findings = by_check(document)
    assert code == 1 and findings["prometheus"]["status"] == "fail"
    assert "service/metrics" not in findings  # not asked of a Prometheus that is down


def test_a_service_without_deployment_selector_or_metrics_fails_each(
    tmp_path, api, prometheus, capsys
):
    ready_argo(api)
    service = copy.deepcopy(STABLE_SERVICE)
    service["metadata"]["name"] = "basket"
    service["spec"]["selector"] = {"app": "basket", "tier": "web"}
    api.seed(service)
    code, document = doctor(
        tmp_path,
        api,
        "--prometheus",
        prometheus,
        "--service",
        "basket",
        "--namespace",
        "shop",
        capsys=capsys,
    )
    findings = by_check(document)
    assert code == 1
    assert findings["service/deployment"]["status"] == "fail"
    assert "no Deployment shop/basket" in findings["service/deployment"]["detail"]
    assert findings["service/metrics"]["status"] == "fail"
    assert 'app="basket"' in findings["service/metrics"]["detail"]


def test_a_service_selecting_labels_its_pods_lack_fails(tmp_path, api, capsys):
    ready_argo(api)
    api._store = {k: v for k, v in api._store.items() if k[1] != "services"}
    service = copy.deepcopy(STABLE_SERVICE)
    service["spec"]["selector"] = {"app": "checkout", "tier": "web"}
    api.seed(service)
    code, document = doctor(
        tmp_path, api, "--service", "checkout", "--namespace", "shop", capsys=capsys
    )
    finding = by_check(document)["service/service"]
    assert code == 1 and finding["status"] == "fail"
    assert "subset of the pod template's labels" in finding["fix"]


def test_pods_labelled_with_the_recommended_name_label_pass(tmp_path, api, capsys):
    ready_argo(api)
    api._store = {k: v for k, v in api._store.items() if k[1] not in ("services", "deployments")}
    recommended = {"app.kubernetes.io/name": "checkout", "version": "v1"}
    stable = copy.deepcopy(STABLE_DEPLOYMENT)
    stable["spec"]["selector"]["matchLabels"] = recommended
    stable["spec"]["template"]["metadata"]["labels"] = recommended
    service = copy.deepcopy(STABLE_SERVICE)
    service["spec"]["selector"] = {"app.kubernetes.io/name": "checkout"}
    api.seed(stable)
    api.seed(service)
    _, document = doctor(
        tmp_path, api, "--service", "checkout", "--namespace", "shop", capsys=capsys
    )
    findings = by_check(document)
    assert findings["service/deployment"]["status"] == "ok"
    assert findings["service/service"]["status"] == "ok"


def test_tekton_is_checked_for_its_own_version_and_crds_only(tmp_path, api, capsys):
    for name in TEKTON_CRDS:
        plural, group = name.split(".", 1)
        api.crd(plural, group)
    labels = {"app": "tekton-pipelines-controller", "pipeline.tekton.dev/release": "v0.49.2"}
    image = "gcr.io/tekton-releases/github.com/tektoncd/pipeline/cmd/controller@sha256:" + "b" * 64
    api.seed(
        controller(
            "tekton-pipelines-controller",
            "tekton-pipelines",
            "tekton-pipelines-controller",
            image,
            labels,
        )
    )
    code, document = doctor(tmp_path, api, "--engine", "tekton", capsys=capsys)
    findings = by_check(document)
    assert code == 1
    assert findings["tekton-pipelines"]["status"] == "fail"
    assert "v0.49.2" in findings["tekton-pipelines"]["detail"]
    assert findings["crds/tekton"]["status"] == "ok"
    assert "executor-token" not in findings and "go-cache" not in findings


def test_a_read_rbac_refuses_fails_its_check_and_the_others_still_run(tmp_path, api, capsys):
    ready_argo(api)
    api.forbid(CRDS)
    code, document = doctor(tmp_path, api, capsys=capsys)
    findings = by_check(document)
    assert code == 1
    assert findings["crds"]["status"] == "fail" and "403" in findings["crds"]["detail"]
    assert findings["argo-workflows"]["status"] == "ok"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--namespace", "shop"], "--namespace: is the service's namespace: give --service"),
        (["--service", "Checkout"], "--service: 'Checkout' is not an object name"),
        (["--service-only"], "--service-only: checks one service: give --service"),
        (["--prometheus", "file:///etc/passwd"], "--prometheus: expected an http://"),
        (["--release-namespace=-rf"], "--release-namespace: '-rf' is not a namespace name"),
    ],
)
def test_bad_input_exits_2_naming_the_flag_and_reads_nothing(tmp_path, api, capsys, args, message):
    code = main(["doctor", "--kubeconfig", str(write_kubeconfig(tmp_path / "k", api.url)), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert api.paths == []


def test_service_only_reads_the_service_and_not_the_cluster(tmp_path, api, prometheus, capsys):
    ready_argo(api, "quay.io/argoproj/workflow-controller:v3.5.15")  # not looked at
    code, document = doctor(
        tmp_path,
        api,
        "--service-only",
        "--service",
        "checkout",
        "--namespace",
        "shop",
        "--prometheus",
        prometheus,
        capsys=capsys,
    )
    assert code == 0
    assert set(by_check(document)) == {
        "prometheus",
        "service/deployment",
        "service/service",
        "service/metrics",
    }
    assert {path for _, path in api.paths} == {
        "/apis/apps/v1/namespaces/shop/deployments/checkout",
        "/api/v1/namespaces/shop/services/checkout",
    }


def test_the_text_output_names_every_failure_with_its_fix(tmp_path, api, capsys):
    ready_argo(api, "quay.io/argoproj/workflow-controller:v3.5.15")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    assert main(["doctor", "--kubeconfig", str(kubeconfig)]) == 1
    out = capsys.readouterr()
    assert "fail  argo-workflows:" in out.out
    assert "      fix: upgrade Argo Workflows to v3.6" in out.out
    assert "doctor: a check failed" in out.err


@given(
    major=st.integers(0, 9),
    minor=st.integers(0, 30),
    patch=st.integers(0, 40),
    host=st.sampled_from(["quay.io/argoproj", "registry.local:5000/mirror", "x"]),
    digest=st.booleans(),
)
def test_an_image_tag_reads_as_its_version_with_or_without_a_digest(
    major, minor, patch, host, digest
):
    image = f"{host}/workflow-controller:v{major}.{minor}.{patch}"
    if digest:
        image += "@sha256:" + "c" * 64
    assert parse_version(image_tag(image)) == (major, minor, patch)


@given(minor=st.integers(0, 12))
def test_argo_below_3_6_always_fails_and_from_3_6_never_does(minor):
    workload = Workload(
        name="argo/workflow-controller",
        images={"workflow-controller": f"quay.io/argoproj/workflow-controller:v3.{minor}.1"},
    )
    facts = ClusterFacts(engine="argo", controllers={"argo-workflows": workload})
    (finding,) = [f for f in evaluate(facts) if f.check == "argo-workflows"]
    assert (finding.status == Status.FAIL) == (minor < 6)
