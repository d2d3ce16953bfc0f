"""The consistency breakdown of a report: every measure of where languages disagree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from .._progress import progress_bar
from ..core._validation import check_choice, check_positive_int
from ..core.consistency import (
    consistency_at_k,
    largest_spread,
    pairwise_disagreement,
    recall_spread,
)
from ..core.mrv import REDUCTIONS, Reduction
from .report import Report
from .results import KeyedResult, MetricKey, describe, json_float

# pandas is imported where a frame is built, so that `import ccr_metrics` does not pay for it.
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Breakdown", "consistency_breakdown"]


@dataclass(frozen=True)
class Breakdown(KeyedResult):
    """The consistency measures of one report, as :func:`consistency_breakdown` makes them.

    Its numbers are named by :class:`~ccr_metrics.MetricKey`, like a report's:

    - ``i2t/recall_range@1`` and ``i2t/recall_std@1``: the spread of R@1 over the
      languages (global inconsistency);
    - ``i2t/consistent_all@1``, ``..._some@1``, ``..._none@1``: the fractions of images
      found at the cut-off in all, some or none of their languages;
    - ``i2t/instances``: the images ranked in two or more languages;
    - ``en-de/i2t/msd`` and ``en-de/i2t/spearman``: the disagreement of a language pair.

    Parameters
    ----------
    languages : list of str
        The report's languages.
    k, top, reduction
        The options it was made with.
    directions : mapping
        Per direction, the JSON form of its measures (see :func:`consistency_breakdown`).
    """

    languages: list[str]
    k: int
    top: int
    reduction: str
    directions: Mapping[str, Mapping[str, Any]]

    @cached_property
    def _metrics(self) -> dict[MetricKey, float]:
        out: dict[MetricKey, float] = {}
        for d, entry in self.directions.items():
            for cut, spread in entry["recall_spread"].items():
                for part in ("range", "std"):
                    out[MetricKey(None, d, f"recall_{part}", int(cut))] = spread[part]
            if entry["consistency"] is None:
                continue
            out[MetricKey(None, d, "instances")] = float(entry["instances"])
            for part, value in entry["consistency"].items():
                out[MetricKey(None, d, f"consistent_{part}", self.k)] = value
            for i, a in enumerate(self.languages):
                for b in self.languages[i + 1 :]:
                    for measure in ("msd", "spearman"):
                        value = entry[measure][a][b]
                        if value is not None:
                            out[MetricKey(f"{a}-{b}", d, measure)] = value
        return out

    def _entries(self) -> Mapping[MetricKey, float]:
        return self._metrics

    def metrics(self) -> dict[MetricKey, float]:
        """Every number by key."""
        return dict(self._metrics)

    def to_flat_dict(self) -> dict[str, float]:
        """Every number by flat name, ``{"i2t/consistent_all@1": 0.6, ...}``, for a logger."""
        return {key.name: value for key, value in self._metrics.items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per number: name, metric, language, direction, k and value."""
        import pandas as pd

        rows = [
            {"name": key.name, **describe(key), "value": value}
            for key, value in self._metrics.items()
        ]
        frame = pd.DataFrame(
            rows, columns=["name", "metric", "language", "direction", "k", "reduction", "value"]
        )
        frame["k"] = frame["k"].astype("Int64")
        return frame.drop(columns="reduction")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: ``{"languages", "k", "top", "reduction", "directions"}``."""
        return {
            "languages": list(self.languages),
            "k": self.k,
            "top": self.top,
            "reduction": self.reduction,
            "directions": {d: dict(entry) for d, entry in self.directions.items()},
        }


def consistency_breakdown(
    report: Report,
    *,
    k: int = 1,
    top: int = 10,
    reduction: Reduction = "std",
    progress: bool = False,
) -> Breakdown:
    """Every consistency measure of a report, per direction, languages named.

    Parameters
    ----------
    report : Report
        An evaluation, as :func:`~ccr_metrics.evaluate` returns it.
    k : int, default 1
        The cut-off of :func:`~ccr_metrics.consistency_at_k`;
        :func:`~ccr_metrics.recall_spread` is given at each of ``report.ks``.
    top : int, default 10
        How many instances :func:`~ccr_metrics.largest_spread` lists.
    reduction : {"variance", "std"}, default "std"
        The spread used to pick those instances.
    progress : bool, default False
        Show a progress bar over the directions (tqdm, on stderr).

    Returns
    -------
    breakdown : Breakdown
        Its numbers by :class:`~ccr_metrics.MetricKey` (iterate it, index it by key or
        flat name, :meth:`Breakdown.to_flat_dict`), and :meth:`Breakdown.to_dict`, the
        JSON form (NaN written as None)::

            {"languages": [...], "k": k, "top": top, "reduction": reduction,
             "directions": {dir: {
                 "recall_spread": {"1": recall_spread(...), ...},
                 "instances": images ranked in two or more languages,
                 "consistency": consistency_at_k(...),
                 "msd": {lang: {lang: float}}, "spearman": {lang: {lang: float}},
                 "largest_spread": [{"instance": i, "spread": s,
                                     "ranks": {lang: rank}}, ...]}}}

        The rank-based entries (from ``"instances"`` on) are None for a direction
        whose MRV is None in :meth:`Report.mrv`: fewer than two languages carry it
        (or not all of them do), or no image has a text in two.

    Raises
    ------
    ValueError
        If ``k`` or ``top`` is not a positive integer or ``reduction`` is unknown.

    Notes
    -----
    Ranks are one per (image, language), from :meth:`Report.rank_matrix`, so
    text-to-image ranks of several captions are reduced with the report's
    ``caption_reduction`` setting.

    Examples
    --------
    >>> import numpy as np
    >>> from ccr_metrics import Report
    >>> report = Report(
    ...     ranks={"en": {"i2t": np.array([1.0, 2.0, 1.0]), "t2i": np.array([1.0, 3.0, 1.0])},
    ...            "de": {"i2t": np.array([1.0, 4.0, 2.0]), "t2i": np.array([2.0, 1.0, 1.0, 1.0])}},
    ...     text_to_image={"en": np.array([0, 1, 2]), "de": np.array([0, 1, 1, 2])},
    ...     n_images=3, ks=(1, 5),
    ... )
    >>> out = consistency_breakdown(report, top=1)
    >>> out["i2t/consistent_all@1"], out["en-de/i2t/msd"]
    (0.3333, 1.6667)
    >>> summary = out.to_dict()
    >>> summary["directions"]["i2t"]["largest_spread"]
    [{'instance': 1, 'spread': 1.0, 'ranks': {'en': 2.0, 'de': 4.0}}]
    >>> summary["directions"]["t2i"]["recall_spread"]["1"]
    {'range': 0.0833, 'std': 0.0417, 'best': 'de', 'worst': 'en'}
    """
    top = check_positive_int("top", top)
    k = check_positive_int("k", k)
    check_choice("reduction", reduction, REDUCTIONS)
    recall = report.recall()
    mrv = report.mrv()
    directions: dict[str, Any] = {}
    bar_args = {"desc": "breakdown", "unit": "direction"}
    with progress_bar(progress, len(report.directions), **bar_args) as bar:
        for direction in report.directions:
            carrying = [lang for lang in report.languages if direction in recall[lang]]
            entry: dict[str, Any] = {
                "recall_spread": {
                    str(cut): recall_spread(
                        {lang: recall[lang][direction][cut] for lang in carrying}
                    )
                    for cut in report.ks
                }
            }
            rank_based = ("instances", "consistency", "msd", "spearman", "largest_spread")
            if mrv[direction] is None:
                entry.update(dict.fromkeys(rank_based))
            else:
                ranks, mask = report.rank_matrix(direction)
                msd, rho = pairwise_disagreement(ranks, mask=mask)
                frame = largest_spread(
                    ranks, mask=mask, top=top, reduction=reduction, languages=report.languages
                )
                entry.update(
                    instances=int((mask.sum(1) >= 2).sum()),
                    consistency=consistency_at_k(ranks, k, mask=mask),
                    msd=_named_matrix(np.asarray(msd), report.languages),
                    spearman=_named_matrix(np.asarray(rho), report.languages),
                    largest_spread=[
                        {
                            "instance": int(row["instance"]),
                            "spread": float(row["spread"]),
                            "ranks": {lang: json_float(row[lang]) for lang in report.languages},
                        }
                        for _, row in frame.iterrows()
                    ],
                )
            directions[direction] = entry
            bar.update()
    return Breakdown(
        languages=list(report.languages),
        k=int(k),
        top=int(top),
        reduction=reduction,
        directions=directions,
    )


def _named_matrix(matrix: np.ndarray[Any, Any], languages: Sequence[str]) -> dict[str, Any]:
    return {
        a: {b: json_float(matrix[i, j]) for j, b in enumerate(languages)}
        for i, a in enumerate(languages)
    }
