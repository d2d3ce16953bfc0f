"""``import ccr_metrics`` loads nothing heavy beyond torch: every CLI call pays for it.

pandas, scipy, matplotlib, tqdm, numba, safetensors, torchmetrics and hypothesis are
imported by the functions that use them. Each case runs in a fresh interpreter that
imports torch first and then records which modules the package adds: tqdm is not
refused outright because ``import torch`` itself loads it (``torch.fx`` imports
``torch.hub``), but the package must add no module of these (``tqdm.auto`` included).
Timings are ``benchmarks/bench_import.py``'s business; this checks the property.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from early import early, outputs, popen, running

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "pandas",
    "scipy",
    "matplotlib",
    "tqdm",
    "numba",
    "safetensors",
    "torchmetrics",
    "hypothesis",
    "dateutil",
)

# Prints, as JSON, the heavy modules the step added to those torch loaded; the step
# runs after `import torch`, with its stdout captured.
CHILD = """
import contextlib, io, json, sys
import torch
before = set(sys.modules)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    {step}
heavy = {heavy!r}
added = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy)
result = {{"added": added, "stdout": out.getvalue()}}
{after}
print(json.dumps(result))
"""

IMPORT = CHILD.format(
    step="import ccr_metrics as cm",
    heavy=HEAVY,
    after="""
unresolved = []
for name in cm.__all__:
    try:
        getattr(cm, name)
    except AttributeError:
        unresolved.append(name)
result["unresolved"] = unresolved
# The other side of the property: a frame, when asked for, loads pandas then.
frame = cm.largest_spread([[1.0, 2.0], [3.0, 5.0]])
result["frame"] = [type(frame).__module__.split(".")[0], "pandas" in sys.modules]
""",
)

HELP = CHILD.format(
    step="""import runpy
    sys.argv = ["ccr-metrics", "--help"]
    try:
        runpy.run_module("ccr_metrics", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code""",
    heavy=HEAVY,
    after='result["code"] = code',
)

pytestmark = pytest.mark.quick


@early
def interpreters(items: Sequence[pytest.Item]) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Both interpreters, started at once (see early.py): each spends seconds importing torch."""
    processes = {
        name: popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name, code in (("import", IMPORT), ("help", HELP))
    }
    yield from running(processes)


@pytest.fixture(scope="module")
def runs(early_work) -> dict[str, dict[str, object]]:
    """What both interpreters found, once both have ended."""
    with early_work(interpreters) as processes:
        finished = outputs(processes, 300)
    for result in finished.values():
        assert result.returncode == 0, result.stderr
    return {name: json.loads(r.stdout.splitlines()[-1]) for name, r in finished.items()}


def test_import_loads_no_heavy_module(runs):
    assert runs["import"]["added"] == []


def test_every_public_name_still_resolves(runs):
    assert runs["import"]["unresolved"] == []


def test_heavy_modules_load_when_used(runs):
    # Proof that the check above sees a load: the first frame built brings pandas in.
    assert runs["import"]["frame"] == ["pandas", True]


def test_cli_help_loads_no_heavy_module(runs):
    help_run = runs["help"]
    assert help_run["code"] == 0
    assert help_run["stdout"].startswith("usage: ccr-metrics")
    assert help_run["added"] == []
