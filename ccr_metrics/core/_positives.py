"""Positives parsed into one form, and the counting of validated scores against them.

Internal: the building blocks behind :func:`~ccr_metrics.rank_counts` and the harness.
Positives come as indices ``[Q]``, a bool mask ``[Q, G]``, ragged lists or ``[Q, P]``
indices; they are parsed into a bool mask or deduplicated ``(query, column)`` pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ._backend import ArrayLike, to_output, to_tensor
from ._counting import count_against, count_masked
from ._validation import (
    InputError,
    check_integer,
    check_ndim,
    check_numeric,
    dtype_str,
    integer,
    shape_str,
)
from .ties import Empty, RankCounts


def text_owner_index(
    text_to_image: ArrayLike | None, *, n_texts: int, n_images: int, device: torch.device
) -> torch.Tensor:
    """Check ``text_to_image`` and return it as a LongTensor ``[M]`` on ``device``.

    ``None`` means text ``i`` belongs to image ``i`` and needs ``n_texts == n_images``.
    """
    if text_to_image is None:
        if n_texts != n_images:
            raise InputError(
                f"text_to_image is required when the number of texts ({n_texts}) differs "
                f"from the number of images ({n_images})",
                argument="text_to_image",
            )
        return torch.arange(n_texts, device=device)
    t, _ = to_tensor(text_to_image, "text_to_image")
    check_integer(t, "text_to_image", "image indices")
    if t.ndim != 1 or t.shape[0] != n_texts:
        raise InputError(
            f"text_to_image must have shape [{n_texts}] (one image per text), got {shape_str(t)}",
            argument="text_to_image",
        )
    t = t.to(device=device, dtype=torch.long)
    _check_index_range(t, n_images, "text_to_image", "image index")
    return t


def parse_positives(
    positives: ArrayLike | Sequence[Sequence[int]],
    n_queries: int,
    n_gallery: int,
    device: torch.device,
) -> ParsedPositives:
    """Return the positives as a bool mask ``[Q, G]`` or deduplicated ``(query, column)`` pairs.

    Accepts the three forms :func:`~ccr_metrics.rank_counts` documents. Indices are checked to lie
    in ``[0, n_gallery)``; a message names the first offending query.
    """
    listed = _int_lists(positives, n_queries)
    t = _positives_tensor(positives, n_queries) if listed is None else None
    if t is None:  # index lists, ragged or not
        if listed is None:
            rows = _index_lists(positives)  # type: ignore[arg-type]
            listed = _columns(rows, n_gallery), np.fromiter(map(len, rows), np.int64, len(rows))
        flat, lengths = listed[0], torch.as_tensor(listed[1])
        _refuse_listed_mask(flat, lengths, n_queries, n_gallery)
        query = torch.repeat_interleave(torch.arange(n_queries), lengths).to(device)
        column = torch.as_tensor(flat).to(device)
    elif t.dtype == torch.bool:
        if tuple(t.shape) != (n_queries, n_gallery):
            raise InputError(
                f"positives mask must have the shape of scores [{n_queries}, {n_gallery}], "
                f"got {shape_str(t)}",
                argument="positives",
            )
        return t.to(device)
    elif t.is_floating_point() or t.is_complex():
        raise InputError(
            f"positives must be integer column indices or a bool mask, got dtype {dtype_str(t)}",
            argument="positives",
        )
    elif t.ndim == 1:
        if t.shape[0] != n_queries:
            raise InputError(
                f"positives must have one column index per query: shape [{n_queries}], "
                f"got {shape_str(t)}",
                argument="positives",
            )
        query = torch.arange(n_queries, device=device)
        column = t.to(device=device, dtype=torch.long)
        _check_index_range(column, n_gallery, "positives", "column index", query)
        return query, column  # one per query: nothing to deduplicate
    elif t.ndim == 2:
        if t.shape[0] != n_queries:
            raise InputError(
                f"positives must have {n_queries} rows (one per query), got {shape_str(t)}",
                argument="positives",
            )
        if tuple(t.shape) == (n_queries, n_gallery) and n_gallery > 1:
            raise InputError(
                f"positives is an integer array shaped like scores {shape_str(t)}: pass a "
                "bool mask (positives.astype(bool)) or lists of column indices",
                argument="positives",
            )
        query = torch.arange(n_queries, device=device).repeat_interleave(t.shape[1])
        column = t.to(device=device, dtype=torch.long).reshape(-1)
    else:
        raise InputError(
            f"positives must be 1-D indices, a 2-D mask or index lists, got shape {shape_str(t)}",
            argument="positives",
        )
    _check_index_range(column, n_gallery, "positives", "column index", query)
    # Repeated indices would count one positive twice among the ties.
    key = torch.unique(query * n_gallery + column)
    return key // n_gallery, key % n_gallery


def _int_lists(
    positives: object, n_queries: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """Entries (flat) and lengths of ``n_queries`` lists or tuples of integers, as int64.

    The common form of index lists, read in a few passes over the Python objects (the
    general reading makes numpy arrays of them twice). None for any other form (a row
    that is no list or tuple, a bool, a float, an integer past int64...), which the
    general reading takes or refuses, naming the query.
    """
    if not isinstance(positives, (list, tuple)) or len(positives) != n_queries:
        return None
    if not all(type(row) in (list, tuple) for row in positives):
        return None
    types = set(map(type, itertools.chain.from_iterable(positives)))
    if not all(kind is int or issubclass(kind, np.signedinteger) for kind in types):
        return None  # bool is no `int` here: a bool would read as 0 or 1
    lengths = np.fromiter(map(len, positives), np.int64, n_queries)
    try:
        flat = np.fromiter(itertools.chain.from_iterable(positives), np.int64, int(lengths.sum()))
    except OverflowError:
        return None
    return flat, lengths


def _index_lists(positives: Sequence[Any]) -> list[list[Any]]:
    """Each query's entries as a list: ``[[0, 3], [1], ...]``, one form for every query.

    What numpy could not make one integer array of: index lists of unequal lengths, or
    forms it would misread. A row that is a single index among lists (or a list among
    indices) is refused naming the query.
    """
    listed = [
        type(row) in (list, tuple)  # the common case, decided without the slower ABC test
        or (not isinstance(row, (str, bytes, Mapping)) and isinstance(row, Iterable))
        for row in positives
    ]
    if not any(listed):  # one index per query, of which numpy could not make an array
        return [[row] for row in positives]
    if not all(listed):
        q = listed.index(not listed[0])  # the first query whose form differs from query 0's
        form = "a list of indices" if listed[q] else "one index"
        raise InputError(
            f"positives mixes forms: query {q} holds {form}, {positives[q]!r}"[:160]
            + f", where query 0 holds {'one index' if listed[q] else 'a list'}; give every "
            "query a list of column indices, or every query one index",
            argument="positives",
            position=(q,),
        )
    return [row if type(row) is list else list(row) for row in positives]


def _columns(rows: list[list[Any]], n_gallery: int) -> npt.NDArray[np.int64]:
    """Return the rows' entries flat as int64; refuse naming the query where one is no index.

    numpy reads the common case at once; where it cannot (a bool it would read as 0 or
    1, a float, text, a list nested deeper, a value past int64), the entries are looked
    at one by one to name the first offending one.
    """
    flat = list(itertools.chain.from_iterable(rows))
    values = _integer_array(flat)
    if values is None:
        for q, row in enumerate(rows):
            for value in row:
                _column(value, q, n_gallery)
        values = np.array(flat, dtype=np.int64)  # every entry an index in [0, G)
    return values


def _integer_array(flat: list[Any]) -> npt.NDArray[np.int64] | None:
    types = set(map(type, flat))  # one pass over the entries
    if bool in types or np.bool_ in types:
        return None
    try:
        values = np.asarray(flat)
    except (ValueError, TypeError, OverflowError):
        return None
    if values.ndim != 1 or values.dtype.kind not in "iu":
        return None
    if values.dtype.kind == "u" and values.size and values.max() > np.iinfo(np.int64).max:
        return None
    return values.astype(np.int64, copy=False)


def _column(value: object, query: int, n_gallery: int) -> int:
    column = integer(value)
    if column is None:
        nested = isinstance(value, Iterable) and not isinstance(value, (str, bytes))
        kind = "lists nested too deep" if nested else "not an integer"
        raise InputError(
            f"positives must hold integer column indices; query {query} holds {value!r}"[:160]
            + f" ({kind})",
            argument="positives",
            position=(query,),
        )
    if not 0 <= column < n_gallery:
        raise InputError(
            f"positives has column index {column} at query {query}, outside [0, {n_gallery})",
            argument="positives",
            position=(query,),
        )
    return column


def _refuse_listed_mask(
    flat: np.ndarray[Any, Any], lengths: torch.Tensor, n_queries: int, n_gallery: int
) -> None:
    # A 0/1 relevance matrix written as nested lists would read as column indices 0 and
    # 1. Rows of exactly G zeros and ones that repeat a value are not plausible index
    # lists (a repeat adds nothing), so refuse them, as the same values as an array are.
    if (
        n_gallery < 2
        or flat.size != n_queries * n_gallery
        or not bool((lengths == n_gallery).all())
    ):
        return
    if not bool(((flat == 0) | (flat == 1)).all()):
        return
    rows = flat.reshape(n_queries, n_gallery)
    if n_gallery >= 3 or bool((rows[:, 0] == rows[:, 1]).any()):
        raise InputError(
            f"positives looks like a 0/1 relevance matrix [{n_queries}, {n_gallery}] written as "
            "nested lists, which would read as column indices 0 and 1: pass it as a bool mask "
            "(np.asarray(positives, dtype=bool)) or list each query's column indices",
            argument="positives",
        )


def mask_pairs(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ``(query, column)`` pairs of a bool mask ``[Q, G]``, in row-major order."""
    index = _true_positions(mask.contiguous().reshape(-1))
    return index // mask.shape[1], index % mask.shape[1]


