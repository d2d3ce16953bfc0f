"""Independent oracle tests for ccr_metrics, written from the public contract alone.

The oracles below are deliberately naive: explicit Python loops over each query's row,
with every score compared exactly in its own precision (``.tolist()`` turns float16,
bfloat16, float32 and integer scores into exact Python numbers), and ``fractions``
for the average-tie rank.
"""

from __future__ import annotations

import math
import zlib
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import rankdata

import ccr_metrics

# In the quick tier (python -m pytest -m quick): a first signal in seconds.
pytestmark = pytest.mark.quick

TIES = ("average", "optimistic", "pessimistic")
FORMS = ("int", "mask", "ragged", "int2d")
CHUNKS = (1, 3, None, 50)
Q, G = 7, 9


# --------------------------------------------------------------------------- oracles


def naive_ranks(scores, pos_sets, ties):
    """Rank of each query's best positive, straight from the definition."""
    rows = scores.tolist()  # exact Python numbers in the scores' own precision
    out = []
    for row, pos in zip(rows, pos_sets, strict=True):
        pos = set(pos)
        if not pos:
            out.append(math.inf)
            continue
        b = max(row[j] for j in pos)
        g = n = p = 0
        for j, s in enumerate(row):
            if s > b:
                g += 1
            elif s == b:
                if j in pos:
                    p += 1
                else:
                    n += 1
        if ties == "optimistic":
            r = Fraction(g + 1)
        elif ties == "pessimistic":
            r = Fraction(g + n + 1)
        else:
            r = g + Fraction(n + p + 1, p + 1)
        out.append(float(r))
    return np.array(out, dtype=np.float64)


def released_positions(scores, pos_sets):
    """The released itm_eval loop: 0-based argsort positions, min over positives, + 1."""
    scores = np.asarray(scores, dtype=np.float64)
    ranks = np.zeros(scores.shape[0])
    for i, score in enumerate(scores):
        inds = np.argsort(score)[::-1]
        rank = 1e20
        for j in pos_sets[i]:
            tmp = np.where(inds == j)[0][0]
            rank = min(rank, tmp)
        ranks[i] = rank
    return ranks + 1


def naive_recall(ranks, ks):
    ranks = list(ranks)
    return {k: sum(1 for r in ranks if r <= k) / len(ranks) for k in ks}


def naive_mrv(ranks, mask=None, reduction="variance"):
    ranks = np.asarray(ranks, dtype=np.float64)
    vals = []
    for i in range(ranks.shape[0]):
        present = [float(ranks[i, k]) for k in range(ranks.shape[1]) if mask is None or mask[i, k]]
        if len(present) < 2:
            continue
        mean = sum(present) / len(present)
        var = sum((x - mean) ** 2 for x in present) / len(present)
        vals.append(var if reduction == "variance" else math.sqrt(var))
    return sum(vals) / len(vals)


def to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def assert_ranks_equal(got, expected, ties):
    got = to_numpy(got)
    assert got.dtype == np.float64
    assert got.shape == expected.shape
    if ties == "average":
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)
    else:
        np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------ generators


