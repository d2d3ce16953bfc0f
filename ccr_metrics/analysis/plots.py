"""Figures of a report: recall per language, where languages disagree, rank spread.

Each function returns a matplotlib ``Figure`` and, given a path, also writes it as a
PNG. matplotlib is optional (``pip install 'ccr-metrics[plots]'``) and imported only
when a function here is called. Figures are drawn on their own Agg canvas, without
pyplot, so plotting changes no global matplotlib state (backend, open figures,
rcParams); in a notebook, show one by leaving it as a cell's last value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._outputs import check_output, open_output
from ..core._validation import InputError
from ..core.consistency import pairwise_disagreement
from ..core.mrv import instance_rank_variance
from .report import Report
from .results import Comparison, MetricKey

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["COMPARISON_SIZE", "REPORT_SIZE", "plot_comparison", "plot_report"]

#: Pixel size ``(width, height)`` of :func:`plot_report`'s PNG.
REPORT_SIZE = (1400, 1500)
#: Pixel size ``(width, height)`` of :func:`plot_comparison`'s PNG.
COMPARISON_SIZE = (1600, 1200)
_DPI = 100
#: The file suffixes a plot can be written to, and the format each names.
PLOT_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_TITLES = {"i2t": "image-to-text", "t2i": "text-to-image"}
# The two models of a comparison: A, then B.
_COLOURS = ("tab:blue", "tab:orange")


def plot_report(report: Report, path: str | Path | None = None, *, intervals: Any = None) -> Figure:
    """Draw a report's recall, pairwise disagreement and rank spread in one figure.

    Three rows, one column per direction: recall per language as grouped bars (one
    bar per cut-off), the mean squared rank difference between each pair of
    languages as an annotated heatmap (:func:`~ccr_metrics.pairwise_disagreement`),
    and a histogram of each image's rank spread across languages (population std, the
    released code's MRV reduction).

    Parameters
    ----------
    report : Report
        The evaluation to draw. Its :attr:`~ccr_metrics.Report.intervals` (as
        :meth:`~ccr_metrics.Report.with_confidence` adds them) are drawn as whiskers
        on the recall bars.
    path : str or pathlib.Path, optional
        Where to write the figure, as PNG (``REPORT_SIZE`` pixels), PDF or SVG by its
        suffix (``.png``, ``.pdf``, ``.svg``). Default: write nothing, only return the
        figure.
    intervals : Intervals, mapping or object with a ``values`` mapping, optional
        Whiskers to draw instead of the report's own intervals: keys
        :class:`~ccr_metrics.MetricKey` or names such as ``"en/i2t/R@1"``,
        values ``(estimate, low, high)`` as fractions. Bars without a key get no
        whisker.

    Returns
    -------
    figure : matplotlib.figure.Figure
        The figure, on its own Agg canvas (``figure.savefig`` works; no pyplot).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``intervals`` is neither a mapping nor has one as ``.values``, or ``path``
        has another suffix, is not a regular file (a directory, a FIFO, a device) or
        cannot be written (checked before anything is drawn).
    OSError
        If writing the figure fails (a full disk); the message names the path.

    Notes
    -----
    Panels of a direction whose MRV is undefined say why (a language without ranks
    in that direction, a single language, or no image with texts in two languages)
    instead of drawing.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ccr_metrics import Report
    >>> report = Report(
    ...     ranks={"en": {"i2t": np.array([1.0, 2.0, 1.0]), "t2i": np.array([1.0, 3.0, 1.0])},
    ...            "de": {"i2t": np.array([1.0, 3.0, 2.0]), "t2i": np.array([2.0, 1.0, 1.0])}},
    ...     text_to_image={"en": np.array([0, 1, 2]), "de": np.array([0, 1, 2])},
    ...     n_images=3, ks=(1, 5),
    ... )
    >>> figure = plot_report(report)
    >>> [ax.get_title() for ax in figure.axes[:2]]
    ['Recall@k per language (image-to-text)', 'Recall@k per language (text-to-image)']
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = plot_report(report, pathlib.Path(tmp) / "report.png")
    ...     (pathlib.Path(tmp) / "report.png").read_bytes()[1:4]
    b'PNG'
    """
    if not isinstance(report, Report):
        raise InputError(
            f"report must be a ccr_metrics.Report, got {type(report).__name__}",
            argument="report",
        )
    _check_path(path)
    figure_cls, canvas_cls = _matplotlib()
    fig = figure_cls(figsize=(REPORT_SIZE[0] / _DPI, REPORT_SIZE[1] / _DPI), dpi=_DPI)
    canvas_cls(fig)
    given = report.intervals if intervals is None else intervals
    values = _interval_values(given)
    whisker = _whisker_label(given)
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
        _recall_bars(bars, recall, languages, direction, report.ks, values, whisker)
        bars.set_title(f"Recall@k per language ({name})")
        if direction not in spreads:
            reason = report.mrv_undefined(direction)
            _empty(heat, f"{name}: {reason}")
            _empty(hist, f"{name}: {reason}")
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
    comparison: Comparison,
    path: str | Path | None = None,
    *,
    reports: tuple[Report, Report] | None = None,
) -> Figure:
    """Draw two models' recall side by side, with the difference intervals, in one figure.

    The top two rows hold one panel per direction and cut-off, with the two models'
    bars next to each other for each language and, on B's bar, the interval of the
    difference B - A. The bottom row overlays the histograms of each image's rank
    spread across languages (population std) of both models, one panel per
    direction; it needs the two reports themselves (``reports``).

    Parameters
    ----------
    comparison : Comparison
        :func:`~ccr_metrics.compare` of two reports; its ``names`` name the models
        (``compare(a, b, names=("base", "new"))``). Recall is read from it: every
        language and cut-off it holds is drawn, in its order.
    path : str or pathlib.Path, optional
        Where to write the figure, as PNG (``COMPARISON_SIZE`` pixels), PDF or SVG by
        its suffix (``.png``, ``.pdf``, ``.svg``). Default: write nothing, only return
        the figure.
    reports : pair of Report, optional
        The two reports compared, ``(report_a, report_b)``, for the rank-spread row.
        Without them that row says how to get it.

    Returns
    -------
    figure : matplotlib.figure.Figure
        The figure, on its own Agg canvas (``figure.savefig`` works; no pyplot).

    Raises
    ------
    ValueError
        If ``comparison`` is not a Comparison (a Report in its place: the order of
        the first release), holds no recall, ``reports`` is not two reports over the
        comparison's ``n_images``, or ``path`` has another suffix, is not a regular file
        or cannot be written (checked before anything is drawn).
    OSError
        If writing the figure fails (a full disk); the message names the path.
    ImportError
        If matplotlib is not installed.

    Notes
    -----
    Each whisker is the comparison's interval of ``B - A`` (paired bootstrap, at the
    comparison's level) added to A's recall, drawn on B's bar: ``A + [low, high]``.
    A whisker that stays clear of A's bar height marks a difference whose interval
    excludes zero. The legend and a caption under the figure say so.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ccr_metrics import Report, compare
    >>> def report(de_ranks):
    ...     ranks = {"en": {"i2t": np.array([1.0, 2.0, 1.0]), "t2i": np.array([1.0, 3.0, 1.0])},
    ...              "de": {"i2t": de_ranks, "t2i": np.array([2.0, 1.0, 1.0])}}
    ...     owners = {"en": np.arange(3), "de": np.arange(3)}
    ...     return Report(ranks=ranks, text_to_image=owners, n_images=3, ks=(1, 5))
    >>> a, b = report(np.array([1.0, 3.0, 2.0])), report(np.array([1.0, 1.0, 2.0]))
    >>> result = compare(a, b, n_resamples=200, n_permutations=200, names=("base", "new"))
    >>> figure = plot_comparison(result, reports=(a, b))
    >>> figure.axes[0].get_title()
    'R@1 (image-to-text)'
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = plot_comparison(result, pathlib.Path(tmp) / "compare.png", reports=(a, b))
    ...     (pathlib.Path(tmp) / "compare.png").stat().st_size > 0
    True
    """
    languages, ks = _comparison_layout(comparison, reports)
    _check_path(path)
    figure_cls, canvas_cls = _matplotlib()
    fig = figure_cls(figsize=(COMPARISON_SIZE[0] / _DPI, COMPARISON_SIZE[1] / _DPI), dpi=_DPI)
    canvas_cls(fig)
    grid = fig.add_gridspec(3, 2 * len(ks))
    names = comparison.names
    for row, direction in enumerate(("i2t", "t2i")):
        for column, k in enumerate(ks):
            ax = fig.add_subplot(grid[row, 2 * column : 2 * column + 2])
            _difference_bars(ax, comparison, languages, direction, k)
    for column, direction in enumerate(("i2t", "t2i")):
        ax = fig.add_subplot(grid[2, column * len(ks) : (column + 1) * len(ks)])
        _spread_overlay(ax, names, reports, direction)
    fig.suptitle(f"{names[0]} vs {names[1]}: languages {', '.join(languages)}")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.text(
        0.5,
        0.008,
        f"Whiskers: the paired-bootstrap {100 * comparison.ci:g}% interval of {names[1]} - "
        f"{names[0]} ({comparison.method}), added to {names[0]}'s recall and drawn on "
        f"{names[1]}'s bar; a whisker clear of {names[0]}'s bar height excludes zero.",
        ha="center",
        va="bottom",
        fontsize="small",
    )
    return _save(fig, path)


def _comparison_layout(
    comparison: Comparison, reports: tuple[Report, Report] | None
) -> tuple[list[str], list[int]]:
    """Check :func:`plot_comparison`'s inputs; return the languages and cut-offs drawn."""
    if not isinstance(comparison, Comparison):
        hint = (
            "; compare them first: plot_comparison(compare(report_a, report_b), "
            "reports=(report_a, report_b))"
            if isinstance(comparison, Report)
            else ""
        )
        raise InputError(
            f"comparison must be a Comparison, got {type(comparison).__name__}{hint}",
            argument="comparison",
        )
    recall_keys = [
        key for key in comparison.values if key.metric == "recall" and key.language != "average"
    ]
    if not recall_keys:
        raise InputError("comparison holds no recall to draw", argument="comparison")
    if reports is not None and (
        len(reports) != 2
        or not all(isinstance(r, Report) and r.n_images == comparison.n_images for r in reports)
    ):
        raise InputError(
            f"reports must be the two reports compared, over {comparison.n_images} images",
            argument="reports",
        )
    languages = list(dict.fromkeys(str(key.language) for key in recall_keys))
    ks = list(dict.fromkeys(int(key.k or 0) for key in recall_keys))
    return languages, ks


