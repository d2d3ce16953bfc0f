"""Rows and columns of one score tile counted in one read: both directions of one product.

A tile ``x`` holds the scores of image queries (rows) against text queries (columns).
Each row ``q`` has a threshold interval ``[row_lo[q], row_hi[q]]`` and each column ``c``
one of its own, ``[col_lo[c], col_hi[c]]``: the interval is known to hold the query's
threshold (its best positive score), whose exact float is only read later, from the
tile that holds it. A count against both ends is exact wherever nothing lies inside
the interval but the positive itself: the counter gives, per row,

- ``above``: scores ``> row_hi`` (certainly above the threshold),
- ``atleast``: scores ``>= row_lo`` (``atleast - above`` lie in the interval),
- ``hits``: scores of the row that lie in their *column's* interval,

and per column the same ``above`` and ``atleast`` against the column's interval. The
caller compares the interval counts with the positives it knows of, and reads the few
rows that hold anything else (see :mod:`ccr_metrics.harness.one_pass`). A threshold of
``+inf`` makes a row or column count nothing (an image without a caption). A NaN or an
infinity among the scores is refused by position.

Two implementations give identical counts: a loop compiled by numba (float32 and
float64 CPU tiles; the ``fast`` extra) and torch operations on the scores that reach
an interval (every other dtype and device, CUDA included, and CPUs without numba).
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

import numpy as np
import torch

from ._counting import kernel_choice, refuse_missing_numba
from ._validation import InputError, first_nonfinite


class TwoWayCounter:
    """Column counts of a pass over tiles, and the counting of each tile.

    ``col_lo`` and ``col_hi`` ``[C]`` are every column's interval (all columns of the
    pass, in the scores' dtype, on their device).
    """

    def __init__(self, col_lo: torch.Tensor, col_hi: torch.Tensor) -> None:
        self.col_lo, self.col_hi = col_lo, col_hi
        self._loop: Any = None
        chunks = 1
        if _numba_serves(col_lo):
            self._loop, chunks = _compiled().use_threads(torch.get_num_threads())
            self._np = (col_lo.numpy(), col_hi.numpy())
        dtype = torch.int32 if self._loop is not None else torch.long
        shape = (chunks, col_lo.shape[0])
        self._above = torch.zeros(shape, dtype=dtype, device=col_lo.device)
        self._atleast = torch.zeros_like(self._above)

    def count(
        self,
        x: torch.Tensor,
        rows: tuple[int, int],
        columns: tuple[int, int, int],
        row_lo: torch.Tensor,
        row_hi: torch.Tensor,
        row_counts: torch.Tensor,
    ) -> None:
        """Count the cells ``x[rows[0]:rows[1], columns[0]:columns[1]]`` of one tile.

        ``x`` is a C-contiguous tile ``[R, W]``; its column ``c`` is column
        ``columns[2] + c`` of the pass. ``row_lo``, ``row_hi`` ``[R]`` are the rows'
        intervals; ``row_counts`` int32 ``[3, R]`` gains each row's ``above``,
        ``atleast`` and ``hits``.

        Raises
        ------
        ValueError
            On a NaN or an infinity, its position as (tile row, column of the pass).
        """
        r0, r1 = rows
        c0, c1, offset = columns
        if r1 <= r0 or c1 <= c0:
            return
        if self._loop is not None and x.is_contiguous():
            probe = np.zeros(x.shape[0], dtype=x.numpy().dtype)
            self._loop(
                x.numpy(),
                np.array(rows, np.int64),
                np.array(columns, np.int64),
                row_lo.numpy(),
                row_hi.numpy(),
                *self._np,
                row_counts.numpy(),
                self._above.numpy(),
                self._atleast.numpy(),
                probe,
            )
            finite = bool(np.isfinite(probe[r0:r1]).all())
        else:
            finite = self._torch_count(x[r0:r1, c0:c1], r0, offset + c0, row_lo, row_hi, row_counts)
        if not finite:
            _refuse_nonfinite(x[r0:r1, c0:c1], r0, offset + c0)

    def _torch_count(
        self,
        xs: torch.Tensor,
        r0: int,
        c0: int,
        row_lo: torch.Tensor,
        row_hi: torch.Tensor,
        row_counts: torch.Tensor,
    ) -> bool:
        """Count the cells ``xs`` (tile rows from ``r0``, pass columns from ``c0``) in torch.

        Only scores that reach their row's or their column's interval can count, and
        near the top of a retrieval ranking they are few: they are found in two
        comparisons of the whole tile, then counted one by one. Returns whether
        every row's probe is finite.
        """
        n_rows, n_cols = xs.shape
        lo_r, hi_r = row_lo[r0 : r0 + n_rows], row_hi[r0 : r0 + n_rows]
        lo_c, hi_c = self.col_lo[c0 : c0 + n_cols], self.col_hi[c0 : c0 + n_cols]
        probe = xs.sum(1)
        reach = xs >= lo_r[:, None]
        reach |= xs >= lo_c
        r, c = reach.nonzero(as_tuple=True)
        v = xs[r, c]
        col_above, col_atleast = v > hi_c[c], v >= lo_c[c]
        out = row_counts[:, r0 : r0 + n_rows]
        out[0].index_add_(0, r, (v > hi_r[r]).int())
        out[1].index_add_(0, r, (v >= lo_r[r]).int())
        out[2].index_add_(0, r, (col_atleast & ~col_above).int())
        self._above[0].index_add_(0, c + c0, col_above.to(self._above.dtype))
        self._atleast[0].index_add_(0, c + c0, col_atleast.to(self._above.dtype))
        return bool(torch.isfinite(probe).all())

    def column_counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return every column's ``(above, atleast)`` so far, int64 ``[C]``."""
        return self._above.sum(0, dtype=torch.long), self._atleast.sum(0, dtype=torch.long)