def make_scores(rng, q, g, tied):
    """Scores exactly representable in every tested dtype (small integers)."""
    if tied:
        base = rng.integers(-2, 2, size=(q, g))  # 4 distinct values: many ties
    else:
        base = np.stack([rng.permutation(g) - g // 2 for _ in range(q)])  # tie-free rows
    return base


def cast(base, backend, dtype):
    if backend == "numpy":
        return base.astype(dtype)
    return torch.as_tensor(base).to(getattr(torch, dtype))


def make_positives(rng, q, g, form):
    """Return (positives in the given form, list of sets); forms are backend-neutral."""
    if form == "int":
        idx = rng.integers(0, g, size=q)
        return idx, [{int(i)} for i in idx]
    if form == "mask":
        mask = rng.random((q, g)) < 0.3
        mask[np.arange(q), rng.integers(0, g, size=q)] = True
        return mask, [set(np.flatnonzero(r).tolist()) for r in mask]
    if form == "ragged":
        lists = []
        for _ in range(q):
            n = int(rng.integers(1, 5))
            row = rng.integers(0, g, size=n).tolist()
            row.append(row[0])  # always at least one duplicated index
            lists.append(row)
        return lists, [set(r) for r in lists]
    if form == "int2d":
        idx = rng.integers(0, g, size=(q, 3))
        idx[:, 2] = idx[:, 0]  # duplicates inside each row
        return idx, [set(r.tolist()) for r in idx]
    raise AssertionError(form)


def positives_for(backend, positives):
    if backend == "torch" and isinstance(positives, np.ndarray):
        return torch.as_tensor(positives)
    return positives


DTYPE_CASES = [
    ("numpy", "float64"),
    ("numpy", "float32"),
    ("numpy", "float16"),
    ("numpy", "int32"),
    ("torch", "float64"),
    ("torch", "float32"),
    ("torch", "float16"),
    ("torch", "int32"),
    ("torch", "bfloat16"),
]


# ------------------------------------------------------------------- positive_ranks


@pytest.mark.parametrize("tied", [True, False], ids=["ties", "tiefree"])
@pytest.mark.parametrize(("backend", "dtype"), DTYPE_CASES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("ties", TIES)
def test_positive_ranks_matches_naive_loop(ties, form, backend, dtype, tied):
    seed = zlib.crc32(f"{ties}-{form}-{backend}-{dtype}-{tied}".encode())
    rng = np.random.default_rng(seed)
    base = make_scores(rng, Q, G, tied)
    positives, pos_sets = make_positives(rng, Q, G, form)
    scores = cast(base, backend, dtype)
    expected = naive_ranks(scores, pos_sets, ties)
    results = []
    for chunk in CHUNKS:
        got = ccr_metrics.positive_ranks(
            scores, positives_for(backend, positives), ties=ties, chunk_size=chunk
        )
        if backend == "torch":
            assert isinstance(got, torch.Tensor)
            assert got.dtype == torch.float64
            assert got.device == scores.device
        else:
            assert isinstance(got, np.ndarray)
        assert_ranks_equal(got, expected, ties)
        results.append(to_numpy(got))
    for r in results[1:]:  # identical (bit for bit) for every chunk size
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_low_precision_ties_compared_in_own_precision(backend, dtype):
    # Gaussian scores rounded to half precision tie often; the oracle sees the rounded
    # values exactly, so ranks must follow the scores' own precision.
    rng = np.random.default_rng(5)
    base = rng.normal(size=(20, 40)) * 1e-3 + 0.5
    scores = cast(base, backend, dtype)
    pos = rng.integers(0, 40, size=20)
    for ties in TIES:
        got = ccr_metrics.positive_ranks(scores, positives_for(backend, pos), ties=ties)
        assert_ranks_equal(got, naive_ranks(scores, [{int(i)} for i in pos], ties), ties)


def test_bfloat16_gaussian_ties():
    rng = np.random.default_rng(6)
    scores = torch.as_tensor(rng.normal(size=(15, 30))).to(torch.bfloat16)
    pos = rng.integers(0, 30, size=15)
    for ties in TIES:
        got = ccr_metrics.positive_ranks(scores, torch.as_tensor(pos), ties=ties, chunk_size=4)
        assert_ranks_equal(got, naive_ranks(scores, [{int(i)} for i in pos], ties), ties)


@pytest.mark.parametrize("tied", [True, False])
def test_single_positive_matches_scipy_rankdata(tied):
    rng = np.random.default_rng(11)
    if tied:
        scores = rng.integers(0, 3, size=(30, 12)).astype(np.float64)
    else:
        scores = rng.normal(size=(30, 12))
    pos = rng.integers(0, 12, size=30)
    got = {t: ccr_metrics.positive_ranks(scores, pos, ties=t) for t in TIES}
    for i in range(30):
        row = -scores[i]
        assert got["average"][i] == pytest.approx(rankdata(row, "average")[pos[i]], abs=0)
        assert got["optimistic"][i] == rankdata(row, "min")[pos[i]]
        assert got["pessimistic"][i] == rankdata(row, "max")[pos[i]]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_released_argsort_semantics_on_tie_free_input(form, backend):
    rng = np.random.default_rng(21)
    base = rng.normal(size=(25, 17))
    positives, pos_sets = make_positives(rng, 25, 17, form)
    expected = released_positions(base, pos_sets)
    scores = base if backend == "numpy" else torch.as_tensor(base)
    for ties in TIES:
        got = ccr_metrics.positive_ranks(scores, positives_for(backend, positives), ties=ties)
        np.testing.assert_array_equal(to_numpy(got), expected)


def test_int_index_matrix_shaped_like_scores_is_refused_as_ambiguous():
    # An int array [Q, G] is most often a 0/1 relevance matrix (torchmetrics-style
    # target); reading it as G indices per query would give a silent wrong answer, so
    # the library refuses it and names the two unambiguous forms. Those forms work.
    scores = np.array([[0.1, 0.2, 0.9], [0.9, 0.5, 0.3]])
    idx = np.array([[0, 0, 1], [1, 1, 1]])
    # The same values as nested lists too: rows of G zeros and ones with repeats.
    for positives in (idx, torch.from_numpy(idx), idx.tolist()):
        with pytest.raises(ValueError, match=r"positives.*bool mask"):
            ccr_metrics.positive_ranks(scores, positives)
    for ties in TIES:
        got = ccr_metrics.positive_ranks(scores, idx.astype(bool), ties=ties)
        np.testing.assert_array_equal(got, naive_ranks(scores, [{2}, {0, 1, 2}], ties))
    # Rectangular index lists that cannot be a 0/1 mask stay index lists.
    rect = [[0, 2, 2], [1, 1, 0]]
    for ties in TIES:
        got = ccr_metrics.positive_ranks(scores, rect, ties=ties)
        np.testing.assert_array_equal(got, naive_ranks(scores, [{0, 2}, {0, 1}], ties))
    # With two columns, rows without a repeat read as indices ([0, 1]: both items).
    two = scores[:, :2]
    np.testing.assert_array_equal(
        ccr_metrics.positive_ranks(two, [[0, 1], [1, 0]]),
        naive_ranks(two, [{0, 1}, {0, 1}], "average"),
    )


def test_list_inputs_and_sequence_forms():
    scores = [[0.9, 0.1, 0.5], [0.2, 0.8, 0.8]]
    out = ccr_metrics.positive_ranks(scores, [2, 1])
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [2.0, 1.5])
    np.testing.assert_array_equal(ccr_metrics.positive_ranks(scores, [[0, 2], [0]]), [1.0, 3.0])
    arr = np.array(scores)
    for ties in TIES:
        got = ccr_metrics.positive_ranks(scores, ((1, 1, 2), (0, 0)), ties=ties)
        assert_ranks_equal(got, naive_ranks(arr, [{1, 2}, {0}], ties), ties)
    # hand-checked: row 0 b=0.5, g=1 -> 2; row 1 b=0.8 with p=2 tied positives -> 1
    np.testing.assert_array_equal(
        ccr_metrics.positive_ranks(scores, ((1, 1, 2), (1, 2))), [2.0, 1.0]
    )


def test_worked_tie_example():
    # b = 0.5; g = 1 (0.9); n = 2 negatives tied; p = 2 positives tied (duplicate once).
    scores = np.array([[0.9, 0.5, 0.5, 0.5, 0.5, 0.1]])
    pos = [[1, 2, 2, 5]]
    got = {t: float(ccr_metrics.positive_ranks(scores, pos, ties=t)[0]) for t in TIES}
    assert got == {"optimistic": 2.0, "pessimistic": 4.0, "average": 1 + 5 / 3}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_trivial_shapes(backend):
    one = cast(np.array([[3]]), backend, "float64")
    for ties in TIES:
        np.testing.assert_array_equal(
            to_numpy(ccr_metrics.positive_ranks(one, [0], ties=ties)), [1]
        )
    # every column a positive: rank 1 under every rule
    full = cast(np.zeros((2, 4)), backend, "float64")
    mask = np.ones((2, 4), dtype=bool)
    for ties in TIES:
        got = ccr_metrics.positive_ranks(full, positives_for(backend, mask), ties=ties)
        np.testing.assert_array_equal(to_numpy(got), [1.0, 1.0])


EXTREMES = [
    # (dtype, row, positive): differences overflow the dtype; counts must stay exact
    ("int8", [-128, 127, 0, -128], 0),
    ("uint8", [0, 255, 10, 0], 0),
    ("int16", [-32768, 32767, 0, 5], 0),
    ("int32", [-(2**31), 2**31 - 1, 0, 7], 0),
    ("int64", [-(2**63), 2**63 - 1, 0, 1], 0),
    ("int64", [2**53, 2**53 + 1, 2**53, 0], 0),  # distinct in int64, tied in float64
    ("float16", [-65504.0, 65504.0, 0.0, -65504.0], 0),
    ("float32", [-3.4e38, 3.4e38, 0.0, 1.0], 0),
    ("float64", [-1.7e308, 1.7e308, 0.0, -1.7e308], 0),
    ("float64", [5e-324, 0.0, -5e-324, 1e-300], 1),
    ("float64", [1.0, np.nextafter(1.0, 2.0), 1.0, np.nextafter(1.0, 0.0)], 0),
    ("float16", [6e-8, 0.0, -6e-8, 1.0], 1),
]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(("dtype", "row", "pos"), EXTREMES)
def test_extreme_values_are_compared_exactly(backend, dtype, row, pos):
    scores = np.array([row], dtype=dtype)
    if backend == "torch":
        scores = torch.from_numpy(scores)
    for ties in TIES:
        got = ccr_metrics.positive_ranks(scores, [pos], ties=ties)
        assert_ranks_equal(got, naive_ranks(scores, [{pos}], ties), ties)


def test_bfloat16_extremes():
    scores = torch.tensor([[-3.3e38, 3.3e38, 0.0, -3.3e38]]).to(torch.bfloat16)
    for ties in TIES:
        got = ccr_metrics.positive_ranks(scores, [0], ties=ties)
        assert_ranks_equal(got, naive_ranks(scores, [{0}], ties), ties)


@given(
    data=st.data(),
    q=st.integers(1, 6),
    g=st.integers(1, 8),
    dtype=st.sampled_from(["float64", "float32", "float16", "int64", "int16"]),
    backend=st.sampled_from(["numpy", "torch"]),
    ties=st.sampled_from(TIES),
    chunk=st.sampled_from([1, 2, 5, None]),
)
def test_property_mask_positives(data, q, g, dtype, backend, ties, chunk):
    vals = data.draw(
        st.lists(st.lists(st.integers(-3, 3), min_size=g, max_size=g), min_size=q, max_size=q)
    )
    mask = np.array(
        data.draw(
            st.lists(st.lists(st.booleans(), min_size=g, max_size=g), min_size=q, max_size=q)
        ),
        dtype=bool,
    ).reshape(q, g)
    first = data.draw(st.lists(st.integers(0, g - 1), min_size=q, max_size=q))
    mask[np.arange(q), first] = True
    scores = cast(np.array(vals).reshape(q, g), backend, dtype)
    got = ccr_metrics.positive_ranks(
        scores, positives_for(backend, mask), ties=ties, chunk_size=chunk
    )
    pos_sets = [set(np.flatnonzero(r).tolist()) for r in mask]
    assert_ranks_equal(got, naive_ranks(scores, pos_sets, ties), ties)


# -------------------------------------------------------------- i2t / t2i directions


def caption_layout(rng, n, max_caps=5, allow_zero=False):
    counts = rng.integers(0 if allow_zero else 1, max_caps + 1, size=n)
    t2i = np.repeat(np.arange(n), counts)
    return rng.permutation(t2i)  # shuffled text order


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("ties", TIES)
def test_image_to_text_matches_naive(ties, backend, tied):
    rng = np.random.default_rng(31)
    n = 11
    t2i = caption_layout(rng, n)
    m = t2i.size
    base = rng.integers(-2, 2, size=(n, m)) if tied else rng.normal(size=(n, m))
    scores = cast(base, backend, "float64")
    pos_sets = [{t for t in range(m) if t2i[t] == i} for i in range(n)]
    expected = naive_ranks(scores, pos_sets, ties)
    for chunk in CHUNKS:
        for mapping in (t2i, t2i.tolist(), torch.as_tensor(t2i)):
            got = ccr_metrics.image_to_text_ranks(scores, mapping, ties=ties, chunk_size=chunk)
            assert type(got) is type(scores)
            assert_ranks_equal(got, expected, ties)
    if not tied:
        np.testing.assert_array_equal(
            to_numpy(ccr_metrics.image_to_text_ranks(scores, t2i, ties=ties)),
            released_positions(base, [sorted(s) for s in pos_sets]),
        )


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("ties", TIES)
def test_text_to_image_matches_naive(ties, backend, tied):
    rng = np.random.default_rng(41)
    n = 9
    t2i = caption_layout(rng, n)
    m = t2i.size
    base = rng.integers(-2, 2, size=(n, m)) if tied else rng.normal(size=(n, m))
    i2t = cast(base, backend, "float64")
    t2i_scores = i2t.T  # a transposed (non-contiguous) view
    pos_sets = [{int(t2i[t])} for t in range(m)]
    expected = naive_ranks(t2i_scores, pos_sets, ties)
    for chunk in CHUNKS:
        got = ccr_metrics.text_to_image_ranks(t2i_scores, t2i, ties=ties, chunk_size=chunk)
        assert type(got) is type(i2t)
        assert_ranks_equal(got, expected, ties)
    if not tied:
        np.testing.assert_array_equal(
            to_numpy(ccr_metrics.text_to_image_ranks(t2i_scores, t2i, ties=ties)),
            released_positions(base.T, [[int(t2i[t])] for t in range(m)]),
        )


@pytest.mark.parametrize("ties", TIES)
def test_identity_mapping_default(ties):
    rng = np.random.default_rng(51)
    scores = rng.integers(0, 3, size=(8, 8)).astype(np.float32)
    diag = [{i} for i in range(8)]
    np.testing.assert_allclose(
        ccr_metrics.image_to_text_ranks(scores, ties=ties), naive_ranks(scores, diag, ties)
    )
    np.testing.assert_allclose(
        ccr_metrics.text_to_image_ranks(scores, ties=ties), naive_ranks(scores, diag, ties)
    )
    np.testing.assert_array_equal(
        ccr_metrics.image_to_text_ranks(scores, ties=ties),
        ccr_metrics.image_to_text_ranks(scores, np.arange(8), ties=ties),
    )


def test_image_without_caption_miss():
    rng = np.random.default_rng(61)
    t2i = np.array([0, 2, 2, 0, 3])  # image 1 has no caption
    scores = rng.normal(size=(4, 5))
    got = ccr_metrics.image_to_text_ranks(scores, t2i, empty="miss")
    assert math.isinf(got[1]) and got[1] > 0
    pos_sets = [{0, 3}, set(), {1, 2}, {4}]
    np.testing.assert_array_equal(got, naive_ranks(scores, pos_sets, "average"))


# ------------------------------------------------------------------------ recall@K


@pytest.mark.parametrize("ks", [(1, 5, 10), (1,), (2, 3), [1, 4, 100]])
def test_recall_at_k_direct_count(ks):
    rng = np.random.default_rng(71)
    ranks = rng.integers(1, 15, size=50).astype(np.float64)
    ranks[::7] += 0.5  # average-tie ranks are fractional
    ranks[3] = np.inf  # a miss
    got = ccr_metrics.recall_at_k(ranks, ks)
    expected = naive_recall(ranks, ks)
    assert set(got) == set(ks)
    for k in ks:
        assert isinstance(got[k], float)
        assert got[k] == pytest.approx(expected[k], abs=1e-15)


def test_recall_default_k_and_torch_ranks():
    ranks = np.array([1.0, 1.5, 5.0, 5.5, 10.0, 11.0, np.inf, 2.0])
    got = ccr_metrics.recall_at_k(ranks)
    assert set(got) == {1, 5, 10}
    assert got == pytest.approx(naive_recall(ranks, (1, 5, 10)))
    # positive_ranks returns a tensor for tensor input; recall must accept it too.
    got_t = ccr_metrics.recall_at_k(torch.as_tensor(ranks))
    assert got_t == pytest.approx(got)


def test_recall_numpy_int_k():
    got = ccr_metrics.recall_at_k(np.array([1.0, 3.0]), (np.int64(1), np.int64(3)))
    assert got[1] == 0.5 and got[3] == 1.0


def test_constant_scores_never_perfect_r1():
    for q, g in [(2, 2), (5, 5), (4, 9), (10, 3)]:
        scores = np.full((q, g), 0.25)
        ranks = ccr_metrics.positive_ranks(scores, np.arange(q) % g)
        assert ccr_metrics.recall_at_k(ranks, (1,))[1] < 1.0
        np.testing.assert_array_equal(ranks, np.full(q, (g + 1) / 2))
    square = np.zeros((6, 6), dtype=np.float16)
    assert ccr_metrics.recall_at_k(ccr_metrics.image_to_text_ranks(square), (1,))[1] == 0.0
    assert ccr_metrics.recall_at_k(ccr_metrics.text_to_image_ranks(square), (1,))[1] == 0.0
    t = torch.zeros(6, 6, dtype=torch.bfloat16)
    assert ccr_metrics.recall_at_k(ccr_metrics.positive_ranks(t, torch.arange(6)), (1,))[1] < 1


def test_empty_miss_gives_inf_and_counts_as_miss():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3], [0.1, 0.2, 0.3]])
    ranks = ccr_metrics.positive_ranks(scores, [[0], [], [2, 2]], empty="miss")
    np.testing.assert_array_equal(ranks, [1.0, np.inf, 1.0])
    mask = np.array([[True, False, False], [False, False, False], [False, False, True]])
    np.testing.assert_array_equal(ccr_metrics.positive_ranks(scores, mask, empty="miss"), ranks)
    tranks = ccr_metrics.positive_ranks(
        torch.as_tensor(scores), torch.as_tensor(mask), empty="miss"
    )
    np.testing.assert_array_equal(to_numpy(tranks), ranks)
    rec = ccr_metrics.recall_at_k(ranks, (1, 3, 1000))
    assert rec == pytest.approx({1: 2 / 3, 3: 2 / 3, 1000: 2 / 3})


