"""The runbook says, for the plan's own names, what runs, what stops it and what to do by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from canaryflow.local.flag_demo import DEMO_PLAN
from canaryflow.plan.load import load_plan
from canaryflow.plan.model import ReleasePlan
from canaryflow.runbook import RunbookContext, detection_bound, render_runbook
from canaryflow.runbook.manual import traffic_to_stable

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = ROOT / "examples" / "plans" / "checkout.yaml"


def plan_with(router: str, **analysis):
    header = ", header: null" if router == "smi" else ""
    text = f"""
service: {{name: cart, namespace: shop}}
router: {{kind: {router}{header}}}
analysis: {{interval: 10s, queryWindow: 30s, failureLimit: 2, prometheus: {{timeout: 4s}}}}
rollback: {{canary: scale-to-zero}}
"""
    return load_plan(text)


def test_it_names_the_owners_steps_and_every_gate_with_its_canary_query_and_limit():
    text = render_runbook(load_plan(CHECKOUT))

    assert "- Team: payments" in text
    assert "alice@example.com, bob@example.com" in text
    assert "#payments-releases" in text
    assert "| 2 | traffic | 25 % | analysed for 5m |" in text
    assert "Half the traffic looks good" in text and "rolls back after 1h" in text
    for gate in ("error-rate", "latency-p95", "latency-p99", "db-query-p99", "goroutines"):
        assert f"| {gate} |" in text
    assert "threshold: ≤ 0.01" in text
    assert "relative: ≤ max(stable x 1.2, 0.05)" in text
    assert 'destination_workload="checkout-canary"' in text
    assert "[60s]" in text and "{{" not in text
    assert "`context deadline exceeded`" in text


def test_the_detection_bound_follows_the_stated_formula():
    plan = plan_with("smi")
    bound = detection_bound(plan, scrape_interval_s=15, fail_safe_s=2)

    assert bound.total_s == 15 + 30 + 10 * (2 + 1) + 4 + 2
    text = render_runbook(plan, RunbookContext(scrape_interval_s=15, fail_safe_s=2))
    assert "**1m21s**" in text
    assert "15s + 30s + 10s * (2 + 1) + 4s + 2s = 1m21s" in text


@pytest.mark.parametrize(
    ("router", "expected"),
    [
        ("nginx-ingress", "kubectl -n shop delete ingress cart-canary --ignore-not-found"),
        ("istio", "kubectl -n shop get virtualservice cart -o json"),
        ("gateway-api", "kubectl -n shop get httproute cart -o json"),
        ("smi", "kubectl -n shop get trafficsplit cart -o json"),
    ],
)
def test_manual_rollback_commands_fit_the_router_and_the_names(router, expected):
    plan = plan_with(router)
    text = render_runbook(plan, RunbookContext(workflow_namespace="ci"))

    assert traffic_to_stable(plan)[0].startswith(expected)
    assert expected in text
    assert "kubectl -n shop scale deployment cart-canary --replicas=0" in text
    assert "argo -n ci stop WORKFLOW" in text and "argo -n ci resume WORKFLOW" in text
    assert "canaryflow.dev/phase" in text


def test_the_istio_rollback_really_moves_all_weight_to_stable():
    """Run the printed jq program on a VirtualService as the istio router leaves it."""
    jq = subprocess.run(["which", "jq"], capture_output=True, text=True).stdout.strip()
    if not jq:
        pytest.skip("jq is not installed")
    command = traffic_to_stable(plan_with("istio"))[0]
    program = command.split("jq ", 1)[1].split(" \\\n")[0].strip("'")
    vs = (
        '{"spec":{"http":[{"name":"canaryflow-header","route":[]},'
        '{"name":"canaryflow-primary","route":['
        '{"destination":{"host":"cart","subset":"stable"},"weight":60},'
        '{"destination":{"host":"cart","subset":"canary"},"weight":40}]}]}}'
    )
    out = subprocess.run([jq, "-c", program], input=vs, capture_output=True, text=True, timeout=10)

    assert out.returncode == 0, out.stderr
    assert '"subset":"stable"},"weight":100' in out.stdout
    assert '"subset":"canary"},"weight":0' in out.stdout
    assert "canaryflow-header" not in out.stdout


def test_the_cli_writes_the_runbook_and_rejects_a_bad_plan(tmp_path):
    out = tmp_path / "RUNBOOK.md"
    done = subprocess.run(
        [sys.executable, "-m", "canaryflow", "runbook", str(CHECKOUT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if "invalid choice: 'runbook'" in done.stderr:
        pytest.skip("verb runbook not registered in canaryflow.cli yet")
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("# Runbook: canary release of `checkout`")

    bad = tmp_path / "bad.yaml"
    bad.write_text("service: {name: Cart}\n")
    failed = subprocess.run(
        [sys.executable, "-m", "canaryflow", "runbook", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert failed.returncode == 2
    assert "service.name" in failed.stderr


def test_a_plan_with_a_flag_says_how_to_switch_it_off_by_hand():
    with_flag = render_runbook(ReleasePlan.model_validate(DEMO_PLAN))
    without = render_runbook(load_plan(CHECKOUT))

    assert "## Feature flag `new-checkout` by hand" in with_flag
    assert "canaryflow flag-off --plan canaryflow.yaml --platform kubernetes" in with_flag
    assert "Feature flag" not in without and "\n\n\n" not in without


def test_the_runbook_finds_the_services_workflows_by_the_label_every_release_carries():
    """Pushed releases carry no ``workflows.argoproj.io/workflow-template`` label (only
    ``argo submit --from`` adds it); ``canaryflow.dev/release=<service>`` is on every one."""
    from canaryflow_workflows import WorkflowSettings, compile_documents

    text = render_runbook(plan_with("istio"))
    release = compile_documents(WorkflowSettings())["go-canary-release.workflowtemplate.yaml"]
    labels_from = release["spec"]["workflowMetadata"]["labelsFrom"]

    assert "argo -n argo list -l canaryflow.dev/release=cart" in text
    assert labels_from == {"canaryflow.dev/release": {"expression": "workflow.parameters.service"}}
    assert "workflows.argoproj.io/workflow-template" not in text


def test_in_gitops_mode_the_runbook_promotes_through_git_not_kubectl_set_image():
    plain = plan_with("istio")
    gitops = ReleasePlan.model_validate(
        {
            **plain.model_dump(by_alias=True, exclude={"promotion"}),
            "promotion": {
                "gitops": {
                    "path": "apps/checkout/values.yaml",
                    "format": "helm-values",
                    "key": "image.digest",
                    "value": "digest",
                }
            },
        }
    )

    by_kubectl, by_git = render_runbook(plain), render_runbook(gitops)

    assert "kubectl -n shop set image" in by_kubectl
    assert "kubectl -n shop set image" not in by_git
    assert "commit the canary's image to `apps/checkout/values.yaml`" in by_git
    assert "the digest is committed to `apps/checkout/values.yaml`" in by_git
    assert "merge request" not in by_git


def test_a_merge_request_promotion_says_what_happens_to_an_unmerged_request():
    plain = plan_with("istio")
    gitops = {"path": "apps/checkout/deployment.yaml", "format": "manifest"}
    gitops |= {"mode": "merge-request", "provider": "gitlab", "timeout": "30m"}
    plan = ReleasePlan.model_validate(
        {**plain.model_dump(by_alias=True, exclude={"promotion"}), "promotion": {"gitops": gitops}}
    )

    text = render_runbook(plan)

    assert "waits up to 30m" in text
    assert "a gitlab merge request into `main` or the chart's `gitops.branch`; one not" in text
