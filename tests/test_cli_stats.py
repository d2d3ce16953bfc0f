"""The statistics options of the CLI: --ci, --breakdown, --plot and `compare`."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_stderr import only_the_mixed_gallery_warning

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
    assert "fr t2i R@1" in out
    # --names names the table's columns and its title, not only the plot.
    assert f"base = {a}" in out.splitlines()[0]
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split()[:4] == ["metric", "base", "tuned", "tuned"]
    assert "tuned - base over 300 images" in out
    result = json.loads(out_json.read_text())
    expected = cm.compare(
        cm.Report.load(a),
        cm.Report.load(b),
        n_resamples=300,
        n_permutations=300,
        names=("base", "tuned"),
    ).to_dict()
    assert result == json.loads(json.dumps(expected))
    assert result["names"] == ["base", "tuned"]
    assert out_csv.read_text().startswith("name,metric,")
    assert png.exists()


def test_compare_names_default_to_the_file_names(saved_pair, capsys):
    a, b = saved_pair
    status, out, err = run(["compare", a, b, "--n-resamples", "50", "--permutations", "50"], capsys)
    assert status == 0, err
    assert out.splitlines()[:2] == [f"a = {a}", f"b = {b}"]
    assert "b - a over 300 images" in out


def test_ci_table_fits_in_119_columns_and_shows_query_counts(capsys):
    status, out, err = run(["evaluate", EXAMPLE, "--ci", "0.95", "--n-resamples", "50"], capsys)
    assert status == 0, err
    lines = out.splitlines()
    # The title is one sentence and may be long; every table row fits a terminal.
    assert max(len(line) for line in lines[1:]) <= 119, max(lines[1:], key=len)
    # Split by direction: an i2t table, then a t2i table with the mean recall.
    headers = [line.split() for line in lines if "R@1" in line and "[" not in line]
    assert headers == [
        ["i2t", "R@1", "i2t", "R@5", "i2t", "R@10"],
        ["t2i", "R@1", "t2i", "R@5", "t2i", "R@10", "mean", "recall"],
    ]
    # Queries per language and direction: cs lacks 30 images' captions; en has 5 each.
    assert "i2t queries" in out and "t2i queries" in out
    cs = next(line for line in lines if line.startswith("cs ") and "[" not in line)
    en = next(line for line in lines if line.startswith("en ") and "[" not in line)
    assert (cs.split()[1], cs.split()[4]) == ("270", "270")
    assert (en.split()[1], en.split()[4]) == ("300", "1500")


def test_table_without_intervals_stays_one_table(capsys):
    status, out, err = run(["evaluate", EXAMPLE], capsys)
    assert status == 0, err
    assert sum("i2t R@1" in line for line in out.splitlines()) == 1
    assert "mean recall" in next(line for line in out.splitlines() if "i2t R@1" in line)


def test_progress_bars_on_every_phase(tmp_path, capsys):
    argv = ["evaluate", EXAMPLE, "--ci", "0.9", "--n-resamples", "40", "--breakdown"]
    status, out, err = run([*argv, "--progress"], capsys)
    assert status == 0, err
    for phase in ("ranking", "bootstrap", "breakdown"):
        assert f"{phase}: 100%" in err, err
    assert "100%" not in out  # the bars go to stderr only
    status, _, err = run([*argv, "--no-progress"], capsys)
    # No bar; the one stderr line is the example's mixed-gallery warning (cs covers 270 images).
    assert status == 0 and only_the_mixed_gallery_warning(err), err


def test_compare_progress(saved_pair, capsys):
    a, b = saved_pair
    argv = ["compare", a, b, "--n-resamples", "30", "--permutations", "20", "--progress"]
    status, _, err = run(argv, capsys)
    assert status == 0
    assert "paired bootstrap: 100%" in err and "30/30" in err
    assert "permutations: 100%" in err and "20/20" in err
    status, _, err = run(argv[:-1], capsys)  # stderr is not a terminal here: no bars
    assert status == 0 and err == ""


def test_compare_refuses_different_test_sets(saved_pair, tmp_path, capsys):
    a, _ = saved_pair
    other = tmp_path / "other.json"
    assert main(["evaluate", str(EXAMPLE), "--languages", "en", "de", "--json", str(other)]) == 0
    capsys.readouterr()
    status, out, err = run(["compare", a, other], capsys)
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ccr-metrics: error: ")
    assert "language" in lines[0]


@pytest.mark.parametrize("level", ["0", "1", "95", "x"])
def test_bad_level_is_a_usage_error(level, capsys):
    status, _, err = run(["evaluate", EXAMPLE, "--ci", level], capsys)
    assert status == 2 and "level" in err and "Traceback" not in err
