"""Rank counts of a two-stage (re-ranking) model: a count in one segment plus an offset.

Internal: the building blocks behind :func:`~ccr_metrics.reranked_rank_counts` and the
harness's ``rerank=``. A query's order is its ``k`` candidates by their second-stage
(fine) scores, then the other ``G - k`` items by their first-stage (coarse) scores. Its
best positive is its best candidate positive when it has one (counted among the
candidates only), else its best other positive, behind all ``k`` candidates (counted
among the non-candidates, with ``k`` added to ``above``).

The two halves are computed apart because the harness has the coarse scores only while
a block of them exists, and the fine scores only later, once the candidates are scored:
:func:`coarse_part` counts the non-candidate segment of a block, :func:`fine_part` the
candidate segment, :func:`combine` joins them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ._backend import ArrayLike, to_tensor
from ._positives import Counts, check_empty
from ._validation import (
    InputError,
    check_finite,
    check_integer,
    check_numeric,
    shape_str,
)
from .ties import Empty

# Counts a block's rows against thresholds [R]: (above, tied) over its gallery items.
CountRows = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class CandidatePositives(NamedTuple):
    """Which positive pairs are candidates: ``slot`` ``[P]``, -1 for a non-candidate."""

    query: torch.Tensor
    column: torch.Tensor
    slot: torch.Tensor


def candidate_slots(
    candidates: torch.Tensor,
    n_gallery: int,
    query: torch.Tensor,
    column: torch.Tensor,
    *,
    name: str = "candidates",
) -> CandidatePositives:
    """Find each positive pair ``(query, column)`` among ``candidates`` ``[Q, k]``.

    Raises, naming ``name``, if a row of ``candidates`` repeats an item.
    """
    n_queries, k = candidates.shape
    rows = torch.arange(n_queries, device=candidates.device)
    keys = (rows[:, None] * n_gallery + candidates).reshape(-1)
    if bool((keys[1:] > keys[:-1]).all()):
        # Rows already in index order (the harness's candidates): nothing to sort.
        order, ordered = torch.arange(keys.shape[0], device=keys.device), keys
    else:
        order = torch.argsort(keys)
        ordered = keys[order]
    repeated = ordered[1:] == ordered[:-1]
    if bool(repeated.any()):
        key = int(ordered[1:][repeated][0])
        raise InputError(
            f"{name} repeats gallery item {key % n_gallery} in row {key // n_gallery}; each "
            "row must list distinct items",
            argument=name,
        )
    wanted = query * n_gallery + column
    if ordered.shape[0] == 0:
        return CandidatePositives(query, column, torch.full_like(query, -1))
    at = torch.searchsorted(ordered, wanted).clamp_(max=ordered.shape[0] - 1)
    found = ordered[at] == wanted
    slot = torch.where(found, order[at] % max(k, 1), torch.full_like(query, -1))
    return CandidatePositives(query, column, slot)


def coarse_part(
    count_rows: CountRows,
    at_pairs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    at_candidates: torch.Tensor,
    positives: CandidatePositives,
) -> tuple[Counts, torch.Tensor]:
    """Count the non-candidate segment of ``R`` rows; say which rows it ranks.

    ``count_rows(best)`` counts every row's gallery items above and tied with ``best``
    (the kernel, which also refuses a NaN or an infinity); ``at_pairs(rows, columns)``
    looks up the coarse scores of positives; ``at_candidates`` ``[R, k]`` holds the
    candidates' coarse scores. Returns ``((above, tied_negatives, tied_positives),
    has_other)``: counts over the non-candidates, ``above`` including the ``k``
    candidates, for the rows whose best positive is a non-candidate (``has_other``);
    zero elsewhere.
    """
    n_rows, k = at_candidates.shape
    device = at_candidates.device
    query, column, slot = positives
    other = slot < 0
    has_candidate = torch.zeros(n_rows, dtype=torch.bool, device=device)
    has_candidate[query[~other]] = True
    oq, oc = query[other], column[other]
    at_other = at_pairs(oq, oc)
    has_other = torch.zeros(n_rows, dtype=torch.bool, device=device)
    has_other[oq] = True
    has_other &= ~has_candidate
    # Rows that need no count still go through the kernel, against a score they hold:
    # it checks every score for finiteness in the same read.
    rows = torch.arange(n_rows, device=device)
    best = at_candidates[:, 0] if k else at_pairs(rows, torch.zeros_like(rows))
    if at_other.shape[0]:
        other_best = best.clone().scatter_reduce_(
            0, oq, at_other, reduce="amax", include_self=False
        )
        best = torch.where(has_other, other_best, best)
    above, tied = count_rows(best)
    above = above - (at_candidates > best[:, None]).sum(1)
    tied = tied - (at_candidates == best[:, None]).sum(1)
    tied_positives = torch.zeros(n_rows, dtype=torch.long, device=device)
    tied_positives.index_add_(0, oq, (at_other == best[oq]).long())
    zero = torch.zeros_like(tied_positives)
    counts = (
        torch.where(has_other, above + k, zero),
        torch.where(has_other, tied - tied_positives, zero),
        torch.where(has_other, tied_positives, zero),
    )
    return counts, has_other


def coarse_from_counts(
    counts: Counts,
    best: torch.Tensor,
    at_candidates: torch.Tensor,
    positives: CandidatePositives,
) -> tuple[Counts, torch.Tensor]:
    """:func:`coarse_part` from a count of every row over its whole gallery.

    ``counts`` ``(above, tied_negatives, tied_positives)`` ``[R]`` count each row
    against ``best`` ``[R]``, its best positive's coarse score. Where no positive is a
    candidate that positive is a non-candidate and every candidate a negative, so the
    non-candidate segment is the whole count less the ``k`` candidates (``at_candidates``
    ``[R, k]``), which then stand ahead of it.
    """
    n_rows, k = at_candidates.shape
    device = at_candidates.device
    query, _, slot = positives
    has_candidate = torch.zeros(n_rows, dtype=torch.bool, device=device)
    has_candidate[query[slot >= 0]] = True
    has_other = torch.zeros(n_rows, dtype=torch.bool, device=device)
    has_other[query[slot < 0]] = True
    has_other &= ~has_candidate
    above = counts[0] - (at_candidates > best[:, None]).sum(1) + k
    tied = counts[1] - (at_candidates == best[:, None]).sum(1)
    zero = torch.zeros_like(above)
    coarse = (
        torch.where(has_other, above, zero),
        torch.where(has_other, tied, zero),
        torch.where(has_other, counts[2], zero),
    )
    return coarse, has_other


def fine_part(fine: torch.Tensor, positives: CandidatePositives) -> tuple[Counts, torch.Tensor]:
    """Count the candidate segment of ``Q`` rows; say which rows have a candidate positive.

    ``fine`` ``[Q, k]`` holds the candidates' second-stage scores.
    """
    n_rows = fine.shape[0]
    inside = positives.slot >= 0
    query, slot = positives.query[inside], positives.slot[inside]
    at_positives = fine[query, slot]
    has_candidate = torch.zeros(n_rows, dtype=torch.bool, device=fine.device)
    has_candidate[query] = True
    best = fine.new_zeros(n_rows)
    best.scatter_reduce_(0, query, at_positives, reduce="amax", include_self=False)
    above = (fine > best[:, None]).sum(1)
    tied = (fine == best[:, None]).sum(1)
    tied_positives = torch.zeros(n_rows, dtype=torch.long, device=fine.device)
    tied_positives.index_add_(0, query, (at_positives == best[query]).long())
    zero = torch.zeros_like(tied_positives)
    counts = (
        torch.where(has_candidate, above, zero),
        torch.where(has_candidate, tied - tied_positives, zero),
        torch.where(has_candidate, tied_positives, zero),
    )
    return counts, has_candidate


def combine(
    coarse: tuple[Counts, torch.Tensor],
    fine: tuple[Counts, torch.Tensor],
    *,
    empty: Empty,
    positives_name: str,
    n_gallery: int,
) -> Counts:
    """Join the two segments' counts; refuse a query without a positive unless "miss"."""
    (coarse_counts, has_other), (fine_counts, has_candidate) = coarse, fine
    check_empty(has_other | has_candidate, empty, positives_name, n_gallery)
    return (
        torch.where(has_candidate, fine_counts[0], coarse_counts[0]),
        torch.where(has_candidate, fine_counts[1], coarse_counts[1]),
        torch.where(has_candidate, fine_counts[2], coarse_counts[2]),
    )


