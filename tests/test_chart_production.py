"""The chart as a stock cluster needs it: the Go cache claim (or an emptyDir), build pods with no
API token, the company's Go settings and private-module Secrets, and a PodMonitor whose
relabeling is exactly the one the analysis selects on."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from chart_validation import CHART, NAMESPACE, objects, of_kind, violations

from canaryflow.chart.package import lint_findings
from canaryflow.kubernetes.scrape import pod_relabelings

GO_TASKS = ("go-test", "go-build")

# PodMonitor (monitoring.coreos.com/v1) as Prometheus Operator's CRD declares the fields used
# here (example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml): closed objects,
# so a misspelt field fails as the API server's pruning would drop it.
_RELABELING = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "labelmap"]},
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "replacement": {"type": "string"},
        "separator": {"type": "string"},
    },
}
POD_MONITOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object"},
                        "matchExpressions": {"type": "array"},
                    },
                },
                "podMetricsEndpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {
                                "type": "string",
                                "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$",
                            },
                            "relabelings": {"type": "array", "items": _RELABELING},
                        },
                    },
                },
            },
        },
    },
}


def library(values: dict | None = None) -> dict[str, dict]:
    (tasks,) = [
        o
        for o in of_kind(objects(values), "WorkflowTemplate")
        if o["metadata"]["name"] == "canaryflow-tasks"
    ]
    return {t["name"]: t for t in tasks["spec"]["templates"]}


def test_the_go_cache_claim_is_created_and_mounted_by_default():
    rendered = objects()
    (claim,) = of_kind(rendered, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "canaryflow-go-cache"
    assert claim["metadata"]["namespace"] == NAMESPACE
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
    }
    assert violations(claim) == []
    for name in GO_TASKS:
        (cache,) = [v for v in library()[name]["volumes"] if v["name"] == "go-cache"]
        assert cache == {
            "name": "go-cache",
            "persistentVolumeClaim": {"claimName": "canaryflow-go-cache"},
        }


def test_size_class_and_access_mode_come_from_the_values():
    claim_values = {
        "size": "50Gi",
        "storageClassName": "cephfs",
        "accessMode": "ReadWriteMany",
        "name": "go-cache",
    }
    values = {"go": {"cache": {"persistentVolumeClaim": claim_values}}}
    (claim,) = of_kind(objects(values), "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "go-cache"
    assert claim["spec"]["storageClassName"] == "cephfs"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    (cache,) = [v for v in library(values)["go-build"]["volumes"] if v["name"] == "go-cache"]
    assert cache["persistentVolumeClaim"] == {"claimName": "go-cache"}


def test_without_a_claim_every_go_pod_gets_an_empty_dir():
    values = {"go": {"cache": {"persistentVolumeClaim": {"enabled": False}}}}
    rendered = objects(values)
    assert of_kind(rendered, "PersistentVolumeClaim") == []
    for name in GO_TASKS:
        (cache,) = [v for v in library(values)[name]["volumes"] if v["name"] == "go-cache"]
        assert cache == {"name": "go-cache", "emptyDir": {"sizeLimit": "10Gi"}}


def test_an_existing_claim_is_used_not_created():
    values = {"go": {"cache": {"persistentVolumeClaim": {"create": False, "name": "shared-go"}}}}
    assert of_kind(objects(values), "PersistentVolumeClaim") == []
    (cache,) = [v for v in library(values)["go-test"]["volumes"] if v["name"] == "go-cache"]
    assert cache["persistentVolumeClaim"] == {"claimName": "shared-go"}


def test_go_pods_run_as_the_build_account_with_no_token_in_their_container():
    rendered = objects()
    accounts = {a["metadata"]["name"]: a for a in of_kind(rendered, "ServiceAccount")}
    assert accounts["canaryflow-build"]["automountServiceAccountToken"] is False
    templates = library()
    for name in GO_TASKS:
        assert templates[name]["serviceAccountName"] == "canaryflow-build"
        assert templates[name]["automountServiceAccountToken"] is False
        assert templates[name]["executor"] == {"serviceAccountName": "canaryflow-build"}
    release_roles = [
        r for r in of_kind(rendered, "RoleBinding") if r["metadata"]["name"].endswith("-release")
    ]
    assert all(s["name"] != "canaryflow-build" for r in release_roles for s in r["subjects"]), (
        "the build account must not get the release Role"
    )
    assert "serviceAccountName" not in templates["deploy-canary"]


def test_the_companys_go_settings_and_private_module_secrets_reach_only_the_go_pods():
    values = {
        "go": {
            "env": {
                "GOPROXY": "https://goproxy.corp.example,direct",
                "GOPRIVATE": "git.corp.example/*",
            },
            "privateModules": {
                "netrcSecret": {"name": "go-netrc"},
                "gitCredentialsSecret": {"name": "git-creds", "key": "credentials"},
            },
        }
    }
    templates = library(values)
    for name in GO_TASKS:
        template = templates[name]
        env = {e["name"]: e["value"] for e in template["container"]["env"]}
        assert env["GOPROXY"] == "https://goproxy.corp.example,direct"
        assert env["GOPRIVATE"] == "git.corp.example/*"
        assert env["CANARYFLOW_GO_NETRC"] == "/var/run/canaryflow/go-netrc/netrc"
        assert (
            env["CANARYFLOW_GIT_CREDENTIALS"]
            == "/var/run/canaryflow/git-credentials/git-credentials"
        )
        volumes = {v["name"]: v for v in template["volumes"]}
        assert volumes["go-netrc"]["secret"] == {
            "secretName": "go-netrc",
            "items": [{"key": "netrc", "path": "netrc"}],
        }
        assert volumes["git-credentials"]["secret"]["items"] == [
            {"key": "credentials", "path": "git-credentials"}
        ]
        mounts = {m["name"]: m for m in template["container"]["volumeMounts"]}
        assert mounts["go-netrc"] == {
            "name": "go-netrc",
            "mountPath": "/var/run/canaryflow/go-netrc",
            "readOnly": True,
        }
    for name, template in templates.items():
        if name not in GO_TASKS:
            env = {e["name"] for e in (template.get("container") or {}).get("env", [])}
            assert "GOPROXY" not in env and "CANARYFLOW_GO_NETRC" not in env, name
    assert lint_findings(CHART, values) == []


def test_without_private_modules_nothing_is_mounted_and_no_variable_points_nowhere():
    for name in GO_TASKS:
        template = library()[name]
        assert not {"go-netrc", "git-credentials"} & {v["name"] for v in template["volumes"]}
        env = {e["name"] for e in template["container"]["env"]}
        assert not {"CANARYFLOW_GO_NETRC", "CANARYFLOW_GIT_CREDENTIALS"} & env


def test_the_pod_monitor_relabels_exactly_as_the_analysis_selects():
    values = {
        "release": {"namespaces": ["shop", "payments"]},
        "monitoring": {
            "podMonitor": {
                "enabled": True,
                "labels": {"release": "kube-prometheus-stack"},
                "trackLabel": "canary_track",
            }
        },
    }
    (monitor,) = of_kind(objects(values), "PodMonitor")
    jsonschema.validate(monitor, POD_MONITOR_SCHEMA)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["shop", "payments"]}
    # Every pod naming the port: pods carry app or app.kubernetes.io/name (no "either" selector).
    assert monitor["spec"]["selector"] == {"matchLabels": {}}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["relabelings"] == pod_relabelings("canary_track")
    assert {"port": "http", "path": "/metrics", "interval": "15s"}.items() <= endpoint.items()
    assert lint_findings(CHART, values) == []


def test_the_pod_monitor_is_off_by_default_and_takes_a_selector():
    assert of_kind(objects(), "PodMonitor") == []
    selector = {"matchLabels": {"team": "payments"}}
    values = {"monitoring": {"podMonitor": {"enabled": True, "selector": selector}}}
    (monitor,) = of_kind(objects(values), "PodMonitor")
    assert monitor["spec"]["selector"] == selector


@pytest.mark.parametrize(
    "values",
    [
        {"go": {"env": {"LD_PRELOAD": "/x.so"}}},
        {"go": {"env": {"GOFLAGS": "-mod=mod\n-toolexec=x"}}},
        {"go": {"cache": {"persistentVolumeClaim": {"accessMode": "Everyone"}}}},
        {"go": {"cache": {"persistentVolumeClaim": {"size": "lots"}}}},
        {"monitoring": {"podMonitor": {"trackLabel": "canaryflow.dev/track"}}},
    ],
)
def test_the_schema_refuses_bad_build_and_monitoring_values(values):
    with pytest.raises(Exception, match="values"):
        objects(copy.deepcopy(values))
