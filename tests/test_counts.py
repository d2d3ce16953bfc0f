"""Independent oracle tests for ``rank_counts`` and ``RankCounts``, from their definitions.

Every expected value here is computed by a naive per-query loop over exact Python numbers
(``.tolist()`` turns integer, float16, bfloat16, float32 and float64 scores into exact
Python ints and floats, which ``Fraction`` keeps exact), or by brute force over every
ordering of a tie. Nothing is derived from the library's implementation. Both counting
kernels are exercised by setting ``CCR_METRICS_KERNEL``, which is read at call time.
"""

from __future__ import annotations

import itertools
import math
import zlib
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
import torch

import ccr_metrics as cm

KERNELS = ("numba", "torch")
DTYPES = ("int32", "int64", "float16", "bfloat16", "float32", "float64")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
FORMS = ("index", "mask", "ragged", "int2d")
LIBS = ("numpy", "torch")
CHUNKS = (1, 3, None)
TIES = ("optimistic", "pessimistic", "average", "expected")
P_INT2D = 3  # positives per query in the [Q, P] integer form


@pytest.fixture(params=KERNELS)
def kernel(request, monkeypatch):
    monkeypatch.setenv("CCR_METRICS_KERNEL", request.param)
    return request.param


def seeded(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


# --------------------------------------------------------------------------- oracles


def exact_rows(scores):
    """Scores as lists of Fractions, exactly the values held in their own precision."""
    return [[Fraction(x) for x in row] for row in scores.tolist()]


def oracle_counts(rows, pos_sets, best=None):
    """(above, tied_negatives, tied_positives) per query, straight from the definition."""
    out = []
    for q, (row, pos) in enumerate(zip(rows, pos_sets, strict=True)):
        if best is None:
            if not pos:
                out.append((0, 0, 0))
                continue
            b = max(row[j] for j in pos)
        else:
            b = best[q]
        a = n = p = 0
        for j, s in enumerate(row):
            if s > b:
                a += 1
            elif s == b:
                if j in pos:
                    p += 1
                else:
                    n += 1
        out.append((a, n, p))
    return out


def oracle_rank(a, n, p, ties):
    if p == 0:
        return math.inf
    if ties == "optimistic":
        return Fraction(a + 1)
    if ties == "pessimistic":
        return Fraction(a + n + 1)
    return a + Fraction(n + p + 1, p + 1)


@cache
def first_positive_histogram(n, p):
    """Over all (n + p)! orderings of distinguishable items: how many put the first positive
    at each 0-based position (items 0..n-1 are negatives, n..n+p-1 positives)."""
    hist = [0] * (n + 1)
    for order in itertools.permutations(range(n + p)):
        first = next(i for i, item in enumerate(order) if item >= n)
        hist[first] += 1
    return tuple(hist), math.factorial(n + p)


def brute_force_hit(a, n, p, k):
    """Exact fraction of tie orderings that put the first positive within the top k."""
    hist, total = first_positive_histogram(n, p)
    return Fraction(sum(c for i, c in enumerate(hist) if a + i + 1 <= k), total)


def comb_hit(a, n, p, k):
    """``1 - C(n, m) / C(n + p, m)`` with ``m = k - a``, in exact integers."""
    m = k - a
    if m <= 0:
        return Fraction(0)
    if m > n:
        return Fraction(1)
    return 1 - Fraction(math.comb(n, m), math.comb(n + p, m))


# --------------------------------------------------------------------------- helpers


def make_scores(values, dtype, lib, order="C"):
    """``values`` (float64 or int64 numpy) cast to ``dtype``; ``order="F"`` gives a
    column-major matrix (a transposed view of a row-major one)."""
    if lib == "numpy":
        if order == "F":
            s = np.ascontiguousarray(values.T.astype(dtype)).T
            assert not s.flags.c_contiguous and s.flags.f_contiguous
        else:
            s = np.ascontiguousarray(values.astype(dtype))
        return s
    tdtype = getattr(torch, dtype)
    if order == "F":
        s = torch.from_numpy(np.ascontiguousarray(values.T)).to(tdtype).T
        assert not s.is_contiguous() and s.T.is_contiguous()
    else:
        s = torch.from_numpy(np.ascontiguousarray(values)).to(tdtype)
    return s


def random_pos_sets(rng, n_queries, g, max_size):
    return [
        {int(j) for j in rng.choice(g, size=int(rng.integers(1, max_size + 1)), replace=False)}
        for _ in range(n_queries)
    ]


def make_positives(rng, form, n_queries, g, lib):
    """Positives in ``form`` and the set of positive columns of each query."""
    as_arr = (lambda x: torch.as_tensor(x)) if lib == "torch" else np.asarray
    if form == "index":
        idx = rng.integers(0, g, size=n_queries)
        return as_arr(idx.astype(np.int64)), [{int(j)} for j in idx]
    if form == "mask":
        sets = random_pos_sets(rng, n_queries, g, 4)
        mask = np.zeros((n_queries, g), dtype=bool)
        for q, s in enumerate(sets):
            mask[q, sorted(s)] = True
        return as_arr(mask), sets
    if form == "ragged":
        sets = random_pos_sets(rng, n_queries, g, 4)
        lists = []
        for s in sets:
            items = [*sorted(s), int(rng.choice(sorted(s)))]  # one repeated index
            rng.shuffle(items)
            lists.append(items)
        return lists, sets
    if form == "int2d":
        sets = random_pos_sets(rng, n_queries, g, P_INT2D)
        arr = np.empty((n_queries, P_INT2D), dtype=np.int64)
        for q, s in enumerate(sets):
            items = sorted(s)
            items += [items[0]] * (P_INT2D - len(items))  # repeats count once
            arr[q] = rng.permutation(items)
        return as_arr(arr), sets
    raise AssertionError(form)


def tie_heavy_values(rng, n_queries, g, dtype):
    """Small integers, exact in every dtype, so ties are the same in all of them;
    for floats some zeros are -0.0, which ties with +0.0."""
    v = rng.integers(-1, 3, size=(n_queries, g)).astype(np.float64)
    if dtype.startswith("float") or dtype == "bfloat16":
        flip = (v == 0) & (rng.random(v.shape) < 0.5)
        v[flip] = -0.0
    return v


def random_values(rng, n_queries, g, dtype):
    if dtype.startswith("int"):
        v = rng.integers(-(10**6), 10**6, size=(n_queries, g)).astype(np.int64)
    else:
        v = rng.standard_normal((n_queries, g))
    v[:, 1] = v[:, 0]  # a duplicated column: ties even in random data
    return v


def as_list(x):
    return x.tolist()


def counts_list(counts):
    return list(
        zip(
            as_list(counts.above),
            as_list(counts.tied_negatives),
            as_list(counts.tied_positives),
            strict=True,
        )
    )


def check_output_types(counts, lib, n_queries, device="cpu"):
    assert isinstance(counts, cm.RankCounts)
    assert len(counts) == n_queries
    for arr in (counts.above, counts.tied_negatives, counts.tied_positives):
        if lib == "numpy":
            assert isinstance(arr, np.ndarray)
            assert arr.dtype == np.int64
        else:
            assert isinstance(arr, torch.Tensor)
            assert arr.dtype == torch.int64
            assert arr.device == torch.device(device)
        assert tuple(arr.shape) == (n_queries,)


def to_best(values, dtype, lib):
    """Best scores given in the dtype of the scores (the values are exact in it)."""
    if lib == "numpy":
        return np.array([float(v) for v in values], dtype=dtype)
    return torch.tensor([float(v) for v in values], dtype=getattr(torch, dtype))


def skip_numpy_bfloat16(lib, dtype):
    if lib == "numpy" and dtype == "bfloat16":
        pytest.skip("numpy has no bfloat16")


# --------------------------------------------------------------------------- 1. counts


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("data", ["ties", "random"])
def test_rank_counts_match_naive_loop(kernel, data, dtype, form, order, lib):
    skip_numpy_bfloat16(lib, dtype)
    rng = seeded("counts", kernel, data, dtype, form, order, lib)
    n_queries, g = (7, 9) if data == "ties" else (6, 13)
    make = tie_heavy_values if data == "ties" else random_values
    scores = make_scores(make(rng, n_queries, g, dtype), dtype, lib, order)
    positives, pos_sets = make_positives(rng, form, n_queries, g, lib)
    before = scores.clone() if lib == "torch" else scores.copy()
    expected = oracle_counts(exact_rows(scores), pos_sets)
    assert all(p >= 1 for _, _, p in expected)
    for chunk in CHUNKS:
        counts = cm.rank_counts(scores, positives, chunk_size=chunk)
        check_output_types(counts, lib, n_queries)
        assert counts_list(counts) == expected, (chunk, scores, pos_sets)
        assert as_list(counts.has_positive) == [True] * n_queries
    # the input is left as it was
    assert scores.tolist() == before.tolist()


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16"])
def test_small_integer_dtypes_match_naive_loop(kernel, dtype, lib):
    rng = seeded("small-int", kernel, dtype, lib)
    values = rng.integers(0, 4, size=(6, 8)).astype(np.int64)
    scores = make_scores(values, dtype, lib)
    positives, pos_sets = make_positives(rng, "ragged", 6, 8, lib)
    counts = cm.rank_counts(scores, positives)
    check_output_types(counts, lib, 6)
    assert counts_list(counts) == oracle_counts(exact_rows(scores), pos_sets)


EXTREMES = {
    # the largest finite values (their differences overflow the dtype) and subnormals
    "float16": [65504.0, -65504.0, 2.0**-24, -(2.0**-24), 0.0, 2.0**-23],
    "bfloat16": [
        float(torch.finfo(torch.bfloat16).max),
        -float(torch.finfo(torch.bfloat16).max),
        2.0**-133,
        -(2.0**-133),
        0.0,
        2.0**-132,
    ],
    "float32": [
        float(np.finfo(np.float32).max),
        -float(np.finfo(np.float32).max),
        2.0**-149,
        -(2.0**-149),
        0.0,
        2.0**-148,
    ],
    "float64": [
        float(np.finfo(np.float64).max),
        -float(np.finfo(np.float64).max),
        5e-324,
        -5e-324,
        0.0,
        1e-323,
    ],
    "int32": [2**31 - 1, -(2**31), 1, -1, 0, 2**31 - 2],
    "int64": [2**63 - 1, -(2**63), 1, -1, 0, 2**63 - 2],
}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_finite_scores_are_counted_exactly(kernel, dtype, order, lib):
    """Finite scores at the ends of the range, and subnormals, are scores like any other:
    not refused as non-finite, and compared exactly."""
    skip_numpy_bfloat16(lib, dtype)
    rng = seeded("extreme", kernel, dtype, order, lib)
    palette = EXTREMES[dtype]
    n_queries, g = 8, 10
    choice = rng.integers(0, len(palette), size=(n_queries, g))
    rows = [[palette[c] for c in row] for row in choice.tolist()]
    rows[0] = [palette[0]] * (g // 2) + [palette[1]] * (g - g // 2)  # max and -max only
    if lib == "numpy":
        base = np.array(rows, dtype=dtype)
        scores = base if order == "C" else np.ascontiguousarray(base.T).T
    else:
        base = torch.tensor(rows, dtype=getattr(torch, dtype))
        scores = base if order == "C" else base.T.contiguous().T
    assert scores.tolist() == rows  # the palette is exact in the dtype
    positives, pos_sets = make_positives(rng, "ragged", n_queries, g, lib)
    expected = oracle_counts(exact_rows(scores), pos_sets)
    for chunk in CHUNKS:
        counts = cm.rank_counts(scores, positives, chunk_size=chunk)
        assert counts_list(counts) == expected, (chunk, rows, pos_sets)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_queries_without_positive(kernel, dtype, lib):
    skip_numpy_bfloat16(lib, dtype)
    rng = seeded("empty", kernel, dtype, lib)
    values = tie_heavy_values(rng, 4, 6, dtype)
    scores = make_scores(values, dtype, lib)
    lists = [[2, 2], [], [0, 5], []]
    mask = np.zeros((4, 6), dtype=bool)
    for q, cols in enumerate(lists):
        mask[q, cols] = True
    if lib == "torch":
        mask = torch.from_numpy(mask)
    expected = oracle_counts(exact_rows(scores), [set(c) for c in lists])
    assert expected[1] == expected[3] == (0, 0, 0)
    for positives in (lists, mask):
        counts = cm.rank_counts(scores, positives, empty="miss")
        check_output_types(counts, lib, 4)
        assert counts_list(counts) == expected
        assert as_list(counts.has_positive) == [True, False, True, False]
        assert as_list(counts.ranks())[1] == math.inf
        assert as_list(counts.hits(6))[1] == 0.0
        with pytest.raises(ValueError):
            cm.rank_counts(scores, positives)


# --------------------------------------------------------------------------- 2. additivity


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("n_parts", [2, 3, 4])
@pytest.mark.parametrize("form", ["ragged", "mask"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_counts_of_gallery_parts_add_up(kernel, dtype, form, n_parts, lib):
    skip_numpy_bfloat16(lib, dtype)
    rng = seeded("parts", kernel, dtype, form, n_parts, lib)
    n_queries, g = 8, 14
    scores = make_scores(tie_heavy_values(rng, n_queries, g, dtype), dtype, lib)
    pos_sets = random_pos_sets(rng, n_queries, g, 3)
    pos_sets[0] = {int(rng.integers(g))}  # a single positive: some part lacks it
    rows = exact_rows(scores)
    best = [max(row[j] for j in pos) for row, pos in zip(rows, pos_sets, strict=True)]
    whole = oracle_counts(rows, pos_sets)

    perm = rng.permutation(g)
    cuts = sorted(rng.choice(np.arange(1, g), size=n_parts - 1, replace=False).tolist())
    parts = np.split(perm, cuts)
    total = None
    saw_empty = False
    for cols in parts:
        cols = cols.tolist()
        sub = scores[:, cols] if lib == "numpy" else scores[:, torch.tensor(cols)]
        sub_sets = [{i for i, j in enumerate(cols) if j in pos} for pos in pos_sets]
        saw_empty |= any(not s for s in sub_sets)
        if form == "ragged":
            sub_pos = [sorted(s) for s in sub_sets]
        else:
            mask = np.zeros((n_queries, len(cols)), dtype=bool)
            for q, s in enumerate(sub_sets):
                mask[q, sorted(s)] = True
            sub_pos = torch.from_numpy(mask) if lib == "torch" else mask
        part = cm.rank_counts(sub, sub_pos, best=to_best(best, dtype, lib))
        check_output_types(part, lib, n_queries)
        assert counts_list(part) == oracle_counts(exact_rows(sub), sub_sets, best=best)
        total = part if total is None else total + part
    assert saw_empty
    check_output_types(total, lib, n_queries)
    assert counts_list(total) == whole
    full = cm.rank_counts(scores, [sorted(s) for s in pos_sets])
    assert counts_list(full) == whole
    for ties in TIES:
        assert as_list(total.ranks(ties)) == as_list(full.ranks(ties))


def test_best_equal_to_the_parts_own_best_gives_the_plain_counts(kernel):
    scores = np.array([[0.9, 0.1, 0.5, 0.5], [0.2, 0.8, 0.8, 0.3]])
    plain = cm.rank_counts(scores, [[2], [1]])
    against = cm.rank_counts(scores, [[2], [1]], best=np.array([0.5, 0.8]))
    assert counts_list(plain) == counts_list(against) == [(1, 1, 1), (0, 1, 1)]


# --------------------------------------------------------------------------- 3. ranks


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "int64"])
@pytest.mark.parametrize("ties", TIES)
def test_ranks_follow_the_definition(kernel, ties, dtype, lib):
    rng = seeded("ranks", kernel, ties, dtype, lib)
    n_queries, g = 12, 10
    scores = make_scores(tie_heavy_values(rng, n_queries, g, dtype), dtype, lib)
    pos_sets = random_pos_sets(rng, n_queries, g, 4)
    pos_sets[5] = set()
    lists = [sorted(s) for s in pos_sets]
    counts = cm.rank_counts(scores, lists, empty="miss")
    expected = [
        oracle_rank(a, n, p, ties) for a, n, p in oracle_counts(exact_rows(scores), pos_sets)
    ]
    got = counts.ranks(ties)
    if lib == "numpy":
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
    else:
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    got = as_list(got)
    assert got[5] == math.inf
    for e, r in zip(expected, got, strict=True):
        assert r == pytest.approx(float(e), rel=1e-15, abs=0)
    pr = cm.positive_ranks(scores, lists, ties=ties, empty="miss")
    assert type(pr) is type(counts.ranks(ties))
    assert as_list(pr) == got
    if ties == "expected":
        assert as_list(counts.ranks()) == got
        assert as_list(cm.positive_ranks(scores, lists, empty="miss")) == got


def test_ranks_of_constructed_counts():
    triples = [(a, n, p) for a in range(4) for n in range(5) for p in range(1, 5)] + [(0, 0, 0)]
    a, n, p = (np.array(x, dtype=np.int64) for x in zip(*triples, strict=True))
    for lib in LIBS:
        counts = (
            cm.RankCounts(a, n, p)
            if lib == "numpy"
            else cm.RankCounts(torch.from_numpy(a), torch.from_numpy(n), torch.from_numpy(p))
        )
        for ties in TIES:
            got = as_list(counts.ranks(ties))
            for (ai, ni, pi), r in zip(triples, got, strict=True):
                assert r == pytest.approx(float(oracle_rank(ai, ni, pi, ties)), rel=1e-15, abs=0)


# --------------------------------------------------------------------------- 4. expected recall

HIT_TRIPLES = [(a, n, p) for a in (0, 1, 2, 5) for p in range(1, 8) for n in range(8 - p)]


def test_oracle_brute_force_agrees_with_the_closed_form():
    # sanity check of the two oracles against each other (no library code involved)
    for a, n, p in HIT_TRIPLES:
        for k in range(1, a + n + p + 2):
            assert brute_force_hit(a, n, p, k) == comb_hit(a, n, p, k)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32"])
def test_expected_hits_equal_brute_force_over_tie_orderings(kernel, dtype, lib):
    rng = seeded("hits", kernel, dtype, lib)
    g = 5 + 7 + 3
    rows, lists = [], []
    for a, n, p in HIT_TRIPLES:
        # a items at 3, n negatives and p positives tied at 2, the rest at 1 or 0,
        # one of them a further (lower) positive
        row = [3] * a + [2] * (n + p) + [1] * (g - a - n - p - 1) + [0]
        cols = rng.permutation(g).tolist()
        shuffled = [0] * g
        for src, dst in enumerate(cols):
            shuffled[dst] = row[src]
        rows.append(shuffled)
        lists.append([cols[a + n + i] for i in range(p)] + [cols[g - 1]])
    values = np.array(rows, dtype=np.float64)
    scores = make_scores(values, dtype, lib)
    counts = cm.rank_counts(scores, lists)
    assert counts_list(counts) == HIT_TRIPLES
    for k in range(1, g + 2):
        got = counts.hits(k)
        if lib == "numpy":
            assert isinstance(got, np.ndarray) and got.dtype == np.float64
        else:
            assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
        assert as_list(got) == as_list(counts.hits(k, ties="expected"))
        expected = [brute_force_hit(a, n, p, k) for a, n, p in HIT_TRIPLES]
        for (a, n, p), e, h in zip(HIT_TRIPLES, expected, as_list(got), strict=True):
            assert abs(h - float(e)) <= 1e-12, ((a, n, p), k, e, h)
        recall = cm.recall_at_k(counts, k=k)
        assert list(recall) == [k]
        assert recall[k] == pytest.approx(float(sum(expected) / len(expected)), abs=1e-12)
        for ties in ("optimistic", "pessimistic", "average"):
            thresholded = [
                1.0 if oracle_rank(a, n, p, ties) <= k else 0.0 for a, n, p in HIT_TRIPLES
            ]
            assert as_list(counts.hits(k, ties=ties)) == thresholded
            assert cm.recall_at_k(counts, k=k, ties=ties)[k] == pytest.approx(
                sum(thresholded) / len(thresholded), abs=1e-15
            )


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_scores_give_chance_recall(kernel, dtype, lib):
    skip_numpy_bfloat16(lib, dtype)
    g = 40
    scores = make_scores(np.full((g, g), 3.0), dtype, lib)
    targets = np.arange(g) if lib == "numpy" else torch.arange(g)
    counts = cm.rank_counts(scores, targets)
    assert counts_list(counts) == [(0, g - 1, 1)] * g
    recall = cm.recall_at_k(counts, k=(1, 5, 10))
    assert list(recall) == [1, 5, 10]
    for k in (1, 5, 10):
        assert recall[k] == pytest.approx(k / g, abs=1e-12)
        assert cm.recall_at_k(counts, k=k, ties="expected")[k] == recall[k]
        assert cm.recall_at_k(counts, k=k, ties="average")[k] == 0.0
        assert cm.recall_at_k(counts, k=k, ties="pessimistic")[k] == 0.0
        assert cm.recall_at_k(counts, k=k, ties="optimistic")[k] == 1.0


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("form", ["index", "ragged"])
def test_tie_free_recall_is_the_same_for_every_policy(kernel, form, lib):
    rng = seeded("tie-free", kernel, form, lib)
    n_queries, g = 30, 25
    values = np.stack([rng.permutation(g) for _ in range(n_queries)]).astype(np.float64) / 7
    scores = make_scores(values, "float64", lib)
    positives, pos_sets = make_positives(rng, form, n_queries, g, lib)
    counts = cm.rank_counts(scores, positives)
    expected = oracle_counts(exact_rows(scores), pos_sets)
    assert all(n == 0 and p == 1 for _, n, p in expected)
    assert counts_list(counts) == expected
    ks = (1, 2, 5, 10, 25)
    by_policy = {t: cm.recall_at_k(counts, k=ks, ties=t) for t in TIES}
    for t in TIES:
        assert by_policy[t] == by_policy["expected"]
        assert as_list(counts.ranks(t)) == [float(a + 1) for a, _, _ in expected]
    ranks = [a + 1 for a, _, _ in expected]
    plain = {k: sum(r <= k for r in ranks) / n_queries for k in ks}
    for k in ks:
        assert by_policy["expected"][k] == pytest.approx(plain[k], abs=1e-15)
    assert cm.recall_at_k(counts.ranks("optimistic"), k=ks) == by_policy["optimistic"]
    assert cm.recall_at_k(counts, k=ks) == by_policy["expected"]


# --------------------------------------------------------------------------- 5. large counts


@pytest.mark.parametrize("lib", LIBS)
def test_large_ties_do_not_overflow(kernel, lib):
    g = 200_000
    values = np.zeros((2, g))
    values[1, :5] = 1.0  # five items above the tie in the second row
    scores = make_scores(values, "float32", lib)
    lists = [[5, 77, g - 1], [6, 100, g - 1]]
    counts = cm.rank_counts(scores, lists)
    triples = [(0, g - 3, 3), (5, g - 8, 3)]
    assert counts_list(counts) == triples
    for k in (1, 10, 1000, 5000, g - 2, g):  # hits(k) costs O(k): keep k moderate
        hits = as_list(counts.hits(k))
        for (a, n, p), h in zip(triples, hits, strict=True):
            expected = comb_hit(a, n, p, k)
            assert 0.0 <= h <= 1.0
            assert h == pytest.approx(float(expected), rel=1e-9, abs=1e-12), (a, n, p, k)
    # k = 10 on the first row: 1 - C(n, 10) / C(n + 3, 10)
    n = g - 3
    exact = 1 - Fraction(math.comb(n, 10), math.comb(n + 3, 10))
    assert as_list(counts.hits(10))[0] == pytest.approx(float(exact), rel=1e-12)


def test_huge_constructed_counts_do_not_overflow():
    # C(n, m) / C(n + p, m) = C(n + p - m, p) / C(n + p, p): exact, small numbers
    triples = [(3, 2**40, 2), (0, 2**31 + 7, 1), (10, 10**12, 5), (0, 3, 10**9)]
    a, n, p = (np.array(x, dtype=np.int64) for x in zip(*triples, strict=True))
    counts = cm.RankCounts(a, n, p)
    for k in (1, 4, 100, 10_000):
        hits = as_list(counts.hits(k))
        for (ai, ni, pi), h in zip(triples, hits, strict=True):
            m = k - ai
            if m <= 0:
                expected = Fraction(0)
            elif m > ni:
                expected = Fraction(1)
            else:
                expected = 1 - Fraction(math.comb(ni + pi - m, pi), math.comb(ni + pi, pi))
            assert 0.0 <= h <= 1.0
            assert h == pytest.approx(float(expected), rel=1e-9, abs=1e-12), (ai, ni, pi, k)
        ranks = as_list(counts.ranks())
        for (ai, ni, pi), r in zip(triples, ranks, strict=True):
            assert r == pytest.approx(float(ai + Fraction(ni + pi + 1, pi + 1)), rel=1e-15)


# --------------------------------------------------------------------------- 6. non-finite


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("form", ["index", "mask"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_scores_are_refused_with_their_position(kernel, bad, dtype, order, form, lib):
    skip_numpy_bfloat16(lib, dtype)
    n_queries, g = 5, 7
    targets = [0, 2, 4, 6, 1]
    # (row, col): a negative, then the positive of that row itself
    for r, c in ((3, 4), (1, 2)):
        values = np.arange(n_queries * g, dtype=np.float64).reshape(n_queries, g) % 5
        values[r, c] = bad
        scores = make_scores(values, dtype, lib, order)
        if form == "index":
            positives = np.array(targets)
        else:
            positives = np.zeros((n_queries, g), dtype=bool)
            positives[np.arange(n_queries), targets] = True
            positives[:, g - 1] = True
        if lib == "torch":
            positives = torch.from_numpy(positives)
        for chunk in (1, None):
            with pytest.raises(ValueError, match=rf"\[{r}, {c}\]"):
                cm.rank_counts(scores, positives, chunk_size=chunk)


# --------------------------------------------------------------------------- 7. kernels agree


def numpy_oracle(s, mask):
    """Vectorized counts for large matrices (float comparisons are exact)."""
    b = np.where(mask, s, -np.inf).max(axis=1)
    above = (s > b[:, None]).sum(axis=1)
    tied = s == b[:, None]
    p = (tied & mask).sum(axis=1)
    return above, tied.sum(axis=1) - p, p


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("layout", ["index", "mask", "transposed"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_and_torch_kernels_agree(monkeypatch, dtype, layout, lib):
    rng = seeded("kernels", dtype, layout, lib)
    n_queries, g = 300, 2000
    s = rng.standard_normal((n_queries, g)).astype(dtype)
    s[:, 1500:1600] = s[:, :100]  # duplicated columns
    s[:, 1900:] = np.round(s[:, 1900:], 1)  # coarse values: more ties
    targets = rng.integers(0, g, size=n_queries)
    targets[::3] = rng.integers(0, 100, size=len(targets[::3]))  # tied with a duplicate
    mask = np.zeros((n_queries, g), dtype=bool)
    if layout == "mask":
        mask[rng.random((n_queries, g)) < 0.002] = True
        mask[np.arange(n_queries), targets] = True
        mask[::4, 1500:1503] = True  # positives tied with each other
        positives = mask.copy()
    else:
        mask[np.arange(n_queries), targets] = True
        positives = targets
    scores = np.ascontiguousarray(s.T).T if layout == "transposed" else s
    if lib == "torch":
        scores = (
            torch.from_numpy(np.ascontiguousarray(s.T)).T
            if layout == "transposed"
            else (torch.from_numpy(s))
        )
        positives = torch.from_numpy(positives)
    expected = [x.tolist() for x in numpy_oracle(s, mask)]
    results = {}
    for kernel in KERNELS:
        monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
        for chunk in (7, None):
            counts = cm.rank_counts(scores, positives, chunk_size=chunk)
            check_output_types(counts, lib, n_queries)
            results[kernel, chunk] = [
                as_list(counts.above),
                as_list(counts.tied_negatives),
                as_list(counts.tied_positives),
            ]
            assert results[kernel, chunk] == expected, (kernel, chunk)
    assert sum(expected[1]) > 0  # the data did have tied negatives


# --------------------------------------------------------------------------- RankCounts API


@pytest.mark.parametrize("lib", LIBS)
def test_indexing_and_addition(lib):
    a = np.array([0, 3, 1, 2, 0], dtype=np.int64)
    n = np.array([1, 0, 2, 0, 0], dtype=np.int64)
    p = np.array([1, 2, 1, 1, 0], dtype=np.int64)
    wrap = torch.from_numpy if lib == "torch" else (lambda x: x)
    counts = cm.RankCounts(wrap(a), wrap(n), wrap(p))
    triples = list(zip(a.tolist(), n.tolist(), p.tolist(), strict=True))
    assert len(counts) == 5
    assert as_list(counts.has_positive) == [True, True, True, True, False]
    assert counts_list(counts[1:4]) == triples[1:4]
    idx = np.array([4, 0, 0])
    assert counts_list(counts[wrap(idx)]) == [triples[i] for i in idx]
    sel = np.array([True, False, True, False, True])
    assert counts_list(counts[wrap(sel)]) == [t for t, s in zip(triples, sel, strict=True) if s]
    check_output_types(counts[1:4], lib, 3)
    total = counts + counts
    check_output_types(total, lib, 5)
    assert counts_list(total) == [(2 * x, 2 * y, 2 * z) for x, y, z in triples]


# --------------------------------------------------------------------------- 8. bad input


def _counts(*triples):
    a, n, p = (np.array(x, dtype=np.int64) for x in zip(*triples, strict=True))
    return cm.RankCounts(a, n, p)


def _bad_cases():
    i64 = np.int64
    two = _counts((0, 0, 1), (1, 0, 1))
    one = _counts((0, 0, 1))
    s = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.8]])
    return {
        "add-mismatched-lengths": (lambda: two + one, "queries"),
        "negative-above": (
            lambda: cm.RankCounts(np.array([0, -1]), np.array([0, 0]), np.array([1, 1])),
            "above",
        ),
        "negative-tied-negatives": (
            lambda: cm.RankCounts(np.array([0, 0]), np.array([0, -2]), np.array([1, 1])),
            "tied_negatives",
        ),
        "negative-tied-positives": (
            lambda: cm.RankCounts(np.array([0, 0]), np.array([0, 0]), np.array([-1, 1])),
            "tied_positives",
        ),
        "float-above": (
            lambda: cm.RankCounts(np.array([0.0, 1.0]), np.zeros(2, i64), np.ones(2, i64)),
            "above",
        ),
        "float-tied-positives": (
            lambda: cm.RankCounts(np.zeros(2, i64), np.zeros(2, i64), np.ones(2)),
            "tied_positives",
        ),
        "float-tensor-tied-negatives": (
            lambda: cm.RankCounts(
                torch.zeros(2, dtype=torch.int64), torch.zeros(2), torch.ones(2, dtype=torch.int64)
            ),
            "tied_negatives",
        ),
        "constructor-mismatched-lengths": (
            lambda: cm.RankCounts(np.zeros(2, i64), np.zeros(3, i64), np.ones(2, i64)),
            "tied_negatives",
        ),
        "best-wrong-length": (lambda: cm.rank_counts(s, [[0], [1]], best=[0.5]), "best"),
        "positive-above-best": (
            lambda: cm.rank_counts(s, [[0], [1]], best=np.array([0.5, 0.8])),
            "best",
        ),
        "ranks-ties-random": (lambda: two.ranks("random"), "ties"),
        "hits-ties-random": (lambda: two.hits(1, ties="random"), "ties"),
        "recall-ties-random": (lambda: cm.recall_at_k(two, ties="random"), "ties"),
        "positive-ranks-ties-random": (lambda: cm.positive_ranks(s, [0, 1], ties="random"), "ties"),
        "hits-k-0": (lambda: two.hits(0), "k"),
        "recall-k-0": (lambda: cm.recall_at_k(two, k=0), "k"),
        "recall-k-0-in-list": (lambda: cm.recall_at_k(two, k=(1, 0)), "k"),
        "recall-ties-with-ranks": (
            lambda: cm.recall_at_k(np.array([1.0, 2.0]), ties="expected"),
            "ties",
        ),
        "chunk-size-0": (lambda: cm.rank_counts(s, [0, 1], chunk_size=0), "chunk_size"),
        "empty-invalid": (lambda: cm.rank_counts(s, [0, 1], empty="skip"), "empty"),
        "index-out-of-range": (lambda: cm.rank_counts(s, [0, 3]), "positives"),
        "no-positive": (lambda: cm.rank_counts(s, [[0], []]), "positive"),
    }


@pytest.mark.parametrize("case", sorted(_bad_cases()))
def test_bad_input_is_refused_naming_the_argument(kernel, case):
    call, name = _bad_cases()[case]
    with pytest.raises(ValueError, match=name):
        call()


def test_kernel_setting_is_read_at_call_time(monkeypatch):
    scores = np.zeros((2, 3), dtype=np.float32)
    monkeypatch.setenv("CCR_METRICS_KERNEL", "no-such-kernel")
    with pytest.raises(ValueError, match="CCR_METRICS_KERNEL"):
        cm.rank_counts(scores, [0, 1])
    monkeypatch.setenv("CCR_METRICS_KERNEL", "numba")
    assert counts_list(cm.rank_counts(scores, [0, 1])) == [(0, 2, 1), (0, 2, 1)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_counts_match_naive_loop(kernel, dtype, form):
    rng = seeded("cuda", kernel, dtype, form)
    scores = make_scores(tie_heavy_values(rng, 7, 9, dtype), dtype, "torch").cuda()
    positives, pos_sets = make_positives(rng, form, 7, 9, "torch")
    if isinstance(positives, torch.Tensor):
        positives = positives.cuda()
    expected = oracle_counts(exact_rows(scores.cpu()), pos_sets)
    for chunk in CHUNKS:
        counts = cm.rank_counts(scores, positives, chunk_size=chunk)
        check_output_types(counts, "torch", 7, device=scores.device)
        assert counts_list(counts) == expected


# ------------------------------------------------- serial kernel, unaligned masks


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("form", ["index", "mask", "view"])
def test_one_thread_serial_kernel_matches_naive_loop(one_thread, monkeypatch, dtype, form):
    """On one torch thread the serial build of the numba kernel serves the call."""
    monkeypatch.setenv("CCR_METRICS_KERNEL", "numba")
    rng = seeded("serial", dtype, form)
    scores = rng.integers(-2, 3, (40, 70)).astype(dtype)
    index = rng.integers(0, 70, 40)
    rows = exact_rows(scores)
    expected = oracle_counts(rows, [{j} for j in index])
    if form == "mask":
        positives = np.zeros(scores.shape, dtype=bool)
        positives[np.arange(40), index] = True
        got = cm.rank_counts(scores, positives)
    elif form == "view":
        got = cm.rank_counts(np.ascontiguousarray(scores.T).T, index)
    else:
        got = cm.rank_counts(scores, index)
    assert list(zip(got.above, got.tied_negatives, got.tied_positives, strict=True)) == expected


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("skip", [1, 3, 5])
def test_a_mask_sliced_from_a_larger_one_is_read_whole(monkeypatch, kernel, skip):
    """A mask that starts off an 8-byte boundary (rows sliced off) loses no positive."""
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    rng = seeded("sliced mask", kernel, skip)
    scores = rng.integers(-2, 3, (20, 13)).astype(np.float32)
    mask = rng.random((20, 13)) < 0.25
    mask[:, 0] = True
    got = cm.rank_counts(torch.from_numpy(scores[skip:]), torch.from_numpy(mask)[skip:])
    expected = oracle_counts(
        exact_rows(scores[skip:]), [set(np.flatnonzero(r)) for r in mask[skip:]]
    )
    triples = zip(
        got.above.tolist(), got.tied_negatives.tolist(), got.tied_positives.tolist(), strict=True
    )
    assert list(triples) == expected