# Words of a bool mask summed per group (0/1 bytes: up to 127 words cannot overflow an
# int64). Where more than 1/_DENSE of the words are in groups that hold a True, a
# nonzero over every byte is as fast as looking into them.
_GROUP = 8
_DENSE = 4


def _true_positions(flat: torch.Tensor) -> torch.Tensor:
    """Return the positions of the True entries of a 1-D bool tensor, ascending.

    Positives are few: the bytes are read as 64-bit words, summed in groups of
    ``_GROUP`` words (one vectorized pass; a comparison into a bool, or a nonzero over
    every byte, costs several times more), and only the words of the groups whose sum
    is not zero are looked into. Group ``j`` holds every word ``i`` with ``i % n_groups
    == j``, so that the sums run along the contiguous axis. Bytes before the first
    8-byte boundary and after the last whole group are looked at one by one.
    """
    head = min(-flat.storage_offset() % 8, flat.shape[0])
    n_groups = (flat.shape[0] - head) // (8 * _GROUP)
    stop = head + 8 * _GROUP * n_groups
    if n_groups == 0:
        return flat.nonzero()[:, 0]
    words = flat[head:stop].view(torch.int64)
    hot_groups = words.view(_GROUP, n_groups).sum(0).nonzero()[:, 0]
    if hot_groups.shape[0] * _DENSE > n_groups:
        return flat.nonzero()[:, 0]
    # Word-major candidates are ascending: row t of the view holds words t * n_groups
    # onwards.
    offsets = n_groups * torch.arange(_GROUP, device=flat.device)
    candidates = (offsets[:, None] + hot_groups[None, :]).reshape(-1)
    hot_words = candidates[words[candidates] != 0]
    candidates = head + (hot_words[:, None] * 8 + torch.arange(8, device=flat.device)).reshape(-1)
    return torch.cat(
        [
            flat[:head].nonzero()[:, 0],
            candidates[flat[candidates]],
            stop + flat[stop:].nonzero()[:, 0],
        ]
    )