def _difference_bars(
    ax: Any, comparison: Comparison, languages: list[str], direction: str, k: int
) -> None:
    """One panel of :func:`plot_comparison`: both models' R@k, B's whisker the difference's."""
    ax.set_title(f"R@{k} ({_TITLES[direction]})")
    found = {
        lang: comparison.values[key]
        for lang in languages
        if (key := MetricKey(lang, direction, "recall", k)) in comparison.values
    }
    if not found:
        _empty(ax, f"no {_TITLES[direction]} recall in the comparison")
        return
    x = np.arange(len(languages))
    for i, name in enumerate(comparison.names):
        heights = [
            100 * (found[lang].a if i == 0 else found[lang].b) if lang in found else np.nan
            for lang in languages
        ]
        ax.bar(x + (i - 0.5) * 0.4, heights, 0.4, label=name, color=_COLOURS[i])
    label = f"{comparison.names[1]} - {comparison.names[0]}, {100 * comparison.ci:g}% CI"
    for j, lang in enumerate(languages):
        if lang not in found:
            continue
        d = found[lang]
        # B's plausible range given A's recall and the difference interval.
        ax.errorbar(
            x[j] + 0.2,
            100 * (d.a + (d.low + d.high) / 2),
            yerr=100 * (d.high - d.low) / 2,
            fmt="none",
            ecolor="black",
            capsize=3,
            label=label,
        )
        label = "_nolegend_"  # one legend entry per panel
    _recall_axes(ax, languages, legend_columns=3)


