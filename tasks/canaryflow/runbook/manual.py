"""The shell commands a person runs to end a release by hand, for the plan's router and names.

They mirror what the tasks do (``canaryflow.kubernetes.routers``): canaryflow's own objects are
``<service>-canary`` (Deployment, Service, nginx canary Ingress), ``<service>-canaryflow``
(Istio DestinationRule) and the TrafficSplit named after the service; in the user's
VirtualService or HTTPRoute it owns only the header route ``canaryflow-header`` and the weights
of the route or rule it split (the one whose destinations are the canary's subset or Service).
"""

from __future__ import annotations

import json
import shlex

from canaryflow.plan.model import ReleasePlan
from canaryflow.platform.routes import HEADER_ROUTE_NAME

WORKFLOW_TEMPLATE = "go-canary-release"
# The label every release Workflow carries, valued with its service, whether a push (the Sensor)
# or ``argo submit`` started it: the WorkflowTemplate's ``workflowMetadata.labelsFrom`` sets it.
# (``workflows.argoproj.io/workflow-template`` is only on Workflows submitted from the template.)
RELEASE_LABEL = "canaryflow.dev/release"


def command(*argv: str) -> str:
    """One command line, every word quoted for a POSIX shell: pasting it runs only it."""
    return shlex.join(argv)


def pipeline(*commands: str) -> str:
    return " \\\n  | ".join(commands)


_ISTIO_SPLIT = 'select(any(.route[]?; .destination.subset == "canary"))'


def _gateway_split(canary: str) -> str:
    return f"select(any(.backendRefs[]?; .name == {json.dumps(canary)}))"


def _names(plan: ReleasePlan) -> tuple[str, str, str, str]:
    service = plan.service.name
    return service, f"{service}-canary", plan.service.namespace, plan.router.route or service


def traffic_to_stable(plan: ReleasePlan) -> list[str]:
    """Commands that put 100 % of the traffic back on stable and drop the header route."""
    _service, canary, ns, route = _names(plan)
    kind = plan.router.kind
    if kind == "nginx-ingress":
        return [command("kubectl", "-n", ns, "delete", "ingress", canary, "--ignore-not-found")]
    if kind == "istio":
        program = (
            f".spec.http |= map(select(.name != {json.dumps(HEADER_ROUTE_NAME)})) "
            f"| (.spec.http[] | {_ISTIO_SPLIT} | .route[]) "
            '|= (.weight = (if .destination.subset == "canary" then 0 else 100 end))'
        )
        return [_replace_through_jq(ns, "virtualservice", route, program)]
    if kind == "gateway-api":
        program = (
            f".spec.rules |= map(select(.name != {json.dumps(HEADER_ROUTE_NAME)})) "
            f"| (.spec.rules[] | {_gateway_split(canary)} "
            f"| .backendRefs[]) |= (.weight = (if .name == {json.dumps(canary)} then 0 "
            "else 100 end))"
        )
        return [_replace_through_jq(ns, "httproute", route, program)]
    program = (
        f".spec.backends |= map(.weight = (if .service == {json.dumps(canary)} then 0 "
        "else 100 end))"
    )
    return [_replace_through_jq(ns, "trafficsplit", route, program)]


def _replace_through_jq(ns: str, kind: str, name: str, program: str) -> str:
    return pipeline(
        command("kubectl", "-n", ns, "get", kind, name, "-o", "json"),
        command("jq", program),
        command("kubectl", "-n", ns, "replace", "-f", "-"),
    )


def remove_canary(plan: ReleasePlan) -> list[str]:
    """Commands that remove (or idle) the canary once no traffic reaches it."""
    _, canary, ns, _ = _names(plan)
    if plan.rollback.canary == "scale-to-zero":
        commands = [command("kubectl", "-n", ns, "scale", "deployment", canary, "--replicas=0")]
    else:
        commands = [
            command(
                "kubectl", "-n", ns, "delete", "deployment,service", canary, "--ignore-not-found"
            )
        ]
    if plan.router.kind == "istio":
        commands.append(
            command(
                "kubectl",
                "-n",
                ns,
                "delete",
                "destinationrule",
                f"{plan.service.name}-canaryflow",
                "--ignore-not-found",
            )
        )
    return commands


def traffic_weight(plan: ReleasePlan) -> str:
    """A command that prints the canary's current weight as the router sees it."""
    _service, canary, ns, route = _names(plan)
    kind = plan.router.kind
    if kind == "nginx-ingress":
        path = "{.metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/canary-weight}"
        return command("kubectl", "-n", ns, "get", "ingress", canary, "-o", f"jsonpath={path}")
    if kind == "istio":
        return pipeline(
            command("kubectl", "-n", ns, "get", "virtualservice", route, "-o", "json"),
            command(
                "jq",
                f".spec.http[] | {_ISTIO_SPLIT} "
                "| .route[] | {subset: .destination.subset, weight}",
            ),
        )
    if kind == "gateway-api":
        return pipeline(
            command("kubectl", "-n", ns, "get", "httproute", route, "-o", "json"),
            command(
                "jq",
                f".spec.rules[] | {_gateway_split(canary)} | .backendRefs[] | {{name, weight}}",
            ),
        )
    return command(
        "kubectl", "-n", ns, "get", "trafficsplit", route, "-o", "jsonpath={.spec.backends}"
    )
