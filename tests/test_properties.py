"""Invariants of ranks, recall and MRV, property-tested with ccr_metrics.testing."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ccr_metrics as cm
from ccr_metrics.testing import (
    masked_rank_arrays,
    rank_arrays,
    retrieval_problems,
    score_matrices,
)

TIES = cm.TIES


def _as_mask(positives, shape):
    """Any positives form as a bool mask, to permute columns along with the scores."""
    mask = np.zeros(shape, dtype=bool)
    if isinstance(positives, np.ndarray) and positives.dtype == bool:
        return positives.copy()
    if isinstance(positives, np.ndarray) and positives.ndim == 1:
        mask[np.arange(shape[0]), positives] = True
        return mask
    for q, columns in enumerate(positives):
        mask[q, list(columns)] = True
    return mask


@given(retrieval_problems(), st.sampled_from(TIES), st.randoms(use_true_random=False))
def test_gallery_permutation_leaves_ranks_unchanged(problem, ties, rnd):
    scores, positives = problem
    mask = _as_mask(positives, scores.shape)
    order = list(range(scores.shape[1]))
    rnd.shuffle(order)
    before = cm.positive_ranks(scores, positives, ties=ties)
    after = cm.positive_ranks(scores[:, order], mask[:, order], ties=ties)
    np.testing.assert_array_equal(before, after)


@given(retrieval_problems(), st.sampled_from(TIES))
def test_strictly_increasing_transform_leaves_ranks_unchanged(problem, ties):
    scores, positives = problem
    transformed = np.exp(scores / 7.0) * 3.0 - 100.0
    np.testing.assert_array_equal(
        cm.positive_ranks(scores, positives, ties=ties),
        cm.positive_ranks(transformed, positives, ties=ties),
    )


@given(retrieval_problems())
def test_optimistic_le_average_le_pessimistic(problem):
    scores, positives = problem
    low, mid, high = (
        cm.positive_ranks(scores, positives, ties=t)
        for t in ("optimistic", "average", "pessimistic")
    )
    assert (low <= mid).all() and (mid <= high).all()
    assert (low >= 1).all() and (high <= scores.shape[1]).all()


@given(retrieval_problems(ties=False), st.sampled_from(TIES))
def test_tie_policy_irrelevant_without_ties(problem, ties):
    scores, positives = problem
    np.testing.assert_array_equal(
        cm.positive_ranks(scores, positives, ties=ties),
        cm.positive_ranks(scores, positives, ties="optimistic"),
    )


@given(retrieval_problems(), st.sampled_from(TIES), st.integers(1, 9))
def test_chunked_equals_unchunked(problem, ties, chunk):
    scores, positives = problem
    np.testing.assert_array_equal(
        cm.positive_ranks(scores, positives, ties=ties),
        cm.positive_ranks(scores, positives, ties=ties, chunk_size=chunk),
    )


@given(retrieval_problems(), st.sampled_from(TIES))
def test_numpy_equals_torch(problem, ties):
    scores, positives = problem
    pos_t = positives if isinstance(positives, list) else torch.from_numpy(positives)
    out_t = cm.positive_ranks(torch.from_numpy(scores), pos_t, ties=ties)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_array_equal(cm.positive_ranks(scores, positives, ties=ties), out_t.numpy())


@given(retrieval_problems(), st.sampled_from(TIES))
def test_recall_monotone_in_k_and_full_at_gallery_size(problem, ties):
    scores, positives = problem
    ranks = cm.positive_ranks(scores, positives, ties=ties)
    gallery = scores.shape[1]
    recall = cm.recall_at_k(ranks, k=range(1, gallery + 2))
    values = list(recall.values())
    assert values == sorted(values)
    assert recall[gallery] == 1.0
    assert all(0.0 <= v <= 1.0 for v in values)


@given(score_matrices(ties=True))
def test_recall_at_1_of_all_tied_row_is_zero_under_default(scores):
    constant = np.zeros_like(scores)
    if scores.shape[1] > 1:
        ranks = cm.positive_ranks(constant, np.zeros(scores.shape[0], dtype=np.int64))
        assert cm.recall_at_k(ranks, k=1)[1] == 0.0


@given(rank_arrays(), st.sampled_from(cm.REDUCTIONS))
def test_mrv_non_negative(ranks, reduction):
    assert cm.mean_rank_variance(ranks, reduction=reduction) >= 0.0


@given(rank_arrays(), st.integers(-1000, 1000), st.sampled_from(cm.REDUCTIONS))
def test_mrv_shift_invariant(ranks, shift, reduction):
    assert cm.mean_rank_variance(ranks + shift, reduction=reduction) == pytest.approx(
        cm.mean_rank_variance(ranks, reduction=reduction), rel=1e-9, abs=1e-9
    )


@given(st.lists(st.integers(1, 100), min_size=1, max_size=10), st.integers(2, 6))
def test_mrv_zero_when_languages_agree(row_ranks, n_languages):
    ranks = np.repeat(np.asarray(row_ranks, dtype=float)[:, None], n_languages, axis=1)
    assert cm.mean_rank_variance(ranks) == 0.0
    assert cm.mean_rank_variance(ranks, reduction="std") == 0.0


@given(rank_arrays(), st.floats(0.1, 10.0))
def test_mrv_scaling(ranks, c):
    var, std = (cm.mean_rank_variance(ranks, reduction=r) for r in ("variance", "std"))
    assert cm.mean_rank_variance(ranks * c) == pytest.approx(c**2 * var, rel=1e-9, abs=1e-9)
    assert cm.mean_rank_variance(ranks * c, reduction="std") == pytest.approx(
        c * std, rel=1e-9, abs=1e-9
    )


@given(masked_rank_arrays(), st.sampled_from(cm.REDUCTIONS))
def test_masked_mrv_ignores_missing_values(ranks_mask, reduction):
    ranks, mask = ranks_mask
    filled = np.where(mask, ranks, 12345.0)
    a = cm.mean_rank_variance(ranks, reduction=reduction, mask=mask)
    b = cm.mean_rank_variance(filled, reduction=reduction, mask=mask)
    assert a == b and a >= 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("ties", TIES)
def test_cuda_matches_cpu(dtype, ties):
    gen = torch.Generator().manual_seed(0)
    scores = (torch.randn(300, 700, generator=gen) * 4).round().to(dtype)
    positives = torch.randint(0, 700, (300,), generator=gen)
    cpu = cm.positive_ranks(scores, positives, ties=ties)
    gpu = cm.positive_ranks(scores.cuda(), positives.cuda(), ties=ties, chunk_size=64)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0)


def test_scores_requiring_grad_are_ranked_without_a_graph():
    scores = torch.randn(6, 9, requires_grad=True)
    ranks = cm.positive_ranks(scores, torch.arange(6))
    assert not ranks.requires_grad
    np.testing.assert_array_equal(
        ranks.numpy(), cm.positive_ranks(scores.detach().numpy(), np.arange(6))
    )


@given(retrieval_problems(), st.sampled_from(TIES), st.integers(1, 9))
def test_transposed_view_equals_contiguous_copy(problem, ties, chunk):
    scores, positives = problem
    view = np.ascontiguousarray(scores.T).T  # column-major: the gallery-major walk
    assert view.strides[0] < view.strides[1] or min(view.shape) == 1
    for s in (view, torch.from_numpy(np.ascontiguousarray(scores.T)).T):
        np.testing.assert_array_equal(
            np.asarray(cm.positive_ranks(s, positives, ties=ties, chunk_size=chunk)),
            cm.positive_ranks(scores, positives, ties=ties, chunk_size=chunk),
        )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_position_reported_for_transposed_view(bad):
    stored = np.zeros((7, 5))  # [G, Q]
    stored[4, 2] = bad
    with pytest.raises(ValueError, match=r"scores contains .* at \[2, 4\]"):
        cm.positive_ranks(stored.T, np.zeros(5, dtype=np.int64), chunk_size=1)
