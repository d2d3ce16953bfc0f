"""A report's numbers as a dict, a data frame and the paper's text table.

The formatting of :class:`~ccr_metrics.Report`, beside the data rather than inside it:
:meth:`~ccr_metrics.Report.to_dict`, :meth:`~ccr_metrics.Report.to_frame` and
:meth:`~ccr_metrics.Report.to_table` call :func:`summary`, :func:`frame` and
:func:`table`, which read the report through its public API (:class:`ReportView`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._report_view import ReportView
from .results import MetricKey

# pandas is imported where a frame is built, so that `import ccr_metrics` does not pay for it.
if TYPE_CHECKING:
    import pandas as pd

#: Widest line of :meth:`~ccr_metrics.Report.to_table`'s recall table, in characters;
#: wider tables (intervals on) are split by direction.
TABLE_WIDTH = 119

# A number as the table shows it, with its interval if the report has one.
Cell = Callable[..., str]


def summary(report: ReportView) -> dict[str, Any]:
    """Return :meth:`~ccr_metrics.Report.to_dict`: JSON-serialisable, recall as fractions."""
    recall = report.recall_table()
    ranks = report.rank_summary()

    def keyed(by_k: Mapping[int, float]) -> dict[str, float]:
        return {str(k): v for k, v in by_k.items()}

    average: dict[str, Any] = {d: keyed(v) for d, v in recall["average"]["recall"].items()}
    average["mean_recall"] = recall["average"]["mean_recall"]
    return {
        "languages": report.languages,
        "recall": {
            lang: {d: keyed(by_k) for d, by_k in dirs.items()}
            for lang, dirs in recall["recall"].items()
        },
        "mean_recall": recall["mean_recall"],
        "average": average,
        "mrv": report.mrv(),
        "mrv_images": report.mrv_image_counts(),
        "mean_rank": {
            lang: {d: v["mean"] for d, v in dirs.items()} for lang, dirs in ranks.items()
        },
        "median_rank": {
            lang: {d: v["median"] for d, v in dirs.items()} for lang, dirs in ranks.items()
        },
        "n_images": report.n_images,
        "n_texts": {lang: len(report.text_to_image[lang]) for lang in report.languages},
        "settings": {**report.settings, "ks": list(report.ks)},
        **({"intervals": report.intervals.to_dict()} if report.intervals is not None else {}),
    }


def frame(report: ReportView) -> pd.DataFrame:
    """Return :meth:`~ccr_metrics.Report.to_frame`: a row per language x direction."""
    import pandas as pd

    recall = report.recall_table()
    ranks = report.rank_summary()
    rows = []
    for lang, dirs in recall["recall"].items():
        for d, by_k in dirs.items():
            rows.append(
                {
                    "language": lang,
                    "direction": d,
                    **_rk(by_k),
                    "mean_rank": ranks[lang][d]["mean"],
                    "median_rank": ranks[lang][d]["median"],
                    "queries": len(report.query_ranks(lang, d)),
                }
            )
    for d, by_k in recall["average"]["recall"].items():
        rows.append(
            {
                "language": "average",
                "direction": d,
                **_rk(by_k),
                "mean_rank": math.nan,
                "median_rank": math.nan,
                "queries": None,
            }
        )
    out = pd.DataFrame(rows)
    out["queries"] = out["queries"].astype("Int64")  # NA on the average rows
    return out


def table(report: ReportView, *, mrv_over: str) -> str:
    """Return :meth:`~ccr_metrics.Report.to_table`; ``mrv_over`` ends the MRV heading."""
    intervals = report.intervals

    def cell(value: float, key: MetricKey, scale: float = 100.0) -> str:
        text = f"{scale * value:.2f}"
        if intervals is not None and key in intervals.values:
            _, low, high = intervals.values[key]
            text += f" [{scale * low:.2f}, {scale * high:.2f}]"
        return text

    n_languages = len(report.languages)
    lines = [
        _title(report),
        _recall_text(report, cell),
        "",
        "Rank of the correct item (1-based; median floored as open_clip's):",
        rank_frame(report).to_string(na_rep="-"),
        "",
        f"Mean Rank Variance over {n_languages} "
        f"{'language' if n_languages == 1 else 'languages'}{mrv_over}",
        "(variance = paper Eq. 7; std = the released code's number):",
    ]
    for direction, values in report.mrv().items():
        if values is None:
            lines.append(f"  {direction}: {report.mrv_undefined(direction)}")
        else:
            variance = cell(values["variance"], MetricKey(None, direction, "mrv_variance"), 1.0)
            std = cell(values["std"], MetricKey(None, direction, "mrv_std"), 1.0)
            lines.append(f"  {direction}: variance {variance}   std {std}")
    shown = ("languages", "galleries", "mrv_images")  # said above
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items() if k not in shown)
    if settings:
        lines.append(f"settings: {settings}")
    return "\n".join(lines)


def _title(report: ReportView) -> str:
    """Return the table's first line: images, languages, galleries and intervals."""
    title = f"Recall (%): {report.n_images} images, languages {', '.join(report.languages)}"
    galleries = report.settings.get("galleries")
    if isinstance(galleries, Mapping):
        sizes = ", ".join(f"{lang} {size}" for lang, size in galleries.items())
        title += f"; per-language galleries ({sizes} images)"
    if report.intervals is not None:
        title += (
            f"; {report.intervals.ci:.0%} {report.intervals.method} bootstrap intervals "
            f"over images ({report.intervals.n_resamples} resamples)"
        )
    return title


