"""The first stage: scores, streamed from embeddings or read from a stored matrix, to counts.

A block is the scores of a run of queries against one language's whole gallery. Each
block is counted (:func:`~ccr_metrics.rank_counts`' kernel) as soon as it exists and
then dropped, so the full ``N x M`` matrix is never held: extra memory is
``O(block x gallery)``. Scores of embeddings are made in fixed tiles (:mod:`.tiles`),
so that they, and every rank, are the same whatever the block size.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal, NoReturn

import torch

from ..core._counting import check_chunk_size
from ..core._positives import check_empty, counts_from_positives
from ..core._validation import InputError, check_finite, dtype_str
from ..core.ties import Empty, RankCounts
from .tiles import GalleryTiles, ScoreBlock, padded_queries, score_block, tiling_for

Block = Callable[[int, int], torch.Tensor]
# Raises for a non-finite score at (row, column) with its value, in the caller's terms.
NonFinite = Callable[[int, int, float], NoReturn]
# The positive pairs of queries a:b of a block: (offset in the block, gallery column).
Positives = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]

# Scores per block when chunk_size is None. Large enough that a block's matrix product
# runs at full speed (a few rows against a large gallery re-read the whole gallery for
# every block: 6x slower measured at 10 rows than at 640 against 100,000 x 256), small
# enough to bound memory and to be counted while still in cache: 2**23 (32 MB in
# float32) on CPU, where the bare product itself was fastest (of 2**19 .. 2**26, at
# 5,000 x 25,000 x 256 on AVX-512), 2**28 on CUDA.
_CPU_STREAM_ELEMENTS = 1 << 23
_CUDA_STREAM_ELEMENTS = 1 << 28
# Scores from which progress="auto" shows a bar: seconds of CPU products at D=512.
# Multi30K's test set (1,000 images, 4 languages, both directions) is 2**23: no bar.
AUTO_PROGRESS_SCORES = 1 << 26

Progress = bool | Literal["auto"]


def captions_of_images(owner: torch.Tensor) -> Positives:
    """Positive pairs of image queries ``a:b``: (offset in the block, text column)."""
    order = torch.argsort(owner, stable=True)
    sorted_owner = owner[order]

    def pairs(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        bounds = torch.tensor([a, b], device=owner.device)
        lo, hi = torch.searchsorted(sorted_owner, bounds).tolist()
        return sorted_owner[lo:hi] - a, order[lo:hi]

    return pairs


def image_of_texts(owner: torch.Tensor) -> Positives:
    """Positive pairs of text queries ``a:b``: (offset in the block, image column)."""
    return lambda a, b: (torch.arange(b - a, device=owner.device), owner[a:b])


def count_direction(
    block: Block,
    direction: str,
    n_queries: int,
    owner: torch.Tensor,
    rows: int,
    bar: Any,
    nonfinite: NonFinite,
) -> RankCounts:
    """Count one direction of one language: image queries (``"i2t"``) or text queries.

    ``owner`` is the language's text-to-image index on the device. An image without a
    caption in the language is no query there (zero counts); a text always has its
    image.
    """
    if direction == "i2t":
        return stream_counts(
            block,
            n_queries,
            captions_of_images(owner),
            rows,
            bar,
            empty="miss",
            nonfinite=nonfinite,
        )
    return stream_counts(
        block, n_queries, image_of_texts(owner), rows, bar, empty="error", nonfinite=nonfinite
    )


def stream_counts(
    block: Block,
    n_queries: int,
    positives: Positives,
    rows: int,
    bar: Any,
    *,
    empty: Empty,
    nonfinite: NonFinite,
) -> RankCounts:
    """Count ``n_queries`` queries one block of scores at a time, as numpy int64 counts.

    With ``empty="miss"``, a query without a positive (an image with no text in the
    language) gets zero counts: it is no query there. A NaN or infinity among the
    scores is handed to ``nonfinite`` (row, column, value), which raises in the
    caller's terms.
    """
    out = torch.empty((3, n_queries), dtype=torch.long)
    for a in range(0, n_queries, rows):
        b = min(a + rows, n_queries)
        s = block(a, b)
        try:
            counts = counts_from_positives(
                s, positives(a, b), chunk_size=None, empty=empty, positives_name="text_to_image"
            )
        except InputError as exc:
            if exc.argument != "scores" or exc.position is None or exc.value is None:
                raise
            row, column = exc.position
            nonfinite(a + row, column, exc.value)
        out[:, a:b] = torch.stack(counts).cpu()
        bar.update()
    above, tied_negatives, tied_positives = out.numpy()
    return RankCounts(above, tied_negatives, tied_positives)


def product_counts(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    direction: str,
    owner: torch.Tensor,
    rows: int,
    bar: Any,
    nonfinite: NonFinite,
) -> RankCounts:
    """Count one direction of one language from embeddings, the scores made in tiles.

    As :func:`count_direction` on ``queries @ gallery.T``, each score computed on the
    fixed tile grid of :mod:`.tiles`; ``rows`` is rounded up to whole query tiles.
    """
    n_queries = queries.shape[0]
    tiling = tiling_for(n_queries, gallery.shape[0], queries.device)
    tiles = GalleryTiles(gallery, 0, tiling.gallery)
    positives = captions_of_images(owner) if direction == "i2t" else image_of_texts(owner)
    empty: Empty = "miss" if direction == "i2t" else "error"
    rows = _round_up(rows, tiling.queries)
    out = torch.empty((3, n_queries), dtype=torch.long)
    buffer = None
    for a in range(0, n_queries, rows):
        b = min(a + rows, n_queries)
        block = score_block(
            padded_queries(queries, 0, a, _round_up(b - a, tiling.queries)), tiles, tiling, buffer
        )
        buffer = block.scores
        query, column = positives(a, b)
        try:
            counts = block_counts(block, query, column, b - a, empty=empty)[0]
        except InputError as exc:
            if exc.argument != "scores" or exc.position is None or exc.value is None:
                raise
            row, item = exc.position
            nonfinite(a + row, item, exc.value)
        out[:, a:b] = torch.stack(counts).cpu()
        bar.update()
    above, tied_negatives, tied_positives = out.numpy()
    return RankCounts(above, tied_negatives, tied_positives)


def block_counts(
    block: ScoreBlock, query: torch.Tensor, column: torch.Tensor, n_rows: int, *, empty: Empty
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Count a block's first ``n_rows`` rows; return the counts and every row's best.

    ``(query, column)`` are the positives: block row and local gallery item. Returns
    ``((above, tied_negatives, tied_positives), best)``: the counts ``[n_rows]`` over the
    block's gallery (zero for a row without a positive), ``best`` over every block row
    (0 where a row has none), for other processes to count their shards against.
    """
    has_positive = torch.bincount(query, minlength=n_rows) > 0
    check_empty(has_positive, empty, "text_to_image", block.gallery.n_local)
    at_positives = block.at(query, column)
    best = block.scores.new_zeros(block.scores.shape[1])
    best.scatter_reduce_(0, query, at_positives, reduce="amax", include_self=False)
    above, tied = block.count(best)
    tied_positives = torch.zeros(n_rows, dtype=torch.long, device=best.device)
    tied_positives.index_add_(0, query, (at_positives == best[query]).long())
    zero = torch.zeros_like(tied_positives)
    counts = (
        torch.where(has_positive, above[:n_rows], zero),
        torch.where(has_positive, tied[:n_rows] - tied_positives, zero),
        torch.where(has_positive, tied_positives, zero),
    )
    return counts, best


