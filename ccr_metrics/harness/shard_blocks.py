"""The block loops of :func:`~ccr_metrics.evaluate_sharded`: queries against gallery shards.

Each block of queries is broadcast from the process that holds it and scored against
every process's gallery shard on the global tile grid (:mod:`.tiles`); the processes
then sum their counts (:func:`sharded_counts`) or merge their top ``k`` candidates
(:func:`sharded_first_stage`). A process whose products overflow goes on joining the
collectives, so that all raise together instead of leaving the others waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import torch

from .. import distributed
from ..core._selection import select_top
from ..core._validation import InputError
from .second_stage import Collector, FirstStage
from .stream import Positives, block_counts
from .tiles import GalleryTiles, ScoreBlock, Tiling, padded_queries, score_block, tiling_for

__all__ = ["sharded_counts", "sharded_first_stage"]


def sharded_counts(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    positives: Positives,
    query_offsets: list[int],
    gallery_offsets: list[int],
    rows: int,
    bar: Any,
) -> torch.Tensor:
    """Count this process's queries against the gallery shards of all processes.

    ``positives(a, b)`` gives the positive pairs of local queries ``a:b`` as (query
    offset, local gallery item). ``query_offsets`` and ``gallery_offsets`` are every
    process's first global index, then the totals. Scores are made on the global tile
    grid (:mod:`.tiles`), so they are the floats :func:`evaluate` makes. Every process
    fills its counts of every query into one ``[3, Q]`` array, summed across processes
    once at the end (one collective, not one per block). Returns int64 ``[3, Q_r]``:
    above, tied negatives, tied positives; zero without a positive.

    A process whose products overflow goes on joining the broadcasts, and every
    process raises its error together at the end, instead of leaving them waiting.
    """
    rank = distributed.get_rank()
    dim, dev = queries.shape[1], queries.device
    tiling = tiling_for(query_offsets[-1], gallery_offsets[-1], dev)
    tiles = GalleryTiles(gallery, gallery_offsets[rank], tiling.gallery)
    rows = -(-rows // tiling.queries) * tiling.queries
    # Every query's (above, tied negatives, tied positives): this process's own queries
    # against its shard, the others' against it; the sum is the whole count. The
    # last column says how many processes failed.
    total = torch.zeros((3, query_offsets[-1] + 1), dtype=torch.long, device=dev)
    block = _Block(tiles, tiling, gallery_offsets[rank], total)
    for src in range(len(query_offsets) - 1):
        first, stop = query_offsets[src], query_offsets[src + 1]
        for start, n, lo, hi in _query_blocks(first, stop, tiling.queries, rows):
            if src == rank:
                own = padded_queries(queries, first, start, n)
                # The best score travels with the queries: one broadcast per block.
                payload = torch.cat([own, block.own(own, positives, start, lo, hi, first)], 1)
            else:
                payload = torch.empty((n, dim + 1), dtype=queries.dtype, device=dev)
            distributed.broadcast(payload, src)
            if src != rank:
                block.other(payload[:, :dim].contiguous(), payload[:, dim], start, lo, hi)
        bar.update()
    total[0, -1] = int(block.error is not None)
    distributed.all_reduce_sum(total)
    if int(total[0, -1]):
        distributed.raise_if_any_failed(block.error, "counting the ranks")
    counts = total[:, query_offsets[rank] : query_offsets[rank + 1]]
    # Items of other shards that tie with the best are negatives; no positive, no count.
    return torch.where(counts[2] > 0, counts, 0)


class _Block:
    """Count blocks of queries against this process's gallery shard into ``total``."""

    def __init__(
        self, tiles: GalleryTiles, tiling: Tiling, offset: int, total: torch.Tensor
    ) -> None:
        self.tiles, self.tiling, self.offset, self.total = tiles, tiling, offset, total
        self.buffer: torch.Tensor | None = None
        self.error: InputError | None = None  # the first; later blocks are only joined

    def own(
        self, block: torch.Tensor, positives: Positives, start: int, lo: int, hi: int, first: int
    ) -> torch.Tensor:
        """Count this process's queries ``lo:hi`` (block rows from ``start``); their best."""
        best = block.new_zeros((block.shape[0], 1))
        if self.error is None:
            try:
                scores = self._scores(block)
                query, column = positives(lo - first, hi - first)
                local, best_ = block_counts(
                    scores, query + (lo - start), column, hi - start, empty="miss"
                )
                self.total[:, lo:hi] = torch.stack(local)[:, lo - start :]
                best = best_[:, None]
            except InputError as exc:
                self.error = _as_overflow(exc, start, self.offset)
        return best

    def other(self, block: torch.Tensor, best: torch.Tensor, start: int, lo: int, hi: int) -> None:
        """Count another process's queries ``lo:hi`` against this shard."""
        if self.error is None:
            try:
                above, tied = self._scores(block).count(best)
                self.total[:2, lo:hi] = torch.stack([above, tied])[:, lo - start : hi - start]
            except InputError as exc:
                self.error = _as_overflow(exc, start, self.offset)

    def _scores(self, block: torch.Tensor) -> ScoreBlock:
        scores = score_block(block, self.tiles, self.tiling, self.buffer)
        self.buffer = _larger(self.buffer, scores.scores)
        return scores


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
    ranges = [tiles.local_range(t) for t in range(tiles.tiles.shape[0])]
    lo, hi = [r[0] for r in ranges], [r[1] for r in ranges]
    base = gallery_offsets[rank] - tiles.lead  # global index of the first tile's column 0
    first = [base + t * tiles.width for t in range(len(ranges))]
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
                s = scores.scores if scores.scores.is_contiguous() else scores.scores.contiguous()
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
