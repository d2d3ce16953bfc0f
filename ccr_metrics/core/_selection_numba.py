"""The compiled selection loops of :mod:`ccr_metrics.core._selection` (imported only with numba).

Module-level functions, so that numba's cache keeps them between processes (functions
closed over other compiled functions are compiled again in every process); the cache is
in a user folder (:mod:`ccr_metrics.core._jit`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._jit import jit

# The index of a word's lowest set bit: its isolated bit times a de Bruijn sequence
# puts a distinct pattern in the top six bits (numba has no count-trailing-zeros).
_DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)
_ALL = np.uint64(2**64 - 1)
_BIT_AT = np.zeros(64, np.int64)
for _i in range(64):
    _BIT_AT[(((1 << _i) * 0x03F79D71B4CB0A89) & (2**64 - 1)) >> 58] = _i


# nogil: the harness runs a row selection beside a column merge (two threads).
@jit(boundscheck=False, nogil=True)
def select(scores: Any, lo: Any, hi: Any, first: Any, values: Any, index: Any) -> None:
    # Per row, a buffer of contenders in index order: a score enters when it is
    # strictly above a threshold, so most scores meet one comparison (64 at a time, a
    # loop that vectorises). The threshold starts at the 8th largest of every
    # step-th score of the row (about 3k scores lie above it; fewer than k in about
    # one random row in 100, which is read again: a sample twice that size cost more
    # than those re-reads), and each time the buffer fills it is cut to its k best and
    # the threshold rises to the k-th value, which a later, higher-indexed item must
    # beat. A row
    # left with fewer than k contenders is read again, every item entering until the
    # first cut, so that a row of NaN or -inf still yields k items (its scores are
    # refused later, but must not send this loop out of bounds).
    n_tiles, n_rows, _ = scores.shape
    k = values.shape[1]
    capacity = 4 * k
    n_valid = 0
    for t in range(n_tiles):
        n_valid += hi[t] - lo[t]
    step = (3 * k) // 8
    sampled = n_valid // step if step >= 2 else 0
    pool = np.empty(sampled + 1, values.dtype)
    kept_v = np.empty(capacity, values.dtype)
    kept_i = np.empty(capacity, np.int64)
    scratch = np.empty(2 * max(capacity, sampled + 1), values.dtype)
    for r in range(n_rows):
        threshold = values.dtype.type(-np.inf)
        if sampled >= 32:
            m = sample(scores, r, lo, hi, step, pool)
            threshold = kth_largest(pool, m, 8, scratch)
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
                    stop = min(c + 64, end)
                    # The scores above the threshold as the bits of one word (a loop
                    # that vectorises), then one step per entry (1-2% of them); on the
                    # re-read, every score until the first cut. One path for both:
                    # each call of `cut` is compiled again, and compiling took seconds.
                    if everything:
                        mask = _ALL >> np.uint64(64 - (stop - c))
                    else:
                        mask = above_mask(row, c, stop, threshold)
                    while mask:
                        q = c + lowest_bit(mask)
                        mask &= mask - np.uint64(1)
                        x = row[q]
                        if everything or x > threshold:  # the threshold may have risen
                            kept_v[size] = x
                            kept_i[size] = base + q
                            size += 1
                            if size == capacity:
                                threshold = cut(kept_v, kept_i, size, k, scratch)
                                size = k
                                everything = False
                    c = stop
            if size >= k:
                break
        cut(kept_v, kept_i, size, k, scratch)
        for j in range(k):  # element by element: a slice assignment took 3 s to compile
            values[r, j] = kept_v[j]
            index[r, j] = kept_i[j]


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
    # The k-th largest of source[:size] (k <= size), source left as it is; scratch
    # holds 2 * size. Quickselect whose partition has no branch on the data: each
    # value is written to both sides and kept by counting it (above the pivot into one
    # half of scratch, in place on later passes, below it into the other half); the
    # values equal to the pivot are the difference. 3-4x faster than a three-way
    # partition with branches (256-512 random floats), whose branches missed half the
    # time. A NaN is neither above nor below, so it counts as the pivot: the result is
    # then meaningless, but every pass keeps the pivot out of both sides, so the loop
    # ends and stays in bounds.
    half = scratch.shape[0] // 2
    above = scratch[:half]
    below = scratch[half:]
    pivot = source[size // 2]
    n_above = 0
    n_below = 0
    for j in range(size):
        x = source[j]
        above[n_above] = x
        n_above += x > pivot
        below[n_below] = x
        n_below += x < pivot
    n = size
    while True:
        if k <= n_above:
            part, n = above, n_above
        elif k <= n - n_below:
            return pivot
        else:
            k -= n - n_below
            part, n = below, n_below
            above, below = below, above
        if n == 0:  # k outside 1 .. size (a caller's bug): no answer, but the loop ends
            return pivot
        pivot = part[n // 2]
        n_above = 0
        n_below = 0
        for j in range(n):
            x = part[j]
            part[n_above] = x  # n_above <= j: never ahead of the read
            n_above += x > pivot
            below[n_below] = x
            n_below += x < pivot
        above = part


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
def lowest_bit(mask: Any) -> Any:
    return _BIT_AT[((mask & (~mask + np.uint64(1))) * _DE_BRUIJN) >> np.uint64(58)]


@jit(boundscheck=False)
def above_mask(row: Any, a: int, b: int, threshold: Any) -> Any:
    # Bit q - a set where row[q] > threshold, for b - a <= 64 scores.
    mask = np.uint64(0)
    for q in range(a, b):
        mask |= np.uint64(row[q] > threshold) << np.uint64(q - a)
    return mask


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
    prime: bool,
) -> None:
    # Rows rows[0] .. rows[1] - 1 of a tile-major block [T, R, W] (row r is item
    # rows[2] + r) join each column's contenders, kept_v/kept_i [C, capacity] in index
    # order (size [C], threshold [C]), by the rule of `select`: a score enters when
    # strictly above its column's threshold, and a full buffer is cut to its k best,
    # the threshold rising to the k-th value. The block is read 64 columns at a time,
    # down all rows, so that those columns' buffers stay in cache (row by row across
    # all columns, the writes missed the cache and the TLB: 16 ns per score). Per row
    # the 64 comparisons make one word of bits: gathering the entries' columns one
    # comparison at a time took 3x as long (1.5 ns a score). With `prime` (the first
    # block into empty buffers, of at least 2k rows), each column's threshold first
    # drops to an estimate of its 1.5k-th best score in the block, read off every 4th
    # row, so that about 1.5k of the block's scores enter, not all of them (a third
    # of the whole merge's time at 5,000 rows); a column that then holds fewer than k
    # contenders is merged again from scratch. The exact k-th value, not a sample's,
    # took 2.4 us a column.
    r0, r1, base = rows[0], rows[1], rows[2]
    capacity = kept_v.shape[1]
    n_sampled = (r1 - r0 + 3) // 4 if prime else 0
    rank = -(-3 * k * n_sampled // (2 * (r1 - r0))) if prime else 0
    scratch = np.empty(2 * max(capacity, n_sampled), kept_v.dtype)
    sample = np.empty(capacity, kept_v.dtype)
    strip = np.empty((n_sampled, 64), kept_v.dtype)
    column = np.empty(n_sampled, kept_v.dtype)
    # In the scores' dtype: a float64 -inf would make the step a float64 one, which the
    # float32 threshold rounds back to the sampled value itself.
    below = kept_v.dtype.type(-np.inf)
    for t in range(scores.shape[0]):
        f = first[t]
        for g in range(lo[t], hi[t], 64):
            width = min(64, hi[t] - g)
            bar = threshold[f + g : f + g + width]
            if prime:
                for e in range(n_sampled):
                    for q in range(width):
                        strip[e, q] = scores[t, r0 + 4 * e, g + q]
                for q in range(width):
                    for e in range(n_sampled):
                        column[e] = strip[e, q]
                    bar[q] = np.nextafter(kth_largest(column, n_sampled, rank, scratch), below)
            # Every column on the first pass; with `prime`, a second pass for the
            # columns left with fewer than k contenders, from -inf.
            redo = _ALL
            for attempt in range(2 if prime else 1):
                if attempt == 1:
                    redo = np.uint64(0)
                    for q in range(width):
                        if size[f + g + q] < k:  # the estimate was too high
                            size[f + g + q], bar[q] = 0, -np.inf
                            redo |= np.uint64(1) << np.uint64(q)
                    if redo == 0:
                        break
                for r in range(r0, r1):
                    row = scores[t, r, g : g + width]
                    # The columns this row enters as the bits of one word (a loop that
                    # vectorises), then one step per entry.
                    mask = np.uint64(0)
                    for q in range(width):
                        mask |= np.uint64(row[q] > bar[q]) << np.uint64(q)
                    mask &= redo
                    while mask:
                        q = lowest_bit(mask)
                        mask &= mask - np.uint64(1)
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


@jit(boundscheck=False, nogil=True)
def finish_columns(kept_v: Any, kept_i: Any, size: Any, k: int, values: Any, index: Any) -> None:
    # Each column's k best contenders (every column holds at least k), in index order.
    scratch = np.empty(2 * kept_v.shape[1], kept_v.dtype)
    sample = np.empty(kept_v.shape[1], kept_v.dtype)
    for j in range(kept_v.shape[0]):
        n = size[j]
        if n < k:  # never with a pass of k rows or more; the cut would not end
            raise RuntimeError("a column holds fewer than k contenders")
        if n > 2 * k:  # the exact cut on fewer entries
            n = shrink(kept_v[j], kept_i[j], n, k, scratch, sample)[0]
        cut(kept_v[j], kept_i[j], n, k, scratch)
        for e in range(k):
            values[j, e] = kept_v[j, e]
            index[j, e] = kept_i[j, e]