def _round_up(n: int, step: int) -> int:
    return max(step, -(-n // step) * step)


def stored_nonfinite(name: str) -> NonFinite:
    """Report a non-finite entry of the stored score matrix ``name``."""

    def report(row: int, column: int, value: float) -> NoReturn:
        raise InputError(
            f"{name} contains {value} at index [{row}, {column}]; it must be finite",
            argument=name,
            position=(row, column),
            value=value,
        )

    return report


def product_nonfinite(
    queries_name: str, queries: torch.Tensor, gallery_name: str, gallery: torch.Tensor
) -> NonFinite:
    """Report a non-finite product: a non-finite embedding, or an overflow of its dtype.

    Embeddings are not checked up front: a NaN or infinity in either shows in the
    products, where the counting catches it for free; only then are they searched.
    """

    def report(row: int, column: int, value: float) -> NoReturn:
        check_finite(queries, queries_name)
        check_finite(gallery, gallery_name)
        raise InputError(
            f"the dot product of {queries_name} row {row} and {gallery_name} row {column} is "
            f"{value} in {dtype_str(queries)}, although both are finite: their products "
            "overflow that dtype; pass the embeddings as float32",
            argument=queries_name,
            position=(row,),
            value=value,
        )

    return report


def slices(scores: torch.Tensor, device: torch.device) -> Block:
    """Blocks of rows of a stored matrix, moved to ``device`` one at a time."""
    return lambda a, b: scores[a:b].to(device)


def stream_rows(chunk_size: int | None, n_gallery: int, device: torch.device) -> int:
    """Return the queries per block: ``chunk_size`` checked, or the streaming default."""
    rows = check_chunk_size(chunk_size)
    if rows is not None:
        return rows
    budget = _CUDA_STREAM_ELEMENTS if device.type == "cuda" else _CPU_STREAM_ELEMENTS
    return max(1, budget // max(n_gallery, 1))


def n_blocks(n: int, rows: int) -> int:
    """How many blocks of ``rows`` queries ``n`` queries take."""
    return -(-n // rows)


def check_progress(progress: Progress) -> Progress:
    """Refuse a ``progress`` other than True, False or "auto"."""
    if progress != "auto" and not isinstance(progress, bool):
        raise InputError(
            f"progress must be True, False or 'auto', got {progress!r}", argument="progress"
        )
    return progress


def show_progress(progress: Progress, n_scores: int) -> bool:
    """Resolve "auto": a bar when stderr is a terminal and the work is ``AUTO_PROGRESS_SCORES``+."""
    if progress == "auto":
        return n_scores >= AUTO_PROGRESS_SCORES and sys.stderr.isatty()
    return bool(progress)
