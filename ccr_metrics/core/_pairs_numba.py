"""The compiled loop of :mod:`ccr_metrics.core._pairs` (imported only with numba)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._jit import jit


@jit(boundscheck=False, nogil=True)
def shared_pairs(
    row_images: Any, texts: Any, images: Any, text_offset: int, n_image_ids: int, at: Any
) -> None:
    # Group the image-to-text pairs by their text (a counting sort: each group in row
    # order), then, per text-to-image row m, mark the rows of m's group in a table and
    # read each candidate image's mark. Linear in the pairs; no sortedness assumed.
    n_pairs_rows, k = texts.shape
    n_rows, width = images.shape
    start = np.zeros(n_rows + 1, np.int64)
    for p in range(n_pairs_rows):
        for s in range(k):
            m = texts[p, s] - text_offset
            if 0 <= m < n_rows:
                start[m + 1] += 1
    for m in range(n_rows):
        start[m + 1] += start[m]
    filled = start[:-1].copy()
    group = np.empty(start[n_rows], np.int64)
    for p in range(n_pairs_rows):
        for s in range(k):
            m = texts[p, s] - text_offset
            if 0 <= m < n_rows:
                group[filled[m]] = p * k + s
                filled[m] += 1
    row_of = np.full(n_image_ids, -1, np.int64)
    for p in range(n_pairs_rows):
        row_of[row_images[p]] = p
    mark = np.full(n_pairs_rows, -1, np.int64)
    for m in range(n_rows):
        for e in range(start[m], start[m + 1]):
            mark[group[e] // k] = group[e]
        for s in range(width):
            image = images[m, s]
            p = row_of[image] if 0 <= image < n_image_ids else -1
            at[m, s] = mark[p] if p >= 0 else -1
        for e in range(start[m], start[m + 1]):
            mark[group[e] // k] = -1
