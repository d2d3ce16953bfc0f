"""Independent oracle tests for the two-stage (re-ranking) functions of ``ccr_metrics``.

``reranked_ranks``, ``reranked_rank_counts``, ``released_rerank_scores`` and
``top_candidates`` are checked against naive per-query Python loops written from their
stated contract only: the candidates come first, ordered by ``fine``; the other items
follow, ordered by ``coarse``; the tie rules apply inside the segment that holds the best
positive. Scores are turned into exact Python numbers (``.tolist()`` then ``Fraction``),
and the expected rank is averaged over every arrangement of the tied block, so no
formula of the library is reused.
"""

from __future__ import annotations

import itertools
import math
import zlib
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ccr_metrics as cm

TIES = ("expected", "average", "optimistic", "pessimistic")
LIBS = ("numpy", "torch")
FORMS = ("index", "mask", "ragged")
CHUNKS = (None, 1, 3, 7)
KERNELS = ("numba", "torch")
# (coarse dtype, fine dtype); small integer scores are exact in all of them
DTYPE_PAIRS = (
    ("float64", "float64"),
    ("float32", "int64"),
    ("int32", "float16"),
    ("bfloat16", "float32"),  # torch only
)


def seeded(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


@pytest.fixture(params=KERNELS)
def kernel(request, monkeypatch):
    monkeypatch.setenv("CCR_METRICS_KERNEL", request.param)
    return request.param


# --------------------------------------------------------------------------- oracle


def exact(x):
    """Scores (numpy, torch or nested lists) as nested lists of Fractions."""
    rows = x.tolist() if hasattr(x, "tolist") else x
    return [[Fraction(v) for v in row] for row in rows]


def ints(x):
    rows = x.tolist() if hasattr(x, "tolist") else x
    return [[int(v) for v in row] for row in rows]


def expected_first_position(n, p):
    """Mean 1-based position of the first positive over every placement of ``p``
    positives among ``n + p`` tied slots (each placement equally likely)."""
    combos = list(itertools.combinations(range(n + p), p))
    return Fraction(sum(min(c) + 1 for c in combos), len(combos))


def oracle_row(coarse_row, cand_row, fine_row, pos):
    """(g, n, p) for one query, or None when it has no positive.

    Computed twice: once from the explicitly built cascade order, once by counting
    inside the segment of the best positive; the two must agree.
    """
    g_items = len(coarse_row)
    k = len(cand_row)
    cand_set = set(cand_row)
    assert len(cand_set) == k
    # explicit cascade order: (segment, score) for every gallery item
    seg_score = {}
    for j, item in enumerate(cand_row):
        seg_score[item] = (0, fine_row[j])
    for i in range(g_items):
        if i not in cand_set:
            seg_score[i] = (1, coarse_row[i])
    order = sorted(range(g_items), key=lambda i: (seg_score[i][0], -seg_score[i][1]))
    pos = {i for i in pos if 0 <= i < g_items}
    if not pos:
        return None
    first = next(i for i in order if i in pos)  # one of the positives of the best block
    block_key = seg_score[first]
    block = [i for i in order if seg_score[i] == block_key]
    g1 = order.index(block[0])
    n1 = sum(1 for i in block if i not in pos)
    p1 = sum(1 for i in block if i in pos)
    # by segment counting
    cand_seg = [(fine_row[j], item) for j, item in enumerate(cand_row)]
    non_seg = [(coarse_row[i], i) for i in range(g_items) if i not in cand_set]
    if any(item in pos for _, item in cand_seg):
        seg, offset = cand_seg, 0
    else:
        seg, offset = non_seg, k
    b = max(s for s, item in seg if item in pos)
    g2 = offset + sum(1 for s, _ in seg if s > b)
    n2 = sum(1 for s, item in seg if s == b and item not in pos)
    p2 = sum(1 for s, item in seg if s == b and item in pos)
    assert (g1, n1, p1) == (g2, n2, p2)
    assert p1 >= 1
    return g1, n1, p1


def oracle_counts(coarse, candidates, fine, pos_sets):
    c, f, cand = exact(coarse), exact(fine), ints(candidates)
    return [oracle_row(c[q], cand[q], f[q], pos_sets[q]) for q in range(len(c))]


def oracle_rank(cnt, ties):
    if cnt is None:
        return math.inf
    g, n, p = cnt
    if ties == "optimistic":
        return Fraction(g + 1)
    if ties == "pessimistic":
        return Fraction(g + n + 1)
    return g + expected_first_position(n, p)


def oracle_ranks(coarse, candidates, fine, pos_sets, ties):
    return [oracle_rank(c, ties) for c in oracle_counts(coarse, candidates, fine, pos_sets)]


# --------------------------------------------------------------------------- helpers


def to_list(x):
    return x.tolist() if hasattr(x, "tolist") else list(x)


def assert_ranks_equal(got, expected, context=None):
    got = to_list(got)
    assert len(got) == len(expected), context
    for q, (a, b) in enumerate(zip(got, expected, strict=True)):
        if b == math.inf:
            assert a == math.inf, (q, got, expected, context)
        else:
            assert math.isclose(a, float(b), rel_tol=1e-12, abs_tol=0.0), (
                q,
                got,
                [float(e) for e in expected],
                context,
            )


def counts_tuples(counts):
    return list(
        zip(
            to_list(counts.above),
            to_list(counts.tied_negatives),
            to_list(counts.tied_positives),
            strict=True,
        )
    )


def expected_tuples(cnts):
    return [(0, 0, 0) if c is None else c for c in cnts]


def make_array(values, dtype, lib):
    if lib == "numpy":
        return np.asarray(values).astype(dtype)
    return torch.as_tensor(np.asarray(values)).to(getattr(torch, dtype))


def check_kind(out, lib, n_queries, dtype_float64=True):
    if lib == "numpy":
        assert isinstance(out, np.ndarray)
        if dtype_float64:
            assert out.dtype == np.float64
    else:
        assert isinstance(out, torch.Tensor)
        assert out.device == torch.device("cpu")
        if dtype_float64:
            assert out.dtype == torch.float64
    assert tuple(out.shape) == (n_queries,)


def random_candidates(rng, n_queries, g, k):
    return np.stack([rng.permutation(g)[:k] for _ in range(n_queries)]).astype(np.int64)


def designed_pos_sets(rng, candidates, g):
    """Positive sets that cycle through: candidates only, non-candidates only,
    both segments, one random item."""
    sets = []
    for q, row in enumerate(candidates.tolist()):
        cands = list(row)
        others = [i for i in range(g) if i not in set(cands)]
        kind = q % 4
        if kind == 0 or not others:
            size = int(rng.integers(1, min(3, len(cands)) + 1))
            s = {int(i) for i in rng.choice(cands, size=size, replace=False)}
        elif kind == 1:
            size = int(rng.integers(1, min(3, len(others)) + 1))
            s = {int(i) for i in rng.choice(others, size=size, replace=False)}
        elif kind == 2:
            s = {int(rng.choice(cands)), int(rng.choice(others))}
            if len(others) > 1:
                s.add(int(rng.choice(others)))
        else:
            s = {int(rng.integers(0, g))}
        sets.append(s)
    return sets


def positives_in_form(rng, form, candidates, g, lib):
    n_queries = candidates.shape[0]
    if form == "index":
        # alternately a candidate and (where there is one) a non-candidate
        idx = []
        for q, row in enumerate(candidates.tolist()):
            others = [i for i in range(g) if i not in set(row)]
            if q % 2 == 1 and others:
                idx.append(int(rng.choice(others)))
            else:
                idx.append(int(rng.choice(row)))
        arr = np.array(idx, dtype=np.int64)
        return (torch.as_tensor(arr) if lib == "torch" else arr), [{i} for i in idx]
    sets = designed_pos_sets(rng, candidates, g)
    if form == "mask":
        mask = np.zeros((n_queries, g), dtype=bool)
        for q, s in enumerate(sets):
            mask[q, sorted(s)] = True
        return (torch.as_tensor(mask) if lib == "torch" else mask), sets
    lists = []
    for s in sets:
        items = sorted(s)
        rng.shuffle(items)
        lists.append(items)
    return lists, sets


# --------------------------------------------------------------------------- 1. the oracle


def test_oracle_hand_example_distinct_scores():
    # G = 6, k = 2. The cascade order is: item 1 (fine 20), item 3 (fine 10), then the
    # non-candidates by coarse: 0 (5), 2 (3), 4 (1), 5 (0). Positions 1, 2, 3, 4, 5, 6.
    coarse = [[5, 4, 3, 2, 1, 0]]
    cand = [[3, 1]]
    fine = [[10, 20]]
    c, f = exact(coarse), exact(fine)
    # positive 0 is a non-candidate: 2 candidates above it, none above it in coarse
    assert oracle_row(c[0], cand[0], f[0], {0}) == (2, 0, 1)
    # positive 3: one candidate (item 1) above it; item 3's coarse score 2 is irrelevant
    assert oracle_row(c[0], cand[0], f[0], {3}) == (1, 0, 1)
    # {0, 3}: the candidate 3 beats the non-candidate 0 although coarse[0] > coarse[3]
    assert oracle_row(c[0], cand[0], f[0], {0, 3}) == (1, 0, 1)
    # positive 5 is last: 2 candidates + 3 non-candidates above it -> rank 6
    assert oracle_row(c[0], cand[0], f[0], {5}) == (5, 0, 1)
    for ties in TIES:
        assert oracle_rank((5, 0, 1), ties) == 6
        assert oracle_rank((2, 0, 1), ties) == 3


def test_oracle_hand_example_ties_in_both_segments():
    # G = 6, k = 3. Candidates 4 (fine 7), 0 (fine 7), 2 (fine 3); the non-candidates
    # 1, 3, 5 all have coarse 1 (so do the candidates 0 and 2, which must not count).
    coarse = [[1, 1, 1, 1, 0, 1]]
    cand = [[4, 0, 2]]
    fine = [[7, 7, 3]]
    c, f = exact(coarse), exact(fine)
    row = (c[0], cand[0], f[0])
    # {0}: tied with the negative candidate 4 -> g=0, n=1, p=1:
    #      optimistic 1, pessimistic 2, expected 0 + (1+1+1)/2 = 1.5
    assert oracle_row(*row, {0}) == (0, 1, 1)
    assert [oracle_rank((0, 1, 1), t) for t in TIES] == [1.5, 1.5, 1, 2]
    # {2, 5}: the candidate 2 is best (5 is a non-candidate): 2 candidates above -> 3
    assert oracle_row(*row, {2, 5}) == (2, 0, 1)
    # {1, 5}: both non-candidates, tied in coarse with the negative 3 (not with the
    #      candidates 0, 2): g = 3, n = 1, p = 2 -> optimistic 4, pessimistic 5,
    #      expected 3 + (1+2+1)/(2+1) = 13/3
    assert oracle_row(*row, {1, 5}) == (3, 1, 2)
    assert [oracle_rank((3, 1, 2), t) for t in TIES] == [
        Fraction(13, 3),
        Fraction(13, 3),
        4,
        5,
    ]
    # {4, 0}: two tied positives on top: g=0, n=0, p=2 -> 1 in every mode
    assert oracle_row(*row, {4, 0}) == (0, 0, 2)
    assert oracle_rank((0, 0, 2), "expected") == 1
    # no positive
    assert oracle_row(*row, set()) is None
    assert oracle_rank(None, "expected") == math.inf


def test_oracle_hand_example_single_candidate_below_everything():
    # G = 4, k = 1, constant coarse 3; the candidate 2 has fine -5 and still comes first.
    c, f = exact([[3, 3, 3, 3]]), exact([[-5]])
    assert oracle_row(c[0], [2], f[0], {2}) == (0, 0, 1)  # rank 1
    # {0}: after the candidate, tied with the 2 negatives 1 and 3:
    #      optimistic 2, pessimistic 4, expected 1 + (2+1+1)/2 = 3
    assert oracle_row(c[0], [2], f[0], {0}) == (1, 2, 1)
    assert [oracle_rank((1, 2, 1), t) for t in TIES] == [3, 3, 2, 4]


def test_oracle_expected_matches_closed_form():
    for n in range(6):
        for p in range(1, 6):
            assert expected_first_position(n, p) == Fraction(n + p + 1, p + 1)


def test_library_on_hand_examples():
    coarse = np.array([[1, 1, 1, 1, 0, 1]] * 5, dtype=np.float64)
    cand = np.array([[4, 0, 2]] * 5)
    fine = np.array([[7, 7, 3]] * 5, dtype=np.float64)
    pos = [[0], [2, 5], [1, 5], [4, 0], []]
    want = {
        "expected": [1.5, 3.0, 13 / 3, 1.0, math.inf],
        "average": [1.5, 3.0, 13 / 3, 1.0, math.inf],
        "optimistic": [1.0, 3.0, 4.0, 1.0, math.inf],
        "pessimistic": [2.0, 3.0, 5.0, 1.0, math.inf],
    }
    for ties in TIES:
        got = cm.reranked_ranks(coarse, cand, fine, pos, ties=ties, empty="miss")
        assert_ranks_equal(got, want[ties], ties)
    counts = cm.reranked_rank_counts(coarse, cand, fine, pos, empty="miss")
    assert counts_tuples(counts) == [(0, 1, 1), (2, 0, 1), (3, 1, 2), (0, 0, 2), (0, 0, 0)]
    # default tie mode is "expected"
    got = cm.reranked_ranks(coarse[:4], cand[:4], fine[:4], pos[:4])
    assert_ranks_equal(got, want["expected"][:4])
    # the first example, with index positives
    got = cm.reranked_ranks(
        np.array([[5.0, 4, 3, 2, 1, 0]] * 3), np.array([[3, 1]] * 3), np.array([[10.0, 20]] * 3),
        np.array([0, 3, 5]),
    )  # fmt: skip
    assert_ranks_equal(got, [3.0, 2.0, 6.0])


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64"])
def test_integer_coarse_with_non_candidate_positive(dtype, lib):
    """ "Any real dtype": integer first-stage scores, the best positive a non-candidate.
    The first hand example: positives 0, 3, 5 have ranks 3, 2, 6."""
    coarse = make_array([[5, 4, 3, 2, 1, 0]] * 3, dtype, lib)
    cand = make_array([[3, 1]] * 3, "int64", lib)
    fine = make_array([[10, 20]] * 3, dtype, lib)
    pos = make_array([0, 3, 5], "int64", lib)
    assert_ranks_equal(cm.reranked_ranks(coarse, cand, fine, pos), [3.0, 2.0, 6.0])
    counts = cm.reranked_rank_counts(coarse, cand, fine, pos)
    assert counts_tuples(counts) == [(2, 0, 1), (1, 0, 1), (5, 0, 1)]


# --------------------------------------------------------------------------- 2. vs the oracle


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtypes", DTYPE_PAIRS)
@pytest.mark.parametrize("k_choice", ["one", "middle", "all"])
def test_reranked_ranks_match_oracle(kernel, k_choice, dtypes, form, lib):
    coarse_dtype, fine_dtype = dtypes
    if lib == "numpy" and "bfloat16" in dtypes:
        pytest.skip("numpy has no bfloat16")
    rng = seeded("rerank", kernel, k_choice, dtypes, form, lib)
    n_queries, g = 11, 10
    k = {"one": 1, "middle": 4, "all": g}[k_choice]
    coarse_v = rng.integers(0, 4, size=(n_queries, g))
    fine_v = rng.integers(0, 4, size=(n_queries, k))
    cand_v = random_candidates(rng, n_queries, g, k)
    coarse = make_array(coarse_v, coarse_dtype, lib)
    fine = make_array(fine_v, fine_dtype, lib)
    candidates = make_array(cand_v, "int64", lib)
    positives, pos_sets = positives_in_form(rng, form, cand_v, g, lib)
    before = [coarse.tolist(), fine.tolist(), candidates.tolist()]
    pos_before = positives.tolist() if hasattr(positives, "tolist") else positives

    cnts = oracle_counts(coarse, candidates, fine, pos_sets)
    assert all(c is not None for c in cnts)
    if k < g and form != "index":
        # the designed sets include non-candidate-only and split queries
        in_cands = [bool(s & set(r)) for s, r in zip(pos_sets, cand_v.tolist(), strict=True)]
        assert not all(in_cands)
    for chunk in CHUNKS:
        counts = cm.reranked_rank_counts(coarse, candidates, fine, positives, chunk_size=chunk)
        assert counts_tuples(counts) == expected_tuples(cnts), (chunk, coarse_v, cand_v, fine_v)
        for arr in (counts.above, counts.tied_negatives, counts.tied_positives):
            if lib == "numpy":
                assert isinstance(arr, np.ndarray)
                assert np.issubdtype(arr.dtype, np.integer)
            else:
                assert isinstance(arr, torch.Tensor)
                assert not arr.dtype.is_floating_point
        for ties in TIES:
            want = [oracle_rank(c, ties) for c in cnts]
            got = cm.reranked_ranks(
                coarse, candidates, fine, positives, ties=ties, chunk_size=chunk
            )
            check_kind(got, lib, n_queries)
            assert_ranks_equal(got, want, (ties, chunk, coarse_v, cand_v, fine_v, pos_sets))
            assert_ranks_equal(counts.ranks(ties), want, ("counts.ranks", ties, chunk))
    # inputs are left as they were
    assert [coarse.tolist(), fine.tolist(), candidates.tolist()] == before
    assert (positives.tolist() if hasattr(positives, "tolist") else positives) == pos_before


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("form", ["mask", "ragged"])
def test_empty_queries_miss(lib, form):
    rng = seeded("empty", lib, form)
    n_queries, g, k = 6, 7, 3
    coarse_v = rng.integers(0, 3, size=(n_queries, g)).astype(np.float64)
    fine_v = rng.integers(0, 3, size=(n_queries, k)).astype(np.float64)
    cand_v = random_candidates(rng, n_queries, g, k)
    pos_sets = designed_pos_sets(rng, cand_v, g)
    pos_sets[1] = set()
    pos_sets[4] = set()
    if form == "mask":
        mask = np.zeros((n_queries, g), dtype=bool)
        for q, s in enumerate(pos_sets):
            mask[q, sorted(s)] = True
        positives = torch.as_tensor(mask) if lib == "torch" else mask
    else:
        positives = [sorted(s) for s in pos_sets]
    coarse = make_array(coarse_v, "float64", lib)
    fine = make_array(fine_v, "float64", lib)
    candidates = make_array(cand_v, "int64", lib)
    cnts = oracle_counts(coarse, candidates, fine, pos_sets)
    for chunk in CHUNKS:
        for ties in TIES:
            got = cm.reranked_ranks(
                coarse, candidates, fine, positives, ties=ties, chunk_size=chunk, empty="miss"
            )
            check_kind(got, lib, n_queries)
            assert_ranks_equal(got, [oracle_rank(c, ties) for c in cnts], (ties, chunk))
        counts = cm.reranked_rank_counts(
            coarse, candidates, fine, positives, chunk_size=chunk, empty="miss"
        )
        assert counts_tuples(counts) == expected_tuples(cnts)
        assert to_list(counts.ranks("expected"))[1] == math.inf
    with pytest.raises(ValueError, match="positive"):
        cm.reranked_ranks(coarse, candidates, fine, positives)
    with pytest.raises(ValueError, match="positive"):
        cm.reranked_rank_counts(coarse, candidates, fine, positives)


@pytest.mark.parametrize("lib", LIBS)
def test_coarse_at_candidates_and_candidate_order_are_irrelevant(lib):
    rng = seeded("metamorphic", lib)
    n_queries, g, k = 9, 8, 3
    coarse_v = rng.integers(0, 4, size=(n_queries, g)).astype(np.float64)
    fine_v = rng.integers(0, 4, size=(n_queries, k)).astype(np.float64)
    cand_v = random_candidates(rng, n_queries, g, k)
    pos = [sorted(s) for s in designed_pos_sets(rng, cand_v, g)]

    def run(c, cand, f):
        return {
            t: to_list(
                cm.reranked_ranks(
                    make_array(c, "float64", lib),
                    make_array(cand, "int64", lib),
                    make_array(f, "float64", lib),
                    pos,
                    ties=t,
                )
            )
            for t in TIES
        }

    base = run(coarse_v, cand_v, fine_v)
    changed = coarse_v.copy()
    for q in range(n_queries):
        changed[q, cand_v[q]] = rng.integers(-50, 50, size=k)
    assert run(changed, cand_v, fine_v) == base
    perm = np.stack([rng.permutation(k) for _ in range(n_queries)])
    assert (
        run(coarse_v, np.take_along_axis(cand_v, perm, 1), np.take_along_axis(fine_v, perm, 1))
        == base
    )


# --------------------------------------------------------------------------- 3. identities


@st.composite
def cascades(draw, mode):
    """mode "full": k = G. mode "topk": candidates are the strict top k of coarse and
    fine equals coarse on them. mode "any": arbitrary candidates."""
    n_queries = draw(st.integers(1, 4))
    g = draw(st.integers(1, 8))
    k = g if mode == "full" else draw(st.integers(1, g))
    score = st.integers(0, 3)
    cand, coarse, fine, pos = [], [], [], []
    for _ in range(n_queries):
        perm = draw(st.permutations(range(g)))
        row_cand = list(perm[:k])
        if mode == "topk":
            row = [draw(st.integers(0, 3)) for _ in range(g)]
            for i in row_cand:
                row[i] = draw(st.integers(4, 7))  # strictly above every non-candidate
            row_fine = [row[i] for i in row_cand]
        else:
            row = [draw(score) for _ in range(g)]
            row_fine = [draw(score) for _ in range(k)]
        cand.append(row_cand)
        coarse.append(row)
        fine.append(row_fine)
        pos.append(draw(st.sets(st.integers(0, g - 1), min_size=1, max_size=g)))
    form = draw(st.sampled_from(FORMS))
    if form == "index":
        pos = [{min(s)} for s in pos]
    lib = draw(st.sampled_from(LIBS))
    ties = draw(st.sampled_from(TIES))
    return coarse, cand, fine, pos, form, lib, ties


def build_positives(pos_sets, form, g, lib):
    if form == "index":
        arr = np.array([min(s) for s in pos_sets], dtype=np.int64)
        return torch.as_tensor(arr) if lib == "torch" else arr
    if form == "mask":
        mask = np.zeros((len(pos_sets), g), dtype=bool)
        for q, s in enumerate(pos_sets):
            mask[q, sorted(s)] = True
        return torch.as_tensor(mask) if lib == "torch" else mask
    return [sorted(s) for s in pos_sets]


@settings(max_examples=50, deadline=None)
@given(cascades("full"))
def test_identity_all_candidates_equals_positive_ranks(case):
    coarse_l, cand_l, fine_l, pos_sets, form, lib, ties = case
    g = len(coarse_l[0])
    full = np.zeros((len(coarse_l), g))
    for q, (row_cand, row_fine) in enumerate(zip(cand_l, fine_l, strict=True)):
        full[q, row_cand] = row_fine
    coarse = make_array(coarse_l, "float64", lib)
    cand = make_array(cand_l, "int64", lib)
    fine = make_array(fine_l, "float64", lib)
    positives = build_positives(pos_sets, form, g, lib)
    got = cm.reranked_ranks(coarse, cand, fine, positives, ties=ties)
    ref = cm.positive_ranks(make_array(full, "float64", lib), positives, ties=ties)
    assert_ranks_equal(got, to_list(ref))
    assert_ranks_equal(got, oracle_ranks(coarse, cand, fine, pos_sets, ties))


@settings(max_examples=50, deadline=None)
@given(cascades("topk"))
def test_identity_top_k_with_fine_equal_coarse_equals_positive_ranks(case):
    coarse_l, cand_l, fine_l, pos_sets, form, lib, ties = case
    g = len(coarse_l[0])
    coarse = make_array(coarse_l, "float64", lib)
    cand = make_array(cand_l, "int64", lib)
    fine = make_array(fine_l, "float64", lib)
    positives = build_positives(pos_sets, form, g, lib)
    got = cm.reranked_ranks(coarse, cand, fine, positives, ties=ties)
    ref = cm.positive_ranks(coarse, positives, ties=ties)
    assert_ranks_equal(got, to_list(ref))
    assert_ranks_equal(got, oracle_ranks(coarse, cand, fine, pos_sets, ties))


@settings(max_examples=50, deadline=None)
@given(cascades("any"), st.sampled_from(CHUNKS))
def test_property_any_cascade_matches_oracle(case, chunk):
    coarse_l, cand_l, fine_l, pos_sets, form, lib, ties = case
    g = len(coarse_l[0])
    coarse = make_array(coarse_l, "float64", lib)
    cand = make_array(cand_l, "int64", lib)
    fine = make_array(fine_l, "float64", lib)
    positives = build_positives(pos_sets, form, g, lib)
    got = cm.reranked_ranks(coarse, cand, fine, positives, ties=ties, chunk_size=chunk)
    assert_ranks_equal(got, oracle_ranks(coarse, cand, fine, pos_sets, ties))


# --------------------------------------------------------------------------- 4. bad input


def good_inputs(lib="numpy"):
    coarse = np.arange(18, dtype=np.float64).reshape(3, 6)
    cand = np.array([[0, 1, 2], [5, 4, 3], [1, 3, 5]])
    fine = np.ones((3, 3))
    pos = np.array([0, 1, 2])
    if lib == "torch":
        return tuple(torch.as_tensor(x) for x in (coarse, cand, fine, pos))
    return coarse, cand, fine, pos


@pytest.mark.parametrize("lib", LIBS)
def test_good_inputs_are_accepted(lib):
    coarse, cand, fine, pos = good_inputs(lib)
    cm.reranked_ranks(coarse, cand, fine, pos)
    cm.reranked_rank_counts(coarse, cand, fine, pos)


def _mutate(lib, what):
    coarse, cand, fine, pos = (np.array(x) for x in good_inputs("numpy"))
    if what == "duplicate":
        cand[1] = [4, 2, 4]
    elif what == "negative":
        cand[2, 1] = -1
    elif what == "too_large":
        cand[0, 2] = 6
    elif what == "k_gt_g":
        cand = np.array([[0, 1, 2, 3, 4, 5, 0]] * 3)
        fine = np.ones((3, 7))
    elif what == "fine_cols":
        fine = np.ones((3, 4))
    elif what == "fine_rows":
        fine = np.ones((2, 3))
    elif what == "coarse_rows":
        coarse = np.arange(24, dtype=np.float64).reshape(4, 6)
    elif what == "cand_1d":
        cand = np.array([0, 1, 2])
    elif what == "coarse_1d":
        coarse = np.arange(6, dtype=np.float64)
    elif what == "nan_coarse":
        coarse[1, 0] = np.nan  # a non-candidate of row 1
    elif what == "inf_coarse_at_candidate":
        coarse[0, 1] = np.inf  # a candidate of row 0
    elif what == "neg_inf_coarse":
        coarse[2, 0] = -np.inf
    elif what == "nan_fine":
        fine[2, 2] = np.nan
    elif what == "inf_fine":
        fine[0, 0] = np.inf
    elif what == "neg_inf_fine":
        fine[1, 1] = -np.inf
    else:
        raise AssertionError(what)
    if lib == "torch":
        return tuple(torch.as_tensor(x) for x in (coarse, cand, fine, pos))
    return coarse, cand, fine, pos


BAD = {
    "duplicate": "candidates",
    "negative": "candidates",
    "too_large": "candidates",
    "k_gt_g": "candidates",
    "fine_cols": "fine|candidates",
    "fine_rows": "fine|candidates",
    "coarse_rows": "coarse|candidates",
    "cand_1d": "candidates",
    "coarse_1d": "coarse",
    "nan_coarse": "coarse",
    "inf_coarse_at_candidate": "coarse",
    "neg_inf_coarse": "coarse",
    "nan_fine": "fine",
    "inf_fine": "fine",
    "neg_inf_fine": "fine",
}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("what", sorted(BAD))
def test_bad_input_is_refused(what, lib):
    coarse, cand, fine, pos = _mutate(lib, what)
    with pytest.raises(ValueError, match=BAD[what]):
        cm.reranked_ranks(coarse, cand, fine, pos)
    with pytest.raises(ValueError, match=BAD[what]):
        cm.reranked_rank_counts(coarse, cand, fine, pos)


# --------------------------------------------------------------------------- 5. released / top-k


def naive_released(coarse_l, cand_l, fine_l, fill):
    out = [[fill] * len(coarse_l[0]) for _ in coarse_l]
    for q, (row_cand, row_fine) in enumerate(zip(cand_l, fine_l, strict=True)):
        for j, item in enumerate(row_cand):
            out[q][item] = row_fine[j]
    return out


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [1, 4, 9])
def test_released_rerank_scores(k, dtype, lib):
    rng = seeded("released", k, dtype, lib)
    n_queries, g = 5, 9
    coarse_v = rng.standard_normal((n_queries, g))
    fine_v = rng.standard_normal((n_queries, k)) * 10
    cand_v = random_candidates(rng, n_queries, g, k)
    coarse = make_array(coarse_v, dtype, lib)
    fine = make_array(fine_v, dtype, lib)
    cand = make_array(cand_v, "int64", lib)
    for fill, kwargs in ((-100.0, {}), (0.5, {"fill": 0.5}), (-1e4, {"fill": -1e4})):
        out = cm.released_rerank_scores(coarse, cand, fine, **kwargs)
        if lib == "numpy":
            assert isinstance(out, np.ndarray)
            assert out.dtype == np.dtype(dtype)
        else:
            assert isinstance(out, torch.Tensor)
            assert out.dtype == getattr(torch, dtype)
            assert out.device == coarse.device
        assert tuple(out.shape) == (n_queries, g)
        assert out.tolist() == naive_released(coarse.tolist(), cand_v.tolist(), fine.tolist(), fill)
    assert coarse.tolist() == make_array(coarse_v, dtype, lib).tolist()


