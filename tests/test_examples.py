"""The shipped examples run, and the bundled data is what its script makes."""

import runpy
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from early import early, popen

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# rerank.py runs in test_rerank_example, with fewer training steps than its default.
@pytest.mark.parametrize("script", ["demo.py", "train_step.py"])
def test_example_runs(script, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [script])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert capsys.readouterr().out.strip()


def test_bundled_data_is_reproducible(monkeypatch, tmp_path):
    out = tmp_path / "again.npz"
    monkeypatch.setattr(sys, "argv", ["make_example_data.py", "--out", str(out)])
    runpy.run_path(str(EXAMPLES / "make_example_data.py"), run_name="__main__")
    with np.load(EXAMPLES / "multi30k_synthetic.npz") as shipped, np.load(out) as made:
        assert sorted(shipped.files) == sorted(made.files)
        for key in shipped.files:
            np.testing.assert_array_equal(shipped[key], made[key])


@early
def gpu_check(items: Sequence[pytest.Item]) -> Iterator[subprocess.Popen[str]]:
    """The GPU check script's dry run, started early (see early.py)."""
    script = EXAMPLES.parent / "benchmarks" / "gpu_check.py"
    process = popen(
        [sys.executable, str(script), "--device", "cpu", "--quick"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        process.kill()  # only if it is still running (a no-op otherwise)
        process.wait()


def test_gpu_check_dry_run_on_the_cpu(early_work):
    """The GPU check script runs end to end (its checks on the CPU) and finds no difference."""
    with early_work(gpu_check) as process:
        stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stdout + stderr
    assert "0 exactness failure(s)" in stdout
    assert "DIFFERENT" not in stdout


def _rerank_main():
    return runpy.run_path(str(EXAMPLES / "rerank.py"), run_name="rerank_example")["main"]


def test_rerank_example(capsys, monkeypatch):
    # Its arguments as on the command line (main() reads sys.argv).
    monkeypatch.setattr(
        sys, "argv", ["rerank.py", "--steps", "20", "--rerank-k", "10", "--seed", "1"]
    )
    reports = _rerank_main()()
    out = capsys.readouterr().out
    for section in (
        "== First stage only (dual encoder) ==",
        "== Re-ranked: cascade, top 10 ==",
        "rerank=cascade, rerank_k=10",
        "== Recall (%) side by side ==",
        "== MRV over 4 languages",
        "re-ranked, cascade (the default):",
        "re-ranked, filled (-100), ties=expected:",
        "re-ranked, filled (-100), ties=pessimistic:",
    ):
        assert section in out, section
    first, cascade, filled = reports["first"], reports["cascade"], reports["filled"]
    assert filled.settings["rerank"] == "filled (-100)"
    # The trained cross-encoder moved ranks; the protocol changes MRV but not R@K for K <= k.
    assert cascade.recall() != first.recall()
    assert filled.recall() == cascade.recall()
    assert filled.mrv() != cascade.mrv()


def test_untrained_rerank_example_is_the_first_stage(capsys):
    """With zero steps the cross-encoder scores the dot product: the cascade changes nothing."""
    reports = _rerank_main()(["--steps", "0", "--rerank-k", "10"])
    first, cascade = reports["first"], reports["cascade"]
    for lang in first.languages:
        for d in ("i2t", "t2i"):
            same = first.query_ranks(lang, d) == cascade.query_ranks(lang, d)
            # Equal here, but not asserted everywhere: the fine scores are summed products,
            # the coarse ones BLAS tiles, and near-ties (gaps ~1e-6 here) could round apart.
            assert same.mean() > 0.99, (lang, d)
