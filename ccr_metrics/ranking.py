"""Exact ranks of positives by counting, in blocks, how many candidates beat them.

The rank of a query is the 1-based position of its best-ranked positive. Nothing is
sorted: for each query the best positive score ``b`` is looked up, and one pass over the
query's row counts the candidates strictly above ``b`` (``a``) and those tied with it.
Of the tied ones, ``p`` are positives and ``n`` are negatives. These three counts,
:class:`RankCounts`, are the one ranking value every number of the library comes
from; a tie policy turns them into a rank:

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

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ._backend import Array, ArrayLike, to_output, to_tensor
from ._counting import check_chunk_size, count_against, count_masked
from ._validation import (
    check_choice,
    check_ndim,
    check_numeric,
    dtype_str,
    shape_str,
)

__all__ = [
    "DEFAULT_TIES",
    "TIES",
    "RankCounts",
    "image_to_text_ranks",
    "positive_ranks",
    "rank_counts",
    "text_to_image_ranks",
]

Ties = Literal["optimistic", "pessimistic", "average", "expected"]
Empty = Literal["error", "miss"]

#: The tie policies the library accepts wherever ranks or recall are computed.
TIES: tuple[Ties, ...] = ("optimistic", "pessimistic", "average", "expected")
#: The default tie policy: the expectation under a uniformly random order of the tied
#: items, so a constant score matrix ranks every positive in the middle and scores
#: chance recall, neither the best nor the worst case.
DEFAULT_TIES: Ties = "expected"
EMPTY: tuple[Empty, ...] = ("error", "miss")


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
            raise ValueError(
                "RankCounts needs above, tied_negatives and tied_positives as three numpy "
                "arrays or three tensors"
            )
        tensors = {name: to_tensor(v, name)[0] for name, v in fields.items()}
        first = tensors["above"]
        for name, t in tensors.items():
            if (
                t.ndim != 1
                or t.dtype.is_floating_point
                or t.dtype.is_complex
                or t.dtype == torch.bool
            ):
                raise ValueError(
                    f"RankCounts.{name} must be a 1-D integer array [Q], got {dtype_str(t)} "
                    f"{shape_str(t)}"
                )
            if t.shape != first.shape or t.device != first.device:
                raise ValueError(
                    f"RankCounts.{name} {shape_str(t)} on {t.device} does not match above "
                    f"{shape_str(first)} on {first.device}"
                )
            if t.device.type != "meta" and bool((t < 0).any()):
                at = int((t < 0).nonzero()[0, 0])
                raise ValueError(
                    f"RankCounts.{name} holds {int(t[at])} at query {at}; counts are >= 0"
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
            raise ValueError(
                f"RankCounts of {len(self)} and {len(other)} queries (or of numpy and torch) "
                "cannot be added; add counts of the same queries"
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
        cutoff = _check_cutoff(k)
        a, n, p = self._tensors()
        if ties == "expected":
            out = _expected_hits(a, n, p, cutoff)
        else:
            out = (_ranks(a, n, p, ties) <= cutoff).double()
        return to_output(out, self._as_torch)


def _check_cutoff(k: Any) -> int:
    if isinstance(k, torch.Tensor) and k.ndim == 0:
        k = k.item()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


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
    _check_scores(s)
    s = s.detach()
    check_chunk_size(chunk_size)
    parsed = _parse_positives(positives, s.shape[0], s.shape[1], s.device)
    if best is None:
        counts = counts_from_positives(
            s, parsed, chunk_size=chunk_size, empty=empty, missing="positives"
        )
    else:
        b = _check_best(best, s)
        query, column = parsed if isinstance(parsed, tuple) else mask_pairs(parsed)
        counts = counts_against_best(s, query, column, b, chunk_size=chunk_size)
    return _counts_out(*counts, as_torch)


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
    _check_scores(s)
    n_images, n_texts = s.shape
    owner = text_owner_index(text_to_image, n_texts=n_texts, n_images=n_images, device=s.device)
    texts = torch.arange(n_texts, device=s.device)
    check_chunk_size(chunk_size)
    counts = counts_from_positives(
        s.detach(), (owner, texts), chunk_size=chunk_size, empty=empty, missing="text_to_image"
    )
    return to_output(_ranks(*counts, ties), as_torch)


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
    check_chunk_size(chunk_size)
    counts = counts_from_positives(
        s.detach(), (texts, owner), chunk_size=chunk_size, empty="error", missing="text_to_image"
    )
    return to_output(_ranks(*counts, ties), as_torch)


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


def _parse_positives(
    positives: ArrayLike | Sequence[Sequence[int]],
    n_queries: int,
    n_gallery: int,
    device: torch.device,
) -> ParsedPositives:
    """Return the positives as a bool mask ``[Q, G]`` or deduplicated ``(query, column)`` pairs.

    Accepts the three forms :func:`rank_counts` documents. Indices are checked to lie
    in ``[0, n_gallery)``; a message names the first offending query.
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
        return t.to(device)
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
        _check_index_range(column, n_gallery, "positives", "column index", query)
        return query, column  # one per query: nothing to deduplicate
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


