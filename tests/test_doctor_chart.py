"""The chart's ``helm test``: a hook Pod running ``canaryflow doctor`` with the release's own
settings, rendered by Helm's engine (helm-python-sdk), and read-only rights that exist only for
the test and cover every read doctor makes (checked request by request against the rendered
RBAC rules, with the requests recorded by the fake API server)."""

from __future__ import annotations

import copy

import pytest
from chart_validation import NAMESPACE, WEBHOOK_VALUES, render, violations
from doctor_apiserver import DoctorApiServer
from kube.fixtures import write_kubeconfig
from test_doctor import ready_argo

from canaryflow.cli import _parser, main
from canaryflow.commands.doctor import settings_from

TEST_TEMPLATE = "canaryflow/templates/tests/doctor.yaml"
PROMETHEUS = "http://prometheus.monitoring:9090"
WITH_PLAN = {
    **copy.deepcopy(WEBHOOK_VALUES),
    "release": {"routerKind": "istio"},
    "plan": {"inline": {"analysis": {"prometheus": {"url": PROMETHEUS}}}},
}


def hook_objects(values) -> list[dict]:
    return render(values, hooks=True)[TEST_TEMPLATE]


def pod_of(values) -> dict:
    (pod,) = [o for o in hook_objects(values) if o["kind"] == "Pod"]
    return pod


def doctor_settings(container: dict):
    assert container["command"] == ["canaryflow"] and container["args"][0] == "doctor"
    args = _parser("doctor").parse_args(container["args"])
    return settings_from(args)


def test_helm_install_creates_none_of_the_tests_objects():
    assert render(WITH_PLAN)[TEST_TEMPLATE] == []


def test_every_object_of_the_test_is_a_test_hook_and_valid():
    for values in ({}, WITH_PLAN, {"engine": "tekton"}):
        for obj in hook_objects(values):
            annotations = obj["metadata"]["annotations"]
            assert annotations["helm.sh/hook"] == "test", obj["kind"]
            assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
            assert violations(obj) == [], (obj["kind"], violations(obj))


def test_the_test_pod_runs_doctor_with_the_releases_settings():
    pod = pod_of(WITH_PLAN)
    cluster, service = pod["spec"]["containers"]
    settings = doctor_settings(cluster)
    assert settings.engine == "argo" and settings.events is True
    assert settings.namespace == NAMESPACE
    assert settings.build_service_account == "canaryflow-build"
    assert settings.cache_claim == "canaryflow-go-cache"
    assert settings.routers == ("istio",)
    assert settings.prometheus_url == PROMETHEUS
    assert settings.service is None
    per_service = doctor_settings(service)
    assert (per_service.service, per_service.service_namespace) == ("checkout", "shop")
    assert per_service.cluster is False and settings.cluster is True
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_values_change_what_the_test_checks():
    values = {"engine": "tekton", "go": {"cache": {"persistentVolumeClaim": {"enabled": False}}}}
    (cluster,) = pod_of(values)["spec"]["containers"]
    settings = doctor_settings(cluster)
    assert settings.engine == "tekton" and settings.events is False
    assert settings.cache_claim is None and settings.build_service_account is None
    assert settings.prometheus_url is None and settings.routers == ()


def test_the_test_checks_every_registered_services_router():
    """Not only release.routerKind: each service registered in events.services with its own
    router (default gateway-api) needs that router's API served, as its release Role grants."""
    values = copy.deepcopy(WEBHOOK_VALUES)
    values["events"]["services"] = {
        "acme/checkout": {"namespace": "shop", "router": "istio"},
        "acme/cart": {"namespace": "shop"},
        "acme/search": {"namespace": "find", "router": "istio"},
    }
    values["release"] = {"routers": ["istio", "gateway-api"]}
    cluster = pod_of(values)["spec"]["containers"][0]
    assert doctor_settings(cluster).routers == ("gateway-api", "istio")


def allowed(rules: list[dict], group: str, resource: str, verb: str, name: str) -> bool:
    for rule in rules:
        if (
            group in rule.get("apiGroups", [])
            and resource in rule.get("resources", [])
            and verb in rule.get("verbs", [])
            and (not rule.get("resourceNames") or name in rule["resourceNames"])
        ):
            return True
    return False


