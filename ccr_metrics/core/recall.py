"""Recall@K from ranks, and its aggregation over directions and languages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ._backend import ArrayLike, to_tensor
from ._validation import (
    InputError,
    check_choice,
    check_ndim,
    check_numeric,
    check_positive_ints,
    cutoff_as_float,
    shape_str,
)
from .ties import DEFAULT_TIES, TIES, RankCounts, Ties

__all__ = ["multilingual_recall", "recall_at_k"]

DIRECTIONS = ("i2t", "t2i")


def recall_at_k(
    ranks: ArrayLike | RankCounts,
    k: int | Iterable[int] = (1, 5, 10),
    *,
    ties: Ties | None = None,
) -> dict[int, float]:
    """Fraction of queries whose positive is ranked within the top ``k``.

    Parameters
    ----------
    ranks : array-like, torch.Tensor or RankCounts, shape [Q]
        1-based ranks, as :func:`~ccr_metrics.positive_ranks` returns them (``inf``
        marks a query counted as a miss), or the :class:`~ccr_metrics.RankCounts` of
        :func:`~ccr_metrics.rank_counts`, from which any tie policy can be applied.
    k : int or iterable of int, default (1, 5, 10)
        Cut-offs.
    ties : {"expected", "average", "optimistic", "pessimistic"}, optional
        For counts only (default ``"expected"``): how tied items are ordered. Ranks
        already carry the policy they were made with, so passing ``ties`` with ranks
        is refused.

    Returns
    -------
    recall : dict of int to float
        ``{k: fraction}`` in ``[0, 1]``, in the order the cut-offs were given. Papers
        print these as percentages.

    Raises
    ------
    ValueError
        If ``ranks`` is not a non-empty 1-D array, holds NaN or a rank below 1, or if a
        cut-off is not a positive integer; if ``ties`` is invalid or given with ranks.

    Notes
    -----
    A query counts at ``k`` when its rank is ``<= k``; with the expected (average)
    rank a rank can be fractional (1.5 is not within the top 1). From counts,
    ``ties="expected"`` counts each query with the exact probability that its best
    positive lands within the top ``k`` when the tied items are put in a uniformly
    random order (:meth:`~ccr_metrics.RankCounts.hits`): the expected recall of an
    evaluation that breaks ties at random, such as an argsort. A constant score matrix
    over ``G`` candidates then scores ``k / G``, chance, where average ranks give 0
    below the middle and 1 above it. On tie-free scores every policy gives the same
    recall. A query with several positives counts when any of them is within the top
    ``k`` (its rank is its best positive's), which differs from the fraction of
    positives found that some libraries call recall.

    Examples
    --------
    >>> recall_at_k([1, 3, 12, 2], k=(1, 5, 10))
    {1: 0.25, 5: 0.75, 10: 0.75}
    >>> import numpy as np
    >>> from ccr_metrics import rank_counts
    >>> counts = rank_counts(np.zeros((2, 4)), [0, 1])  # a collapsed model: all tied
    >>> recall_at_k(counts, k=(1, 2)), recall_at_k(counts, k=(1, 2), ties="average")
    ({1: 0.25, 2: 0.5}, {1: 0.0, 2: 0.0})
    """
    cutoffs = check_positive_ints("k", k)
    if isinstance(ranks, RankCounts):
        policy = check_choice("ties", DEFAULT_TIES if ties is None else ties, TIES)
        if len(ranks) == 0:
            raise InputError("ranks must hold at least one query, got 0 counts", argument="ranks")
        hits = [float(to_tensor(ranks.hits(c, ties=policy), "hits")[0].mean()) for c in cutoffs]
        return dict(zip(cutoffs, hits, strict=True))
    if ties is not None:
        raise InputError(
            "ties applies to RankCounts; ranks already carry the tie policy they were "
            "made with (pass rank_counts(...) to choose it here)",
            argument="ties",
        )
    r = _checked_ranks(ranks)
    ks = torch.tensor([cutoff_as_float(c) for c in cutoffs], dtype=torch.float64, device=r.device)
    hit = (r[:, None] <= ks[None, :]).sum(0).double() / r.shape[0]
    return dict(zip(cutoffs, hit.tolist(), strict=True))


def multilingual_recall(
    ranks: Mapping[str, Mapping[str, ArrayLike | RankCounts]],
    *,
    k: int | Iterable[int] = (1, 5, 10),
    ties: Ties | None = None,
) -> dict[str, Any]:
    """Build the paper's recall table: R@K per language and direction, mean recall, averages.

    Parameters
    ----------
    ranks : mapping of str to mapping of str to array-like
        ``{language: {"i2t": ranks, "t2i": ranks}}`` with ranks as
        :func:`~ccr_metrics.image_to_text_ranks` and
        :func:`~ccr_metrics.text_to_image_ranks` return them. A language may carry one
        direction only; then its mean recall is over that direction. Each entry may
        also be :class:`~ccr_metrics.RankCounts`.
    k : int or iterable of int, default (1, 5, 10)
        Cut-offs.
    ties : {"expected", "average", "optimistic", "pessimistic"}, optional
        The tie policy for entries given as counts, as for :func:`recall_at_k`.

    Returns
    -------
    table : dict
        ``{"recall": {lang: {dir: {k: f}}}, "mean_recall": {lang: f},
        "average": {"recall": {dir: {k: f}}, "mean_recall": f}}``, fractions in
        ``[0, 1]``. ``mean_recall`` of a language is the mean of all its R@K over both
        directions (the released code's ``r_mean``); ``average`` is the unweighted mean
        over languages, per direction and cut-off over the languages that have that
        direction.

    Raises
    ------
    ValueError
        If ``ranks`` is empty, names a direction other than "i2t" and "t2i", or a
        language has no direction; and as :func:`recall_at_k`.

    Examples
    --------
    >>> table = multilingual_recall(
    ...     {"en": {"i2t": [1, 2], "t2i": [1, 1]}, "de": {"i2t": [3, 1], "t2i": [2, 1]}},
    ...     k=(1, 5),
    ... )
    >>> table["recall"]["de"]
    {'i2t': {1: 0.5, 5: 1.0}, 't2i': {1: 0.5, 5: 1.0}}
    >>> table["mean_recall"]
    {'en': 0.875, 'de': 0.75}
    >>> table["average"]["recall"]["i2t"], table["average"]["mean_recall"]
    ({1: 0.5, 5: 1.0}, 0.8125)
    """
    if not isinstance(ranks, Mapping) or not ranks:
        raise InputError(
            "ranks must map at least one language to {direction: ranks or counts}, got "
            f"{type(ranks).__name__ if not isinstance(ranks, Mapping) else 'an empty mapping'}",
            argument="ranks",
        )
    recall: dict[str, dict[str, dict[int, float]]] = {}
    for language, by_direction in ranks.items():
        if not isinstance(by_direction, Mapping):
            raise InputError(
                f"ranks[{language!r}] must map directions ('i2t', 't2i') to ranks or "
                f"counts, got {type(by_direction).__name__}",
                argument=f"ranks[{language!r}]",
            )
        unknown = set(by_direction) - set(DIRECTIONS)
        if unknown:
            raise InputError(
                f"ranks[{language!r}] has unknown direction(s) {sorted(unknown)}; "
                f"expected {list(DIRECTIONS)}",
                argument=f"ranks[{language!r}]",
            )
        if not by_direction:
            raise InputError(
                f"ranks[{language!r}] holds no direction", argument=f"ranks[{language!r}]"
            )
        recall[language] = {
            d: recall_at_k(
                by_direction[d], k, ties=ties if isinstance(by_direction[d], RankCounts) else None
            )
            for d in DIRECTIONS
            if d in by_direction
        }
    mean_recall = {
        language: _mean([v for by_k in dirs.values() for v in by_k.values()])
        for language, dirs in recall.items()
    }
    average: dict[str, dict[int, float]] = {}
    for d in DIRECTIONS:
        present = [dirs[d] for dirs in recall.values() if d in dirs]
        if present:
            average[d] = {c: _mean([by_k[c] for by_k in present]) for c in present[0]}
    return {
        "recall": recall,
        "mean_recall": mean_recall,
        "average": {"recall": average, "mean_recall": _mean(list(mean_recall.values()))},
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _checked_ranks(ranks: ArrayLike) -> torch.Tensor:
    r, _ = to_tensor(ranks, "ranks")
    check_numeric(r, "ranks")
    check_ndim(r, "ranks", 1, "[Q] (one rank per query)")
    if r.shape[0] == 0:
        raise InputError("ranks must hold at least one query, got shape [0]", argument="ranks")
    r = r.double()
    if bool(torch.isnan(r).any()):
        at = int(torch.isnan(r).nonzero()[0, 0])
        raise InputError(f"ranks contains NaN at position {at} of {shape_str(r)}", argument="ranks")
    if bool((r < 1).any()):
        at = int((r < 1).nonzero()[0, 0])
        raise InputError(
            f"ranks must be 1-based (>= 1), got {float(r[at])} at position {at}; "
            "add 1 to 0-based positions",
            argument="ranks",
        )
    return r
