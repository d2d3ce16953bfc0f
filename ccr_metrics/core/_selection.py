"""The ``k`` best items of every row, ties at the boundary going to the lower index.

A two-stage (re-ranking) model re-scores each query's top ``k`` first-stage candidates.
``torch.topk`` leaves the order of tied values to its implementation, so which of
several items tied at the ``k``-th score becomes a candidate could change with the
device, the block or the torch version, and with it the ranks. Here the order is total:
a higher score first, and of equal scores the lower gallery index first.

Rows arrive as a tile-major block ``[T, R, W]`` (the harness's score tiles, see
:mod:`ccr_metrics.harness.tiles`; a plain ``[R, G]`` matrix is one tile): in tile
``t`` the columns ``lo[t] .. hi[t] - 1`` are gallery items, column ``c`` being item
``first[t] + c``, and the other columns are padding. Two implementations give the same
items:

- with numba (the ``fast`` extra), float32 and float64 CPU blocks go through a compiled
  loop (:mod:`ccr_metrics.core._selection_numba`) that reads each score once and keeps, per
  row, a buffer of contenders in index order: a score enters only when it is strictly
  above a threshold (first estimated from a sample of the row, then raised to the
  ``k``-th value whenever the full buffer is cut to its ``k`` best), so an equal score
  met later, at a higher index, never displaces one met earlier;
- everything else takes ``torch.topk`` for the ``k``-th value and then, of the items
  tied with it, keeps the lowest-indexed ones that fit.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from functools import cache
from typing import Any

import numpy as np
import torch

from ._counting import kernel_choice, numba_available

__all__ = ["ColumnTop", "select_top"]


def select_top(
    scores: torch.Tensor, lo: list[int], hi: list[int], first: list[int], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ``k`` best items of each row of a tile-major block, in index order.

    ``scores`` is ``[T, R, W]``; ``lo``, ``hi`` and ``first`` (one entry per tile) are
    described in the module notes. The rows must hold at least ``k`` items and no NaN.
    Returns ``(values, index)``, both ``[R, k]`` on the device of ``scores``: the
    items' scores and global indices, each row in increasing index.
    """
    kernel = _compiled_kernel(scores)
    if kernel is not None:
        n_rows = scores.shape[1]
        values = np.empty((n_rows, k), scores.numpy().dtype)
        index = np.empty((n_rows, k), np.int64)
        kernel(
            scores.numpy(),
            np.asarray(lo, np.int64),
            np.asarray(hi, np.int64),
            np.asarray(first, np.int64),
            values,
            index,
        )
        value_t, index_t = torch.from_numpy(values), torch.from_numpy(index)
    else:
        value_t, index_t = _torch_select(scores, lo, hi, first, k)
    order = torch.argsort(index_t, dim=1)
    return value_t.gather(1, order), index_t.gather(1, order)


