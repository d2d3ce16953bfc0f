"""Every bad input gets a ValueError that names the offending argument.

``pytest.raises(ValueError)`` does not catch IndexError, RuntimeError or TypeError, so a
raw error from deep inside numpy or torch fails these tests.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import ccr_metrics

# In the quick tier (python -m pytest -m quick): a first signal in seconds.
pytestmark = pytest.mark.quick

TIES = ("average", "optimistic", "pessimistic")
Q, G = 4, 5


def good_scores(backend="numpy"):
    s = np.arange(Q * G, dtype=np.float64).reshape(Q, G) / 10
    return s if backend == "numpy" else torch.as_tensor(s)


BACKENDS = ["numpy", "torch"]


def _t(backend, x):
    return torch.as_tensor(x) if backend == "torch" else x


# ------------------------------------------------------------------------- scores


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "posinf", "neginf"])
@pytest.mark.parametrize("chunk", [None, 1, 2, 100])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_non_finite_scores_report_position(backend, bad, chunk, dtype):
    if backend == "numpy" and dtype == "bfloat16":
        pytest.skip("numpy has no bfloat16")
    s = np.zeros((6, 9))
    s[4, 7] = bad
    scores = np.asarray(s, dtype=dtype) if backend == "numpy" else torch.as_tensor(s)
    if backend == "torch":
        scores = scores.to(getattr(torch, dtype))
    with pytest.raises(ValueError, match="scores") as info:
        ccr_metrics.positive_ranks(scores, np.zeros(6, dtype=np.int64), chunk_size=chunk)
    msg = str(info.value)
    # the position (row 4, column 7) must appear, as global (not per-chunk) indices
    assert re.search(r"4\D{1,20}7", msg), msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_in_i2t_and_t2i(backend):
    s = np.zeros((3, 3))
    s[1, 2] = np.nan
    scores = _t(backend, s)
    with pytest.raises(ValueError, match="scores"):
        ccr_metrics.image_to_text_ranks(scores)
    with pytest.raises(ValueError, match="scores"):
        ccr_metrics.text_to_image_ranks(scores)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()], ids=["1d", "3d", "0d"])
def test_scores_wrong_ndim(backend, shape):
    scores = _t(backend, np.ones(shape))
    with pytest.raises(ValueError, match="scores"):
        ccr_metrics.positive_ranks(scores, [0, 0])
    with pytest.raises(ValueError, match="scores"):
        ccr_metrics.image_to_text_ranks(scores)
    with pytest.raises(ValueError, match="scores"):
        ccr_metrics.text_to_image_ranks(scores)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (3, 0)])
def test_empty_scores(backend, shape):
    scores = _t(backend, np.ones(shape))
    positives = np.zeros(shape, dtype=bool)
    with pytest.raises(ValueError, match="scores"):
        ccr_metrics.positive_ranks(scores, _t(backend, positives))


@pytest.mark.parametrize(
    "scores",
    [
        np.ones((2, 3), dtype=bool),
        np.ones((2, 3), dtype=np.complex128),
        np.array([[1, 2, 3], [4, 5, "x"]], dtype=object),
        np.array([["a", "b", "c"], ["d", "e", "f"]]),
        torch.ones(2, 3, dtype=torch.bool),
        torch.ones(2, 3, dtype=torch.complex64),
        [[1.0, 2.0, "x"], [1.0, 2.0, 3.0]],
    ],
    ids=["np-bool", "np-complex", "np-object", "np-str", "t-bool", "t-complex", "list-str"],
)
def test_non_real_scores(scores):
    with pytest.raises(ValueError, match="scores"):
        ccr_metrics.positive_ranks(scores, [0, 1])


def test_object_array_of_numbers_is_still_rejected_or_ranked_correctly():
    scores = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=object)
    try:
        got = ccr_metrics.positive_ranks(scores, [0, 0])
    except ValueError as err:
        assert "scores" in str(err)
    else:
        np.testing.assert_array_equal(got, [3.0, 1.0])


# ---------------------------------------------------------------------- positives


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "positives",
    [
        np.zeros(Q + 1, dtype=np.int64),  # int [Q] of wrong length
        np.zeros(Q - 1, dtype=np.int64),
        np.zeros((Q, G + 1), dtype=bool),  # mask wrong shape
        np.zeros((Q + 1, G), dtype=bool),
        np.ones((Q, G, 1), dtype=bool),
        np.zeros((Q + 1, 2), dtype=np.int64),  # int [Q, P] wrong Q
        np.zeros((Q, 2, 1), dtype=np.int64),
        [[0]] * (Q - 1),  # ragged wrong length
        [[0]] * (Q + 1),
    ],
    ids=[
        "int-long",
        "int-short",
        "mask-G",
        "mask-Q",
        "mask-3d",
        "int2d-Q",
        "int-3d",
        "ragged-short",
        "ragged-long",
    ],
)
def test_positives_wrong_shape(backend, positives):
    if isinstance(positives, np.ndarray):
        positives = _t(backend, positives)
    with pytest.raises(ValueError, match="positives"):
        ccr_metrics.positive_ranks(good_scores(backend), positives)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [-1, -G, G, G + 10])
@pytest.mark.parametrize("form", ["int", "ragged", "int2d"])
def test_positive_index_out_of_range(backend, bad, form):
    if form == "int":
        pos = _t(backend, np.array([0, bad, 1, 2]))
    elif form == "ragged":
        pos = [[0], [1, bad], [2], [3, 3]]
    else:
        pos = _t(backend, np.array([[0, 1], [1, bad], [2, 2], [3, 0]]))
    with pytest.raises(ValueError, match="positives"):
        ccr_metrics.positive_ranks(good_scores(backend), pos)


@pytest.mark.parametrize(
    "positives",
    [
        np.array([0.0, 1.0, 2.0, 3.0]),
        torch.tensor([0.0, 1.0, 2.0, 3.0]),
        np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]]),
        [[0, 1.5], [1], [2], [3]],
        [[0], [1.0], [2], [3]],
        ["0", "1", "2", "3"],
    ],
    ids=["np-float", "t-float", "np-float2d", "ragged-float", "ragged-whole-float", "str"],
)
def test_float_positives(positives):
    with pytest.raises(ValueError, match="positives"):
        ccr_metrics.positive_ranks(good_scores(), positives)


@pytest.mark.parametrize("backend", BACKENDS)
def test_query_without_positive(backend):
    scores = good_scores(backend)
    with pytest.raises(ValueError, match="positive"):
        ccr_metrics.positive_ranks(scores, [[0], [], [2], [3]])
    mask = np.zeros((Q, G), dtype=bool)
    mask[[0, 1, 3], [1, 2, 3]] = True  # row 2 all False
    with pytest.raises(ValueError, match="positive"):
        ccr_metrics.positive_ranks(scores, _t(backend, mask))
    with pytest.raises(ValueError, match="positive"):
        ccr_metrics.positive_ranks(scores, _t(backend, mask), empty="error")


# --------------------------------------------------------------------- options


@pytest.mark.parametrize("ties", ["mean", "min", "AVERAGE", "", None, 1])
def test_unknown_ties(ties):
    with pytest.raises(ValueError, match="ties"):
        ccr_metrics.positive_ranks(good_scores(), [0, 1, 2, 3], ties=ties)
    with pytest.raises(ValueError, match="ties"):
        ccr_metrics.image_to_text_ranks(np.eye(3), ties=ties)
    with pytest.raises(ValueError, match="ties"):
        ccr_metrics.text_to_image_ranks(np.eye(3), ties=ties)


@pytest.mark.parametrize("empty", ["ignore", "inf", "", None, "raise"])
def test_unknown_empty(empty):
    with pytest.raises(ValueError, match="empty"):
        ccr_metrics.positive_ranks(good_scores(), [0, 1, 2, 3], empty=empty)
    with pytest.raises(ValueError, match="empty"):
        ccr_metrics.image_to_text_ranks(np.eye(3), empty=empty)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk", [0, -1, -100])
def test_bad_chunk_size(backend, chunk):
    with pytest.raises(ValueError, match="chunk_size"):
        ccr_metrics.positive_ranks(good_scores(backend), [0, 1, 2, 3], chunk_size=chunk)
    with pytest.raises(ValueError, match="chunk_size"):
        ccr_metrics.image_to_text_ranks(good_scores(backend)[:, :4], chunk_size=chunk)
    with pytest.raises(ValueError, match="chunk_size"):
        ccr_metrics.text_to_image_ranks(good_scores(backend)[:, :4], chunk_size=chunk)


@pytest.mark.parametrize("chunk", [1.5, "2"])
def test_non_int_chunk_size(chunk):
    with pytest.raises(ValueError, match="chunk_size"):
        ccr_metrics.positive_ranks(good_scores(), [0, 1, 2, 3], chunk_size=chunk)


# ------------------------------------------------------------------- recall_at_k


@pytest.mark.parametrize("k", [0, -1, (1, 0), (5, -3), 1.5, (1, 2.5), "5", ("1",), np.float64(2.0)])
def test_bad_k(k):
    with pytest.raises(ValueError, match=r"\bk\b"):
        ccr_metrics.recall_at_k(np.array([1.0, 2.0, 3.0]), k)


@pytest.mark.parametrize(
    "ranks",
    [
        [1.0, np.nan, 2.0],
        [0.0, 1.0],
        [0.5, 2.0],
        [-1.0, 3.0],
        [1.0, -np.inf],
        np.ones((2, 3)),
        np.ones(()),
    ],
    ids=["nan", "zero", "half", "negative", "neginf", "2d", "0d"],
)
def test_bad_ranks_for_recall(ranks):
    with pytest.raises(ValueError, match="ranks"):
        ccr_metrics.recall_at_k(np.asarray(ranks, dtype=np.float64))


def test_bad_ranks_for_recall_torch():
    with pytest.raises(ValueError, match="ranks"):
        ccr_metrics.recall_at_k(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="ranks"):
        ccr_metrics.recall_at_k(torch.tensor([0.0, 1.0]))


# ---------------------------------------------------------- mean_rank_variance


@pytest.mark.parametrize("reduction", ["var", "Variance", "mean", "", None])
def test_unknown_reduction(reduction):
    with pytest.raises(ValueError, match="reduction"):
        ccr_metrics.mean_rank_variance(np.ones((3, 2)), reduction=reduction)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_mrv_ranks_wrong_ndim(shape):
    with pytest.raises(ValueError, match="ranks"):
        ccr_metrics.mean_rank_variance(np.ones(shape))


@pytest.mark.parametrize("mask_shape", [(4, 2), (3, 3), (3,), (3, 2, 1)])
def test_mrv_mask_shape_mismatch(mask_shape):
    with pytest.raises(ValueError, match="mask"):
        ccr_metrics.mean_rank_variance(np.ones((3, 2)), mask=np.ones(mask_shape, dtype=bool))


def test_mrv_no_row_with_two_languages():
    with pytest.raises(ValueError, match=r"ranks|mask|language"):
        ccr_metrics.mean_rank_variance(np.ones((5, 1)))
    with pytest.raises(ValueError, match=r"ranks|mask|language"):
        ccr_metrics.mean_rank_variance(np.ones((5, 1)), reduction="std")
    mask = np.zeros((3, 4), dtype=bool)
    mask[:, 0] = True
    with pytest.raises(ValueError, match=r"ranks|mask|language"):
        ccr_metrics.mean_rank_variance(np.ones((3, 4)), mask=mask)
    with pytest.raises(ValueError, match=r"ranks|mask|language"):
        ccr_metrics.mean_rank_variance(np.ones((0, 4)))


# ----------------------------------------------------------------- text_to_image


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_to_image_bad(backend):
    i2t = _t(backend, np.random.default_rng(0).normal(size=(3, 5)))  # N=3 images, M=5 texts
    t2i_scores = i2t.T
    cases = [
        np.array([0, 1, 2, 0]),  # wrong length
        np.array([0, 1, 2, 0, 1, 2]),
        np.array([0, 1, 2, 0, 3]),  # image 3 out of range
        np.array([0, 1, -1, 0, 1]),  # negative
        np.array([0.0, 1.0, 2.0, 0.0, 1.0]),  # float
        np.zeros((5, 1), dtype=np.int64),  # 2-D
    ]
    for bad in cases:
        with pytest.raises(ValueError, match="text_to_image"):
            ccr_metrics.image_to_text_ranks(i2t, _t(backend, bad))
        with pytest.raises(ValueError, match="text_to_image"):
            ccr_metrics.text_to_image_ranks(t2i_scores, _t(backend, bad))
    # missing while M != N
    with pytest.raises(ValueError, match="text_to_image"):
        ccr_metrics.image_to_text_ranks(i2t)
    with pytest.raises(ValueError, match="text_to_image"):
        ccr_metrics.text_to_image_ranks(t2i_scores)


def test_image_without_caption_errors_by_default():
    scores = np.random.default_rng(1).normal(size=(4, 5))
    t2i = np.array([0, 2, 2, 0, 3])  # image 1 has no caption
    with pytest.raises(ValueError, match=r"text_to_image|caption|positive") as info:
        ccr_metrics.image_to_text_ranks(scores, t2i)
    assert "1" in str(info.value)


# --------------------------------------------------------------- integer scores


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8"])
@pytest.mark.parametrize("ties", TIES)
def test_integer_scores_equal_float64_cast(backend, dtype, ties):
    rng = np.random.default_rng(3)
    base = rng.integers(0, 6, size=(8, 10)).astype(dtype)
    pos = [[0, 3], [1], [2, 2], [4], [5, 9], [6], [7, 8], [9]]
    ints = _t(backend, base)
    floats = _t(backend, base.astype(np.float64))
    got = ccr_metrics.positive_ranks(ints, pos, ties=ties, chunk_size=3)
    want = ccr_metrics.positive_ranks(floats, pos, ties=ties, chunk_size=3)
    if backend == "torch":
        assert got.dtype == torch.float64
        got, want = got.numpy(), want.numpy()
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
