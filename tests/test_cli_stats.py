"""The statistics options of the CLI: --ci, --breakdown, --plot and `compare`."""

import json
from pathlib import Path

import numpy as np
import pytest

import ccr_metrics as cm
from ccr_metrics.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multi30k_synthetic.npz"


def run(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def saved_pair(tmp_path_factory):
    """Two saved reports of the same test set; B's French texts moved towards their images."""
    tmp = tmp_path_factory.mktemp("pair")
    arrays = dict(np.load(EXAMPLE))
    fr = arrays["text.fr"] + 0.1 * arrays["image"][arrays["text_to_image.fr"]]
    arrays["text.fr"] = (fr / np.linalg.norm(fr, axis=1, keepdims=True)).astype(np.float32)
    np.savez(tmp / "b.npz", **arrays)
    assert main(["evaluate", str(EXAMPLE), "--json", str(tmp / "a.json")]) == 0
    assert main(["evaluate", str(tmp / "b.npz"), "--json", str(tmp / "b.json")]) == 0
    return tmp / "a.json", tmp / "b.json"


def test_ci_in_table_and_json(tmp_path, capsys):
    out_json = tmp_path / "r.json"
    status, out, err = run(
        ["evaluate", EXAMPLE, "--ci", "0.9", "--n-resamples", "200", "--json", out_json], capsys
    )
    assert status == 0, err
    assert "90% percentile bootstrap intervals" in out
    saved = json.loads(out_json.read_text())
    low, high = saved["intervals"]["recall"]["en"]["i2t"]["1"][1:]
    assert low <= saved["recall"]["en"]["i2t"]["1"] <= high
    assert f"[{100 * low:.2f}, {100 * high:.2f}]" in out
    assert saved["confidence"] == {"ci": 0.9, "method": "percentile", "n_resamples": 200, "seed": 0}


def test_breakdown_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "r.png"
    status, out, err = run(["evaluate", EXAMPLE, "--breakdown", "5", "--plot", png], capsys)
    assert status == 0, err
    assert "retrieved in the top 5 in all languages" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_prints_table_and_writes_outputs(saved_pair, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    a, b = saved_pair
    out_json, out_csv, png = tmp_path / "c.json", tmp_path / "c.csv", tmp_path / "c.png"
    argv = ["compare", a, b, "--n-resamples", "300", "--permutations", "300"]
    argv += ["--json", out_json, "--csv", out_csv, "--plot", png, "--names", "base", "tuned"]
    status, out, err = run(argv, capsys)
    assert status == 0, err
    assert "B - A" in out and "fr t2i R@1" in out
    result = json.loads(out_json.read_text())
    expected = cm.compare(
        cm.Report.load(a), cm.Report.load(b), n_resamples=300, n_permutations=300
    ).to_dict()
    assert result == json.loads(json.dumps(expected))
    assert out_csv.read_text().startswith("name,metric,")
    assert png.exists()


def test_compare_refuses_different_test_sets(saved_pair, tmp_path, capsys):
    a, _ = saved_pair
    other = tmp_path / "other.json"
    assert main(["evaluate", str(EXAMPLE), "--languages", "en", "de", "--json", str(other)]) == 0
    capsys.readouterr()
    status, out, err = run(["compare", a, other], capsys)
    assert status == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ccr-metrics: error: ")
    assert "language" in lines[0]


@pytest.mark.parametrize("level", ["0", "1", "95", "x"])
def test_bad_level_is_a_usage_error(level, capsys):
    status, _, err = run(["evaluate", EXAMPLE, "--ci", level], capsys)
    assert status == 2 and "level" in err and "Traceback" not in err
