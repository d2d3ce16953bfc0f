"""The consistency checks of a :class:`~ccr_metrics.Report`, run when one is built or loaded.

A report is made of ranks (or rank counts), the text-to-image index, ``n_images``,
the cut-offs and the settings; every number it gives is computed from these. The
checks here make sure they fit together before any number is asked for, so a
hand-made or hand-edited report is refused with one message naming the field and the
first offending position (``ranks.en.i2t: 4 values, expected 10 (n_images)``) rather
than failing later inside numpy. Fields are named as the report's attributes and the
saved JSON name them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..core._validation import InputError, check_language_names, positive_int
from ..core.mrv import CAPTION_REDUCTIONS, MRV_IMAGES
from ..core.recall import DIRECTIONS
from ..core.ties import DEFAULT_TIES, TIES, RankCounts
from .results import Intervals, MetricKey, close

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Parts(NamedTuple):
    """What a report is made of, checked and normalised (numpy arrays, int cut-offs)."""

    ranks: dict[str, dict[str, FloatArray]]
    text_to_image: dict[str, IntArray]
    n_images: int
    ks: tuple[int, ...]


def check_parts(
    ranks: object,
    text_to_image: object,
    n_images: object,
    ks: object,
    settings: object,
    counts: object,
) -> Parts:
    """Check that the parts of a report fit together; return them normalised.

    Raises
    ------
    InputError
        Naming the first field at fault and, for arrays, the first offending position.
    """
    n = _n_images(n_images)
    checked_ks = _ks(ks)
    checked_settings = check_settings(settings, counts is not None)
    by_language = _mapping(ranks, "ranks", "{language: {direction: ranks}}")
    if not by_language:
        raise InputError("ranks: no language; a report needs at least one", argument="ranks")
    check_language_names("ranks", by_language)
    owners = _mapping(text_to_image, "text_to_image", "{language: [image of each text]}")
    # A report built from counts has the counts' languages: name them as the source.
    _same_languages("text_to_image", owners, by_language, "ranks" if counts is None else "counts")
    checked_owners = {lang: _owners(owners[lang], f"text_to_image.{lang}", n) for lang in owners}
    directions = {lang: _directions(dirs, f"ranks.{lang}") for lang, dirs in by_language.items()}
    # Counts before ranks: a report built from counts has ranks made of them, so a
    # fault is named where it lies, in the counts.
    layout = None if counts is None else _counts(counts, directions, checked_owners, n)
    checked_ranks = {
        lang: {d: _ranks(r, lang, d, checked_owners[lang], n) for d, r in dirs.items()}
        for lang, dirs in directions.items()
    }
    if layout is not None:
        _ranks_agree(layout, checked_ranks, checked_settings.get("ties", DEFAULT_TIES))
    return Parts(checked_ranks, checked_owners, n, checked_ks)


def check_counts_layout(counts: object) -> dict[str, dict[str, RankCounts]]:
    """Check ``counts`` is ``{language: {direction: RankCounts}}`` of numpy arrays.

    Only the layout: lengths and values are checked with the rest of the report.
    """
    by_language = _mapping(counts, "counts", "{language: {direction: RankCounts}}")
    check_language_names("counts", by_language)
    out: dict[str, dict[str, RankCounts]] = {}
    for lang, dirs in by_language.items():
        out[lang] = {}
        for d, c in _directions(dirs, f"counts.{lang}").items():
            if not isinstance(c, RankCounts):
                raise InputError(
                    f"counts.{lang}.{d}: expected RankCounts, got {type(c).__name__}",
                    argument=f"counts.{lang}.{d}",
                )
            if not isinstance(c.above, np.ndarray):
                raise InputError(
                    f"counts.{lang}.{d}: a report keeps numpy rank counts, got tensors "
                    "(move them with .cpu().numpy())",
                    argument=f"counts.{lang}.{d}",
                )
            out[lang][d] = c
    return out


def check_intervals(intervals: object, metrics: Mapping[MetricKey, float]) -> None:
    """Check every interval names a number of the report and has it as its estimate."""
    if not isinstance(intervals, Intervals):
        raise InputError(
            f"intervals: expected Intervals (from with_confidence), got {type(intervals).__name__}",
            argument="intervals",
        )
    for key, interval in intervals.values.items():
        where = f"intervals[{key.name!r}]"
        if key not in metrics:
            raise InputError(
                f"{where}: the report has no such number (its numbers are named like "
                f"{next(iter(metrics)).name!r})",
                argument="intervals",
            )
        if not close(interval.estimate, metrics[key]):
            raise InputError(
                f"{where}: estimate {interval.estimate!r} is not the report's number "
                f"{metrics[key]!r}",
                argument="intervals",
            )


def _n_images(value: object) -> int:
    n = positive_int(value)
    if n is None:
        raise InputError(f"n_images must be a positive integer, got {value!r}", argument="n_images")
    return n


def _ks(value: object) -> tuple[int, ...]:
    items: list[object] = []
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
        try:
            items = list(value)
        except TypeError:  # a 0-d tensor is Iterable but says it is not by a TypeError
            items = []
    if not items:
        raise InputError(
            f"ks must be a non-empty sequence of positive integers, got {value!r}", argument="ks"
        )
    out: list[int] = []
    for i, k in enumerate(items):
        checked = positive_int(k)
        if checked is None:
            raise InputError(
                f"ks: {k!r} at position {i} is not a positive integer", argument="ks", position=(i,)
            )
        if checked in out:
            raise InputError(f"ks: {checked} is given twice", argument="ks", position=(i,))
        out.append(checked)
    return tuple(out)


def check_settings(settings: object, has_counts: bool) -> Mapping[str, Any]:
    """Return ``settings`` if its tie policy, caption reduction and MRV images are known.

    ``galleries``, where present, must give each language's gallery size.
    """
    if not isinstance(settings, Mapping):
        raise InputError(
            f"settings must be a mapping {{name: value}}, got {type(settings).__name__}",
            argument="settings",
        )
    ties = settings.get("ties", DEFAULT_TIES if has_counts else None)
    if ties is not None and ties not in TIES:
        raise InputError(
            f"settings.ties must be one of {list(TIES)}, got {ties!r}", argument="settings.ties"
        )
    if not has_counts and ties == "expected":
        raise InputError(
            "settings.ties='expected' needs the rank counts (Report.from_counts): "
            "expected recall cannot be read off ranks",
            argument="settings",
        )
    reduction = settings.get("caption_reduction", "first")
    if reduction not in CAPTION_REDUCTIONS:
        raise InputError(
            f"settings.caption_reduction must be one of {list(CAPTION_REDUCTIONS)}, got "
            f"{reduction!r}",
            argument="settings.caption_reduction",
        )
    images = settings.get("mrv_images", "two")
    if images not in MRV_IMAGES:
        raise InputError(
            f"settings.mrv_images must be one of {list(MRV_IMAGES)}, got {images!r}",
            argument="settings.mrv_images",
        )
    galleries = settings.get("galleries")
    if galleries is not None and (
        not isinstance(galleries, Mapping)
        or not all(isinstance(k, str) and positive_int(v) is not None for k, v in galleries.items())
    ):
        raise InputError(
            f"settings.galleries must map each language to its number of images, got {galleries!r}",
            argument="settings.galleries",
        )
    return settings


def _mapping(value: object, name: str, layout: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(
            f"{name}: expected a mapping {layout}, got {type(value).__name__}", argument=name
        )
    for key in value:
        if not isinstance(key, str):
            raise InputError(f"{name}: key {key!r} is not a string", argument=name)
    return value


def _directions(value: object, name: str) -> Mapping[str, Any]:
    dirs = _mapping(value, name, "{direction: values}")
    if not dirs:
        raise InputError(f"{name}: no direction; expected 'i2t' and/or 't2i'", argument=name)
    for d in dirs:
        if d not in DIRECTIONS:
            raise InputError(
                f"{name}: unknown direction {d!r}; expected 'i2t' and/or 't2i'", argument=name
            )
    return dirs


def _same_languages(
    name: str, value: Mapping[str, Any], ranks: Mapping[str, Any], source: str
) -> None:
    lacking = [lang for lang in ranks if lang not in value]
    if lacking:
        raise InputError(
            f"{name}: no entry for language {lacking[0]!r} (the languages of {source} are "
            f"{list(ranks)})",
            argument=name,
        )
    extra = [lang for lang in value if lang not in ranks]
    if extra:
        raise InputError(
            f"{name}: language {extra[0]!r} has no {source} (the languages of {source} are "
            f"{list(ranks)})",
            argument=name,
        )


def _array(value: object, name: str, kinds: str, what: str) -> npt.NDArray[Any]:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        # A ragged list, or a tensor numpy cannot read (on a GPU, or needing grad).
        raise InputError(
            f"{name}: expected a 1-D array of {what}, got {type(value).__name__}", argument=name
        ) from None
    if array.ndim != 1 or array.dtype.kind not in kinds:
        raise InputError(
            f"{name}: expected a 1-D array of {what}, got {array.dtype} of shape "
            f"{list(array.shape)}",
            argument=name,
        )
    return array


def _owners(value: object, name: str, n_images: int) -> IntArray:
    owners = _array(value, name, "iu", "integers (the image of each text)")
    if owners.size == 0:
        raise InputError(f"{name}: no texts; a language needs at least one", argument=name)
    bad = np.flatnonzero((owners < 0) | (owners >= n_images))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{name}: image {int(owners[i])} at text {i} is out of range [0, {n_images}) "
            "(n_images)",
            argument=name,
            position=(i,),
        )
    return owners.astype(np.int64, copy=False)


def _ranks(value: object, lang: str, d: str, owners: IntArray, n_images: int) -> FloatArray:
    name = f"ranks.{lang}.{d}"
    ranks = _array(value, name, "iuf", "ranks").astype(np.float64, copy=False)
    query, queries, length, gallery = _shape(lang, d, owners, n_images)
    if len(ranks) != length:
        raise InputError(f"{name}: {len(ranks)} values, expected {queries}", argument=name)
    has_query = _has_query(d, owners, n_images)
    missing = np.isnan(ranks)
    wrong = np.flatnonzero(missing & has_query)
    if wrong.size:
        i = int(wrong[0])
        raise InputError(
            f"{name}: NaN at {query} {i}, which is a query (NaN marks an image without a "
            f"text in {lang!r})",
            argument=name,
            position=(i,),
        )
    wrong = np.flatnonzero(~missing & ~has_query)
    if wrong.size:
        i = int(wrong[0])
        raise InputError(
            f"{name}: {ranks[i]} at image {i}, which has no text in {lang!r} (expected NaN: "
            "it is no query there)",
            argument=name,
            position=(i,),
        )
    wrong = np.flatnonzero(~missing & ~((ranks >= 1) & (ranks <= gallery)))
    if wrong.size:
        i = int(wrong[0])
        raise InputError(
            f"{name}: {ranks[i]} at {query} {i} is out of range [1, {gallery}] (1-based "
            f"ranks among {_gallery_name(lang, d, gallery)})",
            argument=name,
            position=(i,),
        )
    return ranks


def _shape(lang: str, d: str, owners: IntArray, n_images: int) -> tuple[str, str, int, int]:
    """``(query word, expected length in words, length, gallery size)`` of a direction."""
    if d == "i2t":
        return "image", f"{n_images} (n_images)", n_images, len(owners)
    return "text", f"{len(owners)} (the texts of text_to_image.{lang})", len(owners), n_images


def _gallery_name(lang: str, d: str, gallery: int) -> str:
    return f"the {gallery} texts of {lang!r}" if d == "i2t" else f"the {gallery} images"


def _has_query(d: str, owners: IntArray, n_images: int) -> npt.NDArray[np.bool_]:
    if d == "i2t":
        return np.asarray(np.bincount(owners, minlength=n_images) > 0)
    return np.ones(len(owners), dtype=bool)


def _counts(
    counts: object,
    ranks: Mapping[str, Mapping[str, Any]],
    owners: Mapping[str, IntArray],
    n_images: int,
) -> dict[str, dict[str, RankCounts]]:
    """Check counts cover the ranks' queries and hold possible values; return them."""
    layout = check_counts_layout(counts)
    _same_languages("counts", layout, ranks, "ranks")
    for lang, dirs in layout.items():
        if set(dirs) != set(ranks[lang]):
            raise InputError(
                f"counts.{lang}: directions {list(dirs)} differ from those of ranks.{lang} "
                f"{list(ranks[lang])}",
                argument=f"counts.{lang}",
            )
        for d, c in dirs.items():
            name = f"counts.{lang}.{d}"
            query, queries, length, gallery = _shape(lang, d, owners[lang], n_images)
            if len(c.above) != length:
                raise InputError(
                    f"{name}: {len(c.above)} queries, expected {queries}", argument=name
                )
            has_query = _has_query(d, owners[lang], n_images)
            positive = c.tied_positives > 0
            wrong = np.flatnonzero(positive != has_query)
            if wrong.size:
                i = int(wrong[0])
                state = "is a query" if has_query[i] else f"has no text in {lang!r}"
                raise InputError(
                    f"{name}.tied_positives: {int(c.tied_positives[i])} at {query} {i}, which "
                    f"{state} (0 marks an image without a text; a query has at least 1)",
                    argument=f"{name}.tied_positives",
                    position=(i,),
                )
            total = c.above + c.tied_negatives + c.tied_positives
            wrong = np.flatnonzero(total > gallery)
            if wrong.size:
                i = int(wrong[0])
                raise InputError(
                    f"{name}: {query} {i} counts {int(total[i])} items above or tied with "
                    f"its positive, more than {_gallery_name(lang, d, gallery)}",
                    argument=name,
                    position=(i,),
                )
    return layout


def _ranks_agree(
    counts: Mapping[str, Mapping[str, RankCounts]],
    ranks: Mapping[str, Mapping[str, FloatArray]],
    ties: Any,
) -> None:
    """Refuse ranks that are not what the counts give under the tie policy."""
    for lang, dirs in counts.items():
        for d, c in dirs.items():
            given = np.asarray(c.ranks(ties), dtype=np.float64)
            given = np.where(np.isinf(given), np.nan, given)
            have = ranks[lang][d]
            wrong = np.flatnonzero(~((given == have) | (np.isnan(given) & np.isnan(have))))
            if wrong.size:
                i = int(wrong[0])
                query = "image" if d == "i2t" else "text"
                raise InputError(
                    f"ranks.{lang}.{d}: {have[i]} at {query} {i}, but counts.{lang}.{d} gives "
                    f"{given[i]} under ties={ties!r}",
                    argument=f"ranks.{lang}.{d}",
                    position=(i,),
                )
