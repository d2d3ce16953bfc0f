"""The layering rule: the pure core imports no outer layer and never touches
torch.distributed; distributed.py is the only module that imports it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ccr_metrics"
CORE = {"ranking", "recall", "mrv", "_contrastive", "sampling", "_validation", "_backend"}
OUTER = {"io", "evaluate", "report", "cli", "metrics", "distributed", "losses", "testing"}


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(package modules imported relatively, absolute module names) of one file."""
    local, absolute = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            absolute.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            if node.module:
                local.add(node.module.split(".")[0])
            else:  # from . import name
                local.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            absolute.add(node.module)
            absolute.update(f"{node.module}.{alias.name}" for alias in node.names)
    return local, absolute


def test_the_check_sees_relative_imports():
    local, _ = imports(PACKAGE / "evaluate.py")
    assert {"distributed", "ranking", "report"} <= local


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_imports_no_outer_layer(module):
    local, absolute = imports(PACKAGE / f"{module}.py")
    assert not local & OUTER, f"{module}.py imports {sorted(local & OUTER)}"
    assert not any(n.startswith(("ccr_metrics", "torch.distributed")) for n in absolute)


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_reads_no_file_and_prints_nothing(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert not calls & {"print", "open", "input"}


def test_only_distributed_imports_torch_distributed():
    users = {
        path.stem
        for path in PACKAGE.glob("*.py")
        if any(n.startswith("torch.distributed") for n in imports(path)[1])
    }
    assert users == {"distributed"}
