"""Exact ranks of positives by counting, in blocks, how many candidates beat them.

The rank of a query is the 1-based position of its best-ranked positive. Nothing is
sorted: for each query the best positive score ``b`` is looked up, and one pass over the
query's row counts the candidates strictly above ``b`` (``g``) and those tied with it.
Of the tied ones, ``p`` are positives and ``n`` are negatives. The tie policy turns
these counts into a rank:

- ``"optimistic"``: ``g + 1`` (ties resolved in the positive's favour);
- ``"pessimistic"``: ``g + n + 1`` (every tied negative placed first);
- ``"average"`` (default): ``g + (n + p + 1) / (p + 1)``, the expected position of the
  first positive when the tied items are shuffled uniformly; for ``p = 1`` it is the
  midpoint of the tie, as ``scipy.stats.rankdata(method="average")`` gives.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from ._backend import Array, ArrayLike, to_output, to_tensor
from ._validation import (
    check_choice,
    check_ndim,
    check_numeric,
    dtype_str,
    first_nonfinite,
    shape_str,
)

__all__ = [
    "DEFAULT_TIES",
    "TIES",
    "image_to_text_ranks",
    "positive_ranks",
    "text_to_image_ranks",
]

Ties = Literal["optimistic", "pessimistic", "average"]
Empty = Literal["error", "miss"]

#: The tie policies :func:`positive_ranks` accepts.
TIES: tuple[Ties, ...] = ("optimistic", "pessimistic", "average")
#: The default tie policy: neither optimistic nor pessimistic, so a constant score
#: matrix ranks every positive in the middle rather than first.
DEFAULT_TIES: Ties = "average"
EMPTY: tuple[Empty, ...] = ("error", "miss")

# Elements per block when chunk_size is None: a 4 MB float32 block stays in a CPU's
# cache between the passes over it; a GPU wants large blocks to fill its cores.
_CPU_BLOCK_ELEMENTS = 1 << 20
_CUDA_BLOCK_ELEMENTS = 1 << 27


def positive_ranks(
    scores: ArrayLike,
    positives: ArrayLike | Sequence[Sequence[int]],
    *,
    ties: Ties = DEFAULT_TIES,
    chunk_size: int | None = None,
    empty: Empty = "error",
) -> Array:
    """Rank of each query's best-ranked positive, counted exactly with a stated tie rule.

    Parameters
    ----------
    scores : array-like or torch.Tensor, shape [Q, G]
        Similarity of each of ``Q`` queries to each of ``G`` gallery items; higher is
        better. Any real dtype (integers, float16, bfloat16, float32, float64) and any
        device. Scores are compared in their own precision: half-precision scores tie
        far more often than float32 ones, and the tie policy decides those ranks.
    positives : array-like, torch.Tensor or sequence of sequences of int
        Which gallery columns are relevant to each query, in one of three forms:

        - integer array ``[Q]``: one positive column per query;
        - boolean mask ``[Q, G]``;
        - ``Q`` sequences of column indices (ragged, e.g. the captions of each image),
          or an integer array ``[Q, P]`` of ``P`` positives per query. An integer
          array shaped exactly like ``scores`` is refused as ambiguous (it is usually
          a 0/1 relevance matrix): pass it as a bool mask or as lists.
    ties : {"average", "optimistic", "pessimistic"}, default "average"
        How items tied with the best positive are ordered; see Notes.
    chunk_size : int, optional
        Number of query rows handled per block. The extra memory is
        ``O(chunk_size * G)``; the result is the same for every value. By default
        blocks of about 2**20 elements on CPU and 2**27 on CUDA.
    empty : {"error", "miss"}, default "error"
        What a query without any positive gets: a ValueError, or the rank ``inf`` so
        that it counts as a miss at every cut-off.

    Returns
    -------
    ranks : numpy.ndarray or torch.Tensor, shape [Q], float64
        1-based ranks. A numpy array for numpy (or list) input, a tensor on the device
        of ``scores`` for torch input. Whole numbers except for ``ties="average"``.

    Raises
    ------
    ValueError
        If ``scores`` is not 2-D, not real-valued, or holds NaN or infinity; if
        ``positives`` has the wrong shape or length, holds an index outside
        ``[0, G)``, or leaves a query without a positive while ``empty="error"``; if
        ``ties``, ``empty`` or ``chunk_size`` is not a valid choice.

    Notes
    -----
    For query ``q`` let ``b`` be its best positive score, ``g`` the number of items
    scoring strictly above ``b``, ``n`` the number of negatives and ``p`` the number of
    positives scoring exactly ``b``. Then the rank is ``g + 1`` (optimistic),
    ``g + n + 1`` (pessimistic) or ``g + (n + p + 1) / (p + 1)`` (average, the expected
    rank of the first positive when the tied items are put in a uniformly random
    order). The default, average, keeps a constant score matrix from scoring perfect
    recall. Argsort-based code (such as ``itm_eval`` in ALBEF-style repositories)
    breaks ties by the sort's internal order instead; on tie-free scores its 0-based
    positions plus one equal these ranks under every policy.

    The counting is one pass over each block of rows: the row minus ``b``, its sign,
    and two row sums (of the signs and of their squares) give the counts above and
    below ``b``. Signs of IEEE differences are exact, so the counts are exact. Non-
    finite scores are detected in the same pass and reported by position.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.array([[0.9, 0.1, 0.5],
    ...                    [0.2, 0.8, 0.8]])
    >>> positive_ranks(scores, [2, 1])
    array([2. , 1.5])
    >>> positive_ranks(scores, [2, 1], ties="optimistic")
    array([2., 1.])
    >>> positive_ranks(scores, [[0, 2], [0]])  # several positives per query
    array([1., 3.])
    """
    check_choice("ties", ties, TIES)
    check_choice("empty", empty, EMPTY)
    s, as_torch = to_tensor(scores, "scores")
    _check_scores(s)
    query, column = positive_pairs(positives, s.shape[0], s.shape[1], s.device)
    ranks = ranks_from_pairs(
        s, query, column, ties=ties, chunk_size=chunk_size, empty=empty, missing="positives"
    )
    return to_output(ranks, as_torch)


def image_to_text_ranks(
    scores: ArrayLike,
    text_to_image: ArrayLike | None = None,
    *,
    ties: Ties = DEFAULT_TIES,
    chunk_size: int | None = None,
    empty: Empty = "error",
) -> Array:
    """Rank of each image's best caption when the image queries one language's texts.

    Parameters
    ----------
    scores : array-like or torch.Tensor, shape [N, M]
        Similarity of each of ``N`` images to each of ``M`` texts of one language.
    text_to_image : array-like of int, shape [M], optional
        The image each text describes. May be omitted when ``M == N`` and text ``i``
        describes image ``i``.
    ties, chunk_size, empty
        As for :func:`positive_ranks`. ``empty`` decides what an image without any
        caption in this language gets.

    Returns
    -------
    ranks : numpy.ndarray or torch.Tensor, shape [N], float64
        1-based rank of each image's best-ranked caption.

    Raises
    ------
    ValueError
        As :func:`positive_ranks`; also if ``text_to_image`` is missing while
        ``M != N``, has the wrong length, or names an image outside ``[0, N)``.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.array([[0.9, 0.1, 0.2, 0.8],   # image 0 vs 4 captions
    ...                    [0.3, 0.7, 0.6, 0.4]])  # image 1
    >>> image_to_text_ranks(scores, [0, 0, 1, 1])  # captions 0,1 -> image 0; 2,3 -> 1
    array([1., 2.])
    """
    check_choice("ties", ties, TIES)
    check_choice("empty", empty, EMPTY)
    s, as_torch = to_tensor(scores, "scores")
    _check_scores(s)
    n_images, n_texts = s.shape
    owner = text_owner_index(text_to_image, n_texts=n_texts, n_images=n_images, device=s.device)
    texts = torch.arange(n_texts, device=s.device)
    ranks = ranks_from_pairs(
        s, owner, texts, ties=ties, chunk_size=chunk_size, empty=empty, missing="text_to_image"
    )
    return to_output(ranks, as_torch)


def text_to_image_ranks(
    scores: ArrayLike,
    text_to_image: ArrayLike | None = None,
    *,
    ties: Ties = DEFAULT_TIES,
    chunk_size: int | None = None,
) -> Array:
    """Rank of each text's own image when the text queries all images.

    Parameters
    ----------
    scores : array-like or torch.Tensor, shape [M, N]
        Similarity of each of ``M`` texts to each of ``N`` images (the transpose of
        an image-to-text matrix; a transposed view is fine).
    text_to_image : array-like of int, shape [M], optional
        The image each text describes. May be omitted when ``M == N`` and text ``i``
        describes image ``i``.
    ties, chunk_size
        As for :func:`positive_ranks`.

    Returns
    -------
    ranks : numpy.ndarray or torch.Tensor, shape [M], float64
        1-based rank of each text's image.

    Raises
    ------
    ValueError
        As :func:`positive_ranks`; also if ``text_to_image`` is missing while
        ``M != N``, has the wrong length, or names an image outside ``[0, N)``.

    Examples
    --------
    >>> import numpy as np
    >>> i2t = np.array([[0.9, 0.1, 0.2, 0.8],
    ...                 [0.3, 0.7, 0.6, 0.4]])
    >>> text_to_image_ranks(i2t.T, [0, 0, 1, 1])
    array([1., 2., 1., 1.])
    """
    check_choice("ties", ties, TIES)
    s, as_torch = to_tensor(scores, "scores")
    _check_scores(s)
    n_texts, n_images = s.shape
    owner = text_owner_index(text_to_image, n_texts=n_texts, n_images=n_images, device=s.device)
    texts = torch.arange(n_texts, device=s.device)
    ranks = ranks_from_pairs(
        s, texts, owner, ties=ties, chunk_size=chunk_size, empty="error", missing="text_to_image"
    )
    return to_output(ranks, as_torch)


def text_owner_index(
    text_to_image: ArrayLike | None, *, n_texts: int, n_images: int, device: torch.device
) -> torch.Tensor:
    """Check ``text_to_image`` and return it as a LongTensor ``[M]`` on ``device``.

    ``None`` means text ``i`` belongs to image ``i`` and needs ``n_texts == n_images``.
    """
    if text_to_image is None:
        if n_texts != n_images:
            raise ValueError(
                f"text_to_image is required when the number of texts ({n_texts}) differs "
                f"from the number of images ({n_images})"
            )
        return torch.arange(n_texts, device=device)
    t, _ = to_tensor(text_to_image, "text_to_image")
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"text_to_image must hold integer image indices, got {dtype_str(t)}")
    if t.ndim != 1 or t.shape[0] != n_texts:
        raise ValueError(
            f"text_to_image must have shape [{n_texts}] (one image per text), got {shape_str(t)}"
        )
    t = t.to(device=device, dtype=torch.long)
    _check_index_range(t, n_images, "text_to_image", "image index")
    return t


def positive_pairs(
    positives: ArrayLike | Sequence[Sequence[int]],
    n_queries: int,
    n_gallery: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the positives as ``(query, column)`` LongTensors, validated and deduplicated.

    Accepts the three forms :func:`positive_ranks` documents. Indices are checked to
    lie in ``[0, n_gallery)``; a message names the first offending query.
    """
    t = _positives_tensor(positives, n_queries)
    if t is None:  # ragged
        rows = list(positives)  # type: ignore[arg-type]
        flat = np.asarray(list(itertools.chain.from_iterable(rows)))
        if flat.size and flat.dtype.kind not in "iu":
            raise ValueError(
                f"positives must hold integer column indices, got values of dtype {flat.dtype}"
            )
        lengths = torch.as_tensor(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)))
        query = torch.repeat_interleave(torch.arange(n_queries), lengths).to(device)
        column = torch.as_tensor(flat.astype(np.int64, copy=False)).to(device)
    elif t.dtype == torch.bool:
        if tuple(t.shape) != (n_queries, n_gallery):
            raise ValueError(
                f"positives mask must have the shape of scores [{n_queries}, {n_gallery}], "
                f"got {shape_str(t)}"
            )
        query, column = t.to(device).nonzero(as_tuple=True)
    elif t.is_floating_point() or t.is_complex():
        raise ValueError(
            f"positives must be integer column indices or a bool mask, got dtype {dtype_str(t)}"
        )
    elif t.ndim == 1:
        if t.shape[0] != n_queries:
            raise ValueError(
                f"positives must have one column index per query: shape [{n_queries}], "
                f"got {shape_str(t)}"
            )
        query = torch.arange(n_queries, device=device)
        column = t.to(device=device, dtype=torch.long)
    elif t.ndim == 2:
        if t.shape[0] != n_queries:
            raise ValueError(
                f"positives must have {n_queries} rows (one per query), got {shape_str(t)}"
            )
        if tuple(t.shape) == (n_queries, n_gallery) and n_gallery > 1:
            raise ValueError(
                f"positives is an integer array shaped like scores {shape_str(t)}: pass a "
                "bool mask (positives.astype(bool)) or lists of column indices"
            )
        query = torch.arange(n_queries, device=device).repeat_interleave(t.shape[1])
        column = t.to(device=device, dtype=torch.long).reshape(-1)
    else:
        raise ValueError(
            f"positives must be 1-D indices, a 2-D mask or index lists, got shape {shape_str(t)}"
        )
    _check_index_range(column, n_gallery, "positives", "column index", query)
    # Repeated indices would count one positive twice among the ties.
    key = torch.unique(query * n_gallery + column)
    return key // n_gallery, key % n_gallery


