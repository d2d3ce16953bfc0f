"""Tie policies, and the rank counts they turn into ranks and recall.

For a query let ``a`` be the number of items scoring strictly above its best positive,
``n`` the negatives and ``p`` the positives scoring exactly that (:class:`RankCounts`).
A tie policy turns these into a rank:

- ``"optimistic"``: ``a + 1`` (ties resolved in the positive's favour);
- ``"pessimistic"``: ``a + n + 1`` (every tied negative placed first);
- ``"average"`` and ``"expected"`` (default): ``a + (n + p + 1) / (p + 1)``, the
  expected position of the first positive when the tied items are shuffled uniformly;
  for ``p = 1`` it is the midpoint of the tie, as
  ``scipy.stats.rankdata(method="average")`` gives.

The two last modes differ only for recall: ``"average"`` counts a query as found at
``K`` when its average rank is ``<= K``, ``"expected"`` counts the probability that
the shuffled tie puts the best positive within the top ``K``
(:meth:`RankCounts.hits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ._backend import Array, to_output, to_tensor
from ._validation import (
    InputError,
    check_choice,
    check_positive_int,
    cutoff_as_float,
    dtype_str,
    is_integer,
    shape_str,
)

__all__ = ["DEFAULT_TIES", "EMPTY", "TIES", "RankCounts"]

Ties = Literal["optimistic", "pessimistic", "average", "expected"]

Empty = Literal["error", "miss"]

#: The tie policies the library accepts wherever ranks or recall are computed.
TIES: tuple[Ties, ...] = ("optimistic", "pessimistic", "average", "expected")

#: The default tie policy: the expectation under a uniformly random order of the tied
#: items, so a constant score matrix ranks every positive in the middle and scores
#: chance recall, neither the best nor the worst case.
DEFAULT_TIES: Ties = "expected"

EMPTY: tuple[Empty, ...] = ("error", "miss")

_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, eq=False)
class RankCounts:
    """Per query: the items above its best positive, and the negatives and positives tied with it.

    What :func:`rank_counts` returns; every rank, recall and MRV of the library is
    computed from these three arrays. Counts of disjoint parts of one gallery, taken
    against the same best-positive scores, add up with ``+``.

    Parameters
    ----------
    above : numpy.ndarray or torch.Tensor, shape [Q], int64
        How many gallery items score strictly above the query's best positive.
    tied_negatives : numpy.ndarray or torch.Tensor, shape [Q], int64
        How many negatives score exactly the best positive's score.
    tied_positives : numpy.ndarray or torch.Tensor, shape [Q], int64
        How many positives score exactly that score (the best one included, so at
        least 1); 0 marks a query without any positive, which ranks ``inf``.

    Raises
    ------
    ValueError
        If the three are not all numpy arrays or all tensors on one device, not 1-D
        integer arrays of one length, or hold a negative count.

    Examples
    --------
    >>> import numpy as np
    >>> from ccr_metrics import rank_counts
    >>> counts = rank_counts(np.array([[0.9, 0.5, 0.5, 0.1]]), [1])
    >>> counts
    RankCounts(above=array([1]), tied_negatives=array([1]), tied_positives=array([1]))
    >>> counts.ranks("optimistic"), counts.ranks("pessimistic"), counts.ranks()
    (array([2.]), array([3.]), array([2.5]))
    >>> counts.hits(2), counts.hits(2, ties="average")  # expected recall, rank 2.5 > 2
    (array([0.5]), array([0.]))
    """

    above: Array
    tied_negatives: Array
    tied_positives: Array

    def __post_init__(self) -> None:
        fields = {
            "above": self.above,
            "tied_negatives": self.tied_negatives,
            "tied_positives": self.tied_positives,
        }
        kinds = {isinstance(v, torch.Tensor) for v in fields.values()}
        if len(kinds) != 1 or not all(
            isinstance(v, (np.ndarray, torch.Tensor)) for v in fields.values()
        ):
            raise InputError(
                "RankCounts needs above, tied_negatives and tied_positives as three numpy "
                "arrays or three tensors",
                argument="RankCounts",
            )
        tensors = {name: to_tensor(v, name)[0] for name, v in fields.items()}
        first = tensors["above"]
        for name, t in tensors.items():
            if t.ndim != 1 or not is_integer(t):
                raise InputError(
                    f"RankCounts.{name} must be a 1-D integer array [Q], got {dtype_str(t)} "
                    f"{shape_str(t)}",
                    argument=f"RankCounts.{name}",
                )
            if t.shape != first.shape or t.device != first.device:
                raise InputError(
                    f"RankCounts.{name} {shape_str(t)} on {t.device} does not match above "
                    f"{shape_str(first)} on {first.device}",
                    argument=f"RankCounts.{name}",
                )
            if t.device.type != "meta" and bool((t < 0).any()):
                at = int((t < 0).nonzero()[0, 0])
                raise InputError(
                    f"RankCounts.{name} holds {int(t[at])} at query {at}; counts are >= 0",
                    argument=f"RankCounts.{name}",
                )

    @property
    def _as_torch(self) -> bool:
        return isinstance(self.above, torch.Tensor)

    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            to_tensor(self.above, "above")[0].long(),
            to_tensor(self.tied_negatives, "tied_negatives")[0].long(),
            to_tensor(self.tied_positives, "tied_positives")[0].long(),
        )

    def __len__(self) -> int:
        return int(self.above.shape[0])

    def __repr__(self) -> str:
        return (
            f"RankCounts(above={self.above!r}, tied_negatives={self.tied_negatives!r}, "
            f"tied_positives={self.tied_positives!r})"
        )

    def __add__(self, other: RankCounts) -> RankCounts:
        """Add the counts of two disjoint parts of a gallery, taken against the same best scores."""
        if not isinstance(other, RankCounts):
            return NotImplemented
        if len(other) != len(self) or other._as_torch != self._as_torch:
            raise InputError(
                f"RankCounts of {len(self)} and {len(other)} queries (or of numpy and torch) "
                "cannot be added; add counts of the same queries",
                argument="other",
            )
        a, n, p = self._tensors()
        b, m, q = other._tensors()
        return _counts_out(
            a + b.to(a.device), n + m.to(a.device), p + q.to(a.device), self._as_torch
        )

    def __getitem__(self, index: Any) -> RankCounts:
        """Return the counts of a subset of the queries (a slice, indices or a bool mask)."""
        a, n, p = self._tensors()
        if not isinstance(index, slice):
            index = to_tensor(index, "index")[0].to(a.device)
        return _counts_out(a[index], n[index], p[index], self._as_torch)

    @property
    def has_positive(self) -> Array:
        """Which queries have a positive, ``[Q]`` bool (``tied_positives > 0``)."""
        return to_output(self._tensors()[2] > 0, self._as_torch)

    def ranks(self, ties: Ties = DEFAULT_TIES) -> Array:
        """1-based rank of each query's best positive under ``ties``, float64 ``[Q]``.

        ``inf`` for a query without a positive. ``"expected"`` and ``"average"`` give
        the same rank: the expected rank under a uniformly random order of the tie.
        """
        check_choice("ties", ties, TIES)
        return to_output(_ranks(*self._tensors(), ties), self._as_torch)

    def hits(self, k: int, *, ties: Ties = DEFAULT_TIES) -> Array:
        """Per query, how much it counts towards Recall@``k``: float64 ``[Q]`` in ``[0, 1]``.

        For ``"expected"``, the exact probability that the best positive lands within
        the top ``k`` when the tied items are put in a uniformly random order: with
        ``m = k - above``, 0 for ``m <= 0``, 1 for ``m > n``, else
        ``1 - C(n, m) / C(n + p, m)``, computed as a product of ``min(m, p)`` ratios
        below 1 in log space (never overflowing, precise for small probabilities).
        For the other modes, 1 where ``ranks(ties) <= k``, else 0. A query without a
        positive counts 0.
        """
        check_choice("ties", ties, TIES)
        cutoff = check_positive_int("k", k)
        a, n, p = self._tensors()
        if ties == "expected":
            # Clamped before any int64 arithmetic (k - above wraps past 2**63): every
            # item of a query whose counts fit int64 is within reach of the int64 maximum.
            out = _expected_hits(a, n, p, min(cutoff, _INT64_MAX))
        else:
            out = (_ranks(a, n, p, ties) <= cutoff_as_float(cutoff)).double()
        return to_output(out, self._as_torch)


def _ranks(a: torch.Tensor, n: torch.Tensor, p: torch.Tensor, ties: Ties) -> torch.Tensor:
    g, n_, p_ = a.double(), n.double(), p.double()
    if ties == "optimistic":
        ranks = g + 1
    elif ties == "pessimistic":
        ranks = g + n_ + 1
    else:
        ranks = g + (n_ + p_ + 1) / (p_ + 1)
    return torch.where(p > 0, ranks, torch.full_like(ranks, float("inf")))


def _expected_hits(a: torch.Tensor, n: torch.Tensor, p: torch.Tensor, k: int) -> torch.Tensor:
    """``P(best positive within the top k)`` under a uniformly random order of the tie."""
    m = k - a
    undecided = (p > 0) & (m > 0) & (m <= n)
    out = ((p > 0) & (m > n)).double()
    if bool(undecided.any()):
        mu, nu, pu = m[undecided].double(), n[undecided].double(), p[undecided].double()
        # P(no positive in the first m places) = C(n, m) / C(n + p, m), a product of
        # min(m, p) factors below 1: prod_{i < m} (1 - p / (n + p - i)) or, equally,
        # prod_{j = 1..p} (1 - m / (n + j)). Summed as log1p and read back with expm1,
        # so neither overflow nor the cancellation in 1 - product loses precision.
        by_positives = pu <= mu
        factors = torch.where(by_positives, pu, mu)
        log_none = torch.zeros_like(nu)
        for i in range(int(factors.max())):
            term = torch.where(
                by_positives, torch.log1p(-mu / (nu + i + 1)), torch.log1p(-pu / (nu + pu - i))
            )
            log_none += torch.where(factors > i, term, 0.0)
        out[undecided] = -torch.expm1(log_none)
    return out


def _counts_out(a: torch.Tensor, n: torch.Tensor, p: torch.Tensor, as_torch: bool) -> RankCounts:
    return RankCounts(to_output(a, as_torch), to_output(n, as_torch), to_output(p, as_torch))
