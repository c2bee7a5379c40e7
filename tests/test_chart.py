"""The Helm chart renders, lints strictly, packages, and every object it renders is valid.

The WorkflowTemplates in the chart are generated from ``canaryflow_workflows``; rendered with
the default values they are the compiled objects, with only the chart's labels and the values'
parameter defaults added.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from chart_validation import (
    CHART,
    NAMESPACE,
    WEBHOOK_VALUES,
    objects,
    of_kind,
    render,
    violations,
)

from canaryflow.analysis.catalogue import METRICS
from canaryflow.chart.generate import PLAN_FILE, compile_for_chart, generated_files
from canaryflow.chart.package import lint_findings, package_chart
from canaryflow.plan.load import load_plan
from canaryflow_workflows import WorkflowSettings, compile_documents

APP_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
)
EVERYTHING = {
    **copy.deepcopy(WEBHOOK_VALUES),
    "templates": {"scope": "cluster"},
    "runbook": {"enabled": True},
    "plan": {"inline": "service: {name: cart}\n"},
    "release": {"namespaces": ["shop"], "routerKind": "istio"},
}
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def test_lint_is_clean_in_strict_mode_with_defaults_and_with_every_feature_on():
    assert lint_findings(CHART) == []
    assert lint_findings(CHART, EVERYTHING) == []


@pytest.mark.parametrize("values", [None, EVERYTHING], ids=["defaults", "everything"])
def test_every_rendered_object_is_valid_and_labelled(values):
    rendered = objects(values)

    assert rendered
    for obj in rendered:
        assert violations(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"
        labels = obj["metadata"].get("labels", {})
        assert all(labels.get(key) for key in APP_LABELS), obj["metadata"]["name"]
        assert labels["app.kubernetes.io/part-of"] == "canaryflow"


def _expected(scope: str) -> dict[tuple[str, str], dict]:
    """What the chart must render: compiled objects + chart labels + values' defaults."""
    settings = WorkflowSettings(cluster_scoped_tasks=scope == "cluster", namespace=NAMESPACE)
    documents = compile_documents(settings)
    expected = {}
    for document in documents.values():
        kind, name = document["kind"], document["metadata"]["name"]
        if (kind, name) == ("WorkflowTemplate", "canaryflow-tasks") and scope == "cluster":
            continue
        if kind == "ClusterWorkflowTemplate" and scope == "namespace":
            continue
        spec = document["spec"]
        if spec.get("serviceAccountName") == "{{workflow.parameters.service-account}}":
            # The chart derives the account from the namespace; no parameter chooses it.
            spec["serviceAccountName"] = "cf-canaryflow-release-{{workflow.parameters.namespace}}"
            spec["arguments"]["parameters"] = [
                p for p in spec["arguments"]["parameters"] if p["name"] != "service-account"
            ]
        for parameter in spec.get("arguments", {}).get("parameters", []):
            if parameter["name"] == "image-repository":
                parameter["value"] = DEFAULTS["release"]["imageRepository"]
            if parameter["name"] == "router-kind":
                parameter["value"] = DEFAULTS["release"]["routerKind"]
        expected[kind, name] = document
    return expected


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
def test_rendered_workflow_templates_are_the_compiled_ones(scope):
    rendered = objects({"templates": {"scope": scope}})
    argo = {
        (o["kind"], o["metadata"]["name"]): o
        for o in rendered
        if o["kind"] in ("WorkflowTemplate", "ClusterWorkflowTemplate")
    }
    expected = _expected(scope)

    assert set(argo) == set(expected)
    for key, document in expected.items():
        got = copy.deepcopy(argo[key])
        labels = got["metadata"].pop("labels")
        want_labels = document["metadata"].pop("labels", {})
        assert want_labels.items() <= labels.items()
        assert set(APP_LABELS) <= set(labels)
        assert got == document, key


def test_argo_expressions_survive_helm_untouched():
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(name="cf", namespace=NAMESPACE)
    text = manifests["canaryflow/templates/generated/workflowtemplate-go-canary-release.yaml"]
    source = (CHART / "templates/generated/workflowtemplate-go-canary-release.yaml").read_text()

    assert "{{workflow.parameters.namespace}}" in text
    assert '{{ "{{" }}workflow.parameters.namespace{{ "}}" }}' in source
    assert '{{ "{{" }}' not in text


