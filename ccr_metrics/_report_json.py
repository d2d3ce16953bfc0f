"""The saved form of a report: a JSON document, written and read back field by field.

Format 2 (written since rank counts are kept) holds everything ``Report.to_dict()``
gives, plus what the report is made of: ``counts`` (per language and direction, the
three count arrays), ``ranks``, ``text_to_image``, and, when the report has intervals,
``confidence`` (the options that drew them) beside the intervals themselves. Format 1
held ranks only; it is read as such. Derived numbers are never recomputed on reading:
intervals come back as they were saved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import InputError
from .results import Interval, Intervals, MetricKey
from .ties import RankCounts

FORMAT = "ccr-metrics-report/2"
# Reports saved before counts were kept: ranks only, read as such.
FORMAT_RANKS_ONLY = "ccr-metrics-report/1"


def payload(
    summary: Mapping[str, Any],
    ranks: Mapping[str, Mapping[str, np.ndarray[Any, Any]]],
    text_to_image: Mapping[str, np.ndarray[Any, Any]],
    counts: Mapping[str, Mapping[str, RankCounts]] | None,
    intervals: Intervals | None,
) -> dict[str, Any]:
    """Build the JSON document of a report from its parts and its ``to_dict()`` summary."""
    out: dict[str, Any] = {
        "format": FORMAT,
        **summary,
        "text_to_image": {lang: np.asarray(v).tolist() for lang, v in text_to_image.items()},
        "ranks": {
            lang: {d: [None if math.isnan(x) else x for x in r.tolist()] for d, r in dirs.items()}
            for lang, dirs in ranks.items()
        },
    }
    if intervals is not None:
        out["confidence"] = intervals.options()
        out["interval_values"] = {
            key.name: [_number(v) for v in value] for key, value in intervals.values.items()
        }
    if counts is not None:
        out["counts"] = {
            lang: {
                d: {
                    name: np.asarray(getattr(c, name)).tolist()
                    for name in ("above", "tied_negatives", "tied_positives")
                }
                for d, c in dirs.items()
            }
            for lang, dirs in counts.items()
        }
    return out


def write(path: str | Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as JSON (NaN refused: every undefined number is null)."""
    Path(path).write_text(json.dumps(document, allow_nan=False))


def read(path: str | Path) -> dict[str, Any]:
    """Read the fields a Report is built from out of a saved report.

    Returns ``{"counts" or "ranks", "text_to_image", "n_images", "ks", "settings",
    "intervals"}``: ``counts`` for format 2, ``ranks`` for format 1.

    Raises
    ------
    InputError
        If the file is not JSON or not a ccr-metrics report, or a field is malformed.
    """
    try:
        document = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a JSON report: {exc}", argument=str(path)) from None
    if not isinstance(document, dict) or document.get("format") not in (FORMAT, FORMAT_RANKS_ONLY):
        raise InputError(
            f"{path} is not a ccr-metrics report (format {FORMAT!r})", argument=str(path)
        )
    try:
        settings = dict(document["settings"])
        if "caption_reduce" in settings:  # the setting's name in reports of format 1
            settings["caption_reduction"] = settings.pop("caption_reduce")
        fields: dict[str, Any] = {
            "ks": tuple(int(k) for k in settings.pop("ks")),
            "settings": settings,
            "n_images": int(document["n_images"]),
            "text_to_image": {
                lang: np.asarray(v, dtype=np.int64) for lang, v in document["text_to_image"].items()
            },
            "intervals": _intervals(document),
        }
        if "counts" in document:
            fields["counts"] = {
                lang: {
                    d: RankCounts(
                        *(
                            np.asarray(c[name], dtype=np.int64)
                            for name in ("above", "tied_negatives", "tied_positives")
                        )
                    )
                    for d, c in dirs.items()
                }
                for lang, dirs in document["counts"].items()
            }
        else:
            fields["ranks"] = {
                lang: {
                    d: np.asarray([math.nan if x is None else x for x in r], dtype=np.float64)
                    for d, r in dirs.items()
                }
                for lang, dirs in document["ranks"].items()
            }
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{path} is a malformed ccr-metrics report: {exc!r}", argument=str(path)
        ) from None
    return fields


def _intervals(document: Mapping[str, Any]) -> Intervals | None:
    """Return the saved intervals as they were (never drawn again)."""
    if "confidence" not in document:
        return None
    options = dict(document["confidence"])
    values = {
        MetricKey.parse(name): Interval(*(math.nan if v is None else float(v) for v in value))
        for name, value in document["interval_values"].items()
    }
    return Intervals(
        ci=float(options["ci"]),
        method=str(options["method"]),
        n_resamples=int(options["n_resamples"]),
        seed=options["seed"],
        values=values,
    )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
