"""The compiled selection loop of :mod:`ccr_metrics._selection` (imported only with numba).

Module-level functions, so that numba's cache keeps them between processes (functions
closed over other compiled functions are compiled again in every process).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


@numba.njit(cache=True, boundscheck=False)
def select(scores: Any, lo: Any, hi: Any, first: Any, values: Any, index: Any) -> None:
    # Per row, a buffer of contenders in index order: a score enters when it is
    # strictly above a threshold, so most scores meet one comparison. The threshold
    # starts at an estimate from a sample of the row (about 3k scores above it), and
    # each time the buffer fills it is cut to its k best and the threshold rises to
    # the k-th value, which a later, higher-indexed item must beat. A row whose
    # estimate proves too high (fewer than k contenders) is read again without one.
    n_tiles, n_rows, _ = scores.shape
    k = values.shape[1]
    capacity = 4 * k
    n_valid = 0
    for t in range(n_tiles):
        n_valid += hi[t] - lo[t]
    step = n_valid // k
    kept_v = np.empty(capacity, values.dtype)
    kept_i = np.empty(capacity, np.int64)
    lowest = values.dtype.type(-np.inf)
    for r in range(n_rows):
        threshold = lowest
        if step >= 4:
            m = sample(scores, r, lo, hi, step, k, kept_v)
            j = max(1, (3 * k * m) // n_valid)
            threshold = np.partition(kept_v[:m], m - j)[m - j]
        size = 0
        for _attempt in range(2):
            size = 0
            for t in range(n_tiles):
                row = scores[t, r]
                base = first[t]
                for c in range(lo[t], hi[t]):
                    x = row[c]
                    if x > threshold:
                        kept_v[size] = x
                        kept_i[size] = base + c
                        size += 1
                        if size == capacity:
                            threshold = cut(kept_v, kept_i, size, k)
                            size = k
            if size >= k:
                break
            threshold = lowest
        cut(kept_v, kept_i, size, k)
        values[r] = kept_v[:k]
        index[r] = kept_i[:k]


@numba.njit(cache=True, boundscheck=False)
def sample(scores: Any, r: int, lo: Any, hi: Any, step: int, k: int, out: Any) -> int:
    # Every step-th valid score of row r, in order, at most k of them.
    m = 0
    skip = 0
    for t in range(scores.shape[0]):
        row = scores[t, r]
        c = lo[t] + skip
        while c < hi[t] and m < k:
            out[m] = row[c]
            m += 1
            c += step
        skip = c - hi[t] if c >= hi[t] else 0
    return m


@numba.njit(cache=True, boundscheck=False)
def cut(kept_v: Any, kept_i: Any, size: int, k: int) -> Any:
    # Keep the k best of the first `size` (>= k) entries, in their (index) order:
    # all above the k-th value, then the first of those equal to it. Returns the
    # k-th value.
    kth = np.partition(kept_v[:size], size - k)[size - k]
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
