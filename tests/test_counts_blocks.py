"""The torch counting path block by block, and the fast readings of positives.

The torch path counts cache-sized blocks; here the block budget is shrunk so that small
matrices span several blocks, the last one shorter, in both memory layouts, and the
counts are checked against a direct count of each row. The mask scan, which looks only
into the 64-bit words of a mask that hold a True, is checked against ``nonzero``, and
the quick reading of index lists against the set of pairs they list.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ccr_metrics as cm
from ccr_metrics.core import _counting, _positives

DTYPES = ("int32", "int64", "float16", "bfloat16", "float32", "float64")
N_QUERIES, N_GALLERY = 37, 29


@pytest.fixture
def small_blocks(monkeypatch):
    """The torch path with blocks of a few rows (a few columns for a column-major view)."""
    monkeypatch.setenv("CCR_METRICS_KERNEL", "torch")
    monkeypatch.setattr(_counting, "_CPU_BLOCK_BYTES", 1500)


def scores_in(values: np.ndarray, dtype: str, order: str) -> torch.Tensor:
    """``values`` as a torch matrix of ``dtype``, row-major, column-major or strided."""
    if order == "F":
        return torch.from_numpy(np.ascontiguousarray(values.T)).to(getattr(torch, dtype)).T
    if order == "strided":  # every other column of a wider matrix
        wide = np.repeat(values, 2, axis=1)
        return torch.from_numpy(wide).to(getattr(torch, dtype))[:, ::2]
    return torch.from_numpy(np.ascontiguousarray(values)).to(getattr(torch, dtype))


def direct_counts(values: np.ndarray, targets: np.ndarray) -> list[tuple[int, int, int]]:
    """``(above, tied_negatives, tied_positives)`` of each row, one positive per row."""
    best = values[np.arange(len(targets)), targets][:, None]
    above = (values > best).sum(1)
    tied = (values == best).sum(1)
    return [(int(a), int(t) - 1, 1) for a, t in zip(above, tied, strict=True)]


def test_small_budget_makes_several_blocks_and_a_shorter_last_one(small_blocks):
    s = torch.zeros(N_QUERIES, N_GALLERY)
    rows = _counting._block_rows(None, N_GALLERY, s)
    columns = _counting._block_rows(None, N_QUERIES, s.T.contiguous().T)
    assert 1 < rows < N_QUERIES and N_QUERIES % rows != 0
    assert 1 < columns < N_GALLERY and N_GALLERY % columns != 0


@pytest.mark.parametrize("order", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_counts_over_several_blocks_match_a_direct_count(small_blocks, dtype, order):
    rng = np.random.default_rng(DTYPES.index(dtype))
    # Small integers are exact in every dtype: many ties, the same in all of them.
    values = rng.integers(-3, 4, size=(N_QUERIES, N_GALLERY)).astype(np.float64)
    targets = rng.integers(0, N_GALLERY, size=N_QUERIES)
    counts = cm.rank_counts(scores_in(values, dtype, order), torch.from_numpy(targets))
    got = list(
        zip(
            counts.above.tolist(),
            counts.tied_negatives.tolist(),
            counts.tied_positives.tolist(),
            strict=True,
        )
    )
    assert got == direct_counts(values, targets)
    assert sum(n for _, n, _ in got) > 0  # the data did have tied negatives


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_score_in_a_later_block_is_refused_with_its_position(
    small_blocks, bad, dtype, order
):
    values = np.arange(N_QUERIES * N_GALLERY, dtype=np.float64).reshape(N_QUERIES, -1) % 7
    values[30, 25] = bad  # a later block of rows, and of columns
    targets = torch.zeros(N_QUERIES, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"\[30, 25\]"):
        cm.rank_counts(scores_in(values, dtype, order), targets)


def test_huge_finite_scores_are_not_mistaken_for_infinities(small_blocks):
    big = float(np.finfo(np.float32).max)
    values = np.full((N_QUERIES, N_GALLERY), big)
    values[:, ::3] = -big
    targets = np.arange(N_QUERIES) % N_GALLERY
    scores = scores_in(values, "float32", "C")
    # Sums of the scores, the finiteness probe, overflow: the exact check clears them.
    assert torch.isinf(scores.sum(1)).all()
    counts = cm.rank_counts(scores, torch.from_numpy(targets))
    got = list(
        zip(
            counts.above.tolist(),
            counts.tied_negatives.tolist(),
            counts.tied_positives.tolist(),
            strict=True,
        )
    )
    assert got == direct_counts(values, targets)


@pytest.mark.parametrize("length", [0, 1, 7, 63, 64, 65, 520, 4099, 100_003])
@pytest.mark.parametrize("density", [0.0, 1e-4, 2e-3, 0.3, 1.0])
def test_true_positions_are_those_of_nonzero(length, density):
    rng = np.random.default_rng(length)
    backing = torch.from_numpy(rng.random(length + 8) < density)
    for offset in (0, 3, 8):  # the mask's first byte on and off an 8-byte boundary
        flat = backing[offset : offset + length]
        assert torch.equal(_positives._true_positions(flat), flat.nonzero()[:, 0])


@pytest.mark.parametrize("density", [1e-4, 0.3])
def test_mask_pairs_of_a_transposed_mask_are_row_major(density):
    rng = np.random.default_rng(1)
    mask = torch.from_numpy(rng.random((300, 211)) < density).T  # not contiguous
    query, column = _positives.mask_pairs(mask)
    want_query, want_column = mask.nonzero(as_tuple=True)
    assert torch.equal(query, want_query) and torch.equal(column, want_column)


@pytest.mark.parametrize("row_type", [list, tuple])
@pytest.mark.parametrize("entry_type", [int, np.int32, np.int64])
def test_index_lists_read_as_the_pairs_they_list(row_type, entry_type):
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 6, size=40)  # empty rows, and repeats within a row
    rows = [row_type(entry_type(j) for j in rng.integers(0, 9, size=n)) for n in lengths]
    query, column = _positives.parse_positives(rows, 40, 9, torch.device("cpu"))
    want = sorted({(q, int(j)) for q, row in enumerate(rows) for j in row})
    assert list(zip(query.tolist(), column.tolist(), strict=True)) == want
