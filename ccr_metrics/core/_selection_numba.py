"""The compiled selection loop of :mod:`ccr_metrics._selection` (imported only with numba).

Module-level functions, so that numba's cache keeps them between processes (functions
closed over other compiled functions are compiled again in every process); the cache is
in a user folder (:mod:`ccr_metrics.core._jit`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._jit import jit


@jit(boundscheck=False)
def select(scores: Any, lo: Any, hi: Any, first: Any, values: Any, index: Any) -> None:
    # Per row, a buffer of contenders in index order: a score enters when it is
    # strictly above a threshold, so most scores meet one comparison (64 at a time, a
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
                    stop = min(c + 64, end)
                    if everything or count_above(row, c, stop, threshold) > 0:
                        for q in range(c, stop):
                            x = row[q]
                            if everything or x > threshold:
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