def _positives_tensor(positives: Any, n_queries: int) -> torch.Tensor | None:
    """``positives`` as a tensor, or None when it is a ragged sequence of sequences."""
    if isinstance(positives, torch.Tensor):
        return positives
    if isinstance(positives, np.ndarray):
        return to_tensor(positives, "positives")[0]
    if not isinstance(positives, Sequence):
        raise ValueError(
            f"positives must be an array, a tensor or a sequence, got {type(positives).__name__}"
        )
    if len(positives) != n_queries:
        raise ValueError(
            f"positives must have one entry per query ({n_queries}), got {len(positives)}"
        )
    try:
        arr = np.asarray(positives)
    except ValueError:  # ragged rows: numpy refuses to make them one array
        return None
    # Nested lists of ints are index lists even when they happen to be rectangular.
    if arr.dtype == object or (arr.ndim == 2 and arr.dtype != bool):
        return None
    return to_tensor(arr, "positives")[0]


def _check_index_range(
    index: torch.Tensor,
    size: int,
    name: str,
    what: str,
    query: torch.Tensor | None = None,
) -> None:
    bad = (index < 0) | (index >= size)
    if bool(bad.any()):
        at = int(bad.nonzero()[0, 0])
        where = f"query {int(query[at])}" if query is not None else f"position {at}"
        raise ValueError(f"{name} has {what} {int(index[at])} at {where}, outside [0, {size})")


