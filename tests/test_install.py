"""Install hygiene (issue 20, item 6): nothing is written inside the installed package.

numba's ``cache=True`` writes compiled code beside the source. In site-packages those
files outlive an uninstall, and a ``ccr_metrics`` folder left holding only them is
imported as an empty namespace package. The compiled loops are therefore cached in a
user folder (:mod:`ccr_metrics.core._jit`), which the fast tests here check on a small
function compiled for the purpose.

The slow test runs the README's two commands one after the other in one fresh virtual
environment, then imports ccr_metrics from another folder. It takes about 3 minutes
and needs the package index, so it runs only when asked:

    CCR_METRICS_TEST_INSTALL=1 python -m pytest tests/test_install.py
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ccr_metrics"

numba = pytest.importorskip("numba")
pytestmark = pytest.mark.skipif(
    sys.platform in ("win32", "darwin"), reason="the user cache folder checked is Linux's"
)


def compile_from(folder: Path, name: str):
    """Import a module of one function from ``folder`` and compile it with the package's jit."""
    from ccr_metrics.core._jit import jit

    folder.mkdir(parents=True)
    source = folder / f"{name}.py"
    source.write_text("def double(x):\n    return 2 * x\n")
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    compiled = jit()(module.double)
    assert compiled(21) == 42
    return compiled


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_compiled_code_is_cached_in_the_user_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    compile_from(tmp_path / "src", "kernels_a")
    cached = cache_files(tmp_path / "cache" / "ccr-metrics" / "numba")
    assert any(name.startswith("kernels_a.double-") for name in cached), cached
    assert cache_files(tmp_path / "src") == []  # nothing beside the source
    assert numba.config.CACHE_DIR == ""  # the user's numba keeps its default


def test_the_users_numba_cache_dir_is_respected(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    compile_from(tmp_path / "src", "kernels_b")
    assert any(n.startswith("kernels_b.double-") for n in cache_files(tmp_path / "mine"))
    assert not (tmp_path / "cache").exists()
    assert cache_files(tmp_path / "src") == []


def test_without_a_writable_cache_folder_nothing_is_cached(tmp_path, monkeypatch):
    """numba would fall back to the source's folder: the package compiles afresh instead."""
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # no folder can go there
    compile_from(tmp_path / "src", "kernels_c")
    assert cache_files(tmp_path) == []


def test_every_compiled_function_of_the_package_goes_through_jit():
    """numba's decorators are called in core._jit only; everything else uses its jit."""
    direct = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "core" / "_jit.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            called = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if (
                called
                and node.value.id == "numba"
                and node.attr in ("jit", "njit", "generated_jit")
            ):
                direct.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "numba":
                direct.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert direct == []


# ------------------------------------------------------------- the README, end to end


def readme_commands() -> list[str]:
    """The two commands of the README's "The two commands" section, in order."""
    section = (ROOT / "README.md").read_text().split("## The two commands", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    commands = [b.strip() for b in blocks if "pip install ." in b or "pip install -e" in b]
    assert len(commands) == 2, commands
    return commands


def copy_of_the_clone(target: Path) -> Path:
    ignored = shutil.ignore_patterns(
        ".git", ".venv", "venv", "build", "dist", "__pycache__", "*.egg-info", ".*_cache"
    )
    shutil.copytree(ROOT, target, ignore=ignored)
    return target


@pytest.mark.skipif(
    os.environ.get("CCR_METRICS_TEST_INSTALL") != "1",
    reason="slow (a fresh venv, about 3 minutes): set CCR_METRICS_TEST_INSTALL=1",
)
def test_the_readme_commands_in_sequence_leave_a_working_import(tmp_path):
    import torch

    clone = copy_of_the_clone(tmp_path / "clone")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NUMBA_", "CCR_METRICS_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    python = str(venv / "bin" / "python")

    def run(command: str, cwd: Path) -> str:
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    # What the README's readers have: this torch (CPU, so that pip fetches no CUDA
    # build) and numba, so that the first command compiles the kernels as it did when
    # the cache went into site-packages.
    prerequisites = subprocess.run(
        [python, "-m", "pip", "install", "-q", f"torch=={torch.__version__}", "numba"],
        env=env,
        capture_output=True,
        text=True,
    )
    if prerequisites.returncode != 0:
        pytest.skip(
            f"torch {torch.__version__} and numba not at hand: {prerequisites.stderr[-500:]}"
        )
    main_job, test_suite = readme_commands()
    assert "Mean Rank Variance" in run(main_job, clone)
    # The second command without its last step: the whole suite is what CI runs.
    install, _, pytest_step = test_suite.rpartition("&&")
    assert pytest_step.strip().startswith("python -m pytest"), test_suite
    run(install, clone)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = run(
        f"{python} -c 'import ccr_metrics as cm; print(cm.__file__); print(cm.evaluate.__name__)'",
        elsewhere,
    )
    assert found.splitlines() == [str(clone / "ccr_metrics" / "__init__.py"), "evaluate"]
    site = run(
        f"{python} -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'", elsewhere
    )
    assert not (Path(site.strip()) / "ccr_metrics").exists()
    assert run("ccr-metrics --version", elsewhere).startswith("ccr-metrics ")
    # The first command compiled the kernels (the case that left files behind), here.
    assert cache_files(tmp_path / "cache" / "ccr-metrics" / "numba")
