"""Exact ranks of two-stage (re-ranking) retrieval, and the released filled protocol.

Models with a fusion encoder (ALBEF, BLIP, X-VLM, CCLM and the 1-to-K paper's CCRK)
retrieve in two stages: a first-stage (coarse) similarity picks each query's top ``k``
candidates, a cross-encoder re-scores only those (fine scores), and the released
evaluation writes the fine scores into a matrix filled with -100 and ranks it by
argsort, so every rank beyond ``k`` is decided by the sort's tie order.

:func:`reranked_ranks` ranks the cascade itself: the candidates first, ordered by their
fine scores, then every other item, ordered by its coarse score. Each query's rank is a
count in the segment where its best positive sits plus, behind the candidates, ``k``:
exact under every tie policy, and deep ranks stay informative.
:func:`released_rerank_scores` builds the filled matrix, for numbers comparable with
published tables; :func:`top_candidates` picks the candidates with a stated tie rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._backend import Array, ArrayLike, to_output, to_tensor
from ._cascade import (
    candidate_slots,
    checked_candidates,
    checked_fine,
    coarse_part,
    combine,
    fine_part,
)
from ._counting import check_chunk_size, count_against
from ._positives import counts_output, mask_pairs, parse_positives
from ._selection import select_top
from ._validation import (
    InputError,
    check_choice,
    check_finite,
    check_ndim,
    check_numeric,
    dtype_str,
    positive_int,
    shape_str,
)
from .ties import DEFAULT_TIES, EMPTY, TIES, Empty, RankCounts, Ties

__all__ = [
    "released_rerank_scores",
    "reranked_rank_counts",
    "reranked_ranks",
    "top_candidates",
]

# Rows per block of top_candidates on the torch path, whose tie handling holds a few
# [rows, G] temporaries.
_SELECT_ELEMENTS = 1 << 22


def reranked_rank_counts(
    coarse: ArrayLike,
    candidates: ArrayLike,
    fine: ArrayLike,
    positives: ArrayLike | Sequence[Sequence[int]],
    *,
    chunk_size: int | None = None,
    empty: Empty = "error",
) -> RankCounts:
    """Rank counts of each query's best positive in the two-stage order.

    Parameters
    ----------
    coarse : array-like or torch.Tensor, shape [Q, G]
        First-stage scores of every query against every gallery item; any real dtype.
    candidates : array-like or torch.Tensor of int, shape [Q, k]
        The items each query's second stage re-scored: distinct gallery indices per
        row, ``k <= G`` (any order; :func:`top_candidates` picks the usual ones).
    fine : array-like or torch.Tensor, shape [Q, k]
        Second-stage scores: ``fine[q, j]`` is the score of item ``candidates[q, j]``.
    positives : array-like, torch.Tensor or sequence of sequences of int
        Each query's relevant items, in any form :func:`~ccr_metrics.rank_counts`
        takes: indices ``[Q]``, a bool mask ``[Q, G]``, or lists of indices.
    chunk_size : int, optional
        Rows per block when counting ``coarse`` (as for :func:`rank_counts`); the
        result is the same for every value.
    empty : {"error", "miss"}, default "error"
        What a query without any positive gets: a ValueError, or zero counts (a miss).

    Returns
    -------
    RankCounts
        ``above``, ``tied_negatives``, ``tied_positives`` (int64 ``[Q]``, numpy for
        numpy input, torch on the device of ``coarse`` for torch input), counted in the
        segment of the best positive; ``above`` includes the ``k`` candidates when that
        is the non-candidate segment. ``.ranks(ties)`` gives ranks.

    Raises
    ------
    ValueError
        If ``coarse`` is not a non-empty finite ``[Q, G]`` matrix; ``candidates`` is
        not integer ``[Q, k]`` with ``k <= G``, holds an index outside ``[0, G)`` or
        repeats one in a row; ``fine`` is not finite or not ``[Q, k]``; or as
        :func:`rank_counts` for ``positives`` and ``empty``.

    Notes
    -----
    Query ``q``'s order is its candidates, by ``fine`` (higher first), then the other
    ``G - k`` items, by ``coarse``. A positive among the candidates is therefore never
    behind an item that is not one, whatever the scores. With ``b`` the best positive's
    score in its segment, the counts are the segment's items strictly above ``b`` (plus
    ``k`` behind the candidates), its negatives tied with ``b`` and its positives tied
    with ``b``; a tie policy applies inside that segment only.

    Examples
    --------
    Four gallery items; the second stage re-scored items 3 and 1 of query 0 (``k = 2``)
    and items 0 and 2 of query 1:

    >>> import numpy as np
    >>> coarse = np.array([[0.1, 0.7, 0.4, 0.9],
    ...                    [0.8, 0.3, 0.6, 0.2]])
    >>> candidates = np.array([[3, 1], [0, 2]])
    >>> fine = np.array([[2.0, 5.0], [1.0, 1.0]])
    >>> counts = reranked_rank_counts(coarse, candidates, fine, [2, 2])
    >>> counts.above, counts.tied_negatives, counts.tied_positives
    (array([2, 0]), array([0, 1]), array([1, 1]))

    Query 0's positive, item 2, is no candidate: both candidates come first (``k =
    2``), and no other item beats its coarse 0.4, so its rank is 3. Query 1's positive
    is a candidate tied with item 0 at fine 1.0: rank 1 or 2, 1.5 expected.

    >>> counts.ranks("expected")
    array([3. , 1.5])
    """
    check_choice("empty", empty, EMPTY)
    c, as_torch = to_tensor(coarse, "coarse")
    _check_coarse(c)
    c = c.detach()
    check_chunk_size(chunk_size)
    n_queries, n_gallery = c.shape
    cand = checked_candidates(candidates, n_queries, n_gallery, c.device)
    f = checked_fine(fine, cand.shape, c.device)
    parsed = parse_positives(positives, n_queries, n_gallery, c.device)
    query, column = parsed if isinstance(parsed, tuple) else mask_pairs(parsed)
    slots = candidate_slots(cand, n_gallery, query, column)
    coarse_counts = coarse_part(
        lambda best: count_against(c, best, chunk_size=chunk_size, name="coarse"),
        lambda rows, columns: c[rows, columns],
        c.gather(1, cand),
        slots,
    )
    counts = combine(
        coarse_counts,
        fine_part(f, slots),
        empty=empty,
        positives_name="positives",
        n_gallery=n_gallery,
    )
    return counts_output(*counts, as_torch)


def reranked_ranks(
    coarse: ArrayLike,
    candidates: ArrayLike,
    fine: ArrayLike,
    positives: ArrayLike | Sequence[Sequence[int]],
    *,
    ties: Ties = DEFAULT_TIES,
    chunk_size: int | None = None,
    empty: Empty = "error",
) -> Array:
    """Rank of each query's best positive in the two-stage order, with a stated tie rule.

    ``reranked_rank_counts(coarse, candidates, fine, positives, ...).ranks(ties)``: the
    candidates first, by their second-stage scores, then the other items by their
    first-stage scores.

    Parameters
    ----------
    coarse, candidates, fine, positives, chunk_size
        As for :func:`reranked_rank_counts`.
    ties : {"expected", "average", "optimistic", "pessimistic"}, default "expected"
        As for :func:`~ccr_metrics.positive_ranks`, applied inside the segment where
        the best positive sits.
    empty : {"error", "miss"}, default "error"
        What a query without any positive gets: a ValueError, or the rank ``inf``.

    Returns
    -------
    ranks : numpy.ndarray or torch.Tensor, shape [Q], float64
        1-based ranks, numpy for numpy input, on the device of ``coarse`` for torch.

    Raises
    ------
    ValueError
        As :func:`reranked_rank_counts`, and if ``ties`` is not a valid choice.

    Notes
    -----
    Two identities hold exactly (and are tested): with ``k = G`` the ranks are
    :func:`~ccr_metrics.positive_ranks` of ``fine`` scattered into a full matrix; with
    the top ``k`` of ``coarse`` as candidates, ``fine`` equal to their coarse scores
    and no other item tied with a candidate, they are ``positive_ranks(coarse)``.

    Examples
    --------
    >>> import numpy as np
    >>> coarse = np.array([[0.1, 0.7, 0.4, 0.9],
    ...                    [0.8, 0.3, 0.6, 0.2]])
    >>> candidates = np.array([[3, 1], [0, 2]])
    >>> fine = np.array([[2.0, 5.0], [1.0, 1.0]])
    >>> reranked_ranks(coarse, candidates, fine, [1, 2])  # item 1 leads query 0's fine
    array([1. , 1.5])
    >>> reranked_ranks(coarse, candidates, fine, [1, 2], ties="pessimistic")
    array([1., 2.])
    """
    check_choice("ties", ties, TIES)
    counts = reranked_rank_counts(
        coarse, candidates, fine, positives, chunk_size=chunk_size, empty=empty
    )
    return counts.ranks(ties)


def released_rerank_scores(
    coarse: ArrayLike, candidates: ArrayLike, fine: ArrayLike, *, fill: float = -100.0
) -> Array:
    """Build the released evaluation's matrix: ``fine`` at the candidates, ``fill`` elsewhere.

    ALBEF-style evaluation code (the 1-to-K paper's included) starts each query's row
    at -100 and writes the cross-encoder's score at its top ``k`` candidates. Ranking
    that matrix with :func:`~ccr_metrics.positive_ranks` gives numbers comparable with
    published tables; say which tie policy (the released code's argsort order is
    none of them, see ``docs/reranking.md``).

    Parameters
    ----------
    coarse : array-like or torch.Tensor, shape [Q, G]
        First-stage scores; only their shape, device and kind (numpy or torch) are
        used, as in the released protocol.
    candidates, fine
        As for :func:`reranked_rank_counts`.
    fill : float, default -100.0
        The score of every item that is not a candidate.

    Returns
    -------
    scores : numpy.ndarray or torch.Tensor, shape [Q, G]
        In the dtype of ``fine`` (float64 for integer ``fine``).

    Raises
    ------
    ValueError
        As :func:`reranked_rank_counts` for ``candidates`` and ``fine``, or if ``fill``
        is not a finite number.

    Notes
    -----
    A candidate whose fine score is at or below ``fill`` ties with, or falls behind,
    every item that is not a candidate: the filled protocol differs from the cascade
    there too, not only in tie order.

    Examples
    --------
    >>> import numpy as np
    >>> coarse = np.zeros((1, 4))
    >>> released_rerank_scores(coarse, np.array([[3, 1]]), np.array([[2.0, 5.0]]))
    array([[-100.,    5., -100.,    2.]])
    """
    c, as_torch = to_tensor(coarse, "coarse")
    check_ndim(c, "coarse", 2, "[Q, G] (queries x gallery)")
    n_queries, n_gallery = c.shape
    cand = checked_candidates(candidates, n_queries, n_gallery, c.device)
    f = checked_fine(fine, cand.shape, c.device)
    try:
        value = float(fill) if not isinstance(fill, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"fill must be a finite number, got {fill!r}", argument="fill")
    dtype = f.dtype if f.is_floating_point() else torch.float64
    if abs(value) > torch.finfo(dtype).max:
        raise InputError(
            f"fill {value:g} is beyond the range of fine's dtype {dtype_str(f)}",
            argument="fill",
        )
    out = torch.full((n_queries, n_gallery), value, dtype=dtype, device=c.device)
    out.scatter_(1, cand, f.to(dtype))
    return to_output(out, as_torch)


def top_candidates(scores: ArrayLike, k: int) -> Array:
    """Pick the ``k`` highest-scoring items of each row; of tied items, the lower index.

    The first stage of a two-stage model, with the tie rule stated: when several items
    tie at the ``k``-th score, those with the lower gallery index become candidates.

    Parameters
    ----------
    scores : array-like or torch.Tensor, shape [Q, G]
        First-stage scores; finite, any real dtype.
    k : int
        Candidates per query, ``1 <= k <= G``.

    Returns
    -------
    candidates : numpy.ndarray or torch.Tensor of int64, shape [Q, k]
        Gallery indices, by score (higher first), ties by index (lower first).

    Raises
    ------
    ValueError
        If ``scores`` is not a non-empty finite ``[Q, G]`` matrix or ``k`` is not an
        integer in ``[1, G]``.

    Examples
    --------
    >>> import numpy as np
    >>> top_candidates(np.array([[0.2, 0.9, 0.5, 0.9, 0.5]]), 3)
    array([[1, 3, 2]])
    """
    s, as_torch = to_tensor(scores, "scores")
    _check_coarse(s, "scores")
    s = s.detach()
    n_queries, n_gallery = s.shape
    if positive_int(k) is None or int(k) > n_gallery:
        raise InputError(
            f"k must be an integer in [1, {n_gallery}] (the gallery size), got {k!r}",
            argument="k",
        )
    check_finite(s, "scores")
    rows = max(1, _SELECT_ELEMENTS // n_gallery)
    parts = []
    for a in range(0, n_queries, rows):
        block = s[a : a + rows].contiguous()
        values, index = select_top(block[None], [0], [n_gallery], [0], int(k))
        # By score, higher first; index order (stable) breaks ties.
        order = torch.argsort(values, dim=1, descending=True, stable=True)
        parts.append(index.gather(1, order))
    return to_output(torch.cat(parts), as_torch)


def _check_coarse(c: torch.Tensor, name: str = "coarse") -> None:
    check_ndim(c, name, 2, "[Q, G] (queries x gallery)")
    check_numeric(c, name)
    if c.shape[0] == 0 or c.shape[1] == 0:
        raise InputError(
            f"{name} must have at least one query and one gallery item, got {shape_str(c)}",
            argument=name,
        )
