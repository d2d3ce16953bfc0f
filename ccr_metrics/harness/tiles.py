"""Scores as fixed-shape tiles on a grid of global indices: the same float in every plan.

A matrix product's rounding depends on its shape: a one-row block (a matrix-vector
product) or a one-column shard rounds differently from a large block, and a tie that
is exact in one plan breaks in another. So every score is computed by one product of
a ``[T_q, D]`` query tile and a ``[T_g, D]`` gallery tile whose positions are fixed by
the queries' and gallery items' *global* indices (tile ``i`` holds global items
``i * T, ..., i * T + T - 1``), the rows and columns another process holds or that lie
past the end padded with zeros. A score then sits at the same place of a product of the
same shape in every plan, whatever the block size, the number of processes or the shard
sizes, and comes out as the same float. ``T_q`` and ``T_g`` depend only on the total
numbers of queries and gallery items and on the device type.

This holds for a given device type, BLAS and thread count: products of fixed shape are
deterministic there (tested), and a zero row or column of a tile does not change the
others. CPU and CUDA scores may differ in the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..core._counting import count_against
from ..core._validation import InputError

# The largest tile sides. On CPU, products of 512 x D x 8,192 run as fast as the bare
# product of whole blocks (measured at D = 256 on AVX-512; tiles of 128 x 2,048 took
# 1.4x as long). A side is the total split into equal tiles (rounded up to 8), so that
# padding wastes little: 5,000 items make three tiles of 1,672, not of 2,048.
_CPU_TILE = (512, 8192)
_CUDA_TILE = (1024, 16384)
# No tile side below this: thinner products take other (GEMV) code paths.
_MIN_TILE = 8


class Tiling(NamedTuple):
    """Tile sizes: ``queries`` rows and ``gallery`` columns of every product."""

    queries: int
    gallery: int


def tiling_for(n_queries: int, n_gallery: int, device: torch.device) -> Tiling:
    """Choose the tiles for ``n_queries`` x ``n_gallery`` scores in all (every process)."""
    q, g = _CUDA_TILE if device.type == "cuda" else _CPU_TILE
    return Tiling(_side(n_queries, q), _side(n_gallery, g))


def _side(total: int, largest: int) -> int:
    """Return the tile side that splits ``total`` into equal tiles of at most ``largest``."""
    tiles = -(-max(total, 1) // largest)
    return _round_up(-(-max(total, 1) // tiles), _MIN_TILE)


class GalleryTiles:
    """A gallery shard laid out in zero-padded tiles of the global grid.

    ``gallery`` ``[G_r, D]`` holds the global items ``offset .. offset + G_r - 1``.
    """

    def __init__(self, gallery: torch.Tensor, offset: int, width: int) -> None:
        first = offset // width * width
        stop = _round_up(offset + gallery.shape[0], width)
        padded = gallery.new_zeros((max(stop - first, width), gallery.shape[1]))
        self.lead = offset - first  # where local item 0 sits in the padded range
        padded[self.lead : self.lead + gallery.shape[0]] = gallery
        self.tiles = padded.view(-1, width, gallery.shape[1])
        self.width = width
        self.n_local = gallery.shape[0]
        self.start = offset - self.lead  # the global item at column 0 of tile 0

    def local_range(self, tile: int) -> tuple[int, int]:
        """Return the columns of ``tile`` holding local items, ``[lo, hi)`` in the tile."""
        start = tile * self.width
        lo = max(self.lead - start, 0)
        hi = min(self.lead + self.n_local - start, self.width)
        return lo, max(hi, lo)

    def layout(self) -> tuple[list[int], list[int], list[int]]:
        """Return ``(lo, hi, first)``: the tile layout that ``select_top`` reads.

        Per tile: ``lo`` and ``hi`` as :meth:`local_range`, ``first`` the global item at
        its column 0.
        """
        ranges = [self.local_range(t) for t in range(self.tiles.shape[0])]
        first = [self.start + t * self.width for t in range(len(ranges))]
        return [r[0] for r in ranges], [r[1] for r in ranges], first


@dataclass(frozen=True)
class ScoreBlock:
    """The scores of a block of query tiles against every gallery tile, tile-major.

    ``scores[t]`` is ``[rows, T_g]``: the block's padded query rows against gallery
    tile ``t``.
    """

    scores: torch.Tensor
    gallery: GalleryTiles

    def at(self, rows: torch.Tensor, local_columns: torch.Tensor) -> torch.Tensor:
        """Return the scores of (block row, local gallery item) pairs."""
        position = local_columns + self.gallery.lead
        width = self.gallery.width
        return self.scores[position // width, rows, position % width]

    def count(self, best: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(above, tied)`` of every block row against ``best``, over the local items.

        Raises the counting kernel's error on a NaN or infinity, its position in
        (block row, local gallery item).
        """
        above = torch.zeros(self.scores.shape[1], dtype=torch.long, device=best.device)
        tied = torch.zeros_like(above)
        # Columns of padding or of other shards get a score below every best, so the
        # whole contiguous tile can be counted, which the compiled kernel does fastest.
        # It is low but far from the float's limit, so that the kernel's finiteness probe
        # (a row sum) cannot overflow on it; a best at or below it counts a slice.
        low = torch.finfo(self.scores.dtype).max / -(2.0**16)
        lowest_best = bool((best <= low).any())
        for tile in range(self.scores.shape[0]):
            lo, hi = self.gallery.local_range(tile)
            if hi == lo:
                continue
            scores = self.scores[tile]
            if lowest_best:
                scores = scores[:, lo:hi]
            else:
                scores[:, :lo] = low
                scores[:, hi:] = low
                lo = 0
            try:
                a, t = count_against(scores, best, chunk_size=None)
            except InputError as exc:
                if exc.argument != "scores" or exc.position is None:
                    raise
                row, column = exc.position
                item = tile * self.gallery.width + lo + column - self.gallery.lead
                raise InputError(
                    f"scores contains {exc.value} at [{row}, {item}]",
                    argument="scores",
                    position=(row, item),
                    value=exc.value,
                ) from None
            above += a
            tied += t
        return above, tied


