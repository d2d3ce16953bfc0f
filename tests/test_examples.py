"""The shipped examples run, and the bundled data is what its script makes."""

import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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


def test_gpu_check_dry_run_on_the_cpu():
    """The GPU check script runs end to end (its checks on the CPU) and finds no difference."""
    script = EXAMPLES.parent / "benchmarks" / "gpu_check.py"
    done = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 exactness failure(s)" in done.stdout
    assert "DIFFERENT" not in done.stdout
