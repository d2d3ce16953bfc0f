"""The layering rules of docs/architecture.md, checked against the package's imports.

docs/architecture.md has two tables: which layers each layer may import (the folders are
the layers) and which package modules each module may import. Every import counts, those
under ``TYPE_CHECKING`` and inside functions included: the check fails on a module in the
wrong folder for its layer, on an import that breaks a layer rule, on an import the
module table does not list, on a module the table does not name, and on any import
cycle. The checker itself is tested by injecting violations.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ccr_metrics"
TABLE = ROOT / "docs" / "architecture.md"
NAME = re.compile(r"`([\w.]+)`")
LAYER_ROW = re.compile(r"^\| (\w+) \| (.*?) \| (.*) \|$")
SUBPACKAGE_LAYERS = ("core", "training", "analysis", "harness", "datasets")

# In the quick tier (python -m pytest -m quick): a first signal in seconds.
pytestmark = pytest.mark.quick


def core_modules() -> list[str]:
    return sorted(m for m, layer in read_table()[0].items() if layer == "core")


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name relative to it (``harness.local``)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]  # a subpackage's __init__ is the subpackage
        modules[".".join(parts)] = path
    return modules


def read_table() -> tuple[dict[str, str], dict[str, set[str]]]:
    """``(layer of each module, modules each may import)`` from docs/architecture.md."""
    layers, allowed = {}, {}
    rows = [line for line in TABLE.read_text().splitlines() if line.startswith("| `")]
    names = [NAME.findall(row.split("|")[1])[0] for row in rows]
    for row, name in zip(rows, names, strict=True):
        _, _, layer, imports, _ = row.split("|")
        layers[name] = layer.strip()
        if "every module above except" in imports:
            excluded = set(NAME.findall(imports))
            allowed[name] = {n for n in names if n not in excluded and n != name}
        else:
            allowed[name] = set(NAME.findall(imports))
    return layers, allowed


# Cached: the injection tests check the same sources, one module changed, many times.
@cache
def imports_of(source: str, module: str, known: frozenset[str]) -> frozenset[str]:
    """Package modules ``source`` (the code of ``module``) imports, wherever it does."""
    is_package = module == "__init__" or any(k.startswith(module + ".") for k in known)
    here = [] if module == "__init__" else module.split(".")
    package = here if is_package else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ccr_metrics."):
                    found.add(alias.name.removeprefix("ccr_metrics."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
            elif node.module and node.module.split(".")[0] == "ccr_metrics":
                base = []
            else:
                continue
            target = (node.module or "").removeprefix("ccr_metrics").lstrip(".")
            prefix = [*base, *target.split(".")] if target else base
            dotted = ".".join(prefix) or "__init__"
            for alias in node.names:
                sub = ".".join([*prefix, alias.name])
                found.add(sub if sub in known else dotted)
    return frozenset(found - {module})


def read_layer_rules() -> dict[str, set[str]]:
    """``{layer: layers it may import}`` from the first table of docs/architecture.md."""
    rules = {}
    for line in TABLE.read_text().splitlines():
        match = LAYER_ROW.match(line)
        if match and match[1] not in ("layer", "module"):
            may = match[3].strip()
            rules[match[1]] = {"*"} if may == "any" else {w.strip() for w in may.split(",")}
    return rules


def folder_layer(module: str) -> str | None:
    """The layer a module's folder puts it in (``None`` for the top-level modules)."""
    top = module.split(".")[0]
    if top in SUBPACKAGE_LAYERS:
        return top
    return "outer" if top == "_checks" else None


def import_graph(sources: dict[str, str]) -> dict[str, frozenset[str]]:
    known = frozenset(sources)
    return {module: imports_of(source, module, known) for module, source in sources.items()}


