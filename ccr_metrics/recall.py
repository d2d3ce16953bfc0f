"""Recall@K from ranks, and its aggregation over directions and languages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ._backend import ArrayLike, to_tensor
from ._validation import check_ndim, check_numeric, check_positive_ints, shape_str

__all__ = ["multilingual_recall", "recall_at_k"]

DIRECTIONS = ("i2t", "t2i")


def recall_at_k(ranks: ArrayLike, k: int | Iterable[int] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of queries whose positive is ranked within the top ``k``.

    Parameters
    ----------
    ranks : array-like or torch.Tensor, shape [Q]
        1-based ranks, as :func:`~ccr_metrics.positive_ranks` returns them; ``inf``
        marks a query counted as a miss.
    k : int or iterable of int, default (1, 5, 10)
        Cut-offs.

    Returns
    -------
    recall : dict of int to float
        ``{k: fraction}`` in ``[0, 1]``, in the order the cut-offs were given. Papers
        print these as percentages.

    Raises
    ------
    ValueError
        If ``ranks`` is not a non-empty 1-D array, holds NaN or a rank below 1, or if a
        cut-off is not a positive integer.

    Notes
    -----
    A query counts at ``k`` when its rank is ``<= k``; with ``ties="average"`` a rank
    can be fractional (1.5 is not within the top 1). A query with several positives
    counts when any of them is within the top ``k`` (its rank is its best positive's),
    which differs from the fraction of positives found that some libraries call recall.

    Examples
    --------
    >>> recall_at_k([1, 3, 12, 2], k=(1, 5, 10))
    {1: 0.25, 5: 0.75, 10: 0.75}
    """
    cutoffs = check_positive_ints("k", k)
    r = _checked_ranks(ranks)
    ks = torch.tensor(cutoffs, dtype=torch.float64, device=r.device)
    hits = (r[:, None] <= ks[None, :]).sum(0).double() / r.shape[0]
    return dict(zip(cutoffs, hits.tolist(), strict=True))


def multilingual_recall(
    ranks: Mapping[str, Mapping[str, ArrayLike]],
    *,
    k: int | Iterable[int] = (1, 5, 10),
) -> dict[str, Any]:
    """Build the paper's recall table: R@K per language and direction, mean recall, averages.

    Parameters
    ----------
    ranks : mapping of str to mapping of str to array-like
        ``{language: {"i2t": ranks, "t2i": ranks}}`` with ranks as
        :func:`~ccr_metrics.image_to_text_ranks` and
        :func:`~ccr_metrics.text_to_image_ranks` return them. A language may carry one
        direction only; then its mean recall is over that direction.
    k : int or iterable of int, default (1, 5, 10)
        Cut-offs.

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
    if not ranks:
        raise ValueError("ranks must map at least one language to its ranks")
    recall: dict[str, dict[str, dict[int, float]]] = {}
    for language, by_direction in ranks.items():
        unknown = set(by_direction) - set(DIRECTIONS)
        if unknown:
            raise ValueError(
                f"ranks[{language!r}] has unknown direction(s) {sorted(unknown)}; "
                f"expected {list(DIRECTIONS)}"
            )
        if not by_direction:
            raise ValueError(f"ranks[{language!r}] holds no direction")
        recall[language] = {
            d: recall_at_k(by_direction[d], k) for d in DIRECTIONS if d in by_direction
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
        raise ValueError("ranks must hold at least one query, got shape [0]")
    r = r.double()
    if bool(torch.isnan(r).any()):
        at = int(torch.isnan(r).nonzero()[0, 0])
        raise ValueError(f"ranks contains NaN at position {at} of {shape_str(r)}")
    if bool((r < 1).any()):
        at = int((r < 1).nonzero()[0, 0])
        raise ValueError(
            f"ranks must be 1-based (>= 1), got {float(r[at])} at position {at}; "
            "add 1 to 0-based positions"
        )
    return r
