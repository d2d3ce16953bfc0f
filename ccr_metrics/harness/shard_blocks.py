"""The block loops of :func:`~ccr_metrics.evaluate_sharded`: queries against gallery shards.

Each block of queries is broadcast from the process that holds it and scored against
every process's gallery shard on the global tile grid (:mod:`.tiles`); the processes
then sum their counts (:func:`sharded_counts`) or merge their top ``k`` candidates
(:func:`sharded_first_stage`). A process whose products overflow goes on joining the
collectives, so that all raise together instead of leaving the others waiting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import torch

from .. import distributed
from ..core._selection import select_top
from ..core._validation import InputError
from .one_pass import (
    Intervals,
    Pass,
    Records,
    direction_counts,
    exact_counts,
    interval_counts,
    padded,
    pair_intervals,
    row_intervals,
    thresholds,
)
from .second_stage import Collector, FirstStage
from .stream import Positives, captions_of_images
from .tiles import GalleryTiles, ScoreBlock, padded_queries, score_block, tiling_for

__all__ = ["sharded_first_stage", "sharded_one_pass"]


def sharded_one_pass(
    images: torch.Tensor,
    texts: torch.Tensor,
    owner: torch.Tensor,
    offsets: tuple[list[int], list[int]],
    rows: int,
    bar: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count both directions of one language over every process's shard, in one pass.

    The sharded form of :func:`.one_pass.one_pass_counts`: each process's blocks of
    image rows are broadcast with their threshold intervals, and every process scores
    them against its own texts on the global tile grid, counting the rows (summed over
    processes at the end) and its texts' columns. ``owner`` are the local texts' local
    images; ``offsets`` every process's first image and first text, then the totals.
    Returns int64 counts ``[3, N_r]`` (image-to-text) and ``[3, M_r]`` (text-to-image).

    A process whose products overflow goes on joining the broadcasts, and every process
    raises its error together at the end, instead of leaving them waiting.
    """
    rank = distributed.get_rank()
    image_offsets = offsets[0]
    pairs = pair_intervals(images, texts, owner)
    local_rows = row_intervals(pairs, owner, images.shape[0])
    records = Records(image_offsets[-1] + texts.shape[0])
    shard = _OnePassShard(images, texts, owner + image_offsets[rank], offsets, rows)
    run = shard.run(local_rows, pairs, records, bar)
    found = thresholds(run, pairs, local_rows, owner, records)
    flags = torch.tensor([int(shard.error is not None), int(not found.exact)], device=images.device)
    distributed.all_reduce_sum(flags)
    if int(flags[0]):
        distributed.raise_if_any_failed(shard.error, "counting the ranks")
    found = found._replace(exact=not int(flags[1]))
    if found.exact:
        row_best = distributed.gather_rows(found.best, sizes=_sizes(image_offsets))
        counts = interval_counts(run, records, row_best, found.values)
    else:
        exact = Intervals(found.best, found.best), Intervals(found.values, found.values)
        counts = exact_counts(shard.run(*exact, None, None))
    # Every process counted every image against its own texts: the sum is the whole.
    summed = distributed.all_reduce_sum(torch.stack(counts[:2]))
    mine = summed[:, image_offsets[rank] : image_offsets[rank + 1]]
    return direction_counts((mine[0], mine[1]), counts[2:], found, owner)


def _sizes(offsets: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(offsets)]


