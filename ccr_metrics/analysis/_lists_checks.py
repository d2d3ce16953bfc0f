"""The checks that the parts of a :class:`~ccr_metrics.ListsReport` fit together.

Run when a report is built (by :func:`~ccr_metrics.evaluate_lists`, by hand, or by
``ListsReport.load``, whose JSON fields are read here too); each message names the
field and the first offending position.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..core._lists import check_in
from ..core._validation import InputError, check_positive_int, check_positive_ints
from ..core.recall import DIRECTIONS

IntArray = npt.NDArray[np.int64]
Bounds = dict[str, dict[str, tuple[IntArray, IntArray]]]


class Parts(NamedTuple):
    """The checked parts of a report, as numpy arrays and plain dicts."""

    ranks: Bounds
    depth: dict[str, dict[str, int]]
    text_to_image: dict[str, IntArray]
    n_images: int
    ks: tuple[int, ...]
    galleries: dict[str, IntArray] | None


def fits(queries: int, expected: int, name: str, what: str) -> None:
    if queries != expected:
        raise InputError(
            f"{name} has {queries} queries, expected {expected}: {what}", argument=name
        )


def captioned(owner: IntArray, gallery: IntArray, lang: str, n: int) -> None:
    captions = np.bincount(owner, minlength=n)[gallery]
    if (captions == 0).any():
        image = int(gallery[np.argmin(captions)])
        raise InputError(
            f"image {image} has no {lang} caption, so its image-to-text list has no positive; "
            "give galleries= with the images each language covers",
            argument="galleries",
            position=(image,),
        )


def _array(value: Any, name: str) -> IntArray:
    """``value`` as a 1-D int64 array, or an InputError naming ``name``."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise InputError(
            f"{name} must be a 1-D array of integers, got {array.dtype} with shape "
            f"{list(array.shape)}",
            argument=name,
        )
    return array.astype(np.int64)


def indices(value: Any, name: str, n_items: int) -> IntArray:
    array = _array(value, name)
    check_in(array, np.ones(n_items, dtype=bool), name, f"an image index (< {n_items})")
    return array


def checked_gallery(value: Any, name: str, n_images: int) -> IntArray:
    array = indices(value, name, n_images)
    unsorted = np.flatnonzero(np.diff(array) <= 0)
    if array.size == 0 or unsorted.size:
        at = int(unsorted[0]) + 1 if unsorted.size else 0
        raise InputError(
            f"{name} must be a non-empty sorted array of distinct image indices"
            + (f"; position {at} holds {array[at]} after {array[at - 1]}" if array.size else ""),
            argument=name,
        )
    return array


def check_parts(
    ranks: Any,
    depth: Any,
    text_to_image: Any,
    n_images: Any,
    ks: Any,
    galleries: Any,
) -> Parts:
    """Check the fields of a report fit together; return them normalised."""
    n = check_positive_int("n_images", n_images)
    cut_offs = check_positive_ints("ks", ks)
    if not isinstance(ranks, Mapping) or not ranks:
        raise InputError("ranks must map each language to its rank bounds", argument="ranks")
    for name, mapping in (("depth", depth), ("text_to_image", text_to_image)):
        if not isinstance(mapping, Mapping) or set(mapping) != set(ranks):
            found = sorted(mapping) if isinstance(mapping, Mapping) else type(mapping).__name__
            raise InputError(
                f"{name} must have the languages of ranks ({', '.join(ranks)}), got {found}",
                argument=name,
            )
    kept = None
    if galleries is not None:
        if not isinstance(galleries, Mapping) or not set(galleries) <= set(ranks):
            raise InputError(
                "galleries must map languages of ranks to arrays", argument="galleries"
            )
        kept = {lang: checked_gallery(v, f"galleries.{lang}", n) for lang, v in galleries.items()}
    owners = {lang: indices(text_to_image[lang], f"text_to_image.{lang}", n) for lang in ranks}
    bounds: Bounds = {}
    depths: dict[str, dict[str, int]] = {}
    for lang in ranks:
        gallery = (kept or {}).get(lang, np.arange(n, dtype=np.int64))
        bounds[lang], depths[lang] = _language_parts(
            lang, ranks[lang], depth[lang], owners[lang], gallery, n, cut_offs
        )
    return Parts(bounds, depths, owners, n, cut_offs, kept)


def _language_parts(
    lang: str,
    dirs: Any,
    given: Any,
    owner: IntArray,
    gallery: IntArray,
    n: int,
    ks: tuple[int, ...],
) -> tuple[dict[str, tuple[IntArray, IntArray]], dict[str, int]]:
    in_gallery = np.zeros(n, dtype=bool)
    in_gallery[gallery] = True
    check_in(owner, in_gallery, f"text_to_image.{lang}", f"an image of the {lang} gallery")
    if not isinstance(dirs, Mapping) or not dirs or not set(dirs) <= set(DIRECTIONS):
        raise InputError(f"ranks.{lang} must map 'i2t' and/or 't2i' to bounds", argument="ranks")
    if not isinstance(given, Mapping) or set(given) != set(dirs):
        raise InputError(f"depth.{lang} must have the directions of ranks.{lang}", argument="depth")
    bounds, depth = {}, {}
    for d, pair in dirs.items():
        where = f"ranks.{lang}.{d}"
        depth[d] = check_positive_int(f"depth.{lang}.{d}", given[d])
        beyond = [k for k in ks if k > depth[d]]
        if beyond:
            raise InputError(
                f"k={beyond[0]} is beyond the depth {depth[d]} of the {lang} {d} lists: "
                f"recall is exact only for K <= {depth[d]}",
                argument="k",
            )
        if d == "t2i":
            upper = np.full(len(owner), len(gallery), dtype=np.int64)
        else:
            captioned(owner, gallery, lang, n)
            upper = len(owner) - np.bincount(owner, minlength=n)[gallery] + 1
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InputError(f"{where} must be a pair (low, high)", argument=where)
        low, high = _array(pair[0], f"{where}.low"), _array(pair[1], f"{where}.high")
        _check_bounds(low, high, upper, depth[d], where)
        bounds[d] = (low, high)
    return bounds, depth


def _check_bounds(low: IntArray, high: IntArray, upper: IntArray, depth: int, where: str) -> None:
    """Refuse rank bounds that no ranked list of this depth and gallery gives."""
    if len(low) != len(upper) or len(high) != len(upper):
        raise InputError(
            f"{where}: {len(low)} low and {len(high)} high bounds, expected {len(upper)} "
            "(one per query)",
            argument=where,
        )
    censored = low == depth + 1
    problems = (
        (low < 1, "low below 1"),
        (low > depth + 1, f"low beyond depth + 1 = {depth + 1}"),
        (~censored & (high != low), "a rank within the depth whose bounds differ"),
        (~censored & (low > upper), "a rank beyond the gallery"),
        (censored & (high != upper), "a censored rank whose high bound is not the gallery's"),
    )
    for bad, what in problems:
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"{where}: query {i} has ({low[i]}, {high[i]}), {what} (largest rank {upper[i]})",
                argument=where,
                position=(i,),
            )
