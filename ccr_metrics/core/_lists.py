"""Ranks read off ranked lists: exact where a list holds the positive, bounded where not.

A released ranked list keeps the ``d`` best items of each query. Where the positive is
in the list its rank is its position (1-based); where it is not, the rank is censored:
any integer from ``d + 1`` to the largest rank the gallery allows. Each query's rank is
kept as a pair ``(low, high)`` of integers, equal where the rank is known.

MRV is a mean over instances of a spread over languages, and each (instance, language)
rank belongs to its own query, so the smallest and largest MRV consistent with the
lists are the means of each instance's smallest and largest spread:
:func:`spread_bounds` finds those exactly over the integer completions.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ._validation import InputError

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

# Largest number of count combinations the upper bound enumerates over all instances
# at once; past it, each instance is solved by a search over sums (exact, slower).
ENUMERATION_LIMIT = 4096


def checked_lists(lists: Any, name: str) -> IntArray:
    """Return ``lists`` as int64 ``[Q, d]``: integer indices, no item twice in a row.

    The range of the indices is checked by the caller, who knows the gallery.
    """
    if isinstance(lists, torch.Tensor):
        lists = lists.detach().cpu().numpy()
    elif isinstance(lists, (list, tuple)):
        lengths = {len(row) if isinstance(row, (list, tuple, np.ndarray)) else -1 for row in lists}
        if len(lengths) > 1:
            first = len(lists[0]) if isinstance(lists[0], (list, tuple, np.ndarray)) else None
            row = next(
                i
                for i, r in enumerate(lists)
                if not isinstance(r, (list, tuple, np.ndarray)) or len(r) != first
            )
            raise InputError(
                f"{name}: query {row} has a list of another length than query 0's; every "
                "query needs a list of the same depth d",
                argument=name,
                position=(row,),
            )
    try:
        array = np.asarray(lists)
    except ValueError:  # ragged beyond the first level
        raise InputError(
            f"{name} must be 2-D [Q, d] (a list of d item indices per query)", argument=name
        ) from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(
            f"{name} must be 2-D [Q, d] (a list of d items per query, best first) with "
            f"Q, d >= 1, got shape {list(array.shape)}",
            argument=name,
        )
    if array.dtype.kind not in "iu":
        raise InputError(
            f"{name} must hold integer indices, got dtype {array.dtype}", argument=name
        )
    out = array.astype(np.int64)
    if array.dtype.kind == "u" and (out < 0).any():  # uint64 beyond the int64 range
        out = np.where(out < 0, np.iinfo(np.int64).max, out)
    negative = np.argwhere(out < 0)
    if negative.size:
        i, p = (int(v) for v in negative[0])
        raise InputError(
            f"{name} holds {out[i, p]} at query {i}, position {p}; indices are >= 0",
            argument=name,
            position=(i, p),
        )
    order = np.sort(out, axis=1)
    repeated = np.flatnonzero((order[:, 1:] == order[:, :-1]).any(1))
    if repeated.size:
        i = int(repeated[0])
        item = int(order[i, 1:][order[i, 1:] == order[i, :-1]][0])
        where = np.flatnonzero(out[i] == item)
        raise InputError(
            f"{name}: query {i} lists item {item} twice (positions {where[0]} and "
            f"{where[1]}); a ranked list holds each item once",
            argument=name,
            position=(i, int(where[1])),
        )
    return out


def check_in(values: IntArray, allowed: BoolArray, name: str, what: str) -> None:
    """Raise naming the first entry of ``values`` (any shape) that ``allowed`` excludes."""
    inside = (values >= 0) & (values < allowed.shape[0])
    ok = inside.copy()
    ok[inside] = allowed[values[inside]]
    bad = np.argwhere(~ok)
    if bad.size:
        index = tuple(int(v) for v in bad[0])
        place = (
            f"query {index[0]}, position {index[1]}" if len(index) == 2 else f"position {index[0]}"
        )
        raise InputError(
            f"{name} holds {values[index]} at {place}, which is not {what}",
            argument=name,
            position=index,
        )


def text_to_image_bounds(
    lists: IntArray, text_to_image: IntArray, gallery_size: int
) -> tuple[IntArray, IntArray]:
    """Rank bounds ``(low, high)`` ``[M]`` of each text's image in its list of images.

    ``lists`` ``[M, d]`` and ``text_to_image`` ``[M]`` are checked by the caller: the
    images are those of the gallery, ``gallery_size`` of them.
    """
    depth = lists.shape[1]
    hit = lists == text_to_image[:, None]
    found = hit.any(1)
    position = hit.argmax(1) + 1
    low = np.where(found, position, depth + 1)
    high = np.where(found, position, gallery_size)
    return low.astype(np.int64), high.astype(np.int64)


def image_to_text_bounds(
    lists: IntArray, text_to_image: IntArray, images: IntArray
) -> tuple[IntArray, IntArray]:
    """Rank bounds ``(low, high)`` ``[Q]`` of each image's best caption in its list of texts.

    Row ``r`` of ``lists`` ``[Q, d]`` (text indices, checked by the caller) is image
    ``images[r]``'s list; each of those images has at least one caption. A censored
    query of an image with ``p`` captions among ``M`` texts ranks at most ``M - p + 1``.
    """
    depth = lists.shape[1]
    hit = text_to_image[lists] == images[:, None]
    found = hit.any(1)
    position = hit.argmax(1) + 1
    captions = np.bincount(text_to_image, minlength=int(images.max()) + 1)[images]
    low = np.where(found, position, depth + 1)
    high = np.where(found, position, len(text_to_image) - captions + 1)
    return low.astype(np.int64), high.astype(np.int64)


def spread_bounds(
    low: IntArray, high: IntArray, present: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """Smallest and largest population variance of each row over its integer completions.

    ``low`` and ``high`` ``[N, K]`` bound each rank (equal where it is known); a row's
    variance is over its ``present`` entries. Returns ``(smallest, largest)`` ``[N]``,
    NaN for rows with fewer than two present entries. The standard deviation's bounds
    are their square roots.
    """
    n = present.sum(1)
    largest = int(np.where(present, high, 0).max(initial=0))
    if largest and n.max(initial=0) ** 2 * float(largest) ** 2 >= 2.0**62:
        raise InputError(
            f"ranks up to {largest} over {n.max()} languages are beyond the exact integer "
            "range of the MRV bounds",
            argument="lists",
        )
    known = present & (low == high)
    sums = np.where(known, low, 0).sum(1)
    squares = np.where(known, low * low, 0).sum(1)
    free = present & (low < high)
    ceiling = int(np.where(present, low, 0).max(initial=0))
    smallest = _smallest_numerators(low, high, free, ceiling, n, sums, squares)
    most = _largest_numerators(low, high, free, n, sums, squares)
    scale = np.maximum(n, 1).astype(np.float64) ** 2
    undefined = n < 2
    return (
        np.where(undefined, np.nan, smallest / scale),
        np.where(undefined, np.nan, most / scale),
    )


def _smallest_numerators(
    low: IntArray,
    high: IntArray,
    free: BoolArray,
    ceiling: int,
    n: IntArray,
    sums: IntArray,
    squares: IntArray,
) -> IntArray:
    """Smallest ``n * sum(x**2) - sum(x)**2`` of each row (``n**2`` times the variance).

    A smallest completion exists where every free value is ``clip(lam, low, high)`` for
    one integer ``lam``. Moving one unit from a free value to another changes the sum of
    squares by ``2 * (difference + 1)``, so at a smallest completion the free values not
    at a bound differ by at most one: ``lam`` or ``lam + 1``. With ``j`` of them at
    ``lam + 1`` the numerator is concave in ``j``, so ``j = 0`` or all of them, which is
    ``clip(lam + 1)``. Clipping every value at the largest lower bound or known value
    (``ceiling`` is the largest of all rows) shrinks no distance, so ``lam`` lies
    between the smallest free lower bound and ``ceiling``.
    """
    if not free.any():
        return n * squares - sums * sums
    best = np.full_like(sums, np.iinfo(np.int64).max)
    for lam in range(int(low[free].min()), ceiling + 1):
        x = np.where(free, np.clip(lam, low, high), 0)
        s = sums + x.sum(1)
        best = np.minimum(best, n * (squares + (x * x).sum(1)) - s * s)
    return best


def _largest_numerators(
    low: IntArray, high: IntArray, free: BoolArray, n: IntArray, sums: IntArray, squares: IntArray
) -> IntArray:
    """Largest ``n * sum(x**2) - sum(x)**2`` of each row.

    The variance is convex, so its largest value over a box is at a corner: each free
    value at its lower or its upper bound. Free values with the same bounds are
    interchangeable, so a corner is a count per pair of bounds: the counts are
    enumerated for all rows at once while there are few combinations, and otherwise
    each row is searched over the sums its corners reach.
    """
    if not free.any():
        return n * squares - sums * sums
    pairs, group = np.unique(np.stack([low[free], high[free]], axis=1), axis=0, return_inverse=True)
    counts = np.zeros((low.shape[0], len(pairs)), dtype=np.int64)
    np.add.at(counts, (np.nonzero(free)[0], group.reshape(-1)), 1)
    a, b = pairs[:, 0], pairs[:, 1]
    base_sums = sums + counts @ a
    base_squares = squares + counts @ (a * a)
    tops = counts.max(0, initial=0)
    if int(np.prod(tops + 1, dtype=np.float64)) > ENUMERATION_LIMIT:
        return np.array(
            [
                _largest_by_sums(low[i, free[i]], high[i, free[i]], n[i], sums[i], squares[i])
                for i in range(low.shape[0])
            ],
            dtype=np.int64,
        )
    best = n * base_squares - base_sums * base_sums
    for raised in itertools.product(*(range(int(t) + 1) for t in tops)):
        up = np.asarray(raised, dtype=np.int64)
        s = base_sums + int(up @ (b - a))
        q = base_squares + int(up @ (b * b - a * a))
        valid = (counts >= up).all(1)
        best = np.where(valid, np.maximum(best, n * q - s * s), best)
    out: IntArray = best
    return out


def _largest_by_sums(a: IntArray, b: IntArray, n: int, sums: int, squares: int) -> int:
    """One row's largest numerator: for each reachable sum, the largest sum of squares."""
    span = int((b - a).sum())
    # best[t]: the largest sum of squares of the free values whose sum is sum(a) + t.
    best = np.full(span + 1, -1, dtype=np.int64)
    best[0] = int((a * a).sum())
    for lo, hi in zip(a.tolist(), b.tolist(), strict=True):
        width, gain = hi - lo, hi * hi - lo * lo
        moved = np.where(best[: span + 1 - width] >= 0, best[: span + 1 - width] + gain, -1)
        best[width:] = np.maximum(best[width:], moved)
    reach = np.flatnonzero(best >= 0)
    total = sums + int(a.sum()) + reach
    return int((n * (squares + best[reach]) - total * total).max())