def _torch_select(
    scores: torch.Tensor, lo: list[int], hi: list[int], first: list[int], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    # The items of every tile side by side, in index order: [R, G]. A NaN (refused later
    # by the counting) must not take a place from a number here.
    rows = torch.cat([scores[t, :, lo[t] : hi[t]] for t in range(scores.shape[0])], dim=1)
    rows = rows.nan_to_num(nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
    item = torch.cat(
        [torch.arange(first[t] + lo[t], first[t] + hi[t]) for t in range(scores.shape[0])]
    ).to(scores.device)
    kth = torch.topk(rows, k, dim=1).values[:, -1:]
    above = rows > kth
    tied = rows == kth
    places = k - above.sum(1, keepdim=True)
    # Of the items tied with the k-th value, the first `places` by index.
    keep = above | (tied & (torch.cumsum(tied, dim=1) <= places))
    column = keep.nonzero()[:, 1].reshape(rows.shape[0], k)
    return rows.gather(1, column), item[column]


class ColumnTop:
    """The ``k`` best rows of every column, gathered over a pass of row blocks.

    The same order as :func:`select_top`, down columns: a higher score first, and of
    equal scores the lower row. Blocks must arrive in row order, and the pass must hold
    at least ``k`` rows. ``n_columns`` columns, scores of ``dtype`` on ``device``.
    Memory: ``4 k`` contenders per column (numba), or ``k`` plus a block's rows for a
    slice of the columns at a time (torch).
    """

    def __init__(self, n_columns: int, k: int, dtype: torch.dtype, device: torch.device) -> None:
        self.k, self.n_columns = k, n_columns
        probe = torch.zeros((1, 1, 1), dtype=dtype, device=device)
        self._numba = _compiled_kernel(probe) is not None
        self._dtype = dtype
        self._share = 2 / 3  # of the columns merged on the calling thread, given a pool
        self._started = False
        if self._numba:
            capacity = 4 * k  # a cut per 3k entries: cuts cost more than the entries
            self._kept_v = np.empty((n_columns, capacity), probe.numpy().dtype)
            self._kept_i = np.empty((n_columns, capacity), np.int64)
            self._size = np.zeros(n_columns, np.int64)
            self._threshold = np.full(n_columns, -np.inf, self._kept_v.dtype)
        else:
            self._values = torch.empty((0, n_columns), dtype=dtype, device=device)
            self._index = torch.empty((0, n_columns), dtype=torch.long, device=device)

    def add(
        self,
        scores: torch.Tensor,
        rows: tuple[int, int, int],
        lo: list[int],
        hi: list[int],
        first: list[int],
        *,
        pool: Executor | None = None,
    ) -> None:
        """Add rows ``rows[0] .. rows[1] - 1`` of a tile-major block (row ``r``: ``rows[2] + r``).

        ``scores`` is ``[T, R, W]``; ``lo``, ``hi`` and ``first`` place its columns (the
        module notes); the tiles must cover all ``n_columns`` columns. The scores must
        hold no NaN. With ``pool`` (one worker thread), the compiled merge of a share of
        each tile's columns is queued there, behind whatever the caller queued before
        (the harness's row selection), and the rest runs here; the share follows the
        two threads' times, so that they end together.
        """
        r0, r1, base = rows
        if r1 <= r0:
            return
        if scores.dtype != self._dtype:  # the compiled merge would compare across dtypes
            raise TypeError(f"scores are {scores.dtype}, the selection holds {self._dtype}")
        if self._numba:
            scores = scores.contiguous()
            prime = not self._started and r1 - r0 >= 2 * self.k
            self._started = True
            if pool is None:
                self._merge(scores, rows, lo, hi, first, prime)
                return
            start = time.perf_counter()
            mid = [a + round(self._share * (b - a)) for a, b in zip(lo, hi, strict=True)]
            queued = pool.submit(self._merge, scores, rows, mid, hi, first, prime)
            here = self._merge(scores, rows, lo, mid, first, prime) - start
            there = queued.result() - start
            # The next block's share here, such that both threads end together: the
            # worker's time includes what was queued before (the row selection).
            if here > 0:
                self._share = min(0.95, max(0.05, self._share * (1 + there / here) / 2))
            return
        block = scores.new_empty((r1 - r0, self.n_columns))
        for t in range(scores.shape[0]):
            block[:, first[t] + lo[t] : first[t] + hi[t]] = scores[t, r0:r1, lo[t] : hi[t]]
        item = torch.arange(base + r0, base + r1, device=scores.device)
        self._values, self._index = _merge_down(self._values, self._index, block, item, self.k)

    def _merge(
        self,
        scores: torch.Tensor,
        rows: tuple[int, int, int],
        lo: list[int],
        hi: list[int],
        first: list[int],
        prime: bool,
    ) -> float:
        # The compiled merge releases the GIL; calls on disjoint columns may run at once.
        # Returns when it ended, by which the caller balances the threads.
        _compiled_merge()(
            scores.numpy(),
            np.asarray(rows, np.int64),
            np.asarray(lo, np.int64),
            np.asarray(hi, np.int64),
            np.asarray(first, np.int64),
            self._kept_v,
            self._kept_i,
            self._size,
            self._threshold,
            self.k,
            prime,
        )
        return time.perf_counter()

    def result(self, *, pool: Executor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(values, index)``, both ``[n_columns, k]``, each row in increasing index.

        With ``pool`` (one worker thread), the compiled cut of half the columns runs there.
        """
        if self._numba:
            values = np.empty((self.n_columns, self.k), self._kept_v.dtype)
            index = np.empty((self.n_columns, self.k), np.int64)
            state = (self._kept_v, self._kept_i, self._size, values, index)

            def finish(a: int, b: int) -> None:
                kept_v, kept_i, size, out_v, out_i = (x[a:b] for x in state)
                _compiled_finish()(kept_v, kept_i, size, self.k, out_v, out_i)

            half = self.n_columns // 2 if pool is not None else 0
            queued = pool.submit(finish, 0, half) if pool is not None else None
            finish(half, self.n_columns)
            if queued is not None:
                queued.result()
            return torch.from_numpy(values), torch.from_numpy(index)  # buffers keep index order
        return self._values.T.contiguous(), self._index.T.contiguous()


def _merge_down(
    values: torch.Tensor, index: torch.Tensor, block: torch.Tensor, item: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each column's ``k`` best of its kept ``values`` ``[k', C]`` and ``block`` ``[R, C]``.

    The kept rows are in index order and come from earlier blocks, so the rows stacked
    are in index order: of the items tied with the ``k``-th value, the first that fit
    stay (as in ``_torch_select``). Slices of columns at a time bound the memory.
    """
    n_keep = min(k, values.shape[0] + block.shape[0])
    out_v = block.new_empty((n_keep, block.shape[1]))
    out_i = index.new_empty((n_keep, block.shape[1]))
    step = max(1, (1 << 22) // (values.shape[0] + block.shape[0]))
    for a in range(0, block.shape[1], step):
        b = min(a + step, block.shape[1])
        v = torch.cat([values[:, a:b], block[:, a:b]])
        i = torch.cat([index[:, a:b], item[:, None].expand(-1, b - a)])
        kth = torch.topk(v, n_keep, dim=0).values[-1:]
        above, tied = v > kth, v == kth
        places = n_keep - above.sum(0, keepdim=True)
        keep = above | (tied & (torch.cumsum(tied, dim=0) <= places))
        rows = keep.T.nonzero()[:, 1].reshape(b - a, n_keep).T
        out_v[:, a:b], out_i[:, a:b] = v.gather(0, rows), i.gather(0, rows)
    return out_v, out_i


def _compiled_kernel(scores: torch.Tensor) -> Any:
    """Return the compiled selection for ``scores``, or None for the torch path."""
    if kernel_choice() == "torch" or not numba_available():
        return None
    if scores.device.type != "cpu" or scores.dtype not in (torch.float32, torch.float64):
        return None
    if not scores.is_contiguous():
        return None
    return _compiled()


@cache
def _compiled() -> Any:
    """Load the compiled selection loop (numba compiles it on first use, then caches it).

    Serial: on two threads a parallel build was no faster (3.7 against 3.0 ns per score,
    2,016 x 6,256 float32, k = 128, AVX-512) and took 14 s to compile, not 1.4.
    """
    from ._selection_numba import select

    return select


@cache
def _compiled_merge() -> Any:
    from ._selection_numba import merge_columns

    return merge_columns


@cache
def _compiled_finish() -> Any:
    from ._selection_numba import finish_columns

    return finish_columns
