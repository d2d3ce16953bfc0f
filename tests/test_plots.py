"""Plots are drawn from real reports into PNGs of the documented size, not blank."""

import sys
from pathlib import Path

import numpy as np
import pytest

import ccr_metrics as cm
from ccr_metrics import Report

pytest.importorskip("matplotlib")
from matplotlib import image as mpimg

from ccr_metrics.analysis.plots import (
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


def one_language():
    """A two-image report in one language: quick to draw, for what the data does not change."""
    return Report(
        ranks={"en": {"i2t": np.array([1.0, 2.0]), "t2i": np.array([2.0, 1.0])}},
        text_to_image={"en": np.array([0, 1])},
        n_images=2,
        ks=(1, 5),
    )


def check_png(path, size):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(path)
    assert (pixels.shape[1], pixels.shape[0]) == size
    assert pixels[..., :3].var() > 0


def texts(figure):
    """Every string drawn on a figure: titles, panel texts, legends, captions."""
    out = [t.get_text() for t in figure.texts]
    for ax in figure.axes:
        out += [ax.get_title(), *(t.get_text() for t in ax.texts)]
        if ax.get_legend() is not None:
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return out


def whisker_count(figure):
    """Error bars drawn (one container per bar with a whisker)."""
    from matplotlib.container import ErrorbarContainer

    return sum(isinstance(c, ErrorbarContainer) for ax in figure.axes for c in ax.containers)


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


def test_plot_report_returns_a_figure_and_saves_only_when_asked(reports, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    monkeypatch.chdir(tmp_path)
    figure = plot_report(reports[0])
    assert isinstance(figure, Figure)
    assert list(tmp_path.iterdir()) == []  # no path: nothing written
    assert "Recall@k per language (image-to-text)" in texts(figure)
    assert whisker_count(figure) == 0  # the report has no intervals
    # Saving is the same for any report: a small one is written in a fraction of the time.
    saved = plot_report(one_language(), tmp_path / "report.png")
    assert isinstance(saved, Figure)
    check_png(tmp_path / "report.png", REPORT_SIZE)


def test_plot_report_draws_the_reports_own_intervals(reports, tmp_path):
    figure = plot_report(reports[0].with_confidence(n_resamples=50))
    # One whisker per language, direction and cut-off: 4 x 2 x 3.
    assert whisker_count(figure) == 24
    # The legend says what the whiskers are, in each recall panel.
    assert texts(figure).count("95% percentile bootstrap CI") == 2
    # And in the file: the whiskers change its pixels (shown on a report quick to draw).
    small = one_language()
    with_ci = plot_report(small.with_confidence(n_resamples=50), tmp_path / "ci.png")
    assert whisker_count(with_ci) == 4  # 1 language x 2 directions x 2 cut-offs
    check_png(tmp_path / "ci.png", REPORT_SIZE)
    plot_report(small, tmp_path / "plain.png")
    assert not np.array_equal(
        mpimg.imread(tmp_path / "ci.png"), mpimg.imread(tmp_path / "plain.png")
    )


@pytest.mark.parametrize("wrap", [dict, Intervals])
def test_plot_report_with_given_intervals(reports, wrap):
    en_only = {
        key: value
        for key, value in fake_intervals(reports[0], 0.05).items()
        if key.startswith("en/")
    }
    figure = plot_report(reports[0], intervals=wrap(en_only))
    assert whisker_count(figure) == 6  # en only: 2 directions x 3 cut-offs
    assert texts(figure).count("interval") == 2  # no level known: a plain label


def test_given_intervals_replace_the_reports_own(reports):
    with_ci = reports[0].with_confidence(n_resamples=20)
    figure = plot_report(with_ci, intervals={"en/i2t/R@1": (0.8, 0.7, 0.9)})
    assert whisker_count(figure) == 1


def test_plot_report_single_language(tmp_path):
    figure = plot_report(one_language(), tmp_path / "one.png")
    check_png(tmp_path / "one.png", REPORT_SIZE)
    assert "image-to-text: undefined: one language (en); MRV needs two" in texts(figure)


def test_plot_report_says_why_mrv_is_undefined():
    # de has image-to-text ranks only: text-to-image MRV is undefined for that reason.
    report = Report(
        ranks={
            "en": {"i2t": np.array([1.0, 2.0]), "t2i": np.array([2.0, 1.0])},
            "de": {"i2t": np.array([2.0, 1.0])},
        },
        text_to_image={"en": np.array([0, 1]), "de": np.array([0, 1])},
        n_images=2,
        ks=(1,),
    )
    drawn = texts(plot_report(report))
    reason = "undefined: no t2i ranks for de (MRV is over every language of the report)"
    assert f"text-to-image: {reason}" in drawn
    assert f"  t2i: {reason}" in report.to_table()
    assert "Mean squared rank difference (image-to-text)" in drawn


def test_plot_comparison(reports, tmp_path):
    from matplotlib.figure import Figure

    a, b = reports
    comparison = cm.compare(a, b, n_resamples=200, n_permutations=200, names=("clean", "noisy"))
    figure = plot_comparison(comparison, tmp_path / "cmp.png", reports=(a, b))
    assert isinstance(figure, Figure)
    check_png(tmp_path / "cmp.png", COMPARISON_SIZE)
    drawn = texts(figure)
    assert "clean vs noisy: languages en, de, fr, cs" in drawn
    # Whiskers: one per language in each of the 2 x 3 recall panels, labelled.
    assert whisker_count(figure) == 24
    assert drawn.count("noisy - clean, 95% CI") == 6
    caption = next(t for t in drawn if t.startswith("Whiskers:"))
    assert "paired-bootstrap 95% interval of noisy - clean" in caption
    assert any(t.startswith("noisy (mean ") for t in drawn)  # the rank-spread histograms
    # The bars are the comparison's values: B's R@1 bar for en has B's recall.
    bars = [p.get_height() for p in figure.axes[0].patches]
    assert bars[4] == pytest.approx(100 * comparison["en/i2t/R@1"].b)
    assert bars[0] == pytest.approx(100 * comparison["en/i2t/R@1"].a)


def test_plot_comparison_without_reports_says_how_to_get_the_spreads(reports):
    comparison = cm.compare(*reports, n_resamples=50, n_permutations=50)
    drawn = texts(plot_comparison(comparison))
    message = "rank spreads need the reports: plot_comparison(..., reports=(a, b))"
    assert drawn.count(message) == 2
    assert "A vs B: languages en, de, fr, cs" in drawn


def test_plot_comparison_refuses_reports_in_the_old_order(reports, tmp_path):
    with pytest.raises(ValueError, match=r"comparison must be a Comparison, got Report; compare"):
        plot_comparison(*reports)


def test_plot_comparison_refuses_reports_of_another_test_set(reports):
    comparison = cm.compare(*reports, n_resamples=20, n_permutations=20)
    other = Report(
        ranks={"en": {"i2t": np.array([1.0])}}, text_to_image={"en": np.array([0])}, n_images=1
    )
    with pytest.raises(ValueError, match="reports must be the two reports compared, over 300"):
        plot_comparison(comparison, reports=(reports[0], other))


def test_plotting_leaves_pyplot_alone(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    plot_report(one_language(), tmp_path / "r.png")
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


@pytest.mark.parametrize("names", [("only",), "AB", ("a", 1)])
def test_comparison_bad_names(reports, names):
    with pytest.raises(ValueError, match="names must be two strings"):
        cm.compare(*reports, n_resamples=10, n_permutations=10, names=names)


def test_bad_intervals(reports, tmp_path):
    with pytest.raises(ValueError, match="intervals must be a mapping"):
        plot_report(reports[0], intervals=[1, 2])


def test_missing_matplotlib_names_the_extra(reports, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"ccr-metrics\[plots\]"):
        plot_report(reports[0])


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".pdf", b"%PDF"), (".svg", b"<?xml"), (".PNG", b"\x89PNG")]
)
def test_the_suffix_names_the_format(tmp_path, suffix, magic):
    path = tmp_path / f"report{suffix}"
    plot_report(one_language(), path)
    assert path.read_bytes().startswith(magic)
