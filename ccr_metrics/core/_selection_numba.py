"""The compiled selection loop of :mod:`ccr_metrics._selection` (imported only with numba).

Module-level functions, so that numba's cache keeps them between processes (functions
closed over other compiled functions are compiled again in every process); the cache is
in a user folder (:mod:`ccr_metrics.core._jit`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._jit import jit


# nogil: the harness runs a row selection beside a column merge (two threads).
@jit(boundscheck=False, nogil=True)
def select(scores: Any, lo: Any, hi: Any, first: Any, values: Any, index: Any) -> None:
    # Per row, a buffer of contenders in index order: a score enters when it is
    # strictly above a threshold, so most scores meet one comparison (16 at a time, a
    # loop that vectorises). The threshold starts at the 16th largest of every
    # step-th score of the row (about 3k scores lie above it, fewer than k only
    # rarely), and each time the buffer fills it is cut to its k best and the threshold
    # rises to the k-th value, which a later, higher-indexed item must beat. A row
    # left with fewer than k contenders is read again, every item entering until the
    # first cut, so that a row of NaN or -inf still yields k items (its scores are
    # refused later, but must not send this loop out of bounds).
    n_tiles, n_rows, _ = scores.shape
    k = values.shape[1]
    capacity = 4 * k
    n_valid = 0
    for t in range(n_tiles):
        n_valid += hi[t] - lo[t]
    step = (3 * k) // 16
    sampled = n_valid // step if step >= 2 else 0
    pool = np.empty(sampled + 1, values.dtype)
    kept_v = np.empty(capacity, values.dtype)
    kept_i = np.empty(capacity, np.int64)
    scratch = np.empty(max(capacity, sampled + 1), values.dtype)
    for r in range(n_rows):
        threshold = values.dtype.type(-np.inf)
        if sampled >= 32:
            m = sample(scores, r, lo, hi, step, pool)
            threshold = kth_largest(pool, m, 16, scratch)
        size = 0
        for attempt in range(2):
            everything = attempt == 1
            size = 0
            for t in range(n_tiles):
                row = scores[t, r]
                base = first[t]
                c = lo[t]
                end = hi[t]
                while c < end:
                    stop = min(c + 16, end)
                    if everything or count_above(row, c, stop, threshold) > 0:
                        # No branch on the score (entries come at random): each is
                        # written at the buffer's end and kept by counting it.
                        for q in range(c, stop):
                            x = row[q]
                            kept_v[size] = x
                            kept_i[size] = base + q
                            size += everything or x > threshold
                            if size == capacity:
                                threshold = cut(kept_v, kept_i, size, k, scratch)
                                size = k
                                everything = False
                    c = stop
            if size >= k:
                break
        cut(kept_v, kept_i, size, k, scratch)
        values[r] = kept_v[:k]
        index[r] = kept_i[:k]


@jit(boundscheck=False)
def sample(scores: Any, r: int, lo: Any, hi: Any, step: int, out: Any) -> int:
    # Every step-th valid score of row r, in order, as many as `out` holds.
    m = 0
    skip = 0
    for t in range(scores.shape[0]):
        row = scores[t, r]
        c = lo[t] + skip
        while c < hi[t] and m < out.shape[0]:
            out[m] = row[c]
            m += 1
            c += step
        skip = c - hi[t] if c >= hi[t] else 0
    return m


@jit(boundscheck=False)
def kth_largest(source: Any, size: int, k: int, scratch: Any) -> Any:
    # The k-th largest of source[:size] (k <= size): quickselect with a three-way
    # partition (ties are common), on a copy. np.partition, tried first, took about
    # 100 us for 512 values here. A NaN falls in the middle part and ends the search
    # (its result is then meaningless, but the loop stays in bounds and terminates).
    for j in range(size):
        scratch[j] = source[j]
    a, b = 0, size  # the answer lies in scratch[a:b]; k counts from the top of it
    while True:
        if b - a == 1:
            return scratch[a]
        pivot = scratch[a + (b - a) // 2]
        # [a, lt): > pivot, [lt, gt): == pivot, [gt, b): < pivot
        lt, i, gt = a, a, b
        while i < gt:
            x = scratch[i]
            if x > pivot:
                scratch[i] = scratch[lt]
                scratch[lt] = x
                lt += 1
                i += 1
            elif x < pivot:
                gt -= 1
                scratch[i] = scratch[gt]
                scratch[gt] = x
            else:
                i += 1
        if k <= lt - a:
            b = lt
        elif k <= gt - a:
            return pivot
        else:
            k -= gt - a
            a = gt


@jit(boundscheck=False)
def cut(kept_v: Any, kept_i: Any, size: int, k: int, scratch: Any) -> Any:
    # Keep the k best of the first `size` (>= k) entries, in their (index) order:
    # all above the k-th value, then the first of those equal to it. Returns the
    # k-th value.
    kth = kth_largest(kept_v, size, k, scratch)
    places = k
    for j in range(size):
        if kept_v[j] > kth:
            places -= 1
    out = 0
    for j in range(size):
        x = kept_v[j]
        if x > kth or (x == kth and places > 0):
            if x == kth:
                places -= 1
            kept_v[out] = x
            kept_i[out] = kept_i[j]
            out += 1
    return kth


@jit(boundscheck=False)
def count_above(row: Any, a: int, b: int, threshold: Any) -> int:
    n = 0
    for q in range(a, b):
        if row[q] > threshold:
            n += 1
    return n


@jit(boundscheck=False, nogil=True)
def merge_columns(
    scores: Any,
    rows: Any,
    lo: Any,
    hi: Any,
    first: Any,
    kept_v: Any,
    kept_i: Any,
    size: Any,
    threshold: Any,
    k: int,
) -> None:
    # Rows rows[0] .. rows[1] - 1 of a tile-major block [T, R, W] (row r is item
    # rows[2] + r) join each column's contenders, kept_v/kept_i [C, capacity] in index
    # order (size [C], threshold [C]), by the rule of `select`: a score enters when
    # strictly above its column's threshold, and a full buffer is cut to its k best,
    # the threshold rising to the k-th value. The block is read 64 columns at a time,
    # down all rows, so that those columns' buffers stay in cache (row by row across
    # all columns, the writes missed the cache and the TLB: 16 ns per score).
    r0, r1, base = rows[0], rows[1], rows[2]
    capacity = kept_v.shape[1]
    scratch = np.empty(capacity, kept_v.dtype)
    sample = np.empty(capacity, kept_v.dtype)
    hit = np.empty(64, np.int64)
    for t in range(scores.shape[0]):
        f = first[t]
        for g in range(lo[t], hi[t], 64):
            width = min(64, hi[t] - g)
            bar = threshold[f + g : f + g + width]
            for r in range(r0, r1):
                row = scores[t, r, g : g + width]
                # The columns this row enters, gathered without a branch on the score
                # (entries come at random, a few percent of them).
                m = 0
                for q in range(width):
                    hit[m] = q
                    m += row[q] > bar[q]
                for e in range(m):
                    q = hit[e]
                    j = f + g + q
                    n = size[j]
                    kept_v[j, n] = row[q]
                    kept_i[j, n] = base + r
                    n += 1
                    if n == capacity:
                        n, bar[q] = shrink(kept_v[j], kept_i[j], n, k, scratch, sample)
                    size[j] = n


@jit(boundscheck=False)
def shrink(kept_v: Any, kept_i: Any, size: int, k: int, scratch: Any, sample: Any) -> Any:
    # Free a full buffer mid-pass: keep, in order, every entry >= v for a v that at
    # least k entries reach, and return (entries kept, v). A later entry must beat v,
    # so of scores equal to v the earlier (lower-indexed) stay, as the exact cut at
    # the end needs. v is read off a sample of the buffer (about 1.5k entries reach
    # it): quickselect on all of it, mispredicting half its branches, cost 4-5x more.
    step = max(1, size // 64)
    m = 0
    for j in range(0, size, step):
        sample[m] = kept_v[j]
        m += 1
    v = kth_largest(sample, m, max(1, min(m, (3 * k) // (2 * step))), scratch)
    reach = 0
    for j in range(size):
        reach += kept_v[j] >= v
    if reach < k or reach > size - max(1, k // 2):  # too few, or too little freed
        return k, cut(kept_v, kept_i, size, k, scratch)
    out = 0
    for j in range(size):
        x = kept_v[j]
        kept_v[out] = x
        kept_i[out] = kept_i[j]
        out += x >= v
    return out, v


@jit(boundscheck=False)
def finish_columns(kept_v: Any, kept_i: Any, size: Any, k: int, values: Any, index: Any) -> None:
    # Each column's k best contenders (every column holds at least k), in index order.
    scratch = np.empty(kept_v.shape[1], kept_v.dtype)
    sample = np.empty(kept_v.shape[1], kept_v.dtype)
    for j in range(kept_v.shape[0]):
        n = size[j]
        if n < k:  # never with a pass of k rows or more; the cut would not end
            raise RuntimeError("a column holds fewer than k contenders")
        if n > 2 * k:  # the exact cut on fewer entries
            n = shrink(kept_v[j], kept_i[j], n, k, scratch, sample)[0]
        cut(kept_v[j], kept_i[j], n, k, scratch)
        values[j] = kept_v[j, :k]
        index[j] = kept_i[j, :k]