def mask_pairs(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ``(query, column)`` pairs of a bool mask ``[Q, G]``, in row-major order.

    Positives are few: the mask's bytes are read as 64-bit words, and only the words
    that are not zero are looked into, which is several times faster than a nonzero
    over every byte. Bytes before the first 8-byte boundary and after the last are
    looked at one by one.
    """
    n_gallery = mask.shape[1]
    flat = mask.contiguous().reshape(-1)
    head = min(-flat.storage_offset() % 8, flat.shape[0])
    whole = head + (flat.shape[0] - head) // 8 * 8
    if whole == head:
        query, column = mask.nonzero(as_tuple=True)
        return query, column
    hot = (flat[head:whole].view(torch.int64) != 0).nonzero()[:, 0]
    candidates = head + (hot[:, None] * 8 + torch.arange(8, device=mask.device)).reshape(-1)
    index = torch.cat(
        [
            flat[:head].nonzero()[:, 0],
            candidates[flat[candidates]],
            whole + flat[whole:].nonzero()[:, 0],
        ]
    )
    return index // n_gallery, index % n_gallery


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


Counts = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
# Parsed positives: a bool mask [Q, G], or (query, column) index pairs.
ParsedPositives = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def counts_from_positives(
    s: torch.Tensor,
    positives: ParsedPositives,
    *,
    chunk_size: int | None,
    empty: Empty,
    missing: str,
) -> Counts:
    """``(above, tied_negatives, tied_positives)`` int64 ``[Q]`` of validated, detached scores.

    The building block behind every public ranking function and the harness.
    ``missing`` names the argument to blame when a query has no positive; with
    ``empty="miss"`` such a query gets zero counts.
    """
    n_queries, n_gallery = s.shape
    if isinstance(positives, torch.Tensor):
        m = count_masked(s, positives)
        if m is not None:
            _check_empty(m.has_positive, empty, missing, n_gallery)
            return m.above, m.tied - m.tied_positives, m.tied_positives
        positives = mask_pairs(positives)
    has_positive = torch.bincount(positives[0], minlength=n_queries) > 0
    _check_empty(has_positive, empty, missing, n_gallery)
    query, column = positives
    at_positives = s[query, column]
    best = torch.zeros(n_queries, dtype=s.dtype, device=s.device)
    best.scatter_reduce_(0, query, at_positives, reduce="amax", include_self=False)
    above, tied, tied_positives = _against(s, query, at_positives, best, chunk_size)
    zero = torch.zeros_like(above)
    return (
        torch.where(has_positive, above, zero),
        torch.where(has_positive, tied - tied_positives, zero),
        torch.where(has_positive, tied_positives, zero),
    )


def _check_empty(has_positive: torch.Tensor, empty: Empty, missing: str, n_gallery: int) -> None:
    if empty == "error" and not bool(has_positive.all()):
        q = int((~has_positive).nonzero()[0, 0])
        raise ValueError(
            f"{missing} gives query row {q} of scores no positive among its {n_gallery} "
            "candidates; pass empty='miss' to count such queries as misses"
        )


def counts_against_best(
    s: torch.Tensor,
    query: torch.Tensor,
    column: torch.Tensor,
    best: torch.Tensor,
    *,
    chunk_size: int | None,
) -> Counts:
    """Count one part of a gallery against the whole gallery's best scores ``[Q]``.

    ``(query, column)`` are the positives in this part; none may score above its
    query's ``best``.
    """
    at_positives = s[query, column]
    above_best = at_positives > best[query]
    if bool(above_best.any()):
        at = int(above_best.nonzero()[0, 0])
        raise ValueError(
            f"positives has column {int(column[at])} of query {int(query[at])} scoring "
            f"{float(at_positives[at])}, above that query's best {float(best[query[at]])}"
        )
    above, tied, tied_positives = _against(s, query, at_positives, best, chunk_size)
    return above, tied - tied_positives, tied_positives


def _against(
    s: torch.Tensor,
    query: torch.Tensor,
    at_positives: torch.Tensor,
    best: torch.Tensor,
    chunk_size: int | None,
) -> Counts:
    """``(above, tied, tied_positives)`` against ``best``; ``tied`` includes the positives.

    ``at_positives`` are the scores of the positive pairs, whose queries are ``query``.
    """
    tied_positives = torch.zeros(s.shape[0], dtype=torch.long, device=s.device)
    tied_positives.index_add_(0, query, (at_positives == best[query]).long())
    above, tied = count_against(s, best, chunk_size=chunk_size)
    return above, tied, tied_positives


def _check_best(best: ArrayLike, s: torch.Tensor) -> torch.Tensor:
    """``best`` as a tensor ``[Q]`` in the dtype and on the device of ``s``."""
    b, _ = to_tensor(best, "best")
    check_numeric(b, "best")
    if b.ndim != 1 or b.shape[0] != s.shape[0]:
        raise ValueError(
            f"best must have one score per query: shape [{s.shape[0]}], got {shape_str(b)}"
        )
    b = b.to(s.device)
    converted = b.to(s.dtype)
    if converted.dtype != b.dtype and not bool((converted.to(b.dtype) == b).all()):
        raise ValueError(
            f"best ({dtype_str(b)}) holds values that {dtype_str(s)} scores cannot represent; "
            "pass the best scores in the dtype of scores"
        )
    if converted.is_floating_point() and not bool(torch.isfinite(converted).all()):
        at = int((~torch.isfinite(converted)).nonzero()[0, 0])
        raise ValueError(
            f"best contains {float(converted[at])} at position {at}; it must be finite"
        )
    return converted
