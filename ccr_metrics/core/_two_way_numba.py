"""The compiled loops of :mod:`ccr_metrics.core._two_way` (imported only with numba).

One read of each score of a tile counts it for its row (an image query) and for its
column (a text query) against both ends of each one's threshold interval, and adds it
to the row's finiteness probe. Rows are spread over chunks, one per thread; each chunk
keeps column counts of its own (``col_above[k]``), summed by the caller, so that no two
threads write one count. Counts are int32: a tile side and a gallery stay far below 2**31.
The rows the counts flag are read again, one score at a time, by :func:`near_ties`
(rare rows: one thread).
"""

from __future__ import annotations

import types
from typing import Any

import numba
import numpy as np

from ._jit import jit

_OPTIONS: dict[str, Any] = {"boundscheck": False, "fastmath": {"reassoc"}}


def _tile(
    x: Any,
    rows: Any,
    columns: Any,
    row_lo: Any,
    row_hi: Any,
    col_lo: Any,
    col_hi: Any,
    row_counts: Any,
    col_above: Any,
    col_atleast: Any,
    probe: Any,
) -> None:
    # x is one C-contiguous tile; rows = (first, stop) and columns = (first, stop, offset):
    # the tile's cells that hold real items, and the offset of column 0 in the column
    # counts. row_counts[:, q] gains (above hi, at least lo, column-band hits) of row q;
    # it is int32: an int64 array turns the loop's accumulators int64, at half the speed.
    r0, r1 = rows[0], rows[1]
    c0, c1, offset = columns[0], columns[1], columns[2]
    lo_c = col_lo[offset + c0 : offset + c1]
    hi_c = col_hi[offset + c0 : offset + c1]
    n_chunks = col_above.shape[0]
    per = (r1 - r0 + n_chunks - 1) // n_chunks
    for k in numba.prange(n_chunks):
        # Contiguous slices and int32 throughout: what the vectoriser needs.
        ca = col_above[k, offset + c0 : offset + c1]
        cb = col_atleast[k, offset + c0 : offset + c1]
        for q in range(r0 + k * per, min(r0 + (k + 1) * per, r1)):
            row = x[q, c0:c1]
            lo = row_lo[q]
            hi = row_hi[q]
            above = np.int32(0)
            atleast = np.int32(0)
            hits = np.int32(0)
            p = row[0] - row[0]
            for g in range(c1 - c0):
                v = row[g]
                above += np.int32(v > hi)
                atleast += np.int32(v >= lo)
                u = np.int32(v > hi_c[g])
                w = np.int32(v >= lo_c[g])
                ca[g] += u
                cb[g] += w
                hits += w - u
                p += v
            row_counts[0, q] += above
            row_counts[1, q] += atleast
            row_counts[2, q] += hits
            probe[q] = p


def near_ties(
    scores: Any,
    flagged: Any,
    span: Any,
    images: Any,
    row_lo: Any,
    row_hi: Any,
    col_lo: Any,
    col_hi: Any,
    owner: Any,
    kind: Any,
    query: Any,
    value: Any,
) -> int:
    # scores is a tile-major block [T, R, W] whose columns lead .. lead + n_local - 1
    # (span) are texts 0 .. n_local - 1; writes (kind 0: image row / 1: text column,
    # query, score) of each negative inside its interval; returns how many, or -1 past
    # the arrays' capacity.
    n_tiles, _, width = scores.shape
    lead, n_local = span[0], span[1]
    capacity = kind.shape[0]
    n = 0
    for i in range(flagged.shape[0]):
        image, lo, hi = images[i], row_lo[i], row_hi[i]
        for t in range(n_tiles):
            row = scores[t, flagged[i]]
            for c in range(max(lead - t * width, 0), min(lead + n_local - t * width, width)):
                v = row[c]
                j = t * width + c - lead
                if owner[j] == image:
                    continue
                for k in range(2):
                    if k == 0 and not lo <= v <= hi:
                        continue
                    if k == 1 and not col_lo[j] <= v <= col_hi[j]:
                        continue
                    if n == capacity:
                        return -1  # the caller's bound was wrong: it keeps nothing
                    kind[n], query[n], value[n] = k, image if k == 0 else j, v
                    n += 1
    return n


def _serial(function: Any) -> Any:
    # numba caches a function by its qualified name: the serial build needs its own.
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__)
    copy.__qualname__ = function.__qualname__ + "_serial"
    return copy


PARALLEL = jit(parallel=True, **_OPTIONS)(_tile)
SERIAL = jit(**_OPTIONS)(_serial(_tile))
NEAR_TIES = jit(boundscheck=False)(near_ties)


def use_threads(wanted: int) -> tuple[Any, int]:
    """Set numba's thread count to ``wanted`` (capped by its pool); return (loop, chunks)."""
    threads = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))
    if threads == 1:
        return SERIAL, 1
    numba.set_num_threads(threads)
    return PARALLEL, threads
