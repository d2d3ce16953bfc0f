"""Recall and MRV read off ranked lists: exact where the lists decide, bounds where not.

A ranked list holds a query's ``d`` best items. Where the positive is in it, its rank is
known; where not, it is censored: any integer from ``d + 1`` to the largest rank the
gallery allows. Recall at ``K <= d`` is exact. Mean and median rank and MRV are given as
the exact smallest and largest values consistent with the lists, and MRV "at depth"
(every censored rank set to ``d + 1``) only under that name: it is the smallest MRV only
where every language's lists have the same depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..core._lists import (
    check_in,
    checked_lists,
    image_to_text_bounds,
    spread_bounds,
    text_to_image_bounds,
)
from ..core._validation import InputError, check_choice, check_positive_int, check_positive_ints
from ..core.consistency import consistency_at_k
from ..core.mrv import REDUCTIONS, Reduction, mean_rank_variance
from ..core.recall import DIRECTIONS
from ._lists_checks import (
    captioned,
    check_parts,
    checked_gallery,
    fits,
    indices,
)
from ._report_json import (
    json_field,
    json_integer,
    json_integers,
    json_object,
    read_document,
    write,
)
from .results import close

# pandas is imported where a frame is built, so that `import ccr_metrics` does not pay for it.
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ListsReport", "evaluate_lists"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FORMAT = "ccr-metrics-lists/1"
_NOTES = {"variance": "paper Eq. 7", "std": "the released code's number"}


@dataclass(frozen=True, eq=False)
class ListsReport:
    """Ranks read off ranked lists, as bounds, and every number derived from them.

    Made by :func:`evaluate_lists`; :meth:`load` reads one :meth:`save` wrote.

    Parameters
    ----------
    ranks : mapping
        ``{language: {direction: (low [Q], high [Q])}}``, int64 1-based rank bounds of
        each query: equal where the positive is in the list (its position), ``d + 1``
        and the largest rank the gallery allows where it is not. ``t2i`` queries are
        the language's texts; ``i2t`` queries the images of its gallery, in order.
    depth : mapping
        ``{language: {direction: d}}``: the length of the lists.
    text_to_image : mapping
        ``{language: [M_l]}`` int64: the image of each text.
    n_images : int
        ``N``.
    ks : tuple of int, default (1, 5, 10)
        The recall cut-offs reported; each at most every depth.
    galleries : mapping, optional
        ``{language: sorted int64 [G_l]}``: the images ranked for that language (a
        language left out, or None: all ``N``).

    Raises
    ------
    InputError
        If the parts do not fit together, naming the field and the first offending
        position: a cut-off beyond a depth (recall past ``d`` is not in the lists),
        languages that differ between the mappings, a text's image outside
        ``[0, N)`` or its gallery, a gallery not sorted or repeating an image, rank
        bounds of the wrong length, below 1, above the gallery, unequal where the rank
        is within the depth, or a censored rank whose low bound is not ``d + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> report = ListsReport(
    ...     ranks={"en": {"t2i": (np.array([1, 3]), np.array([1, 5]))},
    ...            "de": {"t2i": (np.array([2, 1]), np.array([2, 1]))}},
    ...     depth={"en": {"t2i": 2}, "de": {"t2i": 2}},
    ...     text_to_image={"en": np.array([0, 1]), "de": np.array([0, 1])},
    ...     n_images=5, ks=(1, 2))
    >>> report.recall()["en"]["t2i"], report.rank_bounds()["en"]["t2i"]["mean"]
    ({1: 0.5, 2: 0.5}, (2.0, 3.0))
    >>> report.mrv_bounds("t2i")  # image 1: en any of 3..5, de 1
    (0.625, 2.125)
    """

    ranks: Mapping[str, Mapping[str, tuple[IntArray, IntArray]]]
    depth: Mapping[str, Mapping[str, int]]
    text_to_image: Mapping[str, IntArray]
    n_images: int
    ks: tuple[int, ...] = (1, 5, 10)
    galleries: Mapping[str, IntArray] | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        parts = check_parts(
            self.ranks, self.depth, self.text_to_image, self.n_images, self.ks, self.galleries
        )
        for name, value in parts._asdict().items():
            object.__setattr__(self, name, value)

    @property
    def languages(self) -> list[str]:
        """The languages, in the order of ``ranks``."""
        return list(self.ranks)

    @property
    def directions(self) -> list[str]:
        """The directions any language has lists for, ``i2t`` before ``t2i``."""
        return [d for d in DIRECTIONS if any(d in by_dir for by_dir in self.ranks.values())]

    def gallery(self, language: str) -> IntArray:
        """Return the sorted images ranked for ``language``: its gallery, or all ``N``."""
        if self.galleries is not None and language in self.galleries:
            return self.galleries[language]
        return np.arange(self.n_images, dtype=np.int64)

    def recall(self) -> dict[str, dict[str, dict[int, float]]]:
        """R@K per language and direction, ``{lang: {dir: {k: fraction}}}``: exact."""
        return {
            lang: {
                d: {k: float(np.mean(low <= k)) for k in self.ks} for d, (low, _) in dirs.items()
            }
            for lang, dirs in self.ranks.items()
        }

    def rank_bounds(self) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
        """Mean and median rank per language and direction as ``(low, high)`` bounds.

        ``{lang: {dir: {"mean": (low, high), "median": (low, high)}}}``, 1-based; the
        median floored as :meth:`Report.rank_summary <ccr_metrics.Report.rank_summary>`
        floors it. Both grow with every rank, so the bounds are those of the low and
        the high ranks.
        """
        return {
            lang: {
                d: {
                    "mean": (float(np.mean(low)), float(np.mean(high))),
                    "median": (float(np.floor(np.median(low))), float(np.floor(np.median(high)))),
                }
                for d, (low, high) in dirs.items()
            }
            for lang, dirs in self.ranks.items()
        }

    def rank_matrix(self, direction: str) -> tuple[IntArray, IntArray, BoolArray]:
        """One rank per (image, language) for MRV: ``(low [N, L], high [N, L], present)``.

        A text-to-image rank is that of the image's first caption in the language (as
        a :class:`~ccr_metrics.Report` with ``caption_reduction="first"``); ``present``
        is False where an image has no query in a language. Languages without lists in
        ``direction`` are left out.
        """
        check_choice("direction", direction, DIRECTIONS)
        columns = []
        for lang in self.languages:
            if direction not in self.ranks[lang]:
                continue
            low, high = self.ranks[lang][direction]
            if direction == "t2i":
                owner = self.text_to_image[lang]
                query = np.full(self.n_images, len(owner), dtype=np.int64)
                np.minimum.at(query, owner, np.arange(len(owner)))
            else:
                query = np.full(self.n_images, len(low), dtype=np.int64)
                query[self.gallery(lang)] = np.arange(len(low))
            present = query < len(low)
            at = np.minimum(query, len(low) - 1)
            columns.append((np.where(present, low[at], 0), np.where(present, high[at], 0), present))
        low_m, high_m, present_m = (np.stack(parts, axis=1) for parts in zip(*columns, strict=True))
        return low_m, high_m, present_m

    def _mrv_undefined(self, direction: str) -> str | None:
        """Why MRV is undefined in ``direction``, in the user's terms; None where defined."""
        lacking = [lang for lang in self.languages if direction not in self.ranks[lang]]
        if lacking:
            return f"no {direction} lists for {', '.join(lacking)} (MRV is over every language)"
        if len(self.languages) < 2:
            return f"one language ({self.languages[0]}); MRV needs two"
        if self.mrv_instances(direction) == 0:
            return "no image has queries in two languages"
        return None

    def mrv_instances(self, direction: str) -> int:
        """Count the images MRV is over: those with a query in at least two languages."""
        *_, present = self.rank_matrix(direction)
        return int((present.sum(1) >= 2).sum())

    def _spreads(self, direction: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        if direction not in self._cache:
            why = self._mrv_undefined(direction)
            if why is not None:
                raise InputError(f"MRV of {direction} is undefined: {why}", argument="direction")
            low, high, present = self.rank_matrix(direction)
            kept = present.sum(1) >= 2
            self._cache[direction] = spread_bounds(low[kept], high[kept], present[kept])
        spreads: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] = self._cache[direction]
        return spreads

    def mrv_bounds(self, direction: str, reduction: Reduction = "variance") -> tuple[float, float]:
        """Return the exact smallest and largest MRV consistent with the lists.

        Parameters
        ----------
        direction : {"i2t", "t2i"}
        reduction : {"variance", "std"}, default "variance"
            As :func:`~ccr_metrics.mean_rank_variance`: the paper's Eq. 7 or the mean
            standard deviation the released code computed.

        Returns
        -------
        low, high : float
            Over every completion of the censored ranks, each any integer from ``d + 1``
            to the largest rank its gallery allows.

        Raises
        ------
        InputError
            If MRV is undefined in ``direction`` (a language without lists in it, one
            language, or no image with queries in two) or an argument is unknown.

        Notes
        -----
        Each (image, language) rank is its own query's, so the completions of
        different images are independent and the bounds of the mean are the means of
        each image's bounds. An image's largest spread is at a corner (each censored
        rank at its least or greatest value; the variance is convex); its smallest is
        where the censored ranks crowd together as closely as integers can. Both are
        searched exactly, not approximated; the standard deviation's bounds are the
        square roots of the variance's.
        """
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("direction", direction, DIRECTIONS)
        low, high = self._spreads(direction)
        if reduction == "std":
            low, high = np.sqrt(low), np.sqrt(high)
        return float(np.mean(low)), float(np.mean(high))

    def mrv_at_depth(self, direction: str, reduction: Reduction = "variance") -> float:
        """MRV with every censored rank set to ``d + 1``: a convention, not a bound.

        It is the lower bound of :meth:`mrv_bounds` when every language's lists have
        the same depth; with different depths it can be neither bound.

        Raises
        ------
        InputError
            As :meth:`mrv_bounds`.
        """
        check_choice("reduction", reduction, REDUCTIONS)
        self._spreads(direction)  # raises where undefined
        low, _, present = self.rank_matrix(direction)
        return mean_rank_variance(low, reduction=reduction, mask=present)

    def consistency(self, direction: str, k: int) -> dict[str, float]:
        """Fractions of the MRV images found within ``k`` in every, some and no language.

        As :func:`~ccr_metrics.consistency_at_k`, over the images with queries in two
        languages or more; exact for ``k`` up to the smallest depth.

        Raises
        ------
        InputError
            If ``k`` is beyond a depth of ``direction``, or MRV is undefined there.
        """
        self._spreads(direction)  # raises where undefined
        smallest = min(self.depth[lang][direction] for lang in self.languages)
        k = check_positive_int("k", k)
        if k > smallest:
            raise InputError(
                f"k={k} is beyond the depth {smallest} of the {direction} lists; whether a "
                f"query is found within k is known only for k <= {smallest}",
                argument="k",
            )
        low, _, present = self.rank_matrix(direction)
        return consistency_at_k(low, k, mask=present)

    def _mrv_numbers(self, direction: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for reduction in REDUCTIONS:
            out[f"mrv_{reduction}/low"], out[f"mrv_{reduction}/high"] = self.mrv_bounds(
                direction, reduction
            )
        for reduction in REDUCTIONS:
            out[f"mrv_{reduction}_at_depth"] = self.mrv_at_depth(direction, reduction)
        out["instances"] = float(self.mrv_instances(direction))
        for k in self.ks:
            for part, value in self.consistency(direction, k).items():
                out[f"consistent_{part}@{k}"] = value
        return out

    def to_flat_dict(self) -> dict[str, float]:
        """Every number by flat name, ready for a logger; recall as a fraction.

        ``en/t2i/R@1`` (and ``average/t2i/R@1``, the mean over languages) as in a
        :class:`~ccr_metrics.Report`; bounds as ``en/t2i/mean_rank/low`` and ``/high``
        (``median_rank`` too), ``t2i/mrv_variance/low`` and ``/high`` (``mrv_std``
        too); ``t2i/mrv_variance_at_depth``, ``t2i/mrv_std_at_depth``;
        ``t2i/instances`` (the images MRV is over); ``t2i/consistent_all@K``,
        ``consistent_some@K`` and ``consistent_none@K`` for each cut-off. The MRV
        numbers of a direction are absent where MRV is undefined.

        Examples
        --------
        >>> import numpy as np
        >>> lists = {"en": np.array([[0, 1], [1, 0], [3, 0], [3, 2]]),
        ...          "de": np.array([[1, 0], [1, 2], [2, 3], [0, 1]])}
        >>> flat = evaluate_lists(lists, n_images=4, k=(1, 2)).to_flat_dict()
        >>> flat["en/t2i/R@1"], flat["en/t2i/mean_rank/low"], flat["en/t2i/mean_rank/high"]
        (0.75, 1.5, 1.75)
        >>> flat["t2i/mrv_variance/low"], flat["t2i/mrv_variance/high"], flat["t2i/instances"]
        (0.5625, 1.1875, 4.0)
        """
        out: dict[str, float] = {}
        recall = self.recall()
        for lang, dirs in recall.items():
            for d, by_k in dirs.items():
                out.update({f"{lang}/{d}/R@{k}": v for k, v in by_k.items()})
        for d in self.directions:
            langs = [lang for lang in self.languages if d in recall[lang]]
            for k in self.ks:
                out[f"average/{d}/R@{k}"] = float(np.mean([recall[lang][d][k] for lang in langs]))
        for lang, by_dir in self.rank_bounds().items():
            for d, bounds in by_dir.items():
                for name, (low, high) in bounds.items():
                    out[f"{lang}/{d}/{name}_rank/low"] = low
                    out[f"{lang}/{d}/{name}_rank/high"] = high
        for d in self.directions:
            if self._mrv_undefined(d) is None:
                out.update({f"{d}/{name}": v for name, v in self._mrv_numbers(d).items()})
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per language and direction.

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``language``, ``direction``, ``depth``, ``queries``, ``beyond``
            (queries whose positive is not in its list), ``R@k`` for each cut-off
            (fractions), ``mean_rank_low``, ``mean_rank_high``, ``median_rank_low``,
            ``median_rank_high``.
        """
        import pandas as pd

        recall, bounds = self.recall(), self.rank_bounds()
        rows = []
        for lang, dirs in self.ranks.items():
            for d, (low, _) in dirs.items():
                depth = self.depth[lang][d]
                row: dict[str, Any] = {
                    "language": lang,
                    "direction": d,
                    "depth": depth,
                    "queries": len(low),
                    "beyond": int((low > depth).sum()),
                }
                row.update({f"R@{k}": v for k, v in recall[lang][d].items()})
                for name in ("mean", "median"):
                    row[f"{name}_rank_low"], row[f"{name}_rank_high"] = bounds[lang][d][name]
                rows.append(row)
        return pd.DataFrame(rows)

    def to_table(self) -> str:
        """Format recall, rank bounds, MRV bounds and consistency as text (what the CLI prints).

        Recall is in percent with two decimals, as papers print it.
        """
        frame = self.to_frame()
        depths = sorted(set(frame["depth"]))
        depth_text = (
            f"depth {depths[0]}"
            if len(depths) == 1
            else "depths "
            + ", ".join(f"{r.language} {r.direction} {r.depth}" for r in frame.itertuples())
        )
        lines = [
            f"Ranked lists: {self.n_images} images, languages {', '.join(self.languages)}; "
            f"lists of {depth_text}",
            "Recall (%), exact (every cut-off within the lists):",
            _recall_text(self),
            "",
            "Rank of the correct item, 1-based, as [low, high]: a rank beyond its list can be "
            "any of depth+1..gallery size (median floored):",
            _rank_text(frame),
        ]
        for d in self.directions:
            lines += ["", *self._mrv_lines(d)]
        return "\n".join(lines)

    def _mrv_lines(self, direction: str) -> list[str]:
        why = self._mrv_undefined(direction)
        head = f"Mean Rank Variance, {direction}"
        if why is not None:
            return [f"{head}: undefined: {why}"]
        depths = {self.depth[lang][direction] for lang in self.languages}
        at = f"at depth {depths.pop()}" if len(depths) == 1 else "at depth"
        lines = [
            f"{head}: {len(self.languages)} languages, the {self.mrv_instances(direction)} "
            "images with queries in two or more",
            "  (exact bounds over the ranks beyond the lists; "
            f"{at!r}: those ranks set to depth+1, a convention)",
        ]
        for reduction in REDUCTIONS:
            low, high = self.mrv_bounds(direction, reduction)
            bounds = f"[{low:.2f}, {high:.2f}]"
            lines.append(
                f"  {reduction:<9} bounds {bounds:<24} {at} "
                f"{self.mrv_at_depth(direction, reduction):10.2f}   ({_NOTES[reduction]})"
            )
        lines.append("Found within K in every / some / no language, of those images:")
        for k in self.ks:
            c = self.consistency(direction, k)
            lines.append(
                f"  K={k:<3} every {100 * c['all']:6.2f}%   some {100 * c['some']:6.2f}%   "
                f"none {100 * c['none']:6.2f}%"
            )
        return lines

    def save(self, path: str | Path) -> None:
        """Write the report as JSON (format ``ccr-metrics-lists/1``); :meth:`load` reads it.

        The file holds the rank bounds, depths, ``text_to_image``, galleries, ``N`` and
        the cut-offs, and every number of :meth:`to_flat_dict` (checked on load).
        """
        document = {
            "format": FORMAT,
            "n_images": self.n_images,
            "ks": list(self.ks),
            "text_to_image": {lang: v.tolist() for lang, v in self.text_to_image.items()},
            "galleries": None
            if self.galleries is None
            else {lang: v.tolist() for lang, v in self.galleries.items()},
            "lists": {
                lang: {
                    d: {"depth": self.depth[lang][d], "low": low.tolist(), "high": high.tolist()}
                    for d, (low, high) in dirs.items()
                }
                for lang, dirs in self.ranks.items()
            },
            "metrics": self.to_flat_dict(),
        }
        write(path, document)

    @classmethod
    def load(cls, path: str | Path) -> ListsReport:
        """Read a report :meth:`save` wrote, checking every field and every saved number.

        Raises
        ------
        OSError
            If the file cannot be read (FileNotFoundError if it does not exist).
        InputError
            If the file is not JSON or not of format ``ccr-metrics-lists/1``, a field
            is missing or of the wrong type, the parts do not fit together (as the
            constructor checks them), or a saved number is not what the ranks give;
            the message names the file and the field.
        """
        try:
            report, saved = _read(path)
            for name, value in report.to_flat_dict().items():
                if name not in saved or not isinstance(saved[name], (int, float)):
                    raise InputError(f"metrics.{name}: missing", argument=f"metrics.{name}")
                if not close(float(saved[name]), value):
                    raise InputError(
                        f"metrics.{name}: saved {saved[name]}, but the ranks give {value}",
                        argument=f"metrics.{name}",
                    )
        except InputError as exc:
            raise InputError(f"{path}: {exc}", argument=exc.argument) from None
        return report


def evaluate_lists(
    lists: Mapping[str, Any],
    text_to_image: Mapping[str, Any] | None = None,
    *,
    n_images: int,
    k: Any = (1, 5, 10),
    direction: str = "t2i",
    galleries: Mapping[str, Any] | None = None,
) -> ListsReport:
    """Recall, rank bounds and MRV bounds of ranked lists, per language.

    Parameters
    ----------
    lists : mapping of str to array-like of int, shape [Q_l, d_l]
        Per language, each query's list of gallery indices, best first (as
        :func:`~ccr_metrics.load_ranked_lists` reads them). ``t2i``: a row per text,
        image indices in ``[0, N)``. ``i2t``: a row per image of the language's gallery
        (all ``N`` images without ``galleries``), indices of the language's texts.
    text_to_image : mapping of str to array-like of int, shape [M_l], optional
        The image of each text. A language left out (or None): text ``i`` describes
        image ``i`` and ``M_l == N``, as in xFlickr&CO.
    n_images : int
        ``N``, the images of the benchmark.
    k : int or sequence of int, default (1, 5, 10)
        Recall cut-offs; each at most every depth ``d_l``.
    direction : {"t2i", "i2t"}, default "t2i"
        What the lists rank: images for each text, or texts for each image.
    galleries : mapping of str to array-like of int, optional
        Per language, the sorted images it ranks (as ``Benchmark.galleries``); a
        language left out ranks all ``N``. Its lists must hold only those images
        (``t2i``), its queries are only those images (``i2t``), and a censored rank
        is bounded by its size.

    Returns
    -------
    ListsReport
        Exact R@K; mean and median rank and MRV as bounds (:meth:`ListsReport.mrv_bounds`).

    Raises
    ------
    InputError
        If ``lists`` is not a non-empty mapping, a language's lists are not ``[Q, d]``
        integers, hold an index outside ``[0, N)`` or the gallery, or list an item twice
        for a query; if a cut-off is beyond a depth (the message names ``d``), the
        number of queries does not fit ``text_to_image`` or the gallery, a text's image
        is outside ``[0, N)`` or its gallery, a gallery is not sorted and distinct, an
        ``i2t`` query image has no caption, or ``direction`` is unknown.

    Notes
    -----
    A positive missing from its list has a censored rank: any integer from ``d + 1``
    to the gallery size ``G`` (``t2i``), or to ``M - p + 1`` for an image with ``p`` of
    the ``M`` captions (``i2t``). Every completion is possible, each query's own.

    Examples
    --------
    Text ``i`` describes image ``i``; English misses image 2 in its list of two, German
    image 3, so each of those ranks is 3 or 4:

    >>> import numpy as np
    >>> lists = {"en": np.array([[0, 1], [1, 0], [3, 0], [3, 2]]),
    ...          "de": np.array([[1, 0], [1, 2], [2, 3], [0, 1]])}
    >>> report = evaluate_lists(lists, n_images=4, k=(1, 2))
    >>> report.recall()["de"]["t2i"]
    {1: 0.5, 2: 0.75}
    >>> report.rank_bounds()["en"]["t2i"]["mean"]
    (1.5, 1.75)
    >>> report.mrv_bounds("t2i")  # image 2: en 3 or 4, de 1; image 3: en 1, de 3 or 4
    (0.5625, 1.1875)
    >>> report.mrv_bounds("t2i", reduction="std")
    (0.625, 0.875)
    """
    check_choice("direction", direction, DIRECTIONS)
    n = check_positive_int("n_images", n_images)
    ks = check_positive_ints("k", k)
    for name, value in (("text_to_image", text_to_image), ("galleries", galleries)):
        if value is not None and not isinstance(value, Mapping):
            raise InputError(f"{name} must map languages to arrays", argument=name)
    if not isinstance(lists, Mapping) or not lists:
        raise InputError(
            "lists must map each language to its ranked lists [Q, d] (a non-empty mapping)",
            argument="lists",
        )
    ranks: dict[str, dict[str, tuple[IntArray, IntArray]]] = {}
    depth: dict[str, dict[str, int]] = {}
    owners: dict[str, IntArray] = {}
    kept: dict[str, IntArray] = {}
    for lang, given in lists.items():
        name = f"lists[{lang!r}]"
        checked = checked_lists(given, name)
        gallery = np.arange(n, dtype=np.int64)
        if galleries is not None and lang in galleries:
            gallery = kept[lang] = checked_gallery(galleries[lang], f"galleries[{lang!r}]", n)
        owner = np.arange(n if direction == "i2t" else checked.shape[0], dtype=np.int64)
        if text_to_image is not None and lang in text_to_image:
            owner = indices(text_to_image[lang], f"text_to_image[{lang!r}]", n)
        elif direction == "t2i" and checked.shape[0] != n:
            raise InputError(
                f"{name} has {checked.shape[0]} queries but there are {n} images; give "
                f"text_to_image[{lang!r}] (the image of each text)",
                argument="text_to_image",
            )
        owners[lang] = owner
        in_gallery = np.zeros(n, dtype=bool)
        in_gallery[gallery] = True
        if direction == "t2i":
            fits(checked.shape[0], len(owner), name, f"text_to_image[{lang!r}] (one per text)")
            check_in(checked, in_gallery, name, f"an image of the {lang} gallery")
            bounds = text_to_image_bounds(checked, owner, len(gallery))
        else:
            fits(
                checked.shape[0], len(gallery), name, f"the {lang} gallery's images (one per image)"
            )
            check_in(checked, np.ones(len(owner), dtype=bool), name, f"a {lang} text index")
            captioned(owner, gallery, lang, n)
            bounds = image_to_text_bounds(checked, owner, gallery)
        ranks[lang] = {direction: bounds}
        depth[lang] = {direction: checked.shape[1]}
    return ListsReport(ranks, depth, owners, n, ks, kept or None)


def _read(path: str | Path) -> tuple[ListsReport, dict[str, Any]]:
    document = read_document(path)
    if document.get("format") != FORMAT:
        raise InputError(
            f"format {document.get('format')!r}: not a ranked-lists report, expected "
            f"{FORMAT!r} (what ListsReport.save and `ccr-metrics lists --json` write)",
            argument="format",
        )
    galleries = json_field(document, "galleries")
    ranks: dict[str, dict[str, tuple[IntArray, IntArray]]] = {}
    depth: dict[str, dict[str, int]] = {}
    for lang, dirs in json_object(json_field(document, "lists"), "lists").items():
        ranks[lang], depth[lang] = {}, {}
        for d, entry in json_object(dirs, f"lists.{lang}").items():
            where = f"lists.{lang}.{d}"
            entry = json_object(entry, where)
            depth[lang][d] = json_integer(json_field(entry, "depth", where), f"{where}.depth")
            ranks[lang][d] = (
                json_integers(json_field(entry, "low", where), f"{where}.low"),
                json_integers(json_field(entry, "high", where), f"{where}.high"),
            )
    report = ListsReport(
        ranks,
        depth,
        {
            lang: json_integers(v, f"text_to_image.{lang}")
            for lang, v in json_object(
                json_field(document, "text_to_image"), "text_to_image"
            ).items()
        },
        json_integer(json_field(document, "n_images"), "n_images"),
        tuple(json_integers(json_field(document, "ks"), "ks").tolist()),
        None
        if galleries is None
        else {
            lang: json_integers(v, f"galleries.{lang}")
            for lang, v in json_object(galleries, "galleries").items()
        },
    )
    return report, json_object(json_field(document, "metrics"), "metrics")


def _recall_text(report: ListsReport) -> str:
    import pandas as pd

    recall = report.recall()
    table = {
        lang: {f"{d} R@{k}": f"{100 * v:.2f}" for d, by_k in dirs.items() for k, v in by_k.items()}
        for lang, dirs in recall.items()
    }
    flat = report.to_flat_dict()
    table["average"] = {
        f"{d} R@{k}": f"{100 * flat[f'average/{d}/R@{k}']:.2f}"
        for d in report.directions
        for k in report.ks
    }
    columns = [f"{d} R@{k}" for d in report.directions for k in report.ks]
    text: str = pd.DataFrame(table).T.reindex(columns=columns).to_string(na_rep="-")
    return text


def _rank_text(frame: pd.DataFrame) -> str:
    import pandas as pd

    table: dict[str, dict[str, str]] = {}
    for row in frame.itertuples(index=False):
        d = row.direction
        table.setdefault(str(row.language), {}).update(
            {
                f"{d} queries": str(row.queries),
                f"{d} beyond list": str(row.beyond),
                f"{d} mean": f"[{row.mean_rank_low:.2f}, {row.mean_rank_high:.2f}]",
                f"{d} median": f"[{row.median_rank_low:.0f}, {row.median_rank_high:.0f}]",
            }
        )
    text: str = pd.DataFrame(table).T.to_string(na_rep="-")
    return text
