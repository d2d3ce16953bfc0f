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
  loop (:mod:`ccr_metrics._selection_numba`) that reads each score once and keeps, per
  row, a buffer of contenders in index order: a score enters only when it is strictly
  above a threshold (first estimated from a sample of the row, then raised to the
  ``k``-th value whenever the full buffer is cut to its ``k`` best), so an equal score
  met later, at a higher index, never displaces one met earlier;
- everything else takes ``torch.topk`` for the ``k``-th value and then, of the items
  tied with it, keeps the lowest-indexed ones that fit.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch

from ._counting import kernel_choice, numba_available

__all__ = ["select_top"]


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
