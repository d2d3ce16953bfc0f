"""PNG figures of a report: recall per language, where languages disagree, rank spread.

matplotlib is optional (``pip install 'ccr-metrics[plots]'``) and imported only when a
function here is called. Figures are drawn on their own Agg canvas, without pyplot, so
plotting changes no global matplotlib state (backend, open figures, rcParams).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import InputError
from .consistency import pairwise_disagreement
from .mrv import instance_rank_variance
from .results import MetricKey

if TYPE_CHECKING:
    from .report import Report
    from .results import Comparison

__all__ = ["COMPARISON_SIZE", "REPORT_SIZE", "plot_comparison", "plot_report"]

#: Pixel size ``(width, height)`` of :func:`plot_report`'s PNG.
REPORT_SIZE = (1400, 1500)
#: Pixel size ``(width, height)`` of :func:`plot_comparison`'s PNG.
COMPARISON_SIZE = (1600, 1200)
_DPI = 100
_TITLES = {"i2t": "image-to-text", "t2i": "text-to-image"}


def plot_report(report: Report, path: str | Path, *, intervals: Any = None) -> Path:
    """Draw a report's recall, pairwise disagreement and rank spread into one PNG.

    Three rows, one column per direction: recall per language as grouped bars (one
    bar per cut-off), the mean squared rank difference between each pair of
    languages as an annotated heatmap (:func:`~ccr_metrics.consistency.
    pairwise_disagreement`), and a histogram of each image's rank spread across
    languages (population std, the released code's MRV reduction).

    Parameters
    ----------
    report : Report
        The evaluation to draw.
    path : str or pathlib.Path
        Where to write the PNG (``REPORT_SIZE`` pixels).
    intervals : mapping or object with a ``values`` mapping, optional
        Confidence intervals drawn as whiskers on the recall bars: keys
        ``("recall", language, direction, k)``, values ``(estimate, low, high)`` as
        fractions. Bars without a key get no whisker.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    Notes
    -----
    Panels of a direction whose MRV is undefined (fewer than two languages carry
    it, or no image has texts in two) say so instead of drawing.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ccr_metrics import Report
    >>> report = Report(
    ...     ranks={"en": {"i2t": np.array([1.0, 2.0, 1.0]), "t2i": np.array([1.0, 3.0, 1.0])},
    ...            "de": {"i2t": np.array([1.0, 4.0, 2.0]), "t2i": np.array([2.0, 1.0, 1.0])}},
    ...     text_to_image={"en": np.array([0, 1, 2]), "de": np.array([0, 1, 2])},
    ...     n_images=3, ks=(1, 5),
    ... )
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     written = plot_report(report, pathlib.Path(tmp) / "report.png")
    ...     written.read_bytes()[1:4]
    b'PNG'
    """
    figure_cls, canvas_cls = _matplotlib()
    fig = figure_cls(figsize=(REPORT_SIZE[0] / _DPI, REPORT_SIZE[1] / _DPI), dpi=_DPI)
    canvas_cls(fig)
    values = _interval_values(intervals)
    recall = report.recall()
    spreads = _spreads(report)
    axes = fig.subplots(3, 2, gridspec_kw={"height_ratios": [1.0, 1.25, 1.0]})
    for column, direction in enumerate(("i2t", "t2i")):
        bars, heat, hist = axes[:, column]
        name = _TITLES[direction]
        if direction not in report.directions:
            for ax in (bars, heat, hist):
                _empty(ax, f"no {name} ranks")
            continue
        languages = [lang for lang in report.languages if direction in recall[lang]]
        _recall_bars(bars, recall, languages, direction, report.ks, values)
        bars.set_title(f"Recall@k per language ({name})")
        if direction not in spreads:
            _empty(heat, f"{name}: needs two languages per image")
            _empty(hist, f"{name}: needs two languages per image")
            continue
        ranks, mask = report.rank_matrix(direction)
        msd, _ = pairwise_disagreement(ranks, mask=mask)
        _heatmap(fig, heat, np.asarray(msd), report.languages)
        heat.set_title(f"Mean squared rank difference ({name})")
        spread = spreads[direction]
        hist.hist(spread, bins=30, color="tab:blue", edgecolor="white")
        hist.axvline(float(spread.mean()), color="black", linestyle="--", label="mean (MRV, std)")
        hist.legend(loc="upper right")
        hist.set_title(f"Rank spread across languages (std, {name})")
        hist.set_xlabel("std of an image's rank across languages")
        hist.set_ylabel("images")
    fig.suptitle(f"{report.n_images} images, languages {', '.join(report.languages)}")
    fig.tight_layout()
    return _save(fig, path)


def plot_comparison(
    report_a: Report,
    report_b: Report,
    path: str | Path,
    *,
    names: Sequence[str] = ("A", "B"),
    comparison: Comparison | None = None,
) -> Path:
    """Draw two models' recall side by side and their rank spreads overlaid, in one PNG.

    The top two rows hold one panel per direction and cut-off, with the two models'
    bars next to each other for each language; the bottom row overlays the
    histograms of each image's rank spread across languages (population std) of both
    models, one panel per direction.

    Parameters
    ----------
    report_a, report_b : Report
        The two evaluations, normally of the same data. Languages and cut-offs that
        both reports have are drawn, in ``report_a``'s order.
    path : str or pathlib.Path
        Where to write the PNG (``COMPARISON_SIZE`` pixels).
    names : pair of str, default ("A", "B")
        Legend names of the two models.
    comparison : Comparison, optional
        :func:`~ccr_metrics.compare` of the two reports: the interval of each recall
        difference (B minus A) is drawn as a whisker on B's bar at
        ``recall_A + [low, high]``, so a whisker that does not reach A's bar height
        marks a difference the interval excludes zero for.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``names`` is not two strings, or the reports share no language, cut-off
        or direction.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ccr_metrics import Report
    >>> def report(de_ranks):
    ...     ranks = {"en": {"i2t": np.array([1.0, 2.0, 1.0]), "t2i": np.array([1.0, 3.0, 1.0])},
    ...              "de": {"i2t": de_ranks, "t2i": np.array([2.0, 1.0, 1.0])}}
    ...     owners = {"en": np.arange(3), "de": np.arange(3)}
    ...     return Report(ranks=ranks, text_to_image=owners, n_images=3, ks=(1, 5))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = plot_comparison(report(np.array([1.0, 4.0, 2.0])),
    ...                            report(np.array([1.0, 1.0, 2.0])),
    ...                            pathlib.Path(tmp) / "compare.png", names=("base", "new"))
    ...     path.stat().st_size > 0
    True
    """
    if isinstance(names, str) or len(names) != 2:
        raise InputError(f"names must be two strings, got {names!r}", argument="names")
    languages = [lang for lang in report_a.languages if lang in report_b.languages]
    ks = [k for k in report_a.ks if k in report_b.ks]
    directions = [d for d in report_a.directions if d in report_b.directions]
    if not languages or not ks or not directions:
        raise InputError(
            "report_a and report_b must share a language, a cut-off and a direction; got "
            f"languages {report_a.languages} / {report_b.languages}, ks {report_a.ks} / "
            f"{report_b.ks}, directions {report_a.directions} / {report_b.directions}",
            argument="report_b",
        )
    figure_cls, canvas_cls = _matplotlib()
    fig = figure_cls(figsize=(COMPARISON_SIZE[0] / _DPI, COMPARISON_SIZE[1] / _DPI), dpi=_DPI)
    canvas_cls(fig)
    differences: Mapping[Any, Any] = {} if comparison is None else comparison.values
    recalls = (report_a.recall(), report_b.recall())
    grid = fig.add_gridspec(3, 2 * len(ks))
    colours = ("tab:blue", "tab:orange")
    for row, direction in enumerate(("i2t", "t2i")):
        for column, k in enumerate(ks):
            ax = fig.add_subplot(grid[row, 2 * column : 2 * column + 2])
            ax.set_title(f"R@{k} ({_TITLES[direction]})")
            if direction not in directions:
                _empty(ax, "not in both reports")
                continue
            x = np.arange(len(languages))
            for i, (recall, name) in enumerate(zip(recalls, names, strict=True)):
                heights = [
                    100 * recall[lang][direction][k] if direction in recall[lang] else np.nan
                    for lang in languages
                ]
                ax.bar(x + (i - 0.5) * 0.4, heights, 0.4, label=name, color=colours[i])
            for j, lang in enumerate(languages):
                key = MetricKey(lang, direction, "recall", k)
                if key not in differences or direction not in recalls[0][lang]:
                    continue
                low, high = differences[key].low, differences[key].high
                # B's plausible range given A's recall and the difference interval.
                base = 100 * recalls[0][lang][direction][k]
                ax.errorbar(
                    x[j] + 0.2,
                    base + 100 * (low + high) / 2,
                    yerr=100 * (high - low) / 2,
                    fmt="none",
                    ecolor="black",
                    capsize=3,
                )
            _recall_axes(ax, languages, legend_columns=2)
    spreads = [
        (name, _spreads(report)) for name, report in zip(names, (report_a, report_b), strict=True)
    ]
    for column, direction in enumerate(("i2t", "t2i")):
        ax = fig.add_subplot(grid[2, column * len(ks) : (column + 1) * len(ks)])
        ax.set_title(f"Rank spread across languages (std, {_TITLES[direction]})")
        found = [(name, s[direction]) for name, s in spreads if direction in s]
        if not found:
            _empty(ax, "needs two languages per image")
            continue
        top = max(float(s.max()) for _, s in found)
        bins = np.linspace(0.0, max(top, 1.0), 31)
        for (name, spread), colour in zip(found, colours, strict=False):
            ax.hist(
                spread,
                bins=bins,
                alpha=0.5,
                color=colour,
                label=f"{name} (mean {spread.mean():.2f})",
            )
        ax.set_xlabel("std of an image's rank across languages")
        ax.set_ylabel("images")
        ax.legend(loc="upper right")
    fig.suptitle(f"{names[0]} vs {names[1]}: languages {', '.join(languages)}")
    fig.tight_layout()
    return _save(fig, path)


def _matplotlib() -> tuple[Any, Any]:
    """Import matplotlib's Figure and Agg canvas, or say which extra installs them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "ccr_metrics.plots needs matplotlib; install it with pip install 'ccr-metrics[plots]'"
        ) from exc
    return Figure, FigureCanvasAgg