# --------------------------------------------------------------- mean rank variance


def test_mrv_released_std_and_paper_variance():
    rng = np.random.default_rng(81)
    ranks = rng.integers(1, 60, size=(40, 4)).astype(np.float64)
    std = ccr_metrics.mean_rank_variance(ranks, reduction="std")
    var = ccr_metrics.mean_rank_variance(ranks, reduction="variance")
    assert isinstance(std, float) and isinstance(var, float)
    assert std == pytest.approx(np.mean([np.std(r) for r in ranks]), rel=1e-12)
    assert var == pytest.approx(np.mean([np.var(r) for r in ranks]), rel=1e-12)
    assert ccr_metrics.mean_rank_variance(ranks) == var  # variance is the default
    # Eq. 7 literally
    n, k = ranks.shape
    eq7 = sum(((ranks[j] - ranks[j].mean()) ** 2).sum() for j in range(n)) / (n * k)
    assert var == pytest.approx(eq7, rel=1e-12)
    # invariances: shift does not matter; variance scales with the square
    assert ccr_metrics.mean_rank_variance(ranks + 7) == pytest.approx(var)
    assert ccr_metrics.mean_rank_variance(ranks * 3) == pytest.approx(9 * var)
    assert ccr_metrics.mean_rank_variance(np.ones((5, 4))) == 0.0