def _recall_text(report: ReportView, cell: Cell) -> str:
    """Return the recall table: percentages per language and the average, split if wide."""
    import pandas as pd

    recall = report.recall_table()
    columns = [f"{d} R@{k}" for d in report.directions for k in report.ks]
    rows: dict[str, dict[str, str]] = {}
    for lang, dirs in recall["recall"].items():
        rows[lang] = {
            f"{d} R@{k}": cell(v, MetricKey(lang, d, "recall", k))
            for d, by_k in dirs.items()
            for k, v in by_k.items()
        }
        rows[lang]["mean recall"] = cell(
            recall["mean_recall"][lang], MetricKey(lang, None, "mean_recall")
        )
    rows["average"] = {
        f"{d} R@{k}": cell(v, MetricKey("average", d, "recall", k))
        for d, by_k in recall["average"]["recall"].items()
        for k, v in by_k.items()
    }
    rows["average"]["mean recall"] = cell(
        recall["average"]["mean_recall"], MetricKey("average", None, "mean_recall")
    )
    recall_frame = pd.DataFrame(rows).T.reindex(columns=[*columns, "mean recall"])
    text: str = recall_frame.to_string(na_rep="-")
    if max(len(line) for line in text.splitlines()) > TABLE_WIDTH:
        # One table per direction (mean recall with the last) keeps a terminal's rows
        # unwrapped; pandas wraps a block that is still too wide.
        groups = [[c for c in columns if c.startswith(d)] for d in report.directions]
        groups[-1].append("mean recall")
        text = "\n\n".join(
            recall_frame[group].to_string(na_rep="-", line_width=TABLE_WIDTH) for group in groups
        )
    return text


def rank_frame(report: ReportView) -> pd.DataFrame:
    """Tabulate queries, mean and median rank per language (rows) and direction."""
    import pandas as pd

    rows: dict[str, dict[str, str]] = {}
    for lang, dirs in report.rank_summary().items():
        rows[lang] = {}
        for d, values in dirs.items():
            rows[lang][f"{d} queries"] = str(len(report.query_ranks(lang, d)))
            rows[lang][f"{d} mean"] = f"{values['mean']:.2f}"
            rows[lang][f"{d} median"] = f"{values['median']:.0f}"
    columns = [f"{d} {c}" for d in report.directions for c in ("queries", "mean", "median")]
    return pd.DataFrame(rows).T.reindex(columns=columns)


def _rk(by_k: Mapping[int, float]) -> dict[str, float]:
    return {f"R@{k}": v for k, v in by_k.items()}