def _positives_tensor(positives: Any, n_queries: int) -> torch.Tensor | None:
    """``positives`` as a tensor, or None when it is a ragged sequence of sequences."""
    if isinstance(positives, torch.Tensor):
        return positives
    if isinstance(positives, np.ndarray):
        return to_tensor(positives, "positives")[0]
    if not isinstance(positives, Sequence):
        raise InputError(
            f"positives must be an array, a tensor or a sequence, got {type(positives).__name__}",
            argument="positives",
        )
    if len(positives) != n_queries:
        raise InputError(
            f"positives must have one entry per query ({n_queries}), got {len(positives)}",
            argument="positives",
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
        raise InputError(
            f"{name} has {what} {int(index[at])} at {where}, outside [0, {size})", argument=name
        )


def check_scores(s: torch.Tensor) -> None:
    """Refuse scores that are not a non-empty real 2-D matrix ``[Q, G]``."""
    check_ndim(s, "scores", 2, "[Q, G] (queries x gallery)")
    check_numeric(s, "scores")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise InputError(
            f"scores must have at least one query and one candidate, got {shape_str(s)}",
            argument="scores",
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
    positives_name: str,
) -> Counts:
    """``(above, tied_negatives, tied_positives)`` int64 ``[Q]`` of validated, detached scores.

    The building block behind every public ranking function and the harness.
    ``positives_name`` names the argument to blame when a query has no positive; with
    ``empty="miss"`` such a query gets zero counts.
    """
    n_queries, n_gallery = s.shape
    if isinstance(positives, torch.Tensor):
        m = count_masked(s, positives)
        if m is not None:
            check_empty(m.has_positive, empty, positives_name, n_gallery)
            return m.above, m.tied - m.tied_positives, m.tied_positives
        positives = mask_pairs(positives)
    has_positive = torch.bincount(positives[0], minlength=n_queries) > 0
    check_empty(has_positive, empty, positives_name, n_gallery)
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


def check_empty(
    has_positive: torch.Tensor, empty: Empty, positives_name: str, n_gallery: int
) -> None:
    """Refuse a query without a positive unless ``empty="miss"``, naming its row."""
    if empty == "error" and not bool(has_positive.all()):
        q = int((~has_positive).nonzero()[0, 0])
        raise InputError(
            f"{positives_name} gives query row {q} of scores no positive among its {n_gallery} "
            "candidates; pass empty='miss' to count such queries as misses",
            argument=positives_name,
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
        raise InputError(
            f"positives has column {int(column[at])} of query {int(query[at])} scoring "
            f"{float(at_positives[at])}, above that query's best {float(best[query[at]])}",
            argument="positives",
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


def check_best(best: ArrayLike, s: torch.Tensor) -> torch.Tensor:
    """``best`` as a tensor ``[Q]`` in the dtype and on the device of ``s``."""
    b, _ = to_tensor(best, "best")
    check_numeric(b, "best")
    if b.ndim != 1 or b.shape[0] != s.shape[0]:
        raise InputError(
            f"best must have one score per query: shape [{s.shape[0]}], got {shape_str(b)}",
            argument="best",
        )
    b = b.to(s.device)
    converted = b.to(s.dtype)
    if converted.dtype != b.dtype and not bool((converted.to(b.dtype) == b).all()):
        raise InputError(
            f"best ({dtype_str(b)}) holds values that {dtype_str(s)} scores cannot represent; "
            "pass the best scores in the dtype of scores",
            argument="best",
        )
    if converted.is_floating_point() and not bool(torch.isfinite(converted).all()):
        at = int((~torch.isfinite(converted)).nonzero()[0, 0])
        raise InputError(
            f"best contains {float(converted[at])} at position {at}; it must be finite",
            argument="best",
        )
    return converted


def counts_output(a: torch.Tensor, n: torch.Tensor, p: torch.Tensor, as_torch: bool) -> RankCounts:
    """Wrap int64 counts as RankCounts in the caller's kind (numpy or torch)."""
    return RankCounts(to_output(a, as_torch), to_output(n, as_torch), to_output(p, as_torch))
