"""numba is an optional extra: without it every path runs on torch and gives the same numbers.

The test extra installs numba, so the cases run in a fresh interpreter in which
``import numba`` fails (``sys.modules["numba"] = None``), as on a machine that installed
the package without ``[fast]``, and their output is compared with a normal run's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from early import early, outputs, popen, running

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "multi30k_synthetic.npz"
NO_NUMBA = "import sys; sys.modules['numba'] = None\n"

# The README's main job; then, in the same interpreter (each start costs seconds of
# imports), the re-ranking path (top-k selection) and both counting layouts (row- and
# column-major) in one script, its output after a line of its own.
CLI = (
    "from ccr_metrics.cli import main\n"
    f"code = main(['evaluate', {str(EXAMPLE)!r}, '--device', 'cpu'])\n"
)
LIBRARY_AFTER = "-- library --\n"
LIBRARY = """
import numpy as np, torch, ccr_metrics as cm
rng = np.random.default_rng(0)
images = rng.integers(-2, 3, (60, 8)).astype(np.float32)
texts = {"en": images + rng.integers(-1, 2, (60, 8)).astype(np.float32)}
image_t, text_t = torch.from_numpy(images), torch.from_numpy(texts["en"])
def score_pairs(language, i, t):
    return -(image_t[i] - text_t[t]).abs().sum(1)
report = cm.evaluate(images, texts, rerank=score_pairs, rerank_k=7, device="cpu")
s = texts["en"].astype(np.float64) @ images.T.astype(np.float64)
print(report.query_ranks("en", "t2i").tolist())
print(report.query_ranks("en", "i2t").tolist())
print(cm.positive_ranks(s, np.arange(60)).tolist())
print(cm.positive_ranks(s.T, np.arange(60)).tolist())
print(cm.top_candidates(s, 5).tolist())
"""
BOTH = f"{CLI}print({LIBRARY_AFTER.strip()!r})\n{LIBRARY}sys.exit(code)\n"


def _start(code: str, *, numba: bool, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    prefix = "import sys\n" if numba else NO_NUMBA
    return popen(
        [sys.executable, "-c", prefix + code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@early
def interpreters(items: Sequence[pytest.Item]) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Every interpreter of this module, started at once (see early.py).

    Each spends seconds importing torch: side by side they share the cores instead of
    taking turns.
    """
    processes = {
        f"{'with' if numba else 'without'} numba": _start(BOTH, numba=numba)
        for numba in (False, True)
    }
    processes["refused"] = _start(
        CLI + "sys.exit(code)", numba=False, env={"CCR_METRICS_KERNEL": "numba"}
    )
    yield from running(processes)


@pytest.fixture(scope="module")
def runs(early_work) -> dict[str, subprocess.CompletedProcess[str]]:
    """What every interpreter of this module printed, once all have ended."""
    with early_work(interpreters) as processes:
        return outputs(processes, 300)


@pytest.mark.parametrize("part", [0, 1], ids=["readme main job", "library"])
def test_without_numba_the_numbers_are_the_same(runs, part):
    without, with_numba = runs["without numba"], runs["with numba"]
    assert without.returncode == 0, without.stderr
    assert with_numba.returncode == 0, with_numba.stderr
    parts = [run.stdout.split(LIBRARY_AFTER) for run in (without, with_numba)]
    assert all(len(p) == 2 and p[part].strip() for p in parts), parts  # both parts printed
    assert parts[0][part] == parts[1][part]


def test_asking_for_numba_without_it_is_refused_in_one_line(runs):
    done = runs["refused"]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert 'numba is not installed: pip install "ccr-metrics[fast]"' in done.stderr
