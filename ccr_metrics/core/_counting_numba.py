"""The compiled counting loops of :mod:`ccr_metrics.core._counting` (imported only with numba).

Module-level functions, as :mod:`ccr_metrics.core._selection_numba` holds the selection
loop: numba compiles each on first use and keeps it in its cache between processes.
Every loop comes in two builds, ``parallel`` (rows, or runs of queries, spread over
numba's threads) and ``serial`` (on one thread the parallel runtime costs about 20% on
a memory-bound loop even with a single worker, measured on AVX-512).

The counts accumulate in the dtype of the ``above`` and ``tied`` arrays the caller
passes, which is what the vectoriser handles best, measured on AVX-512: float32 lanes
for float32 scores (exact up to 2**24 per row, a limit the caller keeps), int64 lanes
for float64 scores. The probe, the sum of a row's scores, is in the scores' dtype: it
is not finite when the row holds a NaN or an infinity.
"""

from __future__ import annotations

import types
from typing import Any, NamedTuple

import numba
import numpy as np

from ._jit import jit

# Queries per run of the column-major loop: three accumulators of this many floats stay
# in L1 while the run walks the gallery.
COLUMN_RUN = 1024
# "reassoc" lets the float sums (counts and probe) be vectorised; comparisons keep IEEE
# semantics (no "nnan"/"ninf"), so a NaN is never counted and always probed.
_OPTIONS: dict[str, Any] = {"boundscheck": False, "fastmath": {"reassoc"}}


def _rows(s: Any, best: Any, above: Any, tied: Any, probe: Any) -> None:
    # Row-major: each row read once, counted against its threshold and probed in that read.
    acc = above.dtype.type
    n_queries, n_gallery = s.shape
    for q in numba.prange(n_queries):
        b = best[q]
        row = s[q]
        a = acc(0)
        t = acc(0)
        p = row[0] - row[0]
        for g in range(n_gallery):
            x = row[g]
            a += acc(x > b)
            t += acc(x == b)
            p += x
        above[q] = a
        tied[q] = t
        probe[q] = p


def _columns(st: Any, best: Any, above: Any, tied: Any, probe: Any) -> None:
    # st is the C-contiguous [G, Q] transpose: each gallery item's scores for a run of
    # queries are contiguous. Four gallery rows are counted per pass over the run's
    # accumulators, so that those are read and written a quarter as often.
    acc = above.dtype.type
    n_gallery, n_queries = st.shape
    n_runs = (n_queries + COLUMN_RUN - 1) // COLUMN_RUN
    for r in numba.prange(n_runs):
        lo = r * COLUMN_RUN
        hi = min(lo + COLUMN_RUN, n_queries)
        n = hi - lo
        b = best[lo:hi]
        a = np.zeros(n, above.dtype)
        t = np.zeros(n, above.dtype)
        p = np.zeros(n, st.dtype)
        g = 0
        while g + 4 <= n_gallery:
            r0, r1, r2, r3 = st[g, lo:hi], st[g + 1, lo:hi], st[g + 2, lo:hi], st[g + 3, lo:hi]
            for i in range(n):
                bi = b[i]
                x0, x1, x2, x3 = r0[i], r1[i], r2[i], r3[i]
                a[i] += acc(x0 > bi) + acc(x1 > bi) + acc(x2 > bi) + acc(x3 > bi)
                t[i] += acc(x0 == bi) + acc(x1 == bi) + acc(x2 == bi) + acc(x3 == bi)
                p[i] += (x0 + x1) + (x2 + x3)
            g += 4
        while g < n_gallery:
            r0 = st[g, lo:hi]
            for i in range(n):
                x0 = r0[i]
                a[i] += acc(x0 > b[i])
                t[i] += acc(x0 == b[i])
                p[i] += x0
            g += 1
        for i in range(n):
            above[lo + i] = a[i]
            tied[lo + i] = t[i]
            probe[lo + i] = p[i]


def _masked(
    s: Any,
    flat: Any,
    words: Any,
    best: Any,
    n_positives: Any,
    tied_positives: Any,
    above: Any,
    tied: Any,
    probe: Any,
) -> None:
    # flat is the mask as one byte array, words the same bytes as uint64: a row's
    # positives are found by stepping over its all-zero words (positives are few), then
    # the row is counted against its best positive while it is in cache. A NaN
    # positive is never the best here; the probe catches it.
    acc = above.dtype.type
    n_queries, n_gallery = s.shape
    for q in numba.prange(n_queries):
        row = s[q]
        start = q * n_gallery
        end = start + n_gallery
        b = row[0]
        count = 0
        tp = 0
        i = start
        while i < end:
            if i % 8 == 0 and i + 8 <= end and words[i // 8] == 0:
                i += 8
                continue
            if flat[i]:
                x = row[i - start]
                if count == 0 or x > b:
                    b = x
                    tp = 1
                elif x == b:
                    tp += 1
                count += 1
            i += 1
        a = acc(0)
        t = acc(0)
        p = row[0] - row[0]
        for g in range(n_gallery):
            x = row[g]
            a += acc(x > b)
            t += acc(x == b)
            p += x
        has = count > 0
        best[q] = b
        n_positives[q] = count
        above[q] = a if has else acc(0)
        tied[q] = t if has else acc(0)
        tied_positives[q] = tp
        probe[q] = p


def _serial(function: Any) -> Any:
    """Return a copy of ``function`` under a name of its own, for the serial build.

    numba's cache keys a function by its qualified name and code, not by its options:
    the two builds of one loop must not share an entry.
    """
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__)
    copy.__qualname__ = function.__qualname__ + "_serial"
    return copy


class Kernels(NamedTuple):
    """One build of the three loops."""

    rows: Any
    columns: Any
    masked: Any


# jit: numba.njit with its cache in a user folder, never in the package (see _jit).
PARALLEL = Kernels(
    rows=jit(parallel=True, **_OPTIONS)(_rows),
    columns=jit(parallel=True, **_OPTIONS)(_columns),
    masked=jit(parallel=True, **_OPTIONS)(_masked),
)
SERIAL = Kernels(
    rows=jit(**_OPTIONS)(_serial(_rows)),
    columns=jit(**_OPTIONS)(_serial(_columns)),
    masked=jit(**_OPTIONS)(_serial(_masked)),
)


def use_threads(wanted: int) -> Kernels:
    """Set numba's thread count to ``wanted`` (capped by its pool); return the build to use."""
    threads = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))
    if threads == 1:
        return SERIAL
    numba.set_num_threads(threads)
    return PARALLEL