def _interval_values(intervals: Any) -> Mapping[Any, tuple[float, float, float]]:
    """Accept an ``Intervals``-like object (its ``values``) or a plain mapping."""
    if intervals is None:
        return {}
    # A plain dict has a values() method too, so test for a mapping first.
    values = intervals if isinstance(intervals, Mapping) else getattr(intervals, "values", None)
    if not isinstance(values, Mapping):
        raise InputError(
            "intervals must be a mapping from MetricKey (or names such as 'en/i2t/R@1') to "
            f"(estimate, low, high), or have one as .values; got {type(intervals).__name__}",
            argument="intervals",
        )
    return {MetricKey.of(key): value for key, value in values.items()}


def _recall_bars(
    ax: Any,
    recall: Mapping[str, Mapping[str, Mapping[int, float]]],
    languages: list[str],
    direction: str,
    ks: Sequence[int],
    intervals: Mapping[Any, tuple[float, float, float]],
) -> None:
    """Draw grouped bars, one group per language and one bar per cut-off, CI whiskers if known."""
    x = np.arange(len(languages))
    width = 0.8 / len(ks)
    for i, k in enumerate(ks):
        offset = x + (i - (len(ks) - 1) / 2) * width
        heights = np.array([100 * recall[lang][direction][k] for lang in languages])
        ax.bar(offset, heights, width, label=f"R@{k}")
        for j, lang in enumerate(languages):
            key = MetricKey(lang, direction, "recall", k)
            if key in intervals:
                _, low, high = intervals[key]
                # Whiskers from the interval's own bounds; clipped so a bound on the
                # wrong side of the bar draws no negative length.
                below = max(heights[j] - 100 * low, 0.0)
                above = max(100 * high - heights[j], 0.0)
                ax.errorbar(
                    offset[j], heights[j], yerr=[[below], [above]], fmt="none", ecolor="black"
                )
    _recall_axes(ax, languages, legend_columns=len(ks))