def _check_scores(s: torch.Tensor) -> None:
    check_ndim(s, "scores", 2, "[Q, G] (queries x gallery)")
    check_numeric(s, "scores")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(
            f"scores must have at least one query and one candidate, got {shape_str(s)}"
        )


def ranks_from_pairs(
    s: torch.Tensor,
    query: torch.Tensor,
    column: torch.Tensor,
    *,
    ties: Ties,
    chunk_size: int | None,
    empty: Empty,
    missing: str,
) -> torch.Tensor:
    """Ranks ``[Q]`` (float64) from validated scores and deduplicated positive pairs.

    The building block behind every public ranking function and the streaming
    evaluation. ``missing`` names the argument to blame when a query has no positive.
    """
    # Ranks have no gradient; without this, scores that require grad would record
    # every block's arithmetic in the autograd graph.
    s = s.detach()
    n_queries, n_gallery = s.shape
    has_positive = torch.bincount(query, minlength=n_queries) > 0
    if empty == "error" and not bool(has_positive.all()):
        q = int((~has_positive).nonzero()[0, 0])
        raise ValueError(
            f"{missing} gives query row {q} of scores no positive among its {n_gallery} "
            "candidates; pass empty='miss' to count such queries as misses"
        )
    best = best_positive_scores(s, query, column)
    tied_positives = count_tied_positives(s, query, column, best)
    above, tied = count_above_and_tied(s, best, block_rows(chunk_size, n_gallery, s.device))
    return ranks_from_counts(above, tied, tied_positives, has_positive, ties)


