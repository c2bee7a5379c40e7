"""The runbook as Markdown: read by a person at 3 a.m., so every command is ready to paste."""

from __future__ import annotations

import re
from dataclasses import dataclass

from canaryflow.analysis.query import render
from canaryflow.analysis.spec import GateSpec
from canaryflow.duration import format_duration
from canaryflow.plan.gitops import DEFAULT_BRANCH
from canaryflow.plan.model import ReleasePlan, StepSpec
from canaryflow.plan.promql import plan_subject
from canaryflow.plan.routers import HEADER_ROUTES, can
from canaryflow.platform.state import PHASE, WEIGHT, Phase
from canaryflow.runbook import manual
from canaryflow.runbook.bound import (
    ASSUMED_FAIL_SAFE_S,
    ASSUMED_SCRAPE_INTERVAL_S,
    detection_bound,
)
from canaryflow.runbook.manual import command


@dataclass(frozen=True)
class RunbookContext:
    """What the plan cannot know: where the workflows run and the cluster's own delays."""

    workflow_namespace: str = "argo"
    scrape_interval_s: float = ASSUMED_SCRAPE_INTERVAL_S
    fail_safe_s: float = ASSUMED_FAIL_SAFE_S


def render_runbook(plan: ReleasePlan, context: RunbookContext = RunbookContext()) -> str:
    sections = (
        _title(plan),
        _owners(plan),
        _steps(plan),
        _gates(plan),
        _limits(plan),
        _automatic(plan, context),
        _by_hand(plan, context),
        _flag_by_hand(plan),
        _is_it_over(plan, context),
    )
    return "\n\n".join(section.strip("\n") for section in sections if section) + "\n"


def _title(plan: ReleasePlan) -> str:
    service = plan.service
    return (
        f"# Runbook: canary release of `{service.name}`\n\n"
        f"Namespace `{service.namespace}`, router `{plan.router.kind}`, "
        f"workflow template `{manual.WORKFLOW_TEMPLATE}`. Generated from the release plan by "
        "`canaryflow runbook`: regenerate it when the plan changes."
    )


def _owners(plan: ReleasePlan) -> str:
    owners = plan.owners
    if owners is None:
        return "## Owners\n\nThe plan names no owners: add an `owners` section (team, contacts)."
    lines = ["## Owners", "", f"- Team: {_inline(owners.team)}"]
    if owners.contacts:
        lines.append("- Contacts: " + ", ".join(_inline(c) for c in owners.contacts))
    if owners.channel:
        lines.append(f"- Channel: {_inline(owners.channel)}")
    if owners.runbook_url:
        lines.append(f"- Team runbook: {_inline(owners.runbook_url)}")
    return "\n".join(lines)


def _step_row(number: int, step: StepSpec) -> str:
    if step.approve is not None:
        timeout = step.approve.timeout
        waits = (
            f"rolls back after {format_duration(timeout)} without approval"
            if timeout is not None
            else "waits until someone approves or aborts"
        )
        message = _inline(step.approve.message).replace("|", "\\|")
        return f"| {number} | approval | - | {message} ({waits}) |"
    return (
        f"| {number} | traffic | {step.weight} % | analysed for {format_duration(step.duration)} |"
    )


def _steps(plan: ReleasePlan) -> str:
    header = ["## Steps", "", "| # | kind | canary weight | window |", "| --- | --- | --- | --- |"]
    rows = [_step_row(n, step) for n, step in enumerate(plan.steps, start=1)]
    promotion = (
        "Then the stable Deployment gets the new image (automatic promotion)."
        if plan.promotion.auto
        else "Then a person approves the promotion (`promotion.auto: false`)."
    )
    if plan.promotion.gitops is not None:
        gitops = plan.promotion.gitops
        branch = gitops.branch or f"{DEFAULT_BRANCH}` or the chart's `gitops.branch"
        promotion += (
            f" GitOps mode: the digest is committed to `{gitops.path}` ({gitops.format}, "
            f"branch `{branch}`, {gitops.mode}) and {gitops.tool} rolls stable out; "
            f"promote waits up to {format_duration(gitops.timeout)} for it."
        )
        if gitops.provider is not None:
            promotion += (
                f" The change is a {gitops.provider} merge request into `{branch}`; one "
                "not merged in that time is closed, the canary removed and stable left as it is."
            )
    total = sum(step.duration or 0 for step in plan.traffic_steps)
    return "\n".join([*header, *rows, "", promotion, f"Analysis time: {format_duration(total)}."])


def _gate_query(plan: ReleasePlan, gate: GateSpec) -> str:
    if gate.logs is not None:
        patterns = ", ".join(_code(p) for p in gate.logs.patterns)
        return f"canary log lines matching {patterns}"
    analysis = plan.analysis
    template = gate.template(analysis.metrics) or ""
    return _code(render(template, plan_subject(plan), "canary", analysis.query_window))