@pytest.mark.parametrize("reduction", ["variance", "std"])
def test_mrv_with_mask_matches_loop(reduction):
    rng = np.random.default_rng(91)
    ranks = rng.integers(1, 30, size=(30, 5)).astype(np.float64)
    ranks[::4] += 0.5
    mask = rng.random((30, 5)) < 0.6
    mask[0] = False  # no language: left out
    mask[1] = [True, False, False, False, False]  # one language: left out
    mask[2] = True
    garbage = ranks.copy()
    garbage[~mask] = 1e6  # values under a False mask must not matter
    expected = naive_mrv(ranks, mask, reduction)
    got = ccr_metrics.mean_rank_variance(ranks, reduction=reduction, mask=mask)
    assert got == pytest.approx(expected, rel=1e-12)
    got2 = ccr_metrics.mean_rank_variance(garbage, reduction=reduction, mask=mask)
    assert got2 == pytest.approx(expected, rel=1e-12)
    full = ccr_metrics.mean_rank_variance(ranks, reduction=reduction, mask=np.ones_like(mask))
    assert full == pytest.approx(ccr_metrics.mean_rank_variance(ranks, reduction=reduction))


def test_mrv_torch_input():
    ranks = np.array([[1.0, 3.0, 2.0], [4.0, 4.0, 10.0]])
    expected = naive_mrv(ranks)
    got = ccr_metrics.mean_rank_variance(torch.as_tensor(ranks))
    assert isinstance(got, float)
    assert got == pytest.approx(expected)