def best_positive_scores(
    s: torch.Tensor, query: torch.Tensor, column: torch.Tensor
) -> torch.Tensor:
    """Best positive score of each query ``[Q]`` (0 for a query without positives)."""
    best = torch.zeros(s.shape[0], dtype=s.dtype, device=s.device)
    return best.scatter_reduce_(0, query, s[query, column], reduce="amax", include_self=False)


def count_tied_positives(
    s: torch.Tensor, query: torch.Tensor, column: torch.Tensor, best: torch.Tensor
) -> torch.Tensor:
    """How many of each query's positives score exactly its ``best`` ``[Q]``, float64."""
    at_best = (s[query, column] == best[query]).double()
    return torch.bincount(query, weights=at_best, minlength=s.shape[0])


def ranks_from_counts(
    above: torch.Tensor,
    tied: torch.Tensor,
    tied_positives: torch.Tensor,
    has_positive: torch.Tensor,
    ties: Ties,
) -> torch.Tensor:
    """Apply the tie policy to the counts ``g = above``, ``p = tied_positives``, ``n``.

    ``tied`` counts every item equal to the best positive, positives included, so
    ``n = tied - p``. Queries without a positive get ``inf``.
    """
    g = above.double()
    p = tied_positives.double()
    n = tied.double() - p
    if ties == "optimistic":
        ranks = g + 1
    elif ties == "pessimistic":
        ranks = g + n + 1
    else:
        ranks = g + (n + p + 1) / (p + 1)
    return torch.where(has_positive, ranks, torch.full_like(ranks, float("inf")))