class _OnePassShard:
    """The part of a one-pass count held here: its images to broadcast, its texts to score."""

    def __init__(
        self,
        images: torch.Tensor,
        texts: torch.Tensor,
        owner: torch.Tensor,
        offsets: tuple[list[int], list[int]],
        rows: int,
    ) -> None:
        rank = distributed.get_rank()
        self.images, self.owner, self.offsets = images, owner, offsets
        image_offsets, text_offsets = offsets
        self.tiling = tiling_for(image_offsets[-1], text_offsets[-1], images.device)
        self.tiles = GalleryTiles(texts, text_offsets[rank], self.tiling.gallery)
        self.rows = -(-rows // self.tiling.queries) * self.tiling.queries
        self.positives = captions_of_images(owner - image_offsets[rank])
        self.error: InputError | None = None  # the first; later blocks are only joined

    def run(self, rows: Intervals, columns: Intervals, records: Records | None, bar: Any) -> Pass:
        """One pass: every process's image blocks against this process's texts.

        ``rows`` are the local images' intervals, ``columns`` the local texts'.
        """
        rank, dim = distributed.get_rank(), self.images.shape[1]
        image_offsets = self.offsets[0]
        state = Pass(columns, self.owner, image_offsets[-1], records)
        buffer = None
        for src in range(len(image_offsets) - 1):
            first, stop = image_offsets[src], image_offsets[src + 1]
            for start, n, lo, hi in _query_blocks(first, stop, self.tiling.queries, self.rows):
                if src == rank:
                    own = padded_queries(self.images, first, start, n)
                    bounds = [padded(b[lo - first : hi - first], lo - start, n) for b in rows]
                    payload = torch.cat([own, bounds[0][:, None], bounds[1][:, None]], 1)
                else:
                    payload = self.images.new_empty((n, dim + 2))
                distributed.broadcast(payload, src)
                if self.error is not None:
                    continue
                block = score_block(payload[:, :dim].contiguous(), self.tiles, self.tiling, buffer)
                buffer = _larger(buffer, block.scores)
                positives = None
                if src == rank:
                    query, column = self.positives(lo - first, hi - first)
                    positives = (query + (lo - start), column)
                block_rows = Intervals(
                    payload[:, dim].contiguous(), payload[:, dim + 1].contiguous()
                )
                try:
                    state.block(block, start, (lo, hi), block_rows, positives)
                except InputError as exc:
                    self.error = _as_overflow(exc, 0, self.offsets[1][rank])
            if bar is not None:
                bar.update()
        return state


def _larger(buffer: torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor:
    """Return the score buffer for the next block: the larger (blocks vary in rows)."""
    return scores if buffer is None or scores.shape[1] > buffer.shape[1] else buffer


def sharded_first_stage(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    positives: Positives,
    query_offsets: list[int],
    gallery_offsets: list[int],
    rows: int,
    k: int,
    bar: Any,
) -> FirstStage:
    """Run the first stage of this process's queries against every process's gallery shard.

    As :func:`sharded_counts`, each query block is broadcast from its process and
    scored on the global tile grid by every process; each process sends its shard's
    top ``k`` (``-inf`` padding where the shard holds fewer), the query's process
    merges them into the global top ``k`` (shards come in index order, so the lower
    index still wins a tie), broadcasts the threshold of the non-candidate segment,
    and the counts of every shard are summed. ``positives`` give global columns.
    """
    rank, world = distributed.get_rank(), len(query_offsets) - 1
    dim, dtype, dev = queries.shape[1], queries.dtype, queries.device
    n_gallery = gallery_offsets[-1]
    k = min(k, n_gallery)
    tiling = tiling_for(query_offsets[-1], n_gallery, dev)
    tiles = GalleryTiles(gallery, gallery_offsets[rank], tiling.gallery)
    lo, hi, first = tiles.layout()
    mine = min(k, gallery.shape[0])
    rows = -(-rows // tiling.queries) * tiling.queries
    stage = Collector(
        query_offsets[rank + 1] - query_offsets[rank], n_gallery, k, positives, _no_overflow
    )
    buffer = None
    for src in range(world):
        start_q, stop_q = query_offsets[src], query_offsets[src + 1]
        for start, n, lo_q, hi_q in _query_blocks(start_q, stop_q, tiling.queries, rows):
            if src == rank:
                block = padded_queries(queries, start_q, start, n)
            else:
                block = torch.empty((n, dim), dtype=dtype, device=dev)
            distributed.broadcast(block, src)
            scores = score_block(block, tiles, tiling, buffer)
            buffer = _larger(buffer, scores.scores)
            values = scores.scores.new_full((1, n, k), -torch.inf)
            index = torch.full((1, n, k), -1, dtype=torch.long, device=dev)
            if mine:
                s = scores.scores.contiguous()
                values[0, :, :mine], index[0, :, :mine] = select_top(s, lo, hi, first, mine)
            values, index = distributed.gather_equal(values), distributed.gather_equal(index)
            if src != rank:
                best = torch.empty(n, dtype=dtype, device=dev)
                distributed.broadcast(best, src)
                try:
                    counted = torch.stack(scores.count(best))
                except InputError as exc:
                    raise _as_overflow(exc, start, gallery_offsets[rank]) from None
                distributed.all_reduce_sum(counted)
                continue
            # Every shard's top k side by side, in rank (= index) order: [n, W k].
            merged_v = values.permute(1, 0, 2).reshape(n, world * k)
            merged_i = index.permute(1, 0, 2).reshape(n, world * k)
            place = select_top(merged_v[None].contiguous(), [0], [world * k], [0], k)[1]
            span = slice(lo_q - start, hi_q - start)
            stage.add(
                lo_q - start_q,
                hi_q - start_q,
                merged_i.gather(1, place)[span],
                merged_v.gather(1, place)[span],
                _shared_counter(scores, span, src),
                _local_at(scores, span.start, gallery_offsets[rank]),
            )
        bar.update()
    return stage.result(dev)


def _query_blocks(
    first: int, stop: int, tile: int, rows: int
) -> Iterator[tuple[int, int, int, int]]:
    """Yield the blocks of one process's queries ``first .. stop`` as ``(start, n, lo, hi)``.

    A block is rows ``start .. start + n`` of the global grid: it starts on a tile
    boundary, holds whole tiles (at most ``rows``, a multiple of ``tile``) and no more
    than the process's queries reach; the process's queries ``lo .. hi`` are in it.
    """
    for start in range(first // tile * tile, stop, rows):
        n = min(rows, -(-(stop - start) // tile) * tile)
        yield start, n, max(start, first), min(start + rows, stop)


def _shared_counter(
    scores: ScoreBlock, span: slice, src: int
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Count rows ``span`` of a block against ``best`` over every process's shard."""

    def count(best: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padded = best.new_zeros(scores.scores.shape[1])
        padded[span] = best
        distributed.broadcast(padded, src)
        total = distributed.all_reduce_sum(torch.stack(scores.count(padded)))
        return total[0, span], total[1, span]

    return count


def _local_at(
    scores: ScoreBlock, row_offset: int, gallery_offset: int
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Look up (query, global column) scores of this process's own shard."""
    return lambda rows, columns: scores.at(rows + row_offset, columns - gallery_offset)


def _no_overflow(row: int, column: int, value: float) -> NoReturn:
    raise _overflow(row, column, value)


def _overflow(row: int, column: int, value: float | None) -> InputError:
    # The embeddings were checked finite up front: only an overflowing product is left.
    return InputError(
        f"a dot product of query {row} and gallery item {column} is {value}: the "
        "embeddings' products overflow their dtype; pass them as float32",
        argument="image_embeds",
    )


def _as_overflow(exc: InputError, query_offset: int, gallery_offset: int) -> InputError:
    """Restate the counting kernel's non-finite score (block row, local item) as an overflow."""
    if exc.argument != "scores" or exc.position is None:
        return exc
    row, item = exc.position
    return _overflow(query_offset + row, gallery_offset + item, exc.value)
