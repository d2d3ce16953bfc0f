"""The result of an evaluation: per-query rank counts, and every number derived from them.

A :class:`Report` keeps the rank counts (or, when built by hand, the ranks) and the
text-to-image index; recall, mean recall, averages, mean and median rank and MRV are
computed from them on demand, so later analyses never rank twice and a saved report can
be re-analysed under another tie policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..core._validation import (
    InputError,
    check_choice,
    check_positive_int,
    check_seed,
    cutoff_as_float,
)
from ..core.mrv import REDUCTIONS, mean_rank_variance, ranks_per_image
from ..core.recall import DIRECTIONS, multilingual_recall
from ..core.ties import DEFAULT_TIES, TIES, RankCounts, Ties
from . import _bootstrap, _report_checks, _report_format, _report_json, _report_ratios
from ._bootstrap import Method
from .results import Interval, Intervals, KeyedResult, MetricKey

# pandas is imported where a frame is built, so that `import ccr_metrics` does not pay for it.
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Report", "bootstrap_intervals"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Report(KeyedResult):
    """Ranks of a multilingual evaluation and the paper's numbers computed from them.

    Every number has a :class:`~ccr_metrics.MetricKey`: iterating a report gives the
    keys, ``report["en/i2t/R@1"]`` (or ``report[key]``) the number, and
    :meth:`to_flat_dict` all of them by flat name, for a logger.

    Made by :func:`~ccr_metrics.evaluate` and :func:`~ccr_metrics.evaluate_scores`
    through :meth:`from_counts`; rarely built by hand.

    Parameters
    ----------
    ranks : mapping
        ``{language: {"i2t": [N], "t2i": [M_l]}}`` float64 1-based ranks. An ``i2t``
        entry is NaN for an image without a caption in that language (it is no query
        there). A language may carry one direction only. With ``counts``, these are
        ``counts.ranks(settings["ties"])``.
    text_to_image : mapping
        ``{language: [M_l]}`` int64: the image of each text.
    n_images : int
        ``N``.
    ks : tuple of int, default (1, 5, 10)
        The recall cut-offs reported.
    settings : mapping, optional
        How the ranks were made (ties, caption_reduction, ...); recorded in outputs.
        ``caption_reduction`` decides how text-to-image MRV reduces several captions,
        ``mrv_images`` (``"two"``, the default, or ``"all"``) which images MRV is over;
        ``galleries`` (``{language: images}``, the harness's per-language gallery
        sizes) is shown by :meth:`to_table`.
    intervals : Intervals, optional
        Bootstrap confidence intervals of every number, as :meth:`with_confidence`
        adds them; shown by :meth:`to_table` and included by :meth:`to_dict`.
    counts : mapping, optional
        ``{language: {direction: RankCounts}}`` (numpy) of the same queries, as
        :meth:`from_counts` keeps them: with them, recall follows the tie policy
        ``settings["ties"]`` exactly (``"expected"``: the expected recall), and
        :meth:`with_ties` re-reads the report under another policy. Without them
        (ranks given by hand) recall is read off the ranks.

    Raises
    ------
    InputError
        If the parts do not fit together; the message names the field and the first
        offending position, e.g. ``ranks.en.i2t: 4 values, expected 10 (n_images)``.
        Checked: ``n_images`` a positive integer; ``ks`` distinct positive integers;
        ``settings`` a mapping with a known ``ties``, ``caption_reduction`` and
        ``mrv_images``, ``galleries`` (if any) positive counts by language; the same
        languages in ``ranks``, ``text_to_image`` and ``counts``, each with directions
        ``"i2t"`` and/or ``"t2i"``; ``text_to_image`` 1-D integers in ``[0, N)``, at
        least one per language; ranks 1-D, ``N`` of them for ``i2t`` and ``M_l`` for
        ``t2i``, in ``[1, gallery size]``, NaN exactly at the images without a text;
        counts as long as the ranks, a positive count exactly at the queries, no more
        items counted than the gallery holds, and giving the ranks under
        ``settings["ties"]``; every interval naming a number of the report, with that
        number as its estimate.

    Examples
    --------
    >>> import numpy as np
    >>> report = Report(
    ...     ranks={"en": {"i2t": np.array([1.0, 2.0]), "t2i": np.array([1.0, 2.0])},
    ...            "de": {"i2t": np.array([1.0, 4.0]), "t2i": np.array([2.0, 1.0, 1.0, 1.0])}},
    ...     text_to_image={"en": np.array([0, 1]), "de": np.array([0, 1, 1, 1])},
    ...     n_images=2, ks=(1, 5), settings={"caption_reduction": "first"},
    ... )
    >>> report.recall()["en"]
    {'i2t': {1: 0.5, 5: 1.0}, 't2i': {1: 0.5, 5: 1.0}}
    >>> report.mrv()["i2t"]
    {'variance': 0.5, 'std': 0.5}
    """

    ranks: Mapping[str, Mapping[str, FloatArray]]
    text_to_image: Mapping[str, IntArray]
    n_images: int
    ks: tuple[int, ...] = (1, 5, 10)
    settings: Mapping[str, Any] = field(default_factory=dict)
    intervals: Intervals | None = None
    counts: Mapping[str, Mapping[str, RankCounts]] | None = None

    def __post_init__(self) -> None:
        parts = _report_checks.check_parts(
            self.ranks, self.text_to_image, self.n_images, self.ks, self.settings, self.counts
        )
        # Checked parts come back as numpy arrays and a tuple of ints: stored as such.
        for name, value in parts._asdict().items():
            object.__setattr__(self, name, value)
        if self.intervals is not None:
            _report_checks.check_intervals(self.intervals, self._metrics)

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, Mapping[str, RankCounts]],
        text_to_image: Mapping[str, IntArray],
        n_images: int,
        ks: tuple[int, ...] = (1, 5, 10),
        settings: Mapping[str, Any] | None = None,
    ) -> Report:
        """Build a report from rank counts; ``settings["ties"]`` (default "expected") applies.

        ``counts[language]["i2t"]`` has one entry per image; an image without a caption
        in the language has zero counts (no positive) and is no query there.

        Examples
        --------
        >>> import numpy as np
        >>> from ccr_metrics import rank_counts
        >>> scores = np.zeros((2, 2))                  # a collapsed model
        >>> counts = {"en": {"i2t": rank_counts(scores, [0, 1]),
        ...                  "t2i": rank_counts(scores.T, [0, 1])}}
        >>> report = Report.from_counts(counts, {"en": np.arange(2)}, n_images=2, ks=(1,))
        >>> report.recall()["en"]["i2t"], report.with_ties("optimistic").recall()["en"]["i2t"]
        ({1: 0.5}, {1: 1.0})
        """
        # The tie policy and the counts' layout are checked before ranks are made of
        # them; the rest is checked as for any report.
        settings = {"ties": DEFAULT_TIES, **_report_checks.check_settings(settings or {}, True)}
        ties = settings["ties"]
        ranks = {
            lang: {
                d: np.where(np.isinf(r := np.asarray(c.ranks(ties), dtype=np.float64)), np.nan, r)
                for d, c in by_dir.items()
            }
            for lang, by_dir in _report_checks.check_counts_layout(counts).items()
        }
        return cls(ranks, text_to_image, n_images, ks, settings, None, counts)

    @property
    def ties(self) -> Ties | None:
        """The tie policy the numbers follow; None for hand-made ranks that name none."""
        ties: Ties | None = self.settings.get("ties")
        return ties

    def with_ties(self, ties: Ties) -> Report:
        """Return the same evaluation read under another tie policy (needs the rank counts).

        Raises
        ------
        ValueError
            If ``ties`` is not a valid choice or the report keeps ranks only.
        """
        if self.counts is None:
            raise InputError(
                "with_ties needs the rank counts; this report keeps ranks only",
                argument="with_ties",
            )
        check_choice("ties", ties, TIES)
        return Report.from_counts(
            self.counts, self.text_to_image, self.n_images, self.ks, {**self.settings, "ties": ties}
        )

    @property
    def languages(self) -> list[str]:
        """The evaluated languages, in order."""
        return list(self.ranks)

    @property
    def directions(self) -> list[str]:
        """The directions present for at least one language ("i2t", "t2i")."""
        return [d for d in DIRECTIONS if any(d in by_dir for by_dir in self.ranks.values())]

    def has_caption(self, language: str) -> npt.NDArray[np.bool_]:
        """Which images have at least one text in ``language``, ``[N]`` bool."""
        counts = np.bincount(self.text_to_image[language], minlength=self.n_images)
        return np.asarray(counts > 0)

    def _check_entry(self, language: str, direction: str) -> None:
        """Refuse a language or direction the report does not hold, naming what it has."""
        if language not in self.ranks:
            raise InputError(
                f"language {language!r} is not in this report; it has "
                f"{', '.join(map(repr, self.ranks))}",
                argument="language",
            )
        if direction not in self.ranks[language]:
            raise InputError(
                f"direction {direction!r} is not in this report for {language!r}; it has "
                f"{', '.join(map(repr, self.ranks[language]))}",
                argument="direction",
            )

    def query_ranks(self, language: str, direction: str) -> FloatArray:
        """Ranks of the queries of one language and direction (images without text dropped)."""
        self._check_entry(language, direction)
        r = self.ranks[language][direction]
        return r[self.has_caption(language)] if direction == "i2t" else r

    def query_counts(self, language: str, direction: str) -> RankCounts | None:
        """Rank counts of the queries of one language and direction; None without counts."""
        self._check_entry(language, direction)
        if self.counts is None:
            return None
        c = self.counts[language][direction]
        return c[self.has_caption(language)] if direction == "i2t" else c

    def hits(self, language: str, direction: str, k: int) -> FloatArray:
        """How much each entry of ``ranks[language][direction]`` counts towards R@``k``.

        Aligned with the rank array: ``[N]`` for i2t (NaN for an image without a
        caption), ``[M_l]`` for t2i; values in ``[0, 1]``, the exact probability of a
        hit under ``ties="expected"``.
        """
        self._check_entry(language, direction)
        cutoff = check_positive_int("k", k)
        ranks = self.ranks[language][direction]
        if self.counts is None:
            out = (ranks <= cutoff_as_float(cutoff)).astype(np.float64)
        else:
            c = self.counts[language][direction]
            out = np.asarray(c.hits(cutoff, ties=self.ties or DEFAULT_TIES), dtype=np.float64)
        return np.where(np.isnan(ranks), np.nan, out)

    def rank_summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Mean and median rank per language and direction, over the queries.

        ``{lang: {dir: {"mean": f, "median": f}}}``, 1-based. As open_clip's
        ``mean_rank`` and ``median_rank``: the median is floored (open_clip takes
        ``floor(median(0-based positions)) + 1``, the same number).
        """
        return {
            lang: {
                d: {
                    "mean": float(np.mean(r := self.query_ranks(lang, d))),
                    "median": float(np.floor(np.median(r))),
                }
                for d in by_dir
            }
            for lang, by_dir in self.ranks.items()
        }

    @cached_property
    def _metrics(self) -> dict[MetricKey, float]:
        table = self.recall_table()
        out: dict[MetricKey, float] = {}
        for lang, dirs in table["recall"].items():
            for d, by_k in dirs.items():
                out.update({MetricKey(lang, d, "recall", k): v for k, v in by_k.items()})
        for lang, value in table["mean_recall"].items():
            out[MetricKey(lang, None, "mean_recall")] = value
        for d, by_k in table["average"]["recall"].items():
            out.update({MetricKey("average", d, "recall", k): v for k, v in by_k.items()})
        out[MetricKey("average", None, "mean_recall")] = table["average"]["mean_recall"]
        images = self.mrv_image_counts()
        for d, values in self.mrv().items():
            for reduction, value in (values or {}).items():
                out[MetricKey(None, d, f"mrv_{reduction}")] = value
            count = images[d]
            if count is not None:
                out[MetricKey(None, d, "mrv_images")] = float(count)
        for lang, dirs in self.rank_summary().items():
            for d, summary in dirs.items():
                out[MetricKey(lang, d, "mean_rank")] = summary["mean"]
                out[MetricKey(lang, d, "median_rank")] = summary["median"]
        return out

    def _entries(self) -> Mapping[MetricKey, float]:
        return self._metrics

    def metrics(self) -> dict[MetricKey, float]:
        """Every number of the report by key, in the order of :meth:`to_dict`.

        R@K per language and direction, mean recall per language, the averages over
        languages, MRV per direction (both reductions, and the images it is over;
        absent where undefined), and mean and median rank per language and direction.
        """
        return dict(self._metrics)

    def to_flat_dict(self) -> dict[str, float]:
        """Every number by flat name, ``{"en/i2t/R@1": 0.8, ...}``, ready for a logger.

        Recall is a fraction. Hand it to Lightning's ``self.log_dict``, TensorBoard's
        ``add_scalars`` or ``wandb.log`` as it is.

        Examples
        --------
        >>> import numpy as np
        >>> report = Report({"en": {"i2t": np.array([1.0, 3.0])}}, {"en": np.array([0, 1, 1])},
        ...                 n_images=2, ks=(1,))
        >>> flat = report.to_flat_dict()
        >>> list(flat)  # doctest: +NORMALIZE_WHITESPACE
        ['en/i2t/R@1', 'en/mean_recall', 'average/i2t/R@1', 'average/mean_recall',
         'en/i2t/mean_rank', 'en/i2t/median_rank']
        >>> flat["en/i2t/R@1"], report["en/i2t/mean_rank"]
        (0.5, 2.0)
        """
        return {key.name: value for key, value in self._metrics.items()}

    def recall(self) -> dict[str, dict[str, dict[int, float]]]:
        """R@K per language and direction: ``{lang: {dir: {k: fraction}}}``."""
        table: dict[str, dict[str, dict[int, float]]] = self.recall_table()["recall"]
        return table

    def rank_matrix(self, direction: str) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """One rank per (image, language) for MRV: ``(ranks [N, L], mask [N, L])``.

        Image-to-text gives one rank per image already; text-to-image ranks of several
        captions are reduced with ``settings["caption_reduction"]``. The mask is False
        where an image has no text in a language, and, under
        ``settings["mrv_images"] == "all"``, on the whole row of an image that lacks a
        text in any language: MRV and the breakdown are then over the images with texts
        in every language.
        """
        columns = []
        for language in self.languages:
            r = self.ranks[language][direction]
            if direction == "t2i":
                reduction = self.settings.get("caption_reduction", "first")
                per_image, _ = ranks_per_image(
                    r, self.text_to_image[language], self.n_images, caption_reduction=reduction
                )
                r = np.asarray(per_image, dtype=np.float64)
            columns.append(r)
        present = self._present()
        if self.settings.get("mrv_images", "two") == "all":
            present &= present.all(axis=1, keepdims=True)
        return np.stack(columns, axis=1), present

    def _present(self) -> npt.NDArray[np.bool_]:
        """Which images have a text in each language, ``[N, L]``."""
        return np.stack([self.has_caption(lang) for lang in self.languages], axis=1)

    def _mrv_rows(self) -> npt.NDArray[np.bool_]:
        """Return the images MRV is taken over, ``[N]``: texts in two or more languages, or all."""
        present = self._present()
        if self.settings.get("mrv_images", "two") == "all":
            return np.asarray(present.all(axis=1) & (present.shape[1] >= 2))
        return np.asarray(present.sum(axis=1) >= 2)

    def mrv_image_counts(self) -> dict[str, int | None]:
        """How many images MRV is taken over, per direction; None where MRV is undefined.

        The images with texts in two or more of the report's languages, or with
        ``settings["mrv_images"] == "all"`` in every one.

        Examples
        --------
        >>> import numpy as np
        >>> ranks = {"en": {"t2i": np.array([1.0, 2.0, 1.0])},
        ...          "de": {"t2i": np.array([3.0, 1.0])}}
        >>> owners = {"en": np.array([0, 1, 2]), "de": np.array([0, 1])}
        >>> Report(ranks, owners, n_images=3).mrv_image_counts()
        {'t2i': 2}
        """
        count = int(self._mrv_rows().sum())
        return {d: None if self.mrv_undefined(d) is not None else count for d in self.directions}

    def mrv(self) -> dict[str, dict[str, float] | None]:
        """MRV per direction, both reductions; None where it is undefined.

        Undefined means a language of the report has no ranks in the direction (MRV
        is over all of them), the report has one language, or no image has a text in
        two of them (with ``settings["mrv_images"] == "all"``: in every one);
        :meth:`to_table` says which. :meth:`mrv_image_counts` gives the images it is
        taken over.
        """
        out: dict[str, dict[str, float] | None] = {}
        for direction in self.directions:
            if self.mrv_undefined(direction) is not None:
                out[direction] = None
                continue
            ranks, mask = self.rank_matrix(direction)
            out[direction] = {
                r: mean_rank_variance(ranks, reduction=r, mask=mask) for r in REDUCTIONS
            }
        return out

    def mrv_undefined(self, direction: str) -> str | None:
        """Why MRV is undefined in ``direction``, in the user's terms; None if it is defined."""
        lacking = [lang for lang in self.languages if direction not in self.ranks[lang]]
        if lacking:
            return (
                f"undefined: no {direction} ranks for {', '.join(lacking)} "
                "(MRV is over every language of the report)"
            )
        if len(self.languages) < 2:
            return f"undefined: one language ({self.languages[0]}); MRV needs two"
        if not self._mrv_rows().any():
            if self.settings.get("mrv_images", "two") == "all":
                return "undefined: no image has texts in every language (mrv_images='all')"
            return "undefined: no image has texts in two languages"
        return None

    def with_confidence(
        self,
        *,
        ci: float = 0.95,
        n_resamples: int = 2000,
        method: Method = "percentile",
        seed: int | None = 0,
        progress: bool = False,
    ) -> Report:
        """Return this report with bootstrap confidence intervals for every number.

        Images are resampled with all their texts; see :func:`bootstrap_intervals`,
        which takes the same options (``progress``: a bar over the resamples).

        Examples
        --------
        >>> import numpy as np
        >>> ranks = np.array([1.0, 3.0, 1.0, 1.0])
        >>> report = Report({"en": {"i2t": ranks, "t2i": ranks}},
        ...                 {"en": np.arange(4)}, n_images=4, ks=(1,))
        >>> low, high = report.with_confidence(seed=0).intervals["en/i2t/R@1"][1:]
        >>> 0.0 <= low <= 0.75 <= high <= 1.0
        True
        """
        intervals = bootstrap_intervals(
            self, ci=ci, n_resamples=n_resamples, method=method, seed=seed, progress=progress
        )
        return replace(self, intervals=intervals)

    def recall_table(self) -> dict[str, Any]:
        """Return the recall table: :func:`~ccr_metrics.multilingual_recall` of the queries.

        ``{"recall": {lang: {dir: {k: f}}}, "mean_recall": {lang: f}, "average": {dir:
        {k: f}, "mean_recall": f}}``, fractions, under the report's tie policy.
        """
        by_language: dict[str, dict[str, Any]] = {
            lang: {d: self._recall_input(lang, d) for d in by_dir}
            for lang, by_dir in self.ranks.items()
        }
        return multilingual_recall(by_language, k=self.ks, ties=self.ties)

    def _recall_input(self, language: str, direction: str) -> RankCounts | FloatArray:
        counts = self.query_counts(language, direction)
        return self.query_ranks(language, direction) if counts is None else counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary, recall as fractions.

        Returns
        -------
        summary : dict
            ``{"languages", "recall": {lang: {dir: {"1": f, ...}}}, "mean_recall":
            {lang: f}, "average": {dir: {"1": f, ...}, "mean_recall": f},
            "mrv": {dir: {"variance": f, "std": f} or None}, "mrv_images": {dir: int
            or None}, "mean_rank": {lang: {dir: f}}, "median_rank": {lang: {dir: f}},
            "n_images": N, "n_texts": {lang: M}, "settings": {...}}``; ``mrv_images``
            is how many images MRV is taken over (:meth:`mrv_image_counts`).
        """
        return _report_format.summary(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per language x direction (and the average over languages).

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``language``, ``direction``, ``R@k`` for each cut-off (fractions),
            ``mean_rank`` and ``median_rank`` (NaN for the average rows) and
            ``queries`` (an integer column, NA for the average rows).
        """
        return _report_format.frame(self)

    def to_table(self) -> str:
        """Format the paper's table as text: percentages per language, averages, MRV.

        With :attr:`intervals`, every number is followed by its interval,
        ``72.60 [70.50, 74.60]``, and a recall table wider than 119
        characters is split into one table per direction. The title names
        per-language galleries with their sizes, the MRV heading the images MRV is
        over. The rank table gives the queries of each language and direction; a
        direction whose MRV is undefined says why.
        """
        return _report_format.table(self, mrv_over=self._mrv_over())

    def _mrv_over(self) -> str:
        """``", 300 images with texts in two or more"``: the images MRV is over, if any."""
        if len(self.languages) < 2:
            return ""
        which = "every one" if self.settings.get("mrv_images", "two") == "all" else "two or more"
        return f", {int(self._mrv_rows().sum())} images with texts in {which}"

    def save(self, path: str | Path) -> None:
        """Write the report, rank counts (or ranks) and intervals included, as JSON.

        :meth:`load` reads it back; the format is described in ``docs/cli.md``.

        Raises
        ------
        InputError
            If ``path`` is a directory, a FIFO, a device or a socket, its folder does not
            exist, or it cannot be opened for writing: refused before anything is
            written, without waiting for a reader.
        OSError
            If writing fails (a full disk); the message names the path.
        """
        document = _report_json.payload(
            self.to_dict(), self.ranks, self.text_to_image, self.counts, self.intervals
        )
        _report_json.write(path, document)

    @classmethod
    def load(cls, path: str | Path) -> Report:
        """Read a report written by :meth:`save` (format ``ccr-metrics-report/3``, ``/2``, ``/1``).

        The report is built from the counts (format 1: the ranks), ``text_to_image``,
        ``n_images`` and the settings, and checked as any report is. Intervals come back
        as they were saved, never drawn again. Nothing is recomputed silently: the
        numbers the file also holds (recall, mean recall, averages, MRV and the images
        it is over, mean and median rank, query counts, ranks, nested intervals) must be
        those the counts give, up to rounding, or the file is refused. Format 2 lacks
        the images MRV is over, which are then derived from ``text_to_image``. Format 1
        is read as ranks only, without intervals (it kept their options, not their
        values).

        Raises
        ------
        OSError
            If the file cannot be read (FileNotFoundError if it does not exist).
        InputError
            If the file is not JSON, not a ccr-metrics report or of a format version
            this release does not read, a field is missing or of the wrong type, the
            parts do not fit together (as the constructor checks them), or a saved number
            differs from what the counts give. One message: the file, the field and the
            first offending position, e.g. ``a.json: ranks.en.i2t: 4 values, expected 10
            (n_images)``.
        """
        try:
            fields = _report_json.read(path)
            intervals, saved = fields.pop("intervals"), fields.pop("saved")
            if "counts" in fields:
                report = cls.from_counts(
                    fields["counts"],
                    fields["text_to_image"],
                    fields["n_images"],
                    fields["ks"],
                    fields["settings"],
                )
            else:
                report = cls(**fields)
            if intervals is not None:
                report = replace(report, intervals=intervals)
            source = "counts" if report.counts is not None else "ranks"
            _report_json.check_saved(saved, report.to_dict(), report.ranks, source)
        except InputError as exc:
            # The file keeps the cut-offs among the settings.
            field = "settings." if exc.argument == "ks" else ""
            raise InputError(
                f"{path}: {field}{exc}",
                argument=exc.argument,
                position=exc.position,
                value=exc.value,
            ) from None
        return report


