"""``canaryflow gitops-snippet``: Argo CD jq paths for a named rule, Flux's ignore rules.

The jq paths are run by the real ``jq`` program (the language Argo CD's gojq implements) on
routes a router really edited in the fake API server; the Argo CD stand-in applies them as its
normaliser does (``argocd_standin.py``). The Flux documents are checked against the fields
the Flux docs define (kustomize-controller docs/spec/v1/kustomizations.md "Ignore Rules",
helm-controller docs/spec/v2/helmreleases.md "Ignore rules"), and the Argo CD rule against
``ResourceIgnoreDifferences`` (docs/user-guide/diffing.md).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest
import yaml
from argocd_standin import ArgoCdStandIn
from kube.fixtures import HTTP_ROUTE, NAMESPACE, SERVICE, VIRTUAL_SERVICE, api_server, cluster
from test_gitops_promotion import APP_PATH, PLAN, daemon, gitops_platform
from test_kubernetes_platform import V2, make_platform

from canaryflow.kubernetes.gitops.snippet import edited_fields, snippet
from canaryflow.plan.model import ReleasePlan
from canaryflow.platform.protocol import HeaderRoute

__all__ = ["api_server", "cluster", "daemon"]

needs_jq = pytest.mark.skipif(
    shutil.which("jq") is None, reason="the jq program runs Argo CD's jq path expressions"
)
RULE = "canaryflow-primary"  # the fixtures' managed rule; "admin" is the user's other one
ARGOCD_RULE_FIELDS = {
    "group",
    "kind",
    "name",
    "namespace",
    "jsonPointers",
    "jqPathExpressions",
    "managedFieldsManagers",
}
FLUX_TARGET_FIELDS = {
    "group",
    "version",
    "kind",
    "name",
    "namespace",
    "labelSelector",
    "annotationSelector",
}


def plan_for(kind: str, rule: str | None = RULE, header: bool = True, **gitops) -> ReleasePlan:
    plan = copy.deepcopy(PLAN)
    plan["router"] = {"kind": kind, "rule": rule}
    if not header:
        plan["router"]["header"] = None
    plan["promotion"]["gitops"].update(gitops)
    return ReleasePlan.model_validate(plan)


def jq_deleted(obj: dict, paths: tuple[str, ...]) -> dict:
    program = " | ".join(f"del({path})" for path in paths)
    done = subprocess.run(
        ["jq", "-c", program], input=json.dumps(obj), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- Argo CD ---------------------------------------------------------------------------------


@needs_jq
@pytest.mark.parametrize(
    ("kind", "original"), [("gateway-api", HTTP_ROUTE), ("istio", VIRTUAL_SERVICE)]
)
def test_the_jq_paths_cover_what_the_router_edits_in_the_named_rule_and_nothing_else(
    cluster, kind, original
):
    edited = edited_fields(plan_for(kind))
    assert edited is not None and edited.jq
    platform = make_platform(cluster, kind)
    platform.deploy_canary(V2)
    platform.router.set_weight(30)
    platform.router.set_header_route(HeaderRoute("x-release-channel", "canary"))
    live = cluster.get(original["kind"], NAMESPACE, SERVICE)

    assert live["spec"] != original["spec"]
    assert jq_deleted(live, edited.jq)["spec"] == jq_deleted(original, edited.jq)["spec"]
    field = edited.list_pointer.rsplit("/", 1)[1]
    elsewhere = copy.deepcopy(original)
    elsewhere["spec"][field][0]["name"] = "admin-v2"  # the user's other rule, edited in Git
    assert jq_deleted(elsewhere, edited.jq)["spec"] != jq_deleted(live, edited.jq)["spec"]


@pytest.mark.parametrize(
    ("rule", "header", "pointers", "jq"),
    [
        (None, True, ["/spec/rules", "/metadata/annotations/canaryflow.dev~1original-route"], 0),
        (RULE, True, ["/metadata/annotations/canaryflow.dev~1original-route"], 2),
        (RULE, False, ["/metadata/annotations/canaryflow.dev~1original-route"], 1),
    ],
    ids=["rule found in the cluster", "named rule", "named rule, no header route"],
)
def test_argocd_gets_jq_paths_only_where_json_pointers_cannot_name_the_rule(
    rule, header, pointers, jq
):
    document = yaml.safe_load(snippet(plan_for("gateway-api", rule, header), "argocd"))

    (ignore,) = document["spec"]["ignoreDifferences"]
    assert set(ignore) <= ARGOCD_RULE_FIELDS
    assert ignore["jsonPointers"] == pointers
    assert len(ignore.get("jqPathExpressions", [])) == jq
    assert document["spec"]["syncPolicy"]["syncOptions"] == ["RespectIgnoreDifferences=true"]
    if jq:
        assert ignore["jqPathExpressions"][0] == (
            '.spec.rules[] | select(.name == "canaryflow-primary") | .backendRefs'
        )


def argocd_with(api, daemon, plan: ReleasePlan) -> ArgoCdStandIn:
    application = yaml.safe_load(snippet(plan, "argocd"))["spec"]
    return ArgoCdStandIn(
        api,
        daemon.url("config.git"),
        APP_PATH,
        SERVICE,
        NAMESPACE,
        ignore_differences=application["ignoreDifferences"],
        respect_ignore_differences=True,
    )


@needs_jq
def test_self_heal_keeps_the_weights_and_header_rule_of_a_named_rule_and_still_sees_other_edits(
    api_server, daemon
):
    named, whole = plan_for("gateway-api"), plan_for("gateway-api", rule=None)
    with argocd_with(api_server, daemon, named) as standin:
        platform = gitops_platform(api_server, daemon, named)
        standin.paused = True  # the edits land between two syncs
        platform.deploy_canary(V2)
        platform.router.set_weight(25)
        platform.router.set_header_route(HeaderRoute("x-release-channel", "canary"))
        standin.paused = False
        standin.wait_syncs()

        assert platform.router.verify_weight(25)
        assert not platform.router.header_route_withdrawn()
        live = api_server.get("HTTPRoute", NAMESPACE, SERVICE)
        in_git = next(o for o in standin._from_git() if o["kind"] == "HTTPRoute")
        in_git = standin._tracked(in_git)
        assert not standin._differs(in_git, live)  # Synced: the release's edits are ignored
        in_git["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/admin/v2"
        assert standin._differs(in_git, live)  # a Git edit to the other rule is OutOfSync
        pointers_only = argocd_with(api_server, daemon, whole)
        assert not pointers_only._differs(in_git, live)  # the whole list hides it


# -- Flux ------------------------------------------------------------------------------------


def test_flux_kustomization_ignore_rule_has_the_documented_shape():
    document = yaml.safe_load(snippet(plan_for("istio"), "flux", "kustomization"))

    (rule,) = document["spec"]["ignore"]
    assert set(rule) == {"paths", "target"} and set(rule["target"]) <= FLUX_TARGET_FIELDS
    assert rule["paths"] == ["/spec/http", "/metadata/annotations/canaryflow.dev~1original-route"]
    assert rule["target"]["name"] == f"^{SERVICE}$"
    assert rule["target"]["group"] == r"^networking\.istio\.io$"


def test_a_helm_values_promotion_gets_the_helmrelease_drift_detection_ignore_rule():
    plan = plan_for(
        "gateway-api", format="helm-values", key="image.digest", path="apps/checkout/values.yaml"
    )
    document = yaml.safe_load(snippet(plan, "flux"))

    drift = document["spec"]["driftDetection"]
    assert "mode" not in drift  # the user's choice, kept
    (rule,) = drift["ignore"]
    assert set(rule) == {"paths", "target"} and set(rule["target"]) <= FLUX_TARGET_FIELDS
    assert rule["paths"][0] == "/spec/rules" and rule["target"]["kind"] == "HTTPRoute"


def test_gitops_snippet_flux_object_chooses_the_older_ssa_annotation(tmp_path, capsys):
    from canaryflow.cli import main

    path = tmp_path / "canaryflow.yaml"
    path.write_text(yaml.safe_dump(PLAN))

    assert (
        main(
            [
                "gitops-snippet",
                "--plan",
                str(path),
                "--tool",
                "flux",
                "--flux-object",
                "ssa-annotation",
            ]
        )
        == 0
    )

    (entry,) = yaml.safe_load(capsys.readouterr().out)["spec"]["patches"]
    annotations = yaml.safe_load(entry["patch"])["metadata"]["annotations"]
    assert annotations == {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}
