"""The top-k selection behind re-ranking candidates, on rows long enough to reach the
compiled loop's sampled threshold, its buffer cuts and its re-read.

The oracle is a stable sort: higher score first, equal scores in index order.
Both implementations (numba and torch) must give exactly its first ``k`` items.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccr_metrics.core import _selection
from ccr_metrics.core._counting import numba_available

KERNELS = ("numba", "torch")
KINDS = ("normal", "integers", "ascending", "descending", "constant", "few large")


def oracle(rows: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` indices of each row in (-score, index) order, sorted by index."""
    order = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    return np.sort(order, axis=1)


def rows_of(kind: str, n_rows: int, n_items: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "normal":
        return rng.standard_normal((n_rows, n_items))
    if kind == "integers":  # heavy ties everywhere, the boundary included
        return rng.integers(-3, 4, (n_rows, n_items)).astype(np.float64)
    if kind == "ascending":  # every item beats the ones before it: most buffer cuts
        return np.sort(rng.standard_normal((n_rows, n_items)), axis=1)
    if kind == "descending":
        return -np.sort(rng.standard_normal((n_rows, n_items)), axis=1)
    if kind == "constant":  # nothing beats the sampled threshold: the re-read
        return np.zeros((n_rows, n_items))
    if kind == "few large":  # fewer than k items above the sample's estimate
        rows = np.zeros((n_rows, n_items))
        rows[:, rng.integers(0, n_items, 5)] = 1.0
        return rows
    raise AssertionError(kind)


def tile_major(rows: np.ndarray, width: int, lead: int) -> tuple[np.ndarray, list, list, list]:
    """Lay ``rows`` out as the harness's tiles: ``lead`` padding columns before item 0,
    every tile ``width`` wide, the last one padded; padding holds a huge score that a
    correct selection never reads."""
    n_rows, n_items = rows.shape
    n_tiles = -(-(n_items + lead) // width)
    block = np.full((n_tiles, n_rows, width), 1e30)
    lo, hi, first = [], [], []
    for t in range(n_tiles):
        a = max(0, t * width - lead)
        b = min(n_items, (t + 1) * width - lead)
        c0 = a - (t * width - lead)
        block[t, :, c0 : c0 + b - a] = rows[:, a:b]
        lo.append(c0)
        hi.append(c0 + b - a)
        first.append(t * width - lead)
    return block, lo, hi, first


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 5, 16, 128, 700])
def test_selection_is_the_stable_sort_prefix(kernel, dtype, kind, k, monkeypatch):
    if kernel == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    rng = np.random.default_rng(k * 7 + len(kind))
    rows = rows_of(kind, 9, 3001, rng).astype(dtype)
    block, lo, hi, first = tile_major(rows, 512, 37)
    scores = torch.from_numpy(block.astype(dtype))
    values, index = _selection.select_top(scores, lo, hi, first, k)
    expected = oracle(rows, k)
    assert index.numpy().tolist() == expected.tolist()
    assert values.numpy().tolist() == np.take_along_axis(rows, expected, 1).tolist()


@pytest.mark.parametrize("kernel", KERNELS)
def test_rows_of_nan_stay_in_bounds(kernel, monkeypatch):
    """NaN scores are refused after selection; selection itself must return k distinct
    valid items for the other rows and k in-range items for the NaN ones."""
    if kernel == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((4, 4000)).astype(np.float32)
    rows[1] = np.nan
    rows[2, ::3] = np.nan
    rows[3] = -np.inf
    block, lo, hi, first = tile_major(rows, 1000, 0)
    _, index = _selection.select_top(torch.from_numpy(block), lo, hi, first, 128)
    index = index.numpy()
    assert index.shape == (4, 128)
    assert ((index >= 0) & (index < 4000)).all()
    assert index[0].tolist() == oracle(rows[:1], 128)[0].tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kth_largest_is_the_sorted_value_and_writes_only_its_scratch(dtype):
    """The compiled quickselect behind every cut: ties, signed zeros, infinities, runs."""
    if not numba_available():
        pytest.skip("numba is not installed")
    from ccr_metrics.core._selection_numba import kth_largest

    rng = np.random.default_rng(3)
    for size in [*range(1, 40), 255, 256, 513]:
        kind = size % 4
        if kind == 0:
            source = rng.standard_normal(size)
        elif kind == 1:
            source = rng.integers(-2, 3, size).astype(float)
        elif kind == 2:
            source = np.where(rng.random(size) < 0.5, -0.0, 0.0)
            source[rng.random(size) < 0.2] = np.inf
            source[rng.random(size) < 0.2] = -np.inf
        else:
            source = np.sort(rng.integers(0, 5, size).astype(float))[::-1].copy()
        source = source.astype(dtype)
        before = source.copy()
        guarded = np.full(2 * size + 2, 7.0, dtype)
        for k in {1, size, (size + 1) // 2, int(rng.integers(1, size + 1))}:
            got = kth_largest(source, size, k, guarded[1:-1])
            assert got == np.sort(source)[::-1][k - 1], (size, kind, k)
        assert guarded[0] == guarded[-1] == 7.0
        assert source.tobytes() == before.tobytes()
    # Out of contract (k above the size or below 1), it still ends.
    for k in (0, 2, 5):
        kth_largest(np.ones(1, dtype), 1, k, np.empty(2, dtype))