def test_values_reach_the_templates():
    values = {
        "image": {
            "repository": "registry.internal:5000/platform/canaryflow",
            "tag": "1.2.3",
            "pullPolicy": "Always",
        },
        "serviceAccount": {"name": "releaser"},
        "release": {"routerKind": "gateway-api", "imageRepository": "registry.internal/svc"},
        "plan": {
            "inline": {
                "service": {"name": "cart"},
                "analysis": {
                    "gates": [
                        {"name": "q", "query": "up{ {{ selector }} }", "threshold": {"max": 1}}
                    ]
                },
            }
        },
    }
    rendered = objects(values)
    (tasks,) = [
        o
        for o in of_kind(rendered, "WorkflowTemplate")
        if o["metadata"]["name"] == "canaryflow-tasks"
    ]
    (release,) = [
        o
        for o in of_kind(rendered, "WorkflowTemplate")
        if o["metadata"]["name"] == "go-canary-release"
    ]
    containers = [t["container"] for t in tasks["spec"]["templates"] if "container" in t]
    parameters = {p["name"]: p.get("value") for p in release["spec"]["arguments"]["parameters"]}
    (plan_map,) = of_kind(rendered, "ConfigMap")[1:] or [None]

    assert {c["image"] for c in containers} == {"registry.internal:5000/platform/canaryflow:1.2.3"}
    assert {c["imagePullPolicy"] for c in containers} == {"Always"}
    assert "service-account" not in parameters
    assert release["spec"]["serviceAccountName"] == "releaser-{{workflow.parameters.namespace}}"
    assert parameters["router-kind"] == "gateway-api"
    assert parameters["image-repository"] == "registry.internal/svc"
    assert (
        yaml.safe_load(parameters["plan-inline"])["analysis"]["gates"][0]["query"]
        == "up{ {{ selector }} }"
    )
    assert plan_map is not None and "{{ selector }}" in plan_map["data"]["canaryflow.yaml"]
    assert sorted(s["metadata"]["name"] for s in of_kind(rendered, "ServiceAccount")) == [
        "canaryflow-build",
        "releaser",
        "releaser-argo",  # the release namespace's own account (no release.namespaces given)
    ]


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("engine", ["argo", "tekton"])
def test_an_image_digest_pins_every_task_and_the_test_pod_and_the_tag_is_ignored(engine):
    """What `make image` prints (HOST/REPO@sha256:...) is what runs: the digest wins over any
    tag, in every task container, step and the helm test Pod."""
    values = {
        "engine": engine,
        "image": {"repository": "registry.internal/platform/canaryflow", "tag": "1.2.3"},
    }
    values["image"]["digest"] = DIGEST
    rendered = render(values, hooks=True)
    images = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("image"), str) and "canaryflow" in node["image"]:
                images.add(node["image"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for docs in rendered.values():
        walk(docs)
    assert images == {f"registry.internal/platform/canaryflow@{DIGEST}"}
    (pod,) = [o for o in rendered["canaryflow/templates/tests/doctor.yaml"] if o["kind"] == "Pod"]
    assert {c["image"] for c in pod["spec"]["containers"]} == images


def test_without_a_digest_the_image_is_by_tag():
    (pod,) = [
        o
        for o in render({"image": {"tag": "1.2.3", "digest": ""}}, hooks=True)[
            "canaryflow/templates/tests/doctor.yaml"
        ]
        if o["kind"] == "Pod"
    ]
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/canaryflow/canaryflow:1.2.3"


@pytest.mark.parametrize(
    "digest",
    [
        "0123456789abcdef" * 4,  # no algorithm
        "sha256:" + "0123456789abcdef" * 3,  # too short
        "sha256:" + "0123456789ABCDEF" * 4,  # upper case: not an OCI digest
        "md5:" + "0" * 32,
        "latest",
        "sha256:" + "0" * 64 + "\nimage: evil",  # a second line
        "sha256:" + "0" * 64 + "\n",  # a trailing line break
        "registry.internal/canaryflow@sha256:" + "0" * 64,  # the whole reference
    ],
)
def test_the_values_schema_refuses_a_malformed_digest(digest):
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as raised:
        chart.render({"image": {"digest": digest}}, name="cf", namespace=NAMESPACE)
    assert "digest" in str(raised.value)


def test_by_default_each_repositorys_plan_chooses_its_router():
    """One install serves every router kind: ``router-kind`` stays empty unless overridden."""

    def router_kind(values) -> str:
        (release,) = [
            o
            for o in of_kind(objects(values), "WorkflowTemplate")
            if o["metadata"]["name"] == "go-canary-release"
        ]
        parameters = release["spec"]["arguments"]["parameters"]
        return next(p["value"] for p in parameters if p["name"] == "router-kind")

    assert router_kind(None) == ""
    assert router_kind({"release": {"routerKind": ""}}) == ""
    assert router_kind({"release": {"routerKind": "istio"}}) == "istio"


def test_the_generated_files_are_up_to_date_with_the_code():
    plan = load_plan(CHART / PLAN_FILE)
    documents, settings = compile_for_chart()

    for file in generated_files(plan, documents, settings):
        assert (CHART / file.path).read_text() == file.text, (
            f"{file.path} is stale: run `canaryflow chart --generate`"
        )


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"release": {"routerKind": "linkerd"}}, "routerKind"),
        ({"release": {"routers": ["linkerd"]}}, "routers"),
        ({"release": {"routers": []}}, "routers"),
        ({"image": {"repository": "Not A Repo"}}, "repository"),
        ({"image": {"tag": "v1 beta"}}, "tag"),
        ({"templates": {"scope": "global"}}, "scope"),
        ({"events": {"branches": "main"}}, "branches"),
        ({"events": {"branches": [1]}}, "branches"),
        ({"events": {"branches": ["refs/heads/main"]}}, "branches"),
        ({"release": {"namespaces": ["Shop"]}}, "namespaces"),
        ({"events": {"github": {"url": "not a url"}}}, "url"),
        ({"dashboard": {"metrics": "linkerd"}}, "metrics"),
        ({"routerKind": "istio"}, "routerKind"),
        ({"events": {"services": {"acme/checkout": {"service": "Check_Out"}}}}, "service"),
        ({"events": {"services": {"checkout": {}}}}, "propertyName 'checkout'"),
        ({"events": {"services": {"acme/checkout": {"namespace": "Shop"}}}}, "namespace"),
        ({"events": {"services": {"acme/checkout": {"plan": "x"}}}}, "plan"),
        ({"workflows": {"podGC": {"strategy": "Sometimes"}}}, "strategy"),
        ({"notifications": {"secretName": "Not A Name"}}, "secretName"),
        ({"gitops": {"repository": "https://bot:token@git.example.com/c.git"}}, "repository"),
        ({"gitops": {"repository": "ext::sh -c id"}}, "repository"),
        ({"gitops": {"credentialsSecret": "Not A Name"}}, "credentialsSecret"),
        ({"gitops": {"apiUrl": "https://bot:token@api.github.com"}}, "apiUrl"),
        ({"gitops": {"apiUrl": "git://git.example.com/api"}}, "apiUrl"),
        ({"gitops": {"branch": "--upload-pack=id"}}, "branch"),
        ({"gitops": {"branch": "release/../main"}}, "branch"),
    ],
)
def test_the_values_schema_rejects_bad_values_naming_the_key(values, complaint):
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as raised:
        chart.render(values, name="cf", namespace=NAMESPACE)

    message = str(raised.value)
    assert "values don't meet the specifications of the schema" in message
    assert complaint in message