class NearTies(NamedTuple):
    """Negatives inside their query's interval: image rows' and text columns'."""

    row_images: torch.Tensor  # global image index
    row_scores: torch.Tensor
    col_texts: torch.Tensor  # local text index
    col_scores: torch.Tensor


def near_ties(
    scores: torch.Tensor,
    flagged: torch.Tensor,
    span: tuple[int, int],
    rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    columns: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    capacity: int,
) -> NearTies:
    """Read rows ``flagged`` of a tile-major block again for the negatives inside an interval.

    ``scores`` ``[T, R, W]``: its columns ``span[0] .. span[0] + span[1] - 1`` (tile
    after tile) are the local texts. ``rows`` are the flagged rows' (global image,
    interval low, interval high), ``columns`` every local text's (interval low,
    interval high, global image). A score is a negative of its row unless the text
    belongs to the row's image, and of its column likewise. ``capacity`` is at least
    the number of scores inside an interval in those rows (the counter's counts).
    """
    images, row_lo, row_hi = rows
    col_lo, col_hi, owner = columns
    if _numba_serves(scores) and scores.is_contiguous():
        kind = np.empty(capacity, np.int8)
        query = np.empty(capacity, np.int64)
        value = np.empty(capacity, scores.numpy().dtype)
        arrays = (images, row_lo, row_hi, col_lo, col_hi, owner)
        n = _compiled().NEAR_TIES(
            scores.numpy(),
            flagged.numpy(),
            np.array(span, np.int64),
            *(a.numpy() for a in arrays),
            kind,
            query,
            value,
        )
        if n < 0:
            raise RuntimeError("near_ties: more scores inside an interval than its capacity")
        is_row = torch.from_numpy(kind[:n] == 0)
        q, v = torch.from_numpy(query[:n]), torch.from_numpy(value[:n])
        return NearTies(q[is_row], v[is_row], q[~is_row], v[~is_row])
    return _torch_near_ties(scores, flagged, span, rows, columns)


# Rows read again at once by the torch path: bounds the extra memory of a block's rows.
_RESCAN_ROWS = 64


def _torch_near_ties(
    scores: torch.Tensor,
    flagged: torch.Tensor,
    span: tuple[int, int],
    rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    columns: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> NearTies:
    images, row_lo, row_hi = rows
    col_lo, col_hi, owner = columns
    lead, n_local = span
    found: list[list[torch.Tensor]] = [[], [], [], []]
    for a in range(0, flagged.shape[0], _RESCAN_ROWS):
        f = flagged[a : a + _RESCAN_ROWS]
        full = scores[:, f, :].permute(1, 0, 2).reshape(f.shape[0], -1)[:, lead : lead + n_local]
        image = images[a : a + _RESCAN_ROWS, None]
        negative = owner[None, :] != image
        lo, hi = row_lo[a : a + _RESCAN_ROWS, None], row_hi[a : a + _RESCAN_ROWS, None]
        r, c = ((full >= lo) & (full <= hi) & negative).nonzero(as_tuple=True)
        found[0].append(image[r, 0])
        found[1].append(full[r, c])
        r, c = ((full >= col_lo) & (full <= col_hi) & negative).nonzero(as_tuple=True)
        found[2].append(c)
        found[3].append(full[r, c])
    empty = (torch.zeros(0, dtype=torch.long, device=scores.device), scores.new_zeros(0))
    return NearTies(*(torch.cat(f) if f else empty[i % 2] for i, f in enumerate(found)))


def _refuse_nonfinite(xs: torch.Tensor, r0: int, c0: int) -> None:
    found = first_nonfinite(xs)
    if found is None:  # a finite row whose probe overflowed: nothing to refuse
        return
    (row, column), value = found
    position = (r0 + row, c0 + column)
    raise InputError(
        f"scores contains {value} at {list(position)}; scores must be finite",
        argument="scores",
        position=position,
        value=value,
    )


def _numba_serves(t: torch.Tensor) -> bool:
    choice = kernel_choice()
    if choice == "torch" or t.device.type != "cpu":
        return False
    if t.dtype not in (torch.float32, torch.float64):
        return False
    if _compiled() is None:
        refuse_missing_numba(choice)
        return False
    return True


@cache
def _compiled() -> Any:
    """Return the compiled loop's module (compiled on first use); None without numba."""
    try:
        from . import _two_way_numba
    except ImportError:
        return None
    return _two_way_numba