def _inline(text: str) -> str:
    """Free text from the plan as one Markdown line: no line breaks, no code (``` fences)."""
    return " ".join(text.split()).replace("`", "'")


def _code(text: str) -> str:
    """A code span that holds ``text`` whole, on one line, whatever backticks it contains."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded}{fence}"


def _gates(plan: ReleasePlan) -> str:
    lines = [
        "## Gates",
        "",
        "Each query runs for both tracks; shown here for the canary "
        f'(stable: every other pod of the service, `{plan.analysis.track_label}!="canary"`).',
        "",
        "| gate | limit (canary) | decides | query |",
        "| --- | --- | --- | --- |",
    ]
    for gate in plan.analysis.gates:
        decides = "no (dryRun)" if gate.dry_run else "yes"
        query = _gate_query(plan, gate).replace("|", "\\|")
        lines.append(f"| {gate.name} | {gate.kind}: {gate.limit.text()} | {decides} | {query} |")
    return "\n".join(lines)


def _limits(plan: ReleasePlan) -> str:
    a = plan.analysis
    inconclusive = (
        "rolls back"
        if plan.rollback.on_inconclusive == "rollback"
        else "holds for a person to approve or abort"
    )
    return "\n".join(
        [
            "## Limits",
            "",
            f"- A measurement every {format_duration(a.interval)}, "
            f"rates over {format_duration(a.query_window)}.",
            f"- failureLimit {a.failure_limit}: failure number {a.failure_limit + 1} of a gate "
            "fails the step at once.",
            f"- consecutiveErrorLimit {a.consecutive_error_limit}: "
            f"{a.consecutive_error_limit + 1} measurements in a row without data end the step "
            "with an error (rolled back).",
            f"- inconclusiveLimit {a.inconclusive_limit}: more inconclusive measurements "
            f"per gate make the step inconclusive; the release then {inconclusive}.",
            f"- Fewer than {a.min_canary_requests} canary requests in the query window make "
            "every gate inconclusive.",
            f"- The canary must be healthy (`GET {plan.service.health_path}`) within "
            f"{format_duration(plan.service.health_timeout)} of deployment.",
        ]
    )


def _automatic(plan: ReleasePlan, context: RunbookContext) -> str:
    bound = detection_bound(plan, context.scrape_interval_s, context.fail_safe_s)
    canary_end = "scaled to zero" if plan.rollback.canary == "scale-to-zero" else "deleted"
    header = plan.router.header is not None and can(plan.router.kind, HEADER_ROUTES)
    header_removed = "removes the header route, " if header else "takes over: "
    return "\n".join(
        [
            "## What happens on failure (automatically)",
            "",
            "A failed gate or an analysis error ends the step, and the analyze task itself "
            "sets the canary weight to 0 and verifies it at the router before it exits (the "
            "report's `failSafe` says how long that took). The workflow's rollback branch then "
            f"{header_removed}the canary Deployment and Service are "
            f"{canary_end}, and the notification (`rolled-back`) is sent. A failed health "
            "check or deployment takes the same rollback branch.",
            "",
            f"Worst case from the canary turning bad to weight 0 at the router: "
            f"**{format_duration(bound.total_s)}**",
            "",
            f"    {bound.formula()}",
            f"    = {bound.arithmetic()}",
            "",
            f"The scrape interval ({format_duration(context.scrape_interval_s)}) and the "
            f"fail-safe ({format_duration(context.fail_safe_s)}: one router write and its "
            "read-back from the running analyze pod) are assumptions about the cluster, not "
            "part of the plan; replace them with your own figures. The mesh's or ingress "
            "controller's own propagation to its proxies comes on top.",
        ]
    )


def _fenced(commands: list[str]) -> str:
    return "```sh\n" + "\n".join(commands) + "\n```"


def _by_hand(plan: ReleasePlan, context: RunbookContext) -> str:
    wns = context.workflow_namespace
    ns, name = plan.service.namespace, plan.service.name
    selector = f"{manual.RELEASE_LABEL}={name}"
    approve_node = ("--node-field-selector", "displayName=approve")

    def argo(*words: str) -> str:
        return command("argo", "-n", wns, *words)

    def node_set(*change: str) -> str:
        return argo("node", "set", "WORKFLOW", *approve_node, *change)

    return "\n".join(
        [
            "## By hand",
            "",
            "Find the release's workflow (newest last):",
            "",
            _fenced([argo("list", "-l", selector)]),
            "",
            "Approve a waiting approval step (its node is `approve`, `hold` or "
            "`approve-promotion`): record who approves, then resume it:",
            "",
            _fenced(
                [
                    node_set("--output-parameter", "approver=YOUR-NAME"),
                    argo("resume", "WORKFLOW", *approve_node),
                ]
            ),
            "",
            "Refuse it (the release rolls back):",
            "",
            _fenced([node_set("--phase", "Failed", "--message", "why")]),
            "",
            "Abort and roll back: `argo stop` ends the running steps and runs the workflow's "
            "exit handler (rollback and notification). `argo terminate` skips the exit handler: "
            "use it only when the handler itself is stuck, then roll back by hand below.",
            "",
            _fenced(
                [
                    command("argo", "-n", wns, "stop", "WORKFLOW"),
                    command("argo", "-n", wns, "terminate", "WORKFLOW"),
                ]
            ),
            "",
            f"Roll back by hand ({plan.router.kind}): traffic to stable first, then the canary:",
            "",
            _fenced([*manual.traffic_to_stable(plan), *manual.remove_canary(plan)]),
            "",
            (
                "Promote by hand (only after every gate passed): give the stable Deployment the "
                "canary's image, wait for it, then roll the canary back as above:"
                if plan.promotion.gitops is None
                else "Promote by hand (only after every gate passed): commit the canary's image "
                f"to `{plan.promotion.gitops.path}` in the configuration repository (a `kubectl "
                f"set image` would be reverted by {plan.promotion.gitops.tool}), wait for the "
                "rollout, then roll the canary back as above. The canary's image and the "
                "rollout:"
            ),
            "",
            _fenced(
                [
                    command(
                        "kubectl",
                        "-n",
                        ns,
                        "get",
                        "deployment",
                        f"{name}-canary",
                        "-o",
                        "jsonpath={.spec.template.spec.containers[*].image}",
                    ),
                    *[
                        command(
                            "kubectl",
                            "-n",
                            ns,
                            "set",
                            "image",
                            f"deployment/{name}",
                            f"{name}=IMAGE@sha256:DIGEST",
                        )
                    ][: plan.promotion.gitops is None],
                    command(
                        "kubectl",
                        "-n",
                        ns,
                        "rollout",
                        "status",
                        f"deployment/{name}",
                        "--timeout=5m",
                    ),
                ]
            ),
        ]
    )


def _flag_by_hand(plan: ReleasePlan) -> str:
    """Only for plans with a flag: how to see and switch off the exposure without Argo."""
    if plan.flag is None:
        return ""
    ns, key = plan.service.namespace, plan.flag.key
    return "\n".join(
        [
            f"## Feature flag `{key}` by hand",
            "",
            "`feature-flag-rollout` switches the flag off itself at a failing gate, and its exit "
            "handler does again whenever the workflow did not succeed. To switch it off by hand "
            "(only this flag is edited; the exposure is kept under `flags.json.previous`):",
            "",
            _fenced(
                [
                    command(
                        "canaryflow",
                        "flag-off",
                        "--plan",
                        "canaryflow.yaml",
                        "--platform",
                        "kubernetes",
                        "--configmap",
                        "CONFIGMAP",
                        "--reason",
                        "by hand",
                    ),
                    command(
                        "kubectl",
                        "-n",
                        ns,
                        "get",
                        "configmap",
                        "CONFIGMAP",
                        "-o",
                        "jsonpath={.data.flags\\.json}",
                    ),
                ]
            ),
            "",
            "Pods see the change when kubelet refreshes the mounted ConfigMap (about a minute).",
        ]
    )


def _is_it_over(plan: ReleasePlan, context: RunbookContext) -> str:
    ns, canary = plan.service.namespace, f"{plan.service.name}-canary"
    escaped = PHASE.replace(".", "\\.")
    weight = WEIGHT.replace(".", "\\.")
    phases = ", ".join(f"`{p}`" for p in Phase)
    return "\n".join(
        [
            "## Is it over?",
            "",
            "The workflow's phase is `Succeeded` (promoted) or `Failed`/`Error` (rolled back); "
            "`Running` means it is not over:",
            "",
            _fenced(
                [
                    manual.pipeline(
                        command(
                            "argo",
                            "-n",
                            context.workflow_namespace,
                            "get",
                            "WORKFLOW",
                            "-o",
                            "json",
                        ),
                        command("jq", "-r", ".status.phase"),
                    )
                ]
            ),
            "",
            f"The canary Deployment records where the release stands in `{PHASE}` ({phases}) "
            f"and `{WEIGHT}`. Once it is gone (NotFound), or `{PHASE}` is not `Progressing` and "
            "the router shows weight 0, nothing reaches the canary any more:",
            "",
            _fenced(
                [
                    command(
                        "kubectl",
                        "-n",
                        ns,
                        "get",
                        "deployment",
                        canary,
                        "-o",
                        f"jsonpath={{.metadata.annotations.{escaped}}} "
                        f"{{.metadata.annotations.{weight}}}",
                    ),
                    manual.traffic_weight(plan),
                ]
            ),
        ]
    )
