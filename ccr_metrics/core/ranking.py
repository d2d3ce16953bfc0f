"""Exact ranks of positives by counting, in blocks, how many candidates beat them.

The rank of a query is the 1-based position of its best-ranked positive. Nothing is
sorted: for each query the best positive score ``b`` is looked up, and one pass over the
query's row counts the candidates strictly above ``b`` and those tied with it, of which
some are positives and the rest negatives. These three counts, :class:`RankCounts`, are
the one ranking value every number of the library comes from; a tie policy
(:mod:`ccr_metrics.ties`) turns them into ranks and recall.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._backend import Array, ArrayLike, to_tensor
from ._counting import check_chunk_size
from ._positives import (
    check_best,
    check_scores,
    counts_against_best,
    counts_from_positives,
    counts_output,
    mask_pairs,
    parse_positives,
    text_owner_index,
)
from ._validation import check_choice
from .ties import DEFAULT_TIES, EMPTY, TIES, Empty, RankCounts, Ties

__all__ = [
    "image_to_text_ranks",
    "positive_ranks",
    "rank_counts",
    "text_to_image_ranks",
]


def rank_counts(
    scores: ArrayLike,
    positives: ArrayLike | Sequence[Sequence[int]],
    *,
    best: ArrayLike | None = None,
    chunk_size: int | None = None,
    empty: Empty = "error",
) -> RankCounts:
    """Count, per query, the items above its best positive and those tied with it.

    Parameters
    ----------
    scores : array-like or torch.Tensor, shape [Q, G]
        Similarity of each of ``Q`` queries to each of ``G`` gallery items; higher is
        better. Any real dtype (integers, float16, bfloat16, float32, float64) and any
        device. Scores are compared in their own precision: half-precision scores tie
        far more often than float32 ones.
    positives : array-like, torch.Tensor or sequence of sequences of int
        Which gallery columns are relevant to each query, in one of three forms:

        - integer array ``[Q]``: one positive column per query;
        - boolean mask ``[Q, G]``;
        - ``Q`` sequences of column indices (ragged, e.g. the captions of each image),
          or an integer array ``[Q, P]`` of ``P`` positives per query. An integer
          array shaped exactly like ``scores`` is refused as ambiguous (it is usually
          a 0/1 relevance matrix): pass it as a bool mask or as lists.
    best : array-like or torch.Tensor, shape [Q], optional
        When ``scores`` covers one part of a gallery (a shard), the best positive
        score of each query over the whole gallery, in the dtype of ``scores``. The
        counts are then taken against it, so the counts of disjoint parts add up to
        those of the whole; a query may have no positive in this part, and none of its
        positives here may score above its ``best``.
    chunk_size : int, optional
        Number of query rows handled per block where blocks are used (the torch path:
        other than float32/float64 on CPU with numba). The extra memory is
        ``O(chunk_size * G)``; the result is the same for every value.
    empty : {"error", "miss"}, default "error"
        What a query without any positive gets (without ``best``): a ValueError, or
        zero counts (``tied_positives == 0``), which rank ``inf`` and count as a miss.

    Returns
    -------
    RankCounts
        ``above``, ``tied_negatives`` and ``tied_positives``, int64 ``[Q]``: numpy
        arrays for numpy (or list) input, tensors on the device of ``scores`` for torch
        input.

    Raises
    ------
    ValueError
        If ``scores`` is not 2-D, not real-valued, or holds NaN or infinity; if
        ``positives`` has the wrong shape or length, holds an index outside ``[0, G)``,
        or leaves a query without a positive while ``empty="error"``; if ``best`` does
        not match ``scores`` or a positive scores above it; if ``empty`` or
        ``chunk_size`` is not a valid choice.

    Notes
    -----
    Counting is exact: one comparison per score. With numba installed
    (``pip install "ccr-metrics[fast]"``), float32 and float64 CPU matrices are counted
    by a compiled loop that reads each score once; everything else by torch operations
    over cache-sized blocks. Both give identical counts.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.array([[0.9, 0.1, 0.5],
    ...                    [0.2, 0.8, 0.8]])
    >>> counts = rank_counts(scores, [2, 1])
    >>> counts.above, counts.tied_negatives, counts.tied_positives
    (array([1, 0]), array([0, 1]), array([1, 1]))
    >>> left = rank_counts(scores[:, :2], [[], [1]], best=[0.5, 0.8])
    >>> right = rank_counts(scores[:, 2:], [[0], []], best=[0.5, 0.8])
    >>> (left + right).ranks().tolist() == counts.ranks().tolist()
    True
    """
    check_choice("empty", empty, EMPTY)
    s, as_torch = to_tensor(scores, "scores")
    check_scores(s)
    s = s.detach()
    check_chunk_size(chunk_size)
    parsed = parse_positives(positives, s.shape[0], s.shape[1], s.device)
    if best is None:
        counts = counts_from_positives(
            s, parsed, chunk_size=chunk_size, empty=empty, positives_name="positives"
        )
    else:
        b = check_best(best, s)
        query, column = parsed if isinstance(parsed, tuple) else mask_pairs(parsed)
        counts = counts_against_best(s, query, column, b, chunk_size=chunk_size)
    return counts_output(*counts, as_torch)


def positive_ranks(
    scores: ArrayLike,
    positives: ArrayLike | Sequence[Sequence[int]],
    *,
    ties: Ties = DEFAULT_TIES,
    chunk_size: int | None = None,
    empty: Empty = "error",
) -> Array:
    """Rank of each query's best-ranked positive, counted exactly with a stated tie rule.

    ``rank_counts(scores, positives, ...).ranks(ties)``.

    Parameters
    ----------
    scores : array-like or torch.Tensor, shape [Q, G]
        As for :func:`rank_counts`.
    positives : array-like, torch.Tensor or sequence of sequences of int
        As for :func:`rank_counts`: indices ``[Q]``, a bool mask ``[Q, G]``, or lists.
    ties : {"expected", "average", "optimistic", "pessimistic"}, default "expected"
        How items tied with the best positive are ordered; see Notes.
    chunk_size : int, optional
        As for :func:`rank_counts`; the result is the same for every value.
    empty : {"error", "miss"}, default "error"
        What a query without any positive gets: a ValueError, or the rank ``inf`` so
        that it counts as a miss at every cut-off.

    Returns
    -------
    ranks : numpy.ndarray or torch.Tensor, shape [Q], float64
        1-based ranks. A numpy array for numpy (or list) input, a tensor on the device
        of ``scores`` for torch input. Whole numbers except for the expected rank.

    Raises
    ------
    ValueError
        As :func:`rank_counts`, and if ``ties`` is not a valid choice.

    Notes
    -----
    For query ``q`` let ``b`` be its best positive score, ``a`` the number of items
    scoring strictly above ``b``, ``n`` the number of negatives and ``p`` the number of
    positives scoring exactly ``b``. Then the rank is ``a + 1`` (optimistic),
    ``a + n + 1`` (pessimistic) or ``a + (n + p + 1) / (p + 1)`` (expected and
    average: the expected rank of the first positive when the tied items are put in a
    uniformly random order). The default keeps a constant score matrix from scoring
    perfect recall. Argsort-based code (such as ``itm_eval`` in ALBEF-style
    repositories) breaks ties by the sort's internal order instead; on tie-free scores
    its 0-based positions plus one equal these ranks under every policy.

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
    return rank_counts(scores, positives, chunk_size=chunk_size, empty=empty).ranks(ties)


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
    check_scores(s)
    n_images, n_texts = s.shape
    owner = text_owner_index(text_to_image, n_texts=n_texts, n_images=n_images, device=s.device)
    texts = torch.arange(n_texts, device=s.device)
    check_chunk_size(chunk_size)
    counts = counts_from_positives(
        s.detach(),
        (owner, texts),
        chunk_size=chunk_size,
        empty=empty,
        positives_name="text_to_image",
    )
    return counts_output(*counts, as_torch).ranks(ties)


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
    check_scores(s)
    n_texts, n_images = s.shape
    owner = text_owner_index(text_to_image, n_texts=n_texts, n_images=n_images, device=s.device)
    texts = torch.arange(n_texts, device=s.device)
    check_chunk_size(chunk_size)
    counts = counts_from_positives(
        s.detach(),
        (texts, owner),
        chunk_size=chunk_size,
        empty="error",
        positives_name="text_to_image",
    )
    return counts_output(*counts, as_torch).ranks(ties)
