"""The task library as Tekton ``Task``s, rendered from the Argo library's own templates.

One source of truth: every verb, its parameters, defaults, results, image, resources, security
context and volumes are defined once, in ``canaryflow_workflows.library``. This module walks
the compiled templates of that library and says, rule by rule, what each Argo construct is in
Tekton (``tekton.dev/v1``):

=====================================  =================================================
Argo (library template)                Tekton (Task)
=====================================  =================================================
``inputs.parameters``                  ``params`` (type string, same default/description)
``{{inputs.parameters.X}}`` in args    ``$(params.X)``
``outputs.parameters`` (valueFrom      ``results``; the file argument becomes
file under /tmp/outputs)               ``$(results.X.path)``
the ``workspace`` volume               the ``source`` workspace (mounted at the same path)
other non-emptyDir volumes (Go cache   workspaces of the same name; a Secret marked
PVC, registry Secret)                  optional becomes an optional, read-only workspace
emptyDir volumes (``/tmp``)            Task ``volumes``
container ``securityContext``          the step's ``securityContext``
pod ``securityContext``                the PipelineRun's pod template (see ``triggers``)
``retryStrategy.limit``                the Pipeline task's ``retries`` (``task_retries``)
the outputs directory as an argument   Tekton's results directory (each file a result)
a raw artifact the args name by path   an optional workspace at the file's directory
env ``valueFrom`` (Secret keys)        the same EnvVar
``suspend`` (approve)                  no Task: an ``ApprovalTask`` custom task instead
``serviceAccountName``,                the PipelineRun's ``taskRunSpecs`` for the pipeline
``automountServiceAccountToken:        tasks running the verb (``pods_template``): its own
false``, ``executor``                  account, no token; no executor (results need none)
``podSpecPatch``                       none: Tekton's ``PodTemplate`` (v1.15.0) has no
``terminationGracePeriodSeconds``      ``terminationGracePeriodSeconds``, so a TaskRun's pod
(the only key it may hold)             keeps Kubernetes' 30 s, and the step's
                                       ``CANARYFLOW_TERMINATION_GRACE_S`` says 30 whatever
                                       the library's pods get
=====================================  =================================================

A construct with no rule here (an Argo expression this module does not know, a new kind of
template) raises ``UntranslatableTemplate``: a verb changed on the Argo side either reaches
Tekton unchanged or stops the build, never silently half-translated.
"""

from __future__ import annotations

import json
import re
from typing import Any

from canaryflow.kubernetes.grace import TERMINATION_GRACE_ENV, TERMINATION_GRACE_S
from canaryflow_workflows import pods
from canaryflow_workflows.library import OUTPUTS, namespaced_task_library
from canaryflow_workflows.settings import WorkflowSettings
from canaryflow_workflows.tekton.meta import object_meta

Obj = dict[str, Any]

API_VERSION = "tekton.dev/v1"
TASK_PREFIX = "canaryflow-"
SOURCE_WORKSPACE = "source"
DESCRIPTION = "workflows.argoproj.io/description"
# Oldest Tekton Pipelines release whose v1 API carries every field used here.
MIN_PIPELINES_VERSION = "0.50.0"

