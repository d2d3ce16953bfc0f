"""Invariant checks and hypothesis strategies for property-testing retrieval metrics.

The checks run a table of known invariants against your own rank, Recall@K, MRV or
1-to-K loss function, with this library as the oracle, and raise an ``AssertionError``
that names each property that failed with its smallest counter-example
(``docs/testing.md``):

- :func:`check_rank_function`, :func:`check_recall_function`,
  :func:`check_mrv_function`, :func:`check_contrastive_loss`; their tables
  :data:`RANK_PROPERTIES`, :data:`RECALL_PROPERTIES`, :data:`MRV_PROPERTIES`,
  :data:`LOSS_PROPERTIES` (each a tuple of :class:`Property`: name, meaning, test).

The strategies are those this project's own property tests use; they are public so
that you can property-test your metric code the same way. Everything here needs
hypothesis (``pip install "ccr-metrics[testing]"``), which the rest of the package does
not import.

- :func:`score_matrices`: similarity matrices ``[Q, G]``, with many ties or none;
- :func:`positive_sets`: relevance in the three forms :func:`~ccr_metrics.positive_ranks`
  accepts (index ``[Q]``, mask ``[Q, G]``, ragged lists), every query with a positive;
- :func:`retrieval_problems`: a score matrix together with its positives;
- :func:`rank_arrays`: instance x language rank arrays ``[N, K]``;
- :func:`masked_rank_arrays`: rank arrays with a missing-language mask, at least one
  instance present in two languages;
- :func:`multilingual_embeddings`: the inputs of :func:`~ccr_metrics.evaluate`, image
  embeddings with texts and caption-to-image maps per language: several captions per
  image, images without a caption in a language, duplicate embeddings.

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

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

from ._checks import (
    CLAIMS,
    DEFAULT_MAX_EXAMPLES,
    LOSS_PROPERTIES,
    MRV_PROPERTIES,
    RANK_PROPERTIES,
    RECALL_PROPERTIES,
    CheckFailure,
    CheckResult,
    Property,
    PropertyFailure,
    check_contrastive_loss,
    check_mrv_function,
    check_rank_function,
    check_recall_function,
)
from .core._validation import InputError, check_positive_int

__all__ = [
    "CLAIMS",
    "DEFAULT_MAX_EXAMPLES",
    "LOSS_PROPERTIES",
    "MRV_PROPERTIES",
    "RANK_PROPERTIES",
    "RECALL_PROPERTIES",
    "CheckFailure",
    "CheckResult",
    "MultilingualEmbeddings",
    "Property",
    "PropertyFailure",
    "check_contrastive_loss",
    "check_mrv_function",
    "check_rank_function",
    "check_recall_function",
    "masked_rank_arrays",
    "multilingual_embeddings",
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
        repeated; never a row of exactly ``G`` zeros and ones, which the library
        refuses as a 0/1 mask written as lists). Drawn at random when not given.

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
        for r in rows:
            if len(r) == n_gallery and set(r) <= {0, 1}:
                # Rows of G zeros and ones read as a 0/1 mask written as lists, which the
                # library refuses as ambiguous (in any subset of the rows too); one more
                # (repeated) index keeps the same set.
                r.append(r[0])
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


class MultilingualEmbeddings(NamedTuple):
    """The three inputs of :func:`~ccr_metrics.evaluate`, in its argument order."""

    #: ``[N, D]`` image embeddings.
    image_embeds: npt.NDArray[Any]
    #: ``{language: [M_l, D]}`` text embeddings.
    text_embeds: dict[str, npt.NDArray[Any]]
    #: ``{language: [M_l]}`` int64: the image each text describes.
    text_to_image: dict[str, npt.NDArray[np.int64]]


def multilingual_embeddings(
    *,
    languages: Sequence[str] = ("en", "de", "fr"),
    max_images: int = 6,
    dim: int = 4,
    max_captions: int = 3,
    missing: bool = True,
    duplicates: bool = True,
    dtype: npt.DTypeLike = np.float32,
) -> st.SearchStrategy[MultilingualEmbeddings]:
    """Embeddings of a multilingual test set, as :func:`~ccr_metrics.evaluate` takes them.

    Parameters
    ----------
    languages : sequence of str, default ("en", "de", "fr")
        The languages, each with at least one text.
    max_images : int, default 6
        Upper bound on the number of images ``N`` (at least 1).
    dim : int, default 4
        The embedding dimension ``D``.
    max_captions : int, default 3
        Most captions an image has in one language.
    missing : bool, default True
        Let an image have no caption in a language (it is then no image-to-text query
        there and no text-to-image target).
    duplicates : bool, default True
        Let some images and texts be exact copies of others (in one language or across
        languages, as an untranslated caption is), which gives exact ties.
    dtype : numpy dtype, default float32
        The dtype of the embeddings.

    Returns
    -------
    strategy : SearchStrategy of MultilingualEmbeddings
        ``(image_embeds, text_embeds, text_to_image)``. Entries are whole numbers in
        ``[-2, 2]``, so every score is exact in every float dtype and ties are
        reproducible; the texts of a language are in shuffled order.

    Raises
    ------
    ValueError
        If ``languages`` is empty, repeats a language or holds a non-string, a size is
        not a positive integer, or ``dtype`` is not a floating-point dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import ccr_metrics as cm
    >>> from hypothesis import find
    >>> def lacks_a_caption(e):
    ...     return any(len(np.unique(o)) < len(e.image_embeds) for o in e.text_to_image.values())
    >>> data = find(multilingual_embeddings(), lacks_a_caption)
    >>> report = cm.evaluate(*data, device="cpu")
    >>> report.languages
    ['en', 'de', 'fr']
    """
    names = [languages] if isinstance(languages, str) else list(languages)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
        raise InputError(
            f"languages must name one or more distinct languages, got {languages!r}",
            argument="languages",
        )
    n_max = check_positive_int("max_images", max_images)
    width = check_positive_int("dim", dim)
    captions = check_positive_int("max_captions", max_captions)
    try:
        kind = np.dtype(dtype)
    except TypeError:
        kind = None
    if kind is None or kind.kind != "f":
        raise InputError(
            f"dtype must be a floating-point dtype (evaluate needs one), got {dtype!r}",
            argument="dtype",
        )
    return _multilingual(names, n_max, width, captions, missing, duplicates, kind)


@st.composite
def _multilingual(
    draw: st.DrawFn,
    languages: list[str],
    max_images: int,
    dim: int,
    max_captions: int,
    missing: bool,
    duplicates: bool,
    dtype: np.dtype[Any],
) -> MultilingualEmbeddings:
    """Draw what :func:`multilingual_embeddings` describes, its arguments checked."""
    n = draw(st.integers(1, max_images))
    entries = st.integers(-2, 2)
    images = np.asarray(draw(st.lists(entries, min_size=n * dim, max_size=n * dim)))
    images = images.reshape(n, dim).astype(dtype)
    texts: dict[str, npt.NDArray[Any]] = {}
    owners: dict[str, npt.NDArray[np.int64]] = {}
    per_image = st.integers(0 if missing else 1, max_captions)
    for lang in languages:
        counts = draw(st.lists(per_image, min_size=n, max_size=n))
        if sum(counts) == 0:  # evaluate needs a text in every language
            counts[draw(st.integers(0, n - 1))] = 1
        owner = np.repeat(np.arange(n, dtype=np.int64), counts)
        owner = owner[draw(st.permutations(range(len(owner))))]
        m = len(owner)
        values = np.asarray(draw(st.lists(entries, min_size=m * dim, max_size=m * dim)))
        texts[lang], owners[lang] = values.reshape(m, dim).astype(dtype), owner
    if duplicates:
        rows = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))
        for dst, src in draw(st.lists(rows, max_size=3)):
            images[dst] = images[src]
        pool = [(lang, i) for lang in languages for i in range(len(owners[lang]))]
        pairs = st.tuples(st.sampled_from(pool), st.sampled_from(pool))
        for (dst_lang, dst), (src_lang, src) in draw(st.lists(pairs, max_size=4)):
            texts[dst_lang][dst] = texts[src_lang][src]
    return MultilingualEmbeddings(images, texts, owners)