def test_the_gitops_values_reach_the_promote_task_only():
    values = {
        "gitops": {
            "repository": "https://git.example.com/platform/config.git",
            "credentialsSecret": "config-deploy-token",
            "apiUrl": "https://gitlab.example.com/api/v4",
            "branch": "production",
        }
    }
    (tasks,) = [
        o
        for o in of_kind(objects(values), "WorkflowTemplate")
        if o["metadata"]["name"] == "canaryflow-tasks"
    ]
    templates = {t["name"]: t for t in tasks["spec"]["templates"] if "container" in t}
    promote = templates.pop("promote")
    env = {e["name"]: e.get("value") for e in promote["container"]["env"]}
    volumes = {v["name"]: v for v in promote["volumes"]}

    assert env["CANARYFLOW_GITOPS_REPOSITORY"] == "https://git.example.com/platform/config.git"
    assert env["CANARYFLOW_GITOPS_CREDENTIALS"] == "/var/run/canaryflow/gitops"
    assert env["CANARYFLOW_GITOPS_API_URL"] == "https://gitlab.example.com/api/v4"
    assert env["CANARYFLOW_GITOPS_BRANCH"] == "production"
    assert volumes["gitops-credentials"]["secret"] == {
        "secretName": "config-deploy-token",
        "optional": True,
    }
    assert not any(
        v.get("secret", {}).get("secretName") == "config-deploy-token"
        for t in templates.values()
        for v in t.get("volumes", [])
    )


def test_events_without_a_webhook_secret_fail_with_the_fix():
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as raised:
        chart.render({"events": {"enabled": True}}, name="cf", namespace=NAMESPACE)

    assert "webhookSecret" in str(raised.value)


def test_packaging_writes_a_chart_archive_that_loads(tmp_path):
    archive = package_chart(CHART, tmp_path)

    assert archive == tmp_path / "canaryflow-0.1.0.tgz"
    with helm.Chart.load(archive) as packaged:
        assert packaged.version == "0.1.0"
        assert any(t["name"].startswith("templates/generated/") for t in packaged.templates)
        assert packaged.schema is not None