def test_end_to_end_mrv_from_two_languages():
    rng = np.random.default_rng(101)
    img = rng.normal(size=(12, 8))
    langs = [img + rng.normal(scale=s, size=img.shape) for s in (0.3, 1.0, 2.0)]
    cols = []
    for txt in langs:
        scores = img @ txt.T
        cols.append(ccr_metrics.image_to_text_ranks(scores))
    ranks = np.stack(cols, axis=1)
    assert ccr_metrics.mean_rank_variance(ranks) == pytest.approx(naive_mrv(ranks))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16", "int32"])
@pytest.mark.parametrize("form", FORMS)
def test_cuda_matches_naive_and_stays_on_device(dtype, form):
    rng = np.random.default_rng(zlib.crc32(f"cuda-{dtype}-{form}".encode()))
    base = make_scores(rng, 33, 21, tied=True)
    positives, pos_sets = make_positives(rng, 33, 21, form)
    scores = torch.as_tensor(base).to(getattr(torch, dtype)).cuda()
    pos = positives_for("torch", positives)
    if isinstance(pos, torch.Tensor):
        pos = pos.cuda()
    for ties in TIES:
        expected = naive_ranks(scores.cpu(), pos_sets, ties)
        for chunk in CHUNKS:
            got = ccr_metrics.positive_ranks(scores, pos, ties=ties, chunk_size=chunk)
            assert got.device == scores.device and got.dtype == torch.float64
            assert_ranks_equal(got, expected, ties)
