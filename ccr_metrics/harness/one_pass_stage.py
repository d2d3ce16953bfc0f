"""The first stage of a re-ranking from the one pass: candidates and counts of both directions.

With a scorer, :func:`~ccr_metrics.evaluate` needs per query its ``k`` best candidates
and the counts of the items behind them. Both come from the image x text tiles of
:mod:`.one_pass`, each score made once: while a block of image rows is at hand, each
row keeps its ``k`` best texts (:func:`~ccr_metrics.core._selection.select_top`) and
each text column its ``k`` best images so far (:class:`~ccr_metrics.core._selection.ColumnTop`),
with the tie rule of :func:`~ccr_metrics.top_candidates` (the lower index wins). The
non-candidate segment is the pass's plain count less the candidates
(:func:`~ccr_metrics.core._cascade.coarse_from_counts`): a query whose positives are all
outside its candidates has its best positive behind every candidate.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from ..core._cascade import candidate_slots, coarse_from_counts
from ..core._selection import ColumnTop, select_top
from .one_pass import one_pass
from .second_stage import FirstStage
from .stream import NonFinite, Positives, captions_of_images, image_of_texts
from .tiles import ScoreBlock


def one_pass_stages(
    images: torch.Tensor,
    texts: torch.Tensor,
    owner: torch.Tensor,
    k: int,
    block_rows: int,
    bar: Any,
    nonfinite: NonFinite,
) -> dict[str, FirstStage]:
    """Both directions' first stages from one pass over ``images @ texts.T`` in tiles.

    ``images`` ``[N, D]``, ``texts`` ``[M, D]``, ``owner`` ``[M]``; each query keeps
    ``min(k, gallery)`` candidates. A non-finite score goes to ``nonfinite`` (image,
    text, value). Returns ``{"i2t": ..., "t2i": ...}``.
    """
    n_images, n_texts = images.shape[0], texts.shape[0]
    k_rows, k_columns = min(k, n_texts), min(k, n_images)
    rows: list[tuple[torch.Tensor, torch.Tensor]] = []
    columns = ColumnTop(n_texts, k_columns, images.dtype, images.device)

    # Where torch may use two threads, the row selection and a share of the column merge
    # (ColumnTop balances it) run on a second thread beside the rest of the merge, and
    # half the final column cuts too: single-threaded compiled loops that release the GIL.
    pool = ThreadPoolExecutor(1) if torch.get_num_threads() > 1 else None

    def select(block: ScoreBlock, start: int, stop: int) -> None:
        lo, hi, first = block.gallery.layout()
        scores = block.scores.contiguous()
        chosen: Future[tuple[torch.Tensor, torch.Tensor]] | None = None
        if k_rows and pool is not None:
            chosen = pool.submit(select_top, scores, lo, hi, first, k_rows)
        if k_columns:
            columns.add(scores, (0, stop - start, start), lo, hi, first, pool=pool)
        if k_rows:
            values, index = (
                select_top(scores, lo, hi, first, k_rows) if chosen is None else chosen.result()
            )
            rows.append((index[: stop - start], values[: stop - start]))

    try:
        i2t, t2i, found = one_pass(images, texts, owner, block_rows, bar, nonfinite, select)
        top_columns = columns.result(pool=pool) if k_columns else None
    finally:
        if pool is not None:
            pool.shutdown()
    if rows:
        row_index = torch.cat([r[0] for r in rows]).to(images.device)
        row_values = torch.cat([r[1] for r in rows]).to(images.device)
    else:
        row_index = torch.zeros((n_images, 0), dtype=torch.long, device=images.device)
        row_values = images.new_zeros((n_images, 0))
    if top_columns is not None:
        column_values, column_index = (x.to(images.device) for x in top_columns)
    else:
        column_index = torch.zeros((n_texts, 0), dtype=torch.long, device=images.device)
        column_values = images.new_zeros((n_texts, 0))
    return {
        "i2t": _stage(row_index, row_values, i2t, found.best, captions_of_images(owner), n_texts),
        "t2i": _stage(
            column_index, column_values, t2i, found.values, image_of_texts(owner), n_images
        ),
    }


def _stage(
    candidates: torch.Tensor,
    at_candidates: torch.Tensor,
    counts: torch.Tensor,
    best: torch.Tensor,
    positives: Positives,
    n_gallery: int,
) -> FirstStage:
    """One direction's first stage from its candidates and its plain counts ``[3, Q]``."""
    query, column = positives(0, candidates.shape[0])
    slots = candidate_slots(candidates, n_gallery, query, column)
    plain = (counts[0], counts[1], counts[2])
    coarse = coarse_from_counts(plain, best, at_candidates, slots)
    is_query = torch.zeros(candidates.shape[0], dtype=torch.bool, device=candidates.device)
    is_query[query] = True
    return FirstStage(candidates, coarse, slots, is_query)