def violations(
    graph: dict[str, frozenset[str]], layers: dict[str, str], allowed: dict[str, set[str]]
):
    """Every breach of the rules, as readable lines (empty when the package keeps them)."""
    found = []
    rules = read_layer_rules()
    for module, layer in sorted(layers.items()):
        folder = folder_layer(module)
        if layer not in rules:
            found.append(f"{module} is in layer {layer}, which the layer table does not name")
        elif folder is not None and folder != layer:
            found.append(f"{module} is in the {folder} folder but listed in layer {layer}")
        elif folder is None and layer in SUBPACKAGE_LAYERS:
            found.append(f"{module} is listed in layer {layer} but lives outside {layer}/")
    for module, targets in sorted(graph.items()):
        may = rules.get(layers.get(module, ""), set())
        for target in sorted(targets):
            if "*" not in may and layers.get(target) not in {*may, layers.get(module)}:
                found.append(
                    f"{module} ({layers.get(module)}) imports {target} ({layers.get(target)}),"
                    " which its layer may not"
                )
    for module in sorted(set(graph) - set(allowed)):
        found.append(f"{module} is not in docs/architecture.md")
    for module in sorted(set(allowed) - set(graph)):
        found.append(f"docs/architecture.md names {module}, which does not exist")
    for module, targets in sorted(graph.items()):
        for target in sorted(targets - allowed.get(module, set())):
            found.append(f"{module} imports {target}, which the table does not allow")
        if layers.get(module) == "core":
            for target in sorted(targets):
                if layers.get(target, "core") != "core":
                    found.append(f"core module {module} imports {target} ({layers[target]})")
    for cycle in cycles(graph):
        found.append("import cycle: " + " -> ".join(cycle))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected set of modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append([*sorted(component), sorted(component)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def sources() -> dict[str, str]:
    return {module: path.read_text() for module, path in package_modules().items()}


def test_the_package_keeps_the_table():
    layers, allowed = read_table()
    assert violations(import_graph(sources()), layers, allowed) == []


def test_the_check_sees_relative_and_nested_imports():
    graph = import_graph(sources())
    assert {"harness.inputs", "harness.stream", "analysis.report"} <= graph["harness.local"]
    assert "distributed" in graph["harness.sharded"]
    assert "core._counting" in graph["core.ranking"]
    assert "core._validation" in graph["_checks.runner"]


@pytest.mark.parametrize("module", core_modules())
def test_an_outer_import_injected_into_a_core_module_is_caught(module):
    layers, allowed = read_table()
    original = sources()
    is_package = any(other.startswith(module + ".") for other in original)
    dots = "." * (module.count(".") + 1 + is_package)
    for injected in (
        "from .cli import main\n",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .analysis.report import Report\n",
        "def f():\n    from .analysis import plots\n",
    ):
        line = injected.replace("from .", "from " + dots)
        code = {**original, module: original[module] + "\n" + line}
        found = violations(import_graph(code), layers, allowed)
        assert any(line.startswith(f"{module} imports") for line in found), injected
        assert any(line.startswith(f"core module {module}") for line in found), injected


def test_an_injected_cycle_is_caught():
    layers, allowed = read_table()
    code = sources()
    code["core._backend"] += "\nfrom .ranking import rank_counts\n"
    found = violations(import_graph(code), layers, allowed)
    assert any(line.startswith("import cycle:") and "core._backend" in line for line in found)
    # A cycle among modules allowed to import each other is still caught.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_an_unlisted_module_is_caught():
    layers, allowed = read_table()
    code = {**sources(), "newthing": "import numpy\n"}
    assert "newthing is not in docs/architecture.md" in violations(
        import_graph(code), layers, allowed
    )


@pytest.mark.parametrize("module", core_modules())
def test_core_reads_no_file_and_prints_nothing(module):
    tree = ast.parse(package_modules()[module].read_text())
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert not calls & {"print", "open", "input"}


def test_only_distributed_imports_torch_distributed():
    users = set()
    for module, source in sources().items():
        for node in ast.walk(ast.parse(source)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n.startswith("torch.distributed") for n in names):
                users.add(module)
    assert users == {"distributed"}


def test_a_training_module_importing_analysis_breaks_its_layer():
    layers, allowed = read_table()
    code = sources()
    code["training.losses"] += "\nfrom ..analysis.report import Report\n"
    found = violations(import_graph(code), layers, allowed)
    assert any("training.losses (training) imports analysis.report" in line for line in found)


def test_a_module_listed_in_another_folders_layer_is_caught():
    layers, allowed = read_table()
    found = violations(import_graph(sources()), {**layers, "core.mrv": "analysis"}, allowed)
    assert "core.mrv is in the core folder but listed in layer analysis" in found
    found = violations(import_graph(sources()), {**layers, "io": "core"}, allowed)
    assert "io is listed in layer core but lives outside core/" in found


def test_the_layer_table_is_read():
    rules = read_layer_rules()
    assert rules["core"] == {"core"}
    assert rules["harness"] == {"core", "infrastructure", "analysis"}
    assert rules["outer"] == {"*"}