def _recall_axes(ax: Any, languages: list[str], *, legend_columns: int) -> None:
    """Language ticks, a 0-100 % axis with headroom for the legend above the bars."""
    ax.set_xticks(np.arange(len(languages)), languages)
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("recall (%)")
    ax.legend(loc="upper center", ncol=legend_columns, fontsize="small", frameon=False)


def _heatmap(fig: Any, ax: Any, matrix: np.ndarray[Any, Any], languages: list[str]) -> None:
    """Annotated heatmap with language codes on both axes and a colourbar."""
    image = ax.imshow(matrix, cmap="viridis")
    ticks = np.arange(len(languages))
    ax.set_xticks(ticks, languages)
    ax.set_yticks(ticks, languages)
    fig.colorbar(image, ax=ax, label="mean squared rank difference")
    finite = matrix[np.isfinite(matrix)]
    middle = (float(finite.min()) + float(finite.max())) / 2 if finite.size else 0.0
    for i in range(len(languages)):
        for j in range(len(languages)):
            value = matrix[i, j]
            # Dark text on the bright end of viridis, white on the dark end.
            colour = "black" if value > middle else "white"
            ax.text(j, i, _compact(value), ha="center", va="center", color=colour)


def _compact(value: float) -> str:
    """Short cell label: '12.3', '4.5k', 'n/a' for NaN."""
    if np.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.1f}"


def _spreads(report: Report) -> dict[str, np.ndarray[Any, Any]]:
    """Per-image rank std for each direction whose MRV is defined, NaN rows dropped."""
    out = {}
    for direction, value in report.mrv().items():
        if value is None:
            continue
        ranks, mask = report.rank_matrix(direction)
        spread = np.asarray(instance_rank_variance(ranks, reduction="std", mask=mask))
        out[direction] = spread[~np.isnan(spread)]
    return out


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _save(fig: Any, path: str | Path) -> Path:
    target = Path(path)
    fig.savefig(target, format="png", dpi=_DPI)
    return target