def permitted(objects: list[dict], path: str) -> bool:
    """Whether the rendered ClusterRole/Roles let the test's account GET ``path`` (discovery is
    every authenticated user's: system:discovery)."""
    if path == "/apis":
        return True
    parts = [p for p in path.split("/") if p]
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    namespace = None
    if rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    verb = "get" if name else "list"
    for obj in objects:
        scoped = obj["kind"] == "ClusterRole" or (
            obj["kind"] == "Role" and obj["metadata"]["namespace"] == namespace
        )
        if scoped and allowed(obj["rules"], group, resource, verb, name):
            return True
    return False


@pytest.mark.parametrize("values", [WITH_PLAN, {}], ids=["events", "plain"])
def test_the_test_accounts_rights_cover_every_read_doctor_makes_and_no_write(tmp_path, values):
    objects = hook_objects(values)
    pod = pod_of(values)
    with DoctorApiServer() as api:
        ready_argo(api)
        kubeconfig = str(write_kubeconfig(tmp_path / "kubeconfig", api.url))
        for container in pod["spec"]["containers"]:
            args = list(container["args"])
            if "--prometheus" in args:  # Prometheus is outside the API server
                index = args.index("--prometheus")
                del args[index : index + 2]
            main([*args, "--kubeconfig", kubeconfig])
        requests = set(api.paths)
    assert {method for method, _ in requests} == {"GET"}
    paths = {path for _, path in requests}
    assert len(paths) >= 5, "doctor read next to nothing"
    denied = sorted(p for p in paths if not permitted(objects, p))
    assert denied == []
    for obj in objects:
        for rule in obj.get("rules", []):
            assert set(rule["verbs"]) <= {"get", "list"}, rule


SCHEDULING = {
    **copy.deepcopy(WITH_PLAN),
    "commonLabels": {"team": "platform"},
    "podLabels": {"sidecar.istio.io/inject": "false"},
    "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
    "imagePullSecrets": [{"name": "mirror-pull"}],
    "nodeSelector": {"pool": "ci"},
    "tolerations": [{"key": "ci", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}
                ]
            }
        }
    },
    "priorityClassName": "ci-low",
}


def test_the_test_pod_is_scheduled_and_pulled_as_the_release_pods_are():
    """A cluster that needs a pull secret, a dedicated node pool or a priority class for the
    release pods needs them for the test pod too: the same values reach both."""
    pod = pod_of(SCHEDULING)
    spec, metadata = pod["spec"], pod["metadata"]
    assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}]
    assert spec["nodeSelector"] == {"pool": "ci"}
    assert spec["tolerations"] == SCHEDULING["tolerations"]
    assert spec["affinity"] == SCHEDULING["affinity"]
    assert spec["priorityClassName"] == "ci-low"
    assert metadata["labels"]["team"] == "platform"
    assert metadata["labels"]["sidecar.istio.io/inject"] == "false"
    assert metadata["labels"]["app.kubernetes.io/component"] == "doctor"
    annotations = metadata["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"
    assert annotations["helm.sh/hook"] == "test"
    assert violations(pod) == []

    (release,) = [
        o
        for o in render(SCHEDULING)[
            "canaryflow/templates/generated/workflowtemplate-go-canary-release.yaml"
        ]
        if o["kind"] == "WorkflowTemplate"
    ]
    for key in ("imagePullSecrets", "nodeSelector", "tolerations", "affinity"):
        assert release["spec"][key] == spec[key], key
    assert release["spec"]["podPriorityClassName"] == spec["priorityClassName"]


def test_a_pod_annotation_cannot_turn_the_test_into_an_installed_pod():
    values = {**copy.deepcopy(WITH_PLAN), "podAnnotations": {"helm.sh/hook": "post-install"}}
    assert pod_of(values)["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_without_scheduling_values_the_test_pod_sets_none():
    spec = pod_of(WITH_PLAN)["spec"]
    for key in ("imagePullSecrets", "nodeSelector", "tolerations", "affinity"):
        assert key not in spec
    assert "priorityClassName" not in spec