def score_block(
    queries: torch.Tensor,
    gallery: GalleryTiles,
    tiling: Tiling,
    buffer: torch.Tensor | None = None,
) -> ScoreBlock:
    """Products of a block of padded query tiles ``[rows, D]`` with every gallery tile.

    ``rows`` is a multiple of ``tiling.queries`` and the block starts on a tile of the
    global grid. Every product has the shape ``[T_q, D] x [D, T_g]``. The scores go into
    ``buffer`` when it is given and holds as many rows (a previous block's ``scores``):
    a fresh allocation of tens of MB per block costs page faults.
    """
    n_tiles, width = gallery.tiles.shape[0], gallery.width
    shape = (n_tiles, queries.shape[0], width)
    if buffer is None or buffer.shape[1] < shape[1]:
        buffer = queries.new_empty(shape)
    out = buffer[:, : shape[1]]
    for start in range(0, queries.shape[0], tiling.queries):
        tile = queries[start : start + tiling.queries]
        for t in range(n_tiles):
            torch.mm(tile, gallery.tiles[t].T, out=out[t, start : start + tiling.queries])
    return ScoreBlock(out, gallery)


def tiled_blocks(n_queries: int, n_gallery: int, rows: int, device: torch.device) -> int:
    """Return how many blocks a tiled pass takes (``rows`` rounded up to whole query tiles)."""
    return -(-n_queries // _round_up(rows, tiling_for(n_queries, n_gallery, device).queries))


def padded_queries(queries: torch.Tensor, offset: int, start: int, rows: int) -> torch.Tensor:
    """Rows ``start .. start + rows - 1`` of the global query grid, from a local shard.

    ``queries`` ``[Q_r, D]`` holds the global queries ``offset .. offset + Q_r - 1``;
    rows of the grid it does not hold are zero.
    """
    out = queries.new_zeros((rows, queries.shape[1]))
    lo = max(start, offset)
    hi = min(start + rows, offset + queries.shape[0])
    if hi > lo:
        out[lo - start : hi - start] = queries[lo - offset : hi - offset]
    return out


def _round_up(n: int, step: int) -> int:
    return max(step, -(-n // step) * step)