def test_the_dashboard_shows_canary_and_stable_for_every_built_in_gate():
    for flavour in ("go", "istio"):
        (config,) = of_kind(objects({"dashboard": {"metrics": flavour}}), "ConfigMap")
        board = json.loads(config["data"]["canaryflow.json"])
        panels = {p["title"]: p for p in board["panels"]}
        variables = {v["name"] for v in board["templating"]["list"]}

        assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert {"service", "namespace", "datasource"} <= variables
        for metric in METRICS.values():
            if metric.query(flavour) is None:
                continue
            canary, stable = (t["expr"] for t in panels[metric.name]["targets"])
            assert "$service" in canary and "{{" not in canary
            as_stable = canary.replace('$track_label="canary"', '$track_label!="canary"').replace(
                "$service-canary", "$service"
            )
            assert as_stable == stable
        assert "Canary weight (configured)" in panels


def test_every_test_file_the_chart_cites_exists():
    """The chart's templates and README name the tests that check them: a renamed or moved test
    file must not leave a pointer to nothing (the PrometheusRule once cited a file that never
    existed)."""
    root = CHART.parents[1]
    cited = {
        (path.relative_to(root), name)
        for path in CHART.rglob("*")
        if path.is_file() and path.suffix in (".yaml", ".tpl", ".md", ".txt", ".json")
        for name in re.findall(r"tests/[A-Za-z0-9_/]+\.py", path.read_text())
    }
    assert cited, "the chart cites its tests"
    assert [(str(path), name) for path, name in cited if not (root / name).is_file()] == []


def test_the_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))

    assert documented == set(_leaf_keys(DEFAULTS))


def _leaf_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "labels":
            keys += _leaf_keys(value, f"{path}.")
        else:
            keys.append(path)
    return keys


def test_the_runbook_config_map_carries_the_generated_runbook():
    (config,) = [
        c
        for c in of_kind(objects({"runbook": {"enabled": True}}), "ConfigMap")
        if c["metadata"]["name"].endswith("-runbook")
    ]

    assert config["data"]["runbook.md"] == (CHART / "files" / "runbook.md").read_text().rstrip("\n")
    assert Path(CHART / "files" / "runbook.md").read_text().startswith("# Runbook")


def _notes(values: dict) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="cf", namespace=NAMESPACE, is_install=True)
    return manifests["canaryflow/templates/NOTES.txt"]


def test_the_docs_name_the_argo_version_the_generated_mutex_needs():
    """``synchronization.mutexes`` is v3.6+ (v4 dropped the singular ``mutex``)."""
    release = compile_documents(WorkflowSettings())["go-canary-release.workflowtemplate.yaml"]
    assert set(release["spec"]["synchronization"]) == {"mutexes"}
    readme = (CHART.parents[1] / "README.md").read_text()
    for text in (readme, (CHART / "README.md").read_text(), _notes(WEBHOOK_VALUES)):
        assert "v3.6" in text and "v3.5" not in text


def test_the_docs_approve_the_one_way_the_approve_template_expects():
    library = compile_documents(WorkflowSettings())["canaryflow-tasks.workflowtemplate.yaml"]
    approve = next(t for t in library["spec"]["templates"] if t["name"] == "approve")
    (supplied,) = approve["outputs"]["parameters"]
    assert "supplied" in supplied["valueFrom"] and "default" not in supplied["valueFrom"]
    readme = (CHART.parents[1] / "README.md").read_text()
    for text in (readme, (CHART / "README.md").read_text(), _notes({})):
        assert f"--output-parameter {supplied['name']}=" in text
        assert "resume WORKFLOW --node-field-selector displayName=" in text


@pytest.mark.parametrize(
    ("scope", "says"), [("cluster", "clusterScope: true"), ("namespace", "namespaced")]
)
def test_the_notes_say_which_task_library_the_release_refers_to(scope, says):
    assert says in _notes({"templates": {"scope": scope}})


def test_workflow_clean_up_is_a_value():
    values = {
        "workflows": {
            "ttlStrategy": {"secondsAfterSuccess": 3600, "secondsAfterFailure": None},
            "podGC": {"strategy": "OnWorkflowCompletion"},
        }
    }
    rendered = objects(values)
    for template in of_kind(rendered, "WorkflowTemplate"):
        if template["metadata"]["name"] == "canaryflow-tasks":
            continue
        assert template["spec"]["ttlStrategy"] == {"secondsAfterSuccess": 3600}
        assert template["spec"]["podGC"] == {"strategy": "OnWorkflowCompletion"}
        assert violations(template) == []