_INPUT = re.compile(r"\{\{inputs\.parameters\.([A-Za-z0-9_-]+)\}\}")
_ANY_ARGO = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# Where Tekton collects results: $(results.<name>.path) is RESULTS_DIR/<name> (docs/tasks.md,
# "Emitting results"). A verb given the outputs directory writes its results there.
RESULTS_DIR = "/tekton/results"
# Outputs kept as files, not results: all results of a TaskRun share one 4 KiB termination
# message (Tekton's default results-from), and an analysis report can be larger. The file
# goes to the source workspace, named after the TaskRun so that every window keeps its own.
FILE_ONLY_OUTPUTS = frozenset({"report"})
# Outputs the verb writes into the results directory but the Task does not declare: their size
# is the plan's (validate-plan's steps JSON grows with every step and approval message), and
# every declared result of a step shares one termination message of 4,096 bytes
# (pkg/termination/write.go, v0.50.0 to v1.15.0; ``results-from: sidecar-logs`` raises that
# only where an operator turned it on). The entrypoint reads only declared results' files
# (pkg/entrypoint/entrypointer.go ``readResultsFromDisk``), and the unrolled Pipeline needs
# none of these: it was compiled from the steps.
UNDECLARED_OUTPUTS = frozenset({"steps"})
# Inputs only the Tekton Task has, appended before the verb's ``--``: (param, option).
# validate-plan is told the plan shape the Pipeline was unrolled from (canaryflow.plan.shape)
# and refuses a repository plan whose steps differ, before anything is deployed.
TEKTON_INPUTS: dict[str, list[tuple[Obj, str]]] = {
    "validate-plan": [
        (
            {
                "name": "compiled-steps",
                "type": "string",
                "description": "The plan shape the Pipeline was compiled from; empty: no check.",
                "default": "",
            },
            "--compiled-steps",
        )
    ]
}
REPORTS_DIR = f"{pods.WORKSPACE}/reports"


class UntranslatableTemplate(ValueError):
    """A library template uses an Argo construct with no Tekton rule in this module."""


def task_name(verb: str) -> str:
    """Tasks live beside other teams' Tasks in a namespace: the prefix keeps them apart."""
    return TASK_PREFIX + verb


def library_templates(settings: WorkflowSettings) -> list[Obj]:
    """The Argo library's templates as compiled data: the definitions this module renders."""
    return namespaced_task_library(settings).to_dict()["spec"]["templates"]


def container_templates(settings: WorkflowSettings) -> dict[str, Obj]:
    """Every verb that runs a container, by its library name (approvals are not Tasks)."""
    templates = {}
    for template in library_templates(settings):
        if "suspend" in template:
            continue
        if "container" not in template:
            raise UntranslatableTemplate(f"{template['name']}: only containers become Tasks")
        templates[template["name"]] = template
    return templates


def tekton_tasks(settings: WorkflowSettings) -> list[Obj]:
    """One Tekton Task per container verb of the library, in the library's order."""
    return [render_task(t, settings) for t in container_templates(settings).values()]


def task_retries(template: Obj) -> int:
    """How often Tekton retries the verb: the library's retry limit (Tekton retries on any
    failure; it cannot skip exit code 2 as Argo's retry expression does)."""
    strategy = template.get("retryStrategy")
    return int(strategy["limit"]) if strategy else 0


def render_task(template: Obj, settings: WorkflowSettings) -> Obj:
    container = template["container"]
    outputs = _outputs(template)
    workspaces = _workspaces(template) + _artifact_workspaces(template)
    args = _with_tekton_inputs(
        template["name"], [_arg(arg, template["name"], outputs) for arg in container["args"]]
    )
    step: Obj = {
        "name": template["name"],
        "image": container["image"],
        "imagePullPolicy": container.get("imagePullPolicy"),
        "command": container["command"],
        "args": args,
        "env": [_env(env, template["name"]) for env in _grace_env(template)] or None,
        "workingDir": _text(container.get("workingDir"), template["name"]),
        "computeResources": container.get("resources"),
        "securityContext": container["securityContext"],
        "volumeMounts": [
            mount
            for mount in container.get("volumeMounts", [])
            if mount["name"] in _volumes(template)
        ],
    }
    used = " ".join(str(value) for value in (args, step["env"], step["workingDir"]))
    params = [
        _param(parameter)
        for parameter in template.get("inputs", {}).get("parameters", [])
        # An input only an Argo construct read (the inline plan's raw artifact) has no use here.
        if f"$(params.{parameter['name']})" in used
    ] + [param for param, _ in TEKTON_INPUTS.get(template["name"], [])]
    spec: Obj = {
        "description": template.get("metadata", {}).get("annotations", {}).get(DESCRIPTION),
        "params": params or None,
        "results": [
            {"name": name, "type": "string", "description": description}
            for name, (_, description) in outputs.items()
            if name not in FILE_ONLY_OUTPUTS | UNDECLARED_OUTPUTS
        ]
        or None,
        "workspaces": workspaces or None,
        "volumes": list(_volumes(template).values()) or None,
        "steps": [_compact(step)],
    }
    metadata = object_meta(task_name(template["name"]), "tasks", settings)
    metadata["annotations"] = {
        "tekton.dev/pipelines.minVersion": MIN_PIPELINES_VERSION,
        "tekton.dev/categories": "Deployment",
        "tekton.dev/tags": "canary, go",
        "tekton.dev/displayName": f"canaryflow {template['name']}",
    }
    return {"apiVersion": API_VERSION, "kind": "Task", "metadata": metadata, "spec": _compact(spec)}


