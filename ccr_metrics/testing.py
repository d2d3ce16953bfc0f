"""Hypothesis strategies for property-testing retrieval metrics.

These are the strategies this project's own property tests use; they are public so
that you can property-test your metric code the same way. They need hypothesis
(``pip install "ccr-metrics[testing]"``), which the rest of the package does not import.

- :func:`score_matrices`: similarity matrices ``[Q, G]``, with many ties or none;
- :func:`positive_sets`: relevance in the three forms :func:`~ccr_metrics.positive_ranks`
  accepts (index ``[Q]``, mask ``[Q, G]``, ragged lists), every query with a positive;
- :func:`retrieval_problems`: a score matrix together with its positives;
- :func:`rank_arrays`: instance x language rank arrays ``[N, K]``;
- :func:`masked_rank_arrays`: rank arrays with a missing-language mask, at least one
  instance present in two languages.

Examples
--------
>>> from hypothesis import given
>>> import ccr_metrics as cm
>>> from ccr_metrics.testing import retrieval_problems
>>> @given(retrieval_problems())
... def test_optimistic_never_worse(problem):
...     scores, positives = problem
...     low = cm.positive_ranks(scores, positives, ties="optimistic")
...     high = cm.positive_ranks(scores, positives, ties="pessimistic")
...     assert (low <= high).all()
>>> test_optimistic_never_worse()
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

__all__ = [
    "masked_rank_arrays",
    "positive_sets",
    "rank_arrays",
    "retrieval_problems",
    "score_matrices",
]

Form = Literal["index", "mask", "ragged"]
FORMS: tuple[Form, ...] = ("index", "mask", "ragged")


@st.composite
def score_matrices(
    draw: st.DrawFn,
    *,
    max_queries: int = 8,
    max_gallery: int = 12,
    shape: tuple[int, int] | None = None,
    ties: bool = True,
    dtype: npt.DTypeLike = np.float64,
) -> npt.NDArray[Any]:
    """Similarity matrices ``[Q, G]``.

    Parameters
    ----------
    max_queries, max_gallery : int
        Upper bounds on ``Q`` and ``G`` (both at least 1) when ``shape`` is not given.
    shape : tuple of int, optional
        A fixed ``(Q, G)``.
    ties : bool, default True
        True draws entries from four values so that ties are common; False draws
        pairwise distinct whole numbers (exact in every float dtype for small sizes).
    dtype : numpy dtype, default float64
        The matrix's dtype.

    Returns
    -------
    strategy : SearchStrategy of numpy.ndarray
        Matrices of shape ``[Q, G]``.

    Examples
    --------
    >>> import numpy as np
    >>> from hypothesis import find
    >>> scores = find(score_matrices(shape=(3, 4), ties=False), lambda s: True)
    >>> scores.shape, len(np.unique(scores))
    ((3, 4), 12)
    """
    if shape is None:
        shape = (draw(st.integers(1, max_queries)), draw(st.integers(1, max_gallery)))
    n = shape[0] * shape[1]
    if ties:
        values = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    else:
        values = draw(st.permutations(range(n)))
    return np.asarray(values, dtype=dtype).reshape(shape)


@st.composite
def positive_sets(
    draw: st.DrawFn, n_queries: int, n_gallery: int, *, form: Form | None = None
) -> Any:
    """Positives for ``n_queries`` queries over ``n_gallery`` items, each query with one or more.

    Parameters
    ----------
    n_queries, n_gallery : int
        The score matrix's shape ``[Q, G]``.
    form : {"index", "mask", "ragged"}, optional
        ``"index"``: int64 array ``[Q]``; ``"mask"``: bool array ``[Q, G]``;
        ``"ragged"``: a list of ``Q`` lists of column indices (unsorted, possibly
        repeated). Drawn at random when not given.

    Returns
    -------
    strategy : SearchStrategy
        Positives in the chosen form.

    Examples
    --------
    >>> from hypothesis import find
    >>> mask = find(positive_sets(3, 5, form="mask"), lambda m: True)
    >>> mask.shape, bool(mask.any(axis=1).all())
    ((3, 5), True)
    """
    chosen = form if form is not None else draw(st.sampled_from(FORMS))
    column = st.integers(0, n_gallery - 1)
    if chosen == "index":
        return np.asarray(draw(st.lists(column, min_size=n_queries, max_size=n_queries)))
    rows = draw(
        st.lists(
            st.lists(column, min_size=1, max_size=n_gallery + 1),
            min_size=n_queries,
            max_size=n_queries,
        )
    )
    if chosen == "ragged":
        return rows
    mask = np.zeros((n_queries, n_gallery), dtype=bool)
    for q, columns in enumerate(rows):
        mask[q, columns] = True
    return mask


@st.composite
def retrieval_problems(
    draw: st.DrawFn,
    *,
    max_queries: int = 8,
    max_gallery: int = 12,
    ties: bool = True,
    form: Form | None = None,
    dtype: npt.DTypeLike = np.float64,
) -> tuple[npt.NDArray[Any], Any]:
    """Draw a score matrix ``[Q, G]`` with positives for every query.

    Parameters
    ----------
    max_queries, max_gallery, ties, dtype
        As for :func:`score_matrices`.
    form : {"index", "mask", "ragged"}, optional
        As for :func:`positive_sets`.

    Returns
    -------
    strategy : SearchStrategy of tuple
        ``(scores, positives)``.

    Examples
    --------
    >>> from hypothesis import find
    >>> scores, positives = find(retrieval_problems(form="index"), lambda p: True)
    >>> len(positives) == scores.shape[0]
    True
    """
    scores = draw(
        score_matrices(max_queries=max_queries, max_gallery=max_gallery, ties=ties, dtype=dtype)
    )
    positives = draw(positive_sets(scores.shape[0], scores.shape[1], form=form))
    return scores, positives


@st.composite
def rank_arrays(
    draw: st.DrawFn,
    *,
    max_instances: int = 10,
    min_languages: int = 2,
    max_languages: int = 6,
    max_rank: int = 50,
) -> npt.NDArray[np.float64]:
    """Rank arrays ``[N, K]``: 1-based whole-number ranks of N instances in K languages.

    Parameters
    ----------
    max_instances : int
        Upper bound on ``N`` (at least 1).
    min_languages, max_languages : int
        Bounds on ``K``.
    max_rank : int
        Largest rank drawn.

    Returns
    -------
    strategy : SearchStrategy of numpy.ndarray
        float64 arrays ``[N, K]`` with entries in ``[1, max_rank]``.

    Examples
    --------
    >>> from hypothesis import find
    >>> ranks = find(rank_arrays(max_rank=5), lambda r: r.shape[0] > 2)
    >>> bool((ranks >= 1).all() and (ranks <= 5).all()), ranks.shape[1] >= 2
    (True, True)
    """
    n = draw(st.integers(1, max_instances))
    k = draw(st.integers(min_languages, max_languages))
    values = draw(st.lists(st.integers(1, max_rank), min_size=n * k, max_size=n * k))
    return np.asarray(values, dtype=np.float64).reshape(n, k)


@st.composite
def masked_rank_arrays(
    draw: st.DrawFn, *, max_instances: int = 10, max_languages: int = 6, max_rank: int = 50
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Rank arrays with a missing-language mask.

    Missing entries hold NaN (as a loader would leave them); at least one instance has
    two or more present languages, so the mean rank variance is defined.

    Parameters
    ----------
    max_instances, max_languages, max_rank
        As for :func:`rank_arrays`.

    Returns
    -------
    strategy : SearchStrategy of tuple
        ``(ranks [N, K], mask [N, K])``.

    Examples
    --------
    >>> from hypothesis import find
    >>> ranks, mask = find(masked_rank_arrays(), lambda rm: not rm[1].all())
    >>> bool((mask.sum(axis=1) >= 2).any())
    True
    """
    ranks = draw(
        rank_arrays(max_instances=max_instances, max_languages=max_languages, max_rank=max_rank)
    )
    n, k = ranks.shape
    cells = draw(st.lists(st.booleans(), min_size=n * k, max_size=n * k))
    mask = np.asarray(cells, dtype=bool).reshape(n, k)
    mask[draw(st.integers(0, n - 1)), :2] = True
    return np.where(mask, ranks, np.nan), mask
