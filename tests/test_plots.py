"""Plots are drawn from real reports into PNGs of the documented size, not blank."""

import sys
from pathlib import Path

import numpy as np
import pytest

import ccr_metrics as cm
from ccr_metrics import Report

pytest.importorskip("matplotlib")
from matplotlib import image as mpimg

from ccr_metrics.plots import (
    COMPARISON_SIZE,
    REPORT_SIZE,
    plot_comparison,
    plot_report,
)

LANGS = ["en", "de", "fr", "cs"]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multi30k_synthetic.npz"


@pytest.fixture(scope="module")
def reports():
    d = np.load(EXAMPLE)
    texts = {lang: d["text." + lang] for lang in LANGS}
    owners = {lang: d["text_to_image." + lang] for lang in LANGS}
    noisy = d["image"] + np.random.default_rng(0).normal(size=d["image"].shape).astype(np.float32)
    return (
        cm.evaluate(d["image"], texts, owners, device="cpu"),
        cm.evaluate(noisy, texts, owners, device="cpu"),
    )


def check_png(path, size):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(path)
    assert (pixels.shape[1], pixels.shape[0]) == size
    assert pixels[..., :3].var() > 0


class Intervals:
    def __init__(self, values):
        self.values = values


def fake_intervals(report, half_width):
    return {
        f"{lang}/{d}/R@{k}": (v, max(v - half_width, 0), min(v + half_width, 1))
        for lang, dirs in report.recall().items()
        for d, by_k in dirs.items()
        for k, v in by_k.items()
    }


def test_plot_report(reports, tmp_path):
    out = plot_report(reports[0], tmp_path / "report.png")
    assert out == tmp_path / "report.png"
    check_png(out, REPORT_SIZE)


@pytest.mark.parametrize("wrap", [dict, Intervals])
def test_plot_report_with_intervals(reports, tmp_path, wrap):
    out = plot_report(
        reports[0], tmp_path / "ci.png", intervals=wrap(fake_intervals(reports[0], 0.05))
    )
    check_png(out, REPORT_SIZE)
    # The whiskers are drawn: the picture differs from the one without them.
    plain = plot_report(reports[0], tmp_path / "plain.png")
    assert not np.array_equal(mpimg.imread(out), mpimg.imread(plain))


def test_plot_report_single_language(tmp_path):
    one = Report(
        ranks={"en": {"i2t": np.array([1.0, 3.0]), "t2i": np.array([2.0, 1.0])}},
        text_to_image={"en": np.array([0, 1])},
        n_images=2,
        ks=(1, 5),
    )
    check_png(plot_report(one, tmp_path / "one.png"), REPORT_SIZE)


def test_plot_comparison(reports, tmp_path):
    a, b = reports
    plain = plot_comparison(a, b, tmp_path / "plain.png", names=("clean", "noisy"))
    check_png(plain, COMPARISON_SIZE)
    comparison = cm.compare(a, b, n_resamples=200, n_permutations=200)
    out = plot_comparison(
        a, b, tmp_path / "cmp.png", names=("clean", "noisy"), comparison=comparison
    )
    check_png(out, COMPARISON_SIZE)
    assert out.read_bytes() != plain.read_bytes()  # the difference whiskers are drawn


def test_plotting_leaves_pyplot_alone(reports, tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    plot_report(reports[0], tmp_path / "r.png")
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"names": ("only",)}, "names must be two strings"), ({"names": "AB"}, "names must be two")],
)
def test_comparison_bad_names(reports, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_comparison(*reports, tmp_path / "x.png", **kwargs)


def test_comparison_needs_shared_languages(reports, tmp_path):
    other = Report(
        ranks={"ja": {"i2t": np.array([1.0])}}, text_to_image={"ja": np.array([0])}, n_images=1
    )
    with pytest.raises(ValueError, match="report_a and report_b must share"):
        plot_comparison(reports[0], other, tmp_path / "x.png")


def test_bad_intervals(reports, tmp_path):
    with pytest.raises(ValueError, match="intervals must be a mapping"):
        plot_report(reports[0], tmp_path / "x.png", intervals=[1, 2])


def test_missing_matplotlib_names_the_extra(reports, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"ccr-metrics\[plots\]"):
        plot_report(reports[0], tmp_path / "x.png")