def block_rows(chunk_size: int | None, n_gallery: int, device: torch.device) -> int:
    """Rows per block: ``chunk_size`` checked, or a cache-sized default for the device."""
    if chunk_size is None:
        budget = _CUDA_BLOCK_ELEMENTS if device.type == "cuda" else _CPU_BLOCK_ELEMENTS
        return max(1, budget // n_gallery)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return chunk_size


def count_above_and_tied(
    s: torch.Tensor, best: torch.Tensor, rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``s [Q, G]``: how many entries are > ``best`` and how many are == it.

    Blocks hold about ``rows x G`` elements. A column-major ``s`` (a transposed view,
    as when a text-to-image matrix is the transpose of an image-to-text one) is walked
    along its contiguous axis instead: blocks of gallery items, reduced over the
    gallery axis into per-query totals, so that every block is one contiguous read.
    """
    n_queries, n_gallery = s.shape
    # Counts are summed in floating point: exact for whole numbers up to 2**24 in
    # float32 (one count never exceeds G) and up to 2**53 in float64.
    acc = torch.float32 if s.is_floating_point() and n_gallery <= 1 << 24 else torch.float64
    if s.stride(0) == 1 and s.stride(1) != 1:
        gallery_major = s.T
        step = max(1, rows * n_gallery // n_queries)
        sums = torch.zeros((3, n_queries), dtype=acc, device=s.device)
        for start in range(0, n_gallery, step):
            block = gallery_major[start : start + step]
            sums += _block_sums(block, best[None, :], 0, acc)
    else:
        sums = torch.empty((3, n_queries), dtype=acc, device=s.device)
        for start in range(0, n_queries, rows):
            stop = min(start + rows, n_queries)
            sums[:, start:stop] = _block_sums(s[start:stop], best[start:stop, None], 1, acc)
    probe, above_minus_below, above_plus_below = sums
    suspicious = ~torch.isfinite(probe)
    if bool(suspicious.any()):
        rows_to_check = suspicious.nonzero()[:, 0]
        found = first_nonfinite(s[rows_to_check])
        if found is not None:
            (i, j), value = found
            raise ValueError(
                f"scores contains {value} at [{int(rows_to_check[i])}, {j}]; scores must be finite"
            )
    above = ((above_minus_below + above_plus_below) / 2).round().long()
    return above, n_gallery - above_plus_below.round().long()


def _block_sums(block: torch.Tensor, b: torch.Tensor, dim: int, acc: torch.dtype) -> torch.Tensor:
    """``[probe, above - below, above + below]`` of ``block`` against ``b``, over ``dim``.

    ``probe`` is non-finite when the block holds a NaN or an infinity (or, rarely, when
    finite differences overflow; the caller's exact check tells these apart). Only sums
    are returned, so that accumulating blocks costs one addition.
    """
    if not block.is_floating_point():
        above = (block > b).sum(dim).to(acc)
        below = (block < b).sum(dim).to(acc)
        return torch.stack([torch.zeros_like(above), above - below, above + below])
    d = block - b
    probe = d.sum(dim, dtype=acc)
    # sign(d) is exact: a difference of two distinct IEEE floats is never 0. Its sum is
    # above - below, the sum of its squares above + below.
    d.sign_()
    above_minus_below = d.sum(dim, dtype=acc)
    d.square_()
    return torch.stack([probe, above_minus_below, d.sum(dim, dtype=acc)])