def _with_tekton_inputs(verb: str, args: list[str]) -> list[str]:
    """``args`` with the Tekton-only options, before ``--`` (after it all is operands)."""
    extra = [
        a
        for param, option in TEKTON_INPUTS.get(verb, [])
        for a in (option, f"$(params.{param['name']})")
    ]
    if not extra:
        return args
    end = args.index("--") if "--" in args else len(args)
    return [*args[:end], *extra, *args[end:]]


def _compact(node: Obj) -> Obj:
    """``node`` without the keys whose value is None (left out, as Hera leaves them out)."""
    return {key: value for key, value in node.items() if value is not None}


def _param(parameter: Obj) -> Obj:
    # Argo's enum is not carried over: Tekton's param enum is an alpha feature (off by default,
    # and a Task using it is rejected then); the verbs check their values themselves (exit 2).
    rendered = {"name": parameter["name"], "type": "string"}
    if parameter.get("description"):
        rendered["description"] = parameter["description"]
    if "default" in parameter:
        rendered["default"] = parameter["default"]
    return rendered


def _outputs(template: Obj) -> dict[str, tuple[str, str]]:
    """``{result name: (file the verb writes, description)}``."""
    found = {}
    for output in template.get("outputs", {}).get("parameters", []):
        path = output.get("valueFrom", {}).get("path", "")
        if not path.startswith(OUTPUTS + "/"):
            raise UntranslatableTemplate(
                f"{template['name']}.outputs.{output['name']}: only files under {OUTPUTS} "
                "become Tekton results"
            )
        found[output["name"]] = (path, output.get("description", ""))
    return found


def _arg(arg: str, verb: str, outputs: dict[str, tuple[str, str]]) -> str:
    if arg == OUTPUTS:
        misnamed = [n for n, (path, _) in outputs.items() if path != f"{OUTPUTS}/{n}"]
        if misnamed or FILE_ONLY_OUTPUTS & set(outputs):
            raise UntranslatableTemplate(f"{verb}: {OUTPUTS} holds files that are not results")
        return RESULTS_DIR
    for name, (path, _) in outputs.items():
        if arg == path:
            if name in FILE_ONLY_OUTPUTS:
                return f"{REPORTS_DIR}/$(context.taskRun.name)-{path.rsplit('/', 1)[1]}"
            return f"$(results.{name}.path)"
    return _text(arg, verb)


def _text(value: str | None, verb: str) -> str | None:
    """Argo's input references as Tekton's; any other Argo expression is an error."""
    if value is None:
        return None
    # A literal "$(" would be read by Tekton as a variable: "$$(" is its escape.
    translated = _INPUT.sub(lambda m: f"$(params.{m[1]})", value.replace("$(", "$$("))
    leftover = _ANY_ARGO.search(translated)
    if leftover:
        raise UntranslatableTemplate(f"{verb}: no Tekton rule for {leftover[0]!r}")
    return translated


def _env(env: Obj, verb: str) -> Obj:
    """A plain value is translated; ``valueFrom`` (a Secret or ConfigMap key, a pod field) is
    a Kubernetes EnvVar in both engines and passes as it is."""
    if "value" in env:
        return {**env, "value": _text(env["value"], verb)}
    if set(env) - {"name", "valueFrom"}:
        raise UntranslatableTemplate(f"{verb}.env.{env['name']}: no Tekton rule")
    return env