def _spread_overlay(
    ax: Any, names: tuple[str, str], reports: tuple[Report, Report] | None, direction: str
) -> None:
    """One panel of :func:`plot_comparison`: both models' rank-spread histograms."""
    ax.set_title(f"Rank spread across languages (std, {_TITLES[direction]})")
    if reports is None:
        _empty(ax, "rank spreads need the reports: plot_comparison(..., reports=(a, b))")
        return
    spreads = [(name, _spreads(r)) for name, r in zip(names, reports, strict=True)]
    found = [(name, s[direction]) for name, s in spreads if direction in s]
    if not found:
        _empty(ax, f"MRV: {reports[0].mrv_undefined(direction)}")
        return
    top = max(float(s.max()) for _, s in found)
    bins = np.linspace(0.0, max(top, 1.0), 31)
    for (name, spread), colour in zip(found, _COLOURS, strict=False):
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


def _matplotlib() -> tuple[Any, Any]:
    """Import matplotlib's Figure and Agg canvas, or say which extra installs them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plotting needs matplotlib; install it with pip install 'ccr-metrics[plots]'"
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


def _whisker_label(intervals: Any) -> str:
    """Legend text of the recall whiskers: the level and method when the intervals say."""
    ci, method = getattr(intervals, "ci", None), getattr(intervals, "method", None)
    if ci is None:
        return "interval"
    return f"{100 * ci:g}% {method} bootstrap CI"


def _recall_bars(
    ax: Any,
    recall: Mapping[str, Mapping[str, Mapping[int, float]]],
    languages: list[str],
    direction: str,
    ks: Sequence[int],
    intervals: Mapping[Any, tuple[float, float, float]],
    whisker: str,
) -> None:
    """Draw grouped bars, one group per language and one bar per cut-off, CI whiskers if known."""
    x = np.arange(len(languages))
    width = 0.8 / len(ks)
    drawn = []
    for i, k in enumerate(ks):
        offset = x + (i - (len(ks) - 1) / 2) * width
        heights = np.array([100 * recall[lang][direction][k] for lang in languages])
        ax.bar(offset, heights, width, label=f"R@{k}")
        drawn.append((k, offset, heights))
    # Whiskers after every bar, so that their legend entry comes last.
    for k, offset, heights in drawn:
        for j, lang in enumerate(languages):
            key = MetricKey(lang, direction, "recall", k)
            if key in intervals:
                _, low, high = intervals[key]
                # Whiskers from the interval's own bounds; clipped so a bound on the
                # wrong side of the bar draws no negative length.
                below = max(heights[j] - 100 * low, 0.0)
                above = max(100 * high - heights[j], 0.0)
                ax.errorbar(
                    offset[j],
                    heights[j],
                    yerr=[[below], [above]],
                    fmt="none",
                    ecolor="black",
                    label=whisker,
                )
                whisker = "_nolegend_"  # one legend entry per panel
    _recall_axes(ax, languages, legend_columns=len(ks) + 1)


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


def plot_format(path: str | Path) -> str:
    """Return the image format ``path`` names by its suffix, or refuse an unknown one."""
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise InputError(
            f"{str(path)!r}: a plot is written as {', '.join(PLOT_FORMATS)} (by its suffix), "
            f"not {suffix or 'a file without a suffix'}",
            argument="path",
        )
    return PLOT_FORMATS[suffix]


def _check_path(path: str | Path | None) -> None:
    """Refuse an output path before anything is drawn: its suffix, or not a file."""
    if path is not None:
        plot_format(path)
        check_output(path, argument="path")


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        with open_output(path, argument="path") as handle:
            fig.savefig(handle, format=plot_format(path), dpi=_DPI)
    return fig