@pytest.mark.parametrize("lib", LIBS)
def test_released_scores_agree_with_rerank_for_candidate_positives(lib):
    """With the fill below every fine score, ranking the released matrix gives the
    re-ranked rank of every query whose best positive is a candidate."""
    rng = seeded("released-vs-rerank", lib)
    n_queries, g, k = 8, 9, 4
    coarse = make_array(rng.integers(0, 4, size=(n_queries, g)), "float64", lib)
    fine = make_array(rng.integers(0, 4, size=(n_queries, k)), "float64", lib)
    cand_v = random_candidates(rng, n_queries, g, k)
    cand = make_array(cand_v, "int64", lib)
    pos = [[int(rng.choice(r)), int(rng.integers(0, g))] for r in cand_v.tolist()]
    released = cm.released_rerank_scores(coarse, cand, fine)
    for ties in TIES:
        a = cm.positive_ranks(released, pos, ties=ties)
        b = cm.reranked_ranks(coarse, cand, fine, pos, ties=ties)
        assert_ranks_equal(a, to_list(b), ties)


def naive_top(rows, k):
    return [sorted(range(len(r)), key=lambda j: (-r[j], j))[:k] for r in rows]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", ["int64", "float32", "float64"])
@pytest.mark.parametrize("k", [1, 3, 6, 10])
def test_top_candidates_matches_naive_stable_sort(k, dtype, lib):
    rng = seeded("top", k, dtype, lib)
    values = rng.integers(0, 4, size=(12, 10))
    scores = make_array(values, dtype, lib)
    out = cm.top_candidates(scores, k)
    if lib == "numpy":
        assert isinstance(out, np.ndarray)
        assert out.dtype == np.int64
    else:
        assert isinstance(out, torch.Tensor)
        assert out.dtype == torch.int64
    assert tuple(out.shape) == (12, k)
    assert out.tolist() == naive_top(exact(scores), k)


def test_top_candidates_tie_breaking_by_lower_index():
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    # row 0: the three 3.0s (indices 1, 2, 4) then the 2.0 (index 3)
    assert cm.top_candidates(scores, 2).tolist() == [[1, 2], [0, 1]]
    assert cm.top_candidates(scores, 4).tolist() == [[1, 2, 4, 3], [0, 1, 2, 3]]
    assert cm.top_candidates(torch.as_tensor(scores), 3).tolist() == [[1, 2, 4], [0, 1, 2]]
    # the result feeds reranked_ranks: top-k of coarse with fine = coarse there
    cand = cm.top_candidates(scores, 5)
    ranks = cm.reranked_ranks(scores, cand, np.take_along_axis(scores, cand, 1), [3, 4])
    assert_ranks_equal(ranks, to_list(cm.positive_ranks(scores, [3, 4])))