def _grace_env(template: Obj) -> list[Obj]:
    """The container's env, with the termination grace the Task's pod really gets: the pod
    spec's default (Kubernetes' 30 s). A TaskRun's pod template cannot set another (Tekton
    v1.15.0 ``PodTemplate``), and a cancelled or timed-out TaskRun's pod is deleted with its
    own grace. The library's ``podSpecPatch`` may hold nothing else (no rule for it here)."""
    patch = template.get("podSpecPatch")
    if patch is not None and set(json.loads(patch)) != {"terminationGracePeriodSeconds"}:
        raise UntranslatableTemplate(f"{template['name']}.podSpecPatch: no Tekton rule")
    return [
        {**env, "value": str(int(TERMINATION_GRACE_S))}
        if env.get("name") == TERMINATION_GRACE_ENV
        else env
        for env in template["container"].get("env", [])
    ]


def _artifact_workspaces(template: Obj) -> list[Obj]:
    """An Argo raw artifact the verb reads by its path (``--default-plan /inputs/x.yaml``) is
    an optional workspace mounted at the file's directory: a run binds a ConfigMap or Secret
    holding the file, or nothing (the verb then finds no file). One only a parameter fills
    and no argument names is Argo's business and left out."""
    args = template["container"]["args"]
    found = []
    for artifact in template.get("inputs", {}).get("artifacts", []):
        if "raw" not in artifact:
            raise UntranslatableTemplate(f"{template['name']}: only raw artifacts are rendered")
        if artifact["path"] not in args:
            continue
        directory, file = artifact["path"].rsplit("/", 1)
        found.append(
            {
                "name": artifact["name"],
                "description": f"Optional: a ConfigMap or Secret whose key {file} is the "
                f"{artifact['name']} file (an Argo raw artifact there).",
                "mountPath": directory,
                "optional": True,
                "readOnly": True,
            }
        )
    return found


def _volumes(template: Obj) -> dict[str, Obj]:
    """The scratch volumes a Task brings itself (emptyDir); everything else is a workspace."""
    return {v["name"]: v for v in template.get("volumes", []) if "emptyDir" in v}


def _workspaces(template: Obj) -> list[Obj]:
    volumes = {v["name"]: v for v in template.get("volumes", [])}
    declared = []
    for mount in template["container"].get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "emptyDir" in volume:
            continue
        if mount["name"] == pods.WORKSPACE_VOLUME:
            declared.append(
                {
                    "name": SOURCE_WORKSPACE,
                    "description": "The release's workspace: checkout, resolved plan, binary.",
                    "mountPath": mount["mountPath"],
                }
            )
            continue
        if not volume:
            raise UntranslatableTemplate(f"{template['name']}: volume {mount['name']} undeclared")
        declared.append(_workspace_for(volume, mount))
    return declared


def _workspace_for(volume: Obj, mount: Obj) -> Obj:
    workspace: Obj = {"name": volume["name"], "mountPath": mount["mountPath"]}
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"]["claimName"]
        workspace["description"] = f"Kept between runs (the library's PVC {claim})."
    elif "secret" in volume or "configMap" in volume:
        source = volume.get("secret") or volume["configMap"]
        name = source.get("secretName") or source.get("name")
        kind = "Secret" if "secret" in volume else "ConfigMap"
        workspace["description"] = f"The {kind} {name} (as the library mounts it)."
        if source.get("optional"):
            workspace["optional"] = True
    else:
        raise UntranslatableTemplate(f"volume {volume['name']}: no workspace rule for its kind")
    if mount.get("readOnly"):
        workspace["readOnly"] = True
    return workspace


def workspace_volumes(settings: WorkflowSettings) -> dict[str, Obj]:
    """Every workspace but ``source``, with the library volume a PipelineRun binds to it."""
    found: dict[str, Obj] = {}
    for template in container_templates(settings).values():
        for volume in template.get("volumes", []):
            if "emptyDir" not in volume:
                found.setdefault(volume["name"], volume)
    return found
