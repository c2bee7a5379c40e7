"""The layers of canaryflow, read from every module's imports: arrows only point down.

From the bottom: the foundation (errors, durations); the *specs* a plan is made of, which are
leaves; the protocols and data types the platforms share; pure *decisions* (gates, verdicts,
what a release does next); the progression *engine*, which talks only to protocols; the views
that render plans and records (report, runbook); the *platforms* that implement the protocols
(local processes, Kubernetes, builds, images, notifications); and on top the tools and
commands a person runs. ARCHITECTURE.md draws the same picture.

A module may import from its own layer or any layer below. Every import counts, also one
inside a function: a function-local import hides an arrow from a reader, so it is allowed only
in the command layer (where it keeps ``canaryflow --help`` light) and where ``LAZY`` names it,
with the reason.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import source_trees

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "canaryflow": ROOT / "tasks" / "canaryflow",
    "canaryflow_workflows": ROOT / "workflows" / "canaryflow_workflows",
}

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "canaryflow",
            "canaryflow.errors",
            "canaryflow.duration",
            "canaryflow.input_file",
            "canaryflow.spec_model",
        ),
    ),
    (
        "specs",
        (
            "canaryflow.plan",
            "canaryflow.analysis.catalogue",
            "canaryflow.analysis.log_pattern",
            "canaryflow.analysis.query",
            "canaryflow.analysis.spec",
            "canaryflow.flags.bucketing",
            "canaryflow.flags.document",
            "canaryflow.flags.spec",
            "canaryflow.build.settings",
            # What Kubernetes objects canaryflow touches and the rights a release needs: data,
            # read by the platform code, the chart and doctor alike.
            "canaryflow.kubernetes.resources",
            "canaryflow.kubernetes.rights",
        ),
    ),
    (
        "protocols",
        (
            "canaryflow.platform",
            "canaryflow.transport",
            "canaryflow.gitclient",  # the one git client policy (dulwich), beside transport
            # The metric and flag-store protocols, each with its stdlib implementation beside it.
            "canaryflow.analysis.source",
            "canaryflow.analysis.prometheus_auth",
            "canaryflow.analysis.logfile",
            "canaryflow.flags.store",
        ),
    ),
    (
        "decisions",
        (
            "canaryflow.analysis.measurement",
            "canaryflow.analysis.statistics",
            "canaryflow.analysis.sequential",
            "canaryflow.analysis.gates",
            "canaryflow.analysis.alignment",
            "canaryflow.analysis.evidence",
            "canaryflow.analysis.fleet_sample",
            "canaryflow.analysis.log_counts",
            "canaryflow.analysis.flavour",
            "canaryflow.analysis.verdict",
            "canaryflow.analysis.carried",
            "canaryflow.flags.variant_analysis",
            "canaryflow.release.decision",
            "canaryflow.release.walk",
            "canaryflow.doctor.checks",
            "canaryflow.doctor.rights",
        ),
    ),
    (
        "engine",
        (
            "canaryflow.analysis.run",
            "canaryflow.flags.applied",
            "canaryflow.release",
        ),
    ),
    ("views", ("canaryflow.report", "canaryflow.runbook", "canaryflow.notify.message")),
    (
        "platforms",
        (
            "canaryflow.local",
            "canaryflow.kubernetes",
            "canaryflow.build",
            "canaryflow.image",
            "canaryflow.notify",
            "canaryflow.doctor",
            "canaryflow.telemetry",
        ),
    ),
    ("tools", ("canaryflow_workflows", "canaryflow.chart", "canaryflow.bench")),
    ("commands", ("canaryflow.commands", "canaryflow.cli", "canaryflow.__main__")),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}

LAZY: dict[str, str] = {
    "canaryflow.report.release": "the PNG (report.chart) needs matplotlib, an optional extra",
}
"""Modules below the command layer allowed function-local canaryflow imports, and why."""


@dataclass(frozen=True)
class Import:
    module: str
    target: str
    line: int
    local: bool


def module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(package: str, root: Path, path: Path) -> list[Import]:
    module = module_name(package, root, path)
    tree = source_trees.parse(path)
    # Module level, also under a top-level ``if`` (``if TYPE_CHECKING:``): run at import.
    top = {id(node) for node in tree.body}
    top |= {id(n) for node in tree.body if isinstance(node, ast.If) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            targets = [resolve(module, path.name == "__init__.py", node)]
            # ``from canaryflow.x import y`` may import the submodule canaryflow.x.y
            targets = [
                f"{targets[0]}.{alias.name}"
                if _is_module(f"{targets[0]}.{alias.name}")
                else targets[0]
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                found.append(Import(module, target, node.lineno, id(node) not in top))
    return found


def _is_module(name: str) -> bool:
    package, *rest = name.split(".")
    if package not in PACKAGES or not rest:
        return False
    base = PACKAGES[package].joinpath(*rest)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def all_imports() -> list[Import]:
    found = []
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            found.extend(imports_of(package, root, path))
    return found


def layer_of(module: str) -> str:
    """The layer of the longest prefix of ``module`` that LAYERS names."""
    best, length = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = name, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best


IMPORTS = all_imports()


def test_every_module_has_a_layer():
    unplaced = []
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            try:
                layer_of(module_name(package, root, path))
            except AssertionError as error:
                unplaced.append(str(error))
    assert unplaced == []


def test_arrows_point_down():
    upward = [
        f"{i.module} ({layer_of(i.module)}) imports {i.target} ({layer_of(i.target)}) "
        f"at line {i.line}"
        for i in IMPORTS
        if RANK[layer_of(i.target)] > RANK[layer_of(i.module)]
    ]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_function_local_imports_only_where_declared():
    hidden = [
        f"{i.module}: line {i.line} imports {i.target} inside a function"
        for i in IMPORTS
        if i.local
        and layer_of(i.module) != "commands"
        and i.module not in LAZY
        and i.target.split(".")[0] == "canaryflow"
    ]
    assert not hidden, "\n".join(hidden)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycles(level):
    """Also within a layer, and between packages (``canaryflow.plan`` -> ``canaryflow.flags``)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for i in IMPORTS:
        if level == "package":
            graph[_package(i.module)].add(_package(i.target))
        elif i.target != i.module.rsplit(".", 1)[0]:  # a package's own __init__ is not a cycle
            graph[i.module].add(i.target)
    for source in graph:
        graph[source].discard(source)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_checker_sees_a_wrong_way_arrow(tmp_path):
    """The rules above can fail: a spec importing the engine is caught."""
    root = tmp_path / "canaryflow"
    (root / "plan").mkdir(parents=True)
    (root / "plan" / "model.py").write_text(
        "from canaryflow.release.engine import ReleaseEngine\n"
        "def f():\n    from canaryflow.local import stack\n"
    )
    found = imports_of("canaryflow", root, root / "plan" / "model.py")
    assert [(i.target, i.local) for i in found] == [
        ("canaryflow.release.engine", False),
        ("canaryflow.local.stack", True),
    ]
    assert [RANK[layer_of(i.target)] > RANK[layer_of(i.module)] for i in found] == [True, True]


def test_architecture_md_draws_these_layers_and_names_real_modules():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    diagram = text.split("```")[1]
    drawn = re.findall(r"^ ([a-z]+) ", diagram, re.MULTILINE)
    assert drawn == [name for name, _ in reversed(LAYERS)]
    named = set(re.findall(r"`((?:[a-z_]+/)+[a-z_]+\.py|[a-z_]+/[a-z_]+\.py)", text))
    missing = [
        path
        for path in named
        if not (PACKAGES["canaryflow"] / path).is_file() and not (ROOT / path).is_file()
    ]
    assert named and not missing, f"ARCHITECTURE.md names modules that do not exist: {missing}"