def bootstrap_intervals(
    report: Report,
    *,
    ci: float = 0.95,
    n_resamples: int = 2000,
    method: Method = "percentile",
    seed: int | None = 0,
    progress: bool = False,
) -> Intervals:
    """Confidence intervals for every number of a report, by resampling images.

    Parameters
    ----------
    report : Report
        The evaluation, as :func:`~ccr_metrics.evaluate` returns it or
        :meth:`Report.load <ccr_metrics.Report.load>` reads it.
    ci : float, default 0.95
        Confidence level, in ``(0, 1)``.
    n_resamples : int, default 2000
        Bootstrap resamples: each draws ``N`` images with replacement, every image with
        all its texts in every language. At most 1,000,000.
    method : {"percentile", "bca"}, default "percentile"
        ``"percentile"`` takes the resamples' ``(1 - ci) / 2`` and ``(1 + ci) / 2``
        quantiles; ``"bca"`` corrects them for bias and skew (Efron's BCa, with the
        acceleration from the jackknife over images).
    seed : int or None, default 0
        Seed of the numpy random generator, a non-negative integer; the same seed gives
        the same intervals. None draws fresh entropy.
    progress : bool, default False
        Show a progress bar over the resamples (tqdm, on stderr).

    Returns
    -------
    intervals : Intervals
        ``(estimate, low, high)`` for R@K per language and direction, mean recall per
        language, the averages over languages and MRV (variance and std) per
        direction. Estimates are the report's own numbers.

    Raises
    ------
    ValueError
        If ``ci`` is not in ``(0, 1)``, ``n_resamples`` is not an integer in
        ``[1, 1_000_000]``, ``seed`` is not a non-negative integer or None, or
        ``method`` is unknown.

    Notes
    -----
    The resamples keep the report's definitions: a recall is over the queries a
    resample holds, mean recall and the averages are unweighted means of those, and
    MRV is over the resampled images ranked in two or more languages. A resample that
    holds no query of a metric (possible only with very few images) is left out of
    that metric's interval. A metric equal in every resample, e.g. R@10 of 1.0, gets
    the interval ``[v, v]``.

    The jackknife needs no ``N x N`` work: leaving image ``i`` out of a ratio
    ``S / C`` gives ``(S - s_i) / (C - c_i)``. BCa follows
    :func:`scipy.stats.bootstrap`, except that the bias correction is clipped to the
    resolution of the resamples, so an estimate outside all of them stays finite.

    Examples
    --------
    >>> import numpy as np
    >>> report = Report(
    ...     ranks={"en": {"i2t": np.array([1.0, 2, 1, 4]), "t2i": np.array([1.0, 3, 2, 1])},
    ...            "de": {"i2t": np.array([2.0, 1, 1, 3]), "t2i": np.array([1.0, 1, 4, 2])}},
    ...     text_to_image={"en": np.arange(4), "de": np.arange(4)},
    ...     n_images=4, ks=(1, 5),
    ... )
    >>> intervals = bootstrap_intervals(report, n_resamples=500, seed=1)
    >>> intervals["en/i2t/R@5"]  # every query is a hit: no uncertainty
    Interval(estimate=1.0, low=1.0, high=1.0)
    >>> estimate, low, high = intervals["average/mean_recall"]
    >>> estimate, bool(low <= estimate <= high)
    (0.75, True)
    >>> intervals.to_frame().columns.tolist()
    ['name', 'metric', 'language', 'direction', 'k', 'reduction', 'estimate', 'low', 'high']
    """
    # Checked before any work; the counts as ints, as Intervals records them.
    n_resamples = _bootstrap.check_options(ci=ci, n_resamples=n_resamples, method=method)
    seed = check_seed("seed", seed)
    ratios = _report_ratios.ratios(report)
    low, high = _bootstrap.intervals(
        ratios,
        report.n_images,
        ci=ci,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
        progress=progress,
    )
    values = {
        key: Interval(float(e), float(lo), float(hi))
        for key, e, lo, hi in zip(ratios.keys, ratios.estimates, low, high, strict=True)
    }
    return Intervals(ci=ci, method=method, n_resamples=n_resamples, seed=seed, values=values)