def checked_candidates(
    candidates: ArrayLike,
    n_queries: int,
    n_gallery: int,
    device: torch.device,
    name: str = "candidates",
) -> torch.Tensor:
    """``candidates`` as a LongTensor ``[Q, k]`` on ``device``, shape and range checked."""
    t, _ = to_tensor(candidates, name)
    check_integer(t, name, "gallery indices")
    if t.ndim != 2 or t.shape[0] != n_queries:
        raise InputError(
            f"{name} must have shape [{n_queries}, k] (k items per query of coarse), "
            f"got {shape_str(t)}",
            argument=name,
        )
    if t.shape[1] > n_gallery:
        raise InputError(
            f"{name} lists k = {t.shape[1]} items per query, more than the gallery's {n_gallery}",
            argument=name,
        )
    t = t.to(device=device, dtype=torch.long)
    bad = (t < 0) | (t >= n_gallery)
    if bool(bad.any()):
        q, j = (int(v) for v in bad.nonzero()[0])
        raise InputError(
            f"{name} has gallery index {int(t[q, j])} at [{q}, {j}], outside [0, {n_gallery})",
            argument=name,
        )
    return t


def checked_fine(
    fine: ArrayLike,
    shape: torch.Size,
    device: torch.device,
    name: str = "fine",
    candidates_name: str = "candidates",
) -> torch.Tensor:
    """``fine`` as a detached tensor of ``candidates``' shape on ``device``, finite."""
    f, _ = to_tensor(fine, name)
    check_numeric(f, name)
    if f.shape != shape:
        raise InputError(
            f"{name} must have the shape of {candidates_name} [{shape[0]}, {shape[1]}] (one score "
            f"per candidate), got {shape_str(f)}",
            argument=name,
        )
    f = f.detach().to(device)
    check_finite(f, name)
    return f
