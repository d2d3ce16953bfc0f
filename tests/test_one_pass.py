"""Both directions from one product: the one-pass count against naive counts of the same scores.

The one pass (``harness/one_pass.py``) counts image rows and text columns of each tile
in one read, on threshold intervals, and reads the exact thresholds off the tiles. Its
oracle here is a naive count over the very tile scores it reads (the image x text tile
grid), in plain loops; its fallbacks (an interval that misses its threshold, records
over budget) must give the same counts, and so must both kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from gloo import process_group

import ccr_metrics as cm
import ccr_metrics.harness.one_pass as one_pass
from ccr_metrics.core._two_way import TwoWayCounter, near_ties
from ccr_metrics.harness.tiles import GalleryTiles, padded_queries, score_block, tiling_for

pytestmark = pytest.mark.filterwarnings("ignore:the texts of the languages cover:UserWarning")


class _Bar:
    def update(self) -> None:
        pass


def _refuse(row: int, column: int, value: float) -> None:
    raise ValueError(f"non-finite {value} at image {row}, text {column}")


def tile_scores(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """The image x text scores as the tile grid makes them, ``[N, M]``."""
    tiling = tiling_for(images.shape[0], texts.shape[0], images.device)
    tiles = GalleryTiles(texts, 0, tiling.gallery)
    height = -(-images.shape[0] // tiling.queries) * tiling.queries
    block = score_block(padded_queries(images, 0, 0, height), tiles, tiling)
    full = block.scores.permute(1, 0, 2).reshape(height, -1)
    return full[: images.shape[0], : texts.shape[0]]


def naive_counts(scores: torch.Tensor, owner: torch.Tensor):
    """Loop counts of both directions: (above, tied negatives, tied positives) per query."""
    s = scores.tolist()
    n, m = scores.shape
    owner = owner.tolist()
    i2t = np.zeros((3, n), dtype=np.int64)
    for i in range(n):
        captions = [j for j in range(m) if owner[j] == i]
        if not captions:
            continue
        best = max(s[i][j] for j in captions)
        i2t[0, i] = sum(s[i][j] > best for j in range(m))
        i2t[2, i] = sum(s[i][j] == best for j in captions)
        i2t[1, i] = sum(s[i][j] == best for j in range(m)) - i2t[2, i]
    t2i = np.zeros((3, m), dtype=np.int64)
    for j in range(m):
        best = s[owner[j]][j]
        t2i[0, j] = sum(s[i][j] > best for i in range(n))
        t2i[1, j] = sum(s[i][j] == best for i in range(n)) - 1
        t2i[2, j] = 1
    return i2t, t2i


def as_array(counts) -> np.ndarray:
    return np.stack([counts.above, counts.tied_negatives, counts.tied_positives])


def problem(kind: str, n: int, m: int, dim: int, seed: int, dtype=torch.float32):
    """Images, texts and owners with real ties (``kind``: float, integer, duplicate, equal)."""
    g = torch.Generator().manual_seed(seed)
    owner = torch.randint(0, n, (m,), generator=g)
    if kind == "integer":
        images = torch.randint(-2, 3, (n, dim), generator=g).to(dtype)
        texts = torch.randint(-2, 3, (m, dim), generator=g).to(dtype)
    elif kind == "equal":  # every score ties with every other
        images = torch.ones((n, dim), dtype=dtype)
        texts = torch.ones((m, dim), dtype=dtype)
    else:
        images = torch.randn(n, dim, generator=g, dtype=dtype)
        texts = images[owner] + torch.randn(m, dim, generator=g, dtype=dtype)
        if kind == "duplicate":
            images[1::3] = images[0::3][: images[1::3].shape[0]]
            texts[1::2] = texts[0::2][: texts[1::2].shape[0]]
    return images, texts, owner


CASES = [
    ("float", 37, 90, 16, 0),
    ("integer", 41, 70, 8, 1),
    ("duplicate", 60, 121, 12, 2),
    ("equal", 9, 20, 4, 3),
    ("float", 1, 1, 1, 4),
    ("integer", 300, 30, 3, 5),  # most images without a caption
]


@pytest.mark.quick
@pytest.mark.parametrize(("kind", "n", "m", "dim", "seed"), CASES)
@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_one_pass_counts_equal_naive_counts_of_the_tile_scores(
    kind, n, m, dim, seed, kernel, monkeypatch
):
    if kernel == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    images, texts, owner = problem(kind, n, m, dim, seed)
    i2t, t2i = one_pass.one_pass_counts(images, texts, owner, 7, _Bar(), _refuse)
    expected_i2t, expected_t2i = naive_counts(tile_scores(images, texts), owner)
    np.testing.assert_array_equal(as_array(i2t), expected_i2t)
    np.testing.assert_array_equal(as_array(t2i), expected_t2i)


def _counting_passes(monkeypatch) -> list[int]:
    passes: list[int] = []
    real = one_pass._local_pass

    def counted(*args, **kwargs):
        passes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(one_pass, "_local_pass", counted)
    return passes


@pytest.mark.parametrize(("kind", "n", "m", "dim", "seed"), CASES[:4])
def test_an_interval_that_misses_its_threshold_falls_back_to_an_exact_pass(
    kind, n, m, dim, seed, monkeypatch
):
    """Intervals of one point (the float32 estimate) miss many tile floats: same counts."""
    images, texts, owner = problem(kind, n, m, dim, seed)
    expected = naive_counts(tile_scores(images, texts), owner)

    def one_point(images, texts, owner):
        estimate = (images[owner].double() * texts.double()).sum(1).to(images.dtype)
        return one_pass.Intervals(estimate, estimate)

    monkeypatch.setattr(one_pass, "pair_intervals", one_point)
    passes = _counting_passes(monkeypatch)
    i2t, t2i = one_pass.one_pass_counts(images, texts, owner, 5, _Bar(), _refuse)
    np.testing.assert_array_equal(as_array(i2t), expected[0])
    np.testing.assert_array_equal(as_array(t2i), expected[1])
    # Float products round away from the correctly rounded estimate: those need a second
    # pass; small integers multiply exactly, so their one-point intervals hold.
    assert len(passes) == (2 if kind in ("float", "duplicate") else 1)


def test_records_over_budget_fall_back_to_an_exact_pass(monkeypatch):
    """Every score tied: far more near-ties than the budget keeps; an exact pass counts them."""
    images, texts, owner = problem("equal", 70, 150, 4, 0)
    passes = _counting_passes(monkeypatch)
    i2t, t2i = one_pass.one_pass_counts(images, texts, owner, 16, _Bar(), _refuse)
    assert len(passes) == 2
    expected = naive_counts(tile_scores(images, texts), owner)
    np.testing.assert_array_equal(as_array(i2t), expected[0])
    np.testing.assert_array_equal(as_array(t2i), expected[1])


@pytest.mark.quick
def test_real_rankings_take_one_pass_and_one_product_per_score(monkeypatch):
    images, texts, owner = problem("float", 200, 700, 32, 6)
    passes = _counting_passes(monkeypatch)
    scored: list[int] = []
    real = one_pass.score_block

    def counting(queries, tiles, tiling, buffer=None):
        block = real(queries, tiles, tiling, buffer)
        scored.append(block.scores.numel())
        return block

    monkeypatch.setattr(one_pass, "score_block", counting)
    one_pass.one_pass_counts(images, texts, owner, 50, _Bar(), _refuse)
    tiling = tiling_for(200, 700, images.device)
    padded = (
        -(-200 // tiling.queries) * tiling.queries * (-(-700 // tiling.gallery) * tiling.gallery)
    )
    assert len(passes) == 1
    assert sum(scored) == padded


@pytest.mark.quick
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_intervals_hold_every_tile_score_of_a_text_and_its_image(dtype):
    g = torch.Generator().manual_seed(7)
    for dim in (1, 7, 300):
        images = torch.randn(50, dim, generator=g).to(dtype)
        owner = torch.randint(0, 50, (80,), generator=g)
        texts = (images[owner].float() + 0.5 * torch.randn(80, dim, generator=g)).to(dtype)
        iv = one_pass.pair_intervals(images, texts, owner)
        scores = tile_scores(images, texts)[owner, torch.arange(80)]
        assert iv.lo.dtype == dtype
        assert bool((iv.lo <= scores).all() and (scores <= iv.hi).all()), dim
        assert bool((iv.lo < iv.hi).all())


@pytest.mark.quick
@pytest.mark.parametrize("kernel", ["numba", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_two_way_counter_counts_a_tile_part_like_a_loop(kernel, dtype, monkeypatch):
    if kernel == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-3, 4, (9, 13), generator=g).to(dtype)
    row_lo = torch.randint(-3, 4, (9,), generator=g).to(dtype)
    row_hi = row_lo + torch.randint(0, 2, (9,), generator=g).to(dtype)
    row_lo[4] = torch.inf  # a row that is no query
    col_lo = torch.randint(-3, 4, (20,), generator=g).to(dtype)
    col_hi = col_lo + torch.randint(0, 2, (20,), generator=g).to(dtype)
    counter = TwoWayCounter(col_lo, col_hi)
    rows = torch.zeros((3, 9), dtype=torch.int32)
    counter.count(x, (2, 8), (1, 12, 5), row_lo, row_hi, rows)  # cells [2:8, 1:12], columns 6..16
    above, atleast = counter.column_counts()
    want_rows = np.zeros((3, 9), dtype=np.int64)
    want_above, want_atleast = np.zeros(20, dtype=np.int64), np.zeros(20, dtype=np.int64)
    for r in range(2, 8):
        for c in range(1, 12):
            v, j = float(x[r, c]), 5 + c
            want_rows[0, r] += v > row_hi[r]
            want_rows[1, r] += v >= row_lo[r]
            want_rows[2, r] += col_lo[j] <= v <= col_hi[j]
            want_above[j] += v > col_hi[j]
            want_atleast[j] += v >= col_lo[j]
    np.testing.assert_array_equal(rows.numpy(), want_rows)
    np.testing.assert_array_equal(above.numpy(), want_above)
    np.testing.assert_array_equal(atleast.numpy(), want_atleast)


@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_a_non_finite_score_is_refused_at_its_position(kernel, monkeypatch):
    if kernel == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    images, texts, owner = problem("float", 20, 30, 4, 8)
    images[13, 2] = torch.nan
    with pytest.raises(ValueError, match="image 13, text 0"):
        one_pass.one_pass_counts(images, texts, owner, 4, _Bar(), _refuse)


def test_evaluate_on_all_tied_embeddings_is_exact_through_the_fallback():
    """Through the public API: every score equal, every rank a tie of all items."""
    images = np.ones((40, 3), np.float32)
    texts = {"en": np.ones((90, 3), np.float32)}
    owners = {"en": np.arange(90) % 40}
    report = cm.evaluate(images, texts, owners, device="cpu")
    i2t, t2i = report.counts["en"]["i2t"], report.counts["en"]["t2i"]
    assert (t2i.above == 0).all() and (t2i.tied_negatives == 39).all()
    captions = np.bincount(owners["en"], minlength=40)
    np.testing.assert_array_equal(i2t.tied_positives, captions)
    np.testing.assert_array_equal(i2t.tied_negatives, 90 - captions)


def _sharded_equal_worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    images, texts, owners = _all_tied()
    sizes = [90, 0, 30]
    lo, hi = sum(sizes[:rank]), sum(sizes[: rank + 1])
    keep = (owners >= lo) & (owners < hi)
    with process_group(rank, port, 3, timeout_s=120):
        report = cm.evaluate_sharded(
            images[lo:hi], {"en": texts[keep]}, {"en": owners[keep] - lo}, device="cpu"
        )
    if rank == 0:
        c = report.counts["en"]
        np.save(out, np.stack([as_array(c["i2t"]).ravel()[:120], as_array(c["t2i"]).ravel()[:120]]))


def _all_tied():
    # Every score ties: rank 0 alone holds 90 x 300 near-ties, past its budget, so every
    # process makes the exact pass with it.
    rng = np.random.default_rng(0)
    owners = np.sort(rng.integers(0, 120, 400))
    return np.ones((120, 2), np.float32), np.ones((400, 2), np.float32), owners


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
def test_sharded_all_tied_embeddings_fall_back_together_and_match_one_process(tmp_path, gloo_pool):
    out = tmp_path / "counts.npy"
    gloo_pool.run(_sharded_equal_worker, str(out), nprocs=3)
    images, texts, owners = _all_tied()
    local = cm.evaluate(images, {"en": texts}, {"en": owners}, device="cpu").counts["en"]
    expected = np.stack(
        [as_array(local["i2t"]).ravel()[:120], as_array(local["t2i"]).ravel()[:120]]
    )
    np.testing.assert_array_equal(np.load(out), expected)


@pytest.mark.quick
@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_near_ties_are_the_negatives_inside_an_interval_at_exact_capacity(kernel, monkeypatch):
    if kernel == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    g = torch.Generator().manual_seed(5)
    scores = torch.randint(-2, 3, (3, 6, 8), generator=g).float()  # 3 tiles of 8 columns
    lead, n_local = 3, 17  # texts 0..16 in columns 3..19 of the tile row
    flagged = torch.tensor([0, 2, 5])
    images = torch.tensor([10, 12, 15])
    row_lo, row_hi = torch.tensor([0.0, -1.0, 2.0]), torch.tensor([1.0, -1.0, 2.0])
    col_lo = torch.randint(-2, 3, (n_local,), generator=g).float()
    col_hi = col_lo + torch.randint(0, 2, (n_local,), generator=g).float()
    owner = torch.randint(10, 16, (n_local,), generator=g)
    want_rows, want_cols = [], []
    for i, f in enumerate(flagged.tolist()):
        for j in range(n_local):
            v = float(scores.permute(1, 0, 2).reshape(6, -1)[f, lead + j])
            if int(owner[j]) == int(images[i]):
                continue
            if row_lo[i] <= v <= row_hi[i]:
                want_rows.append((int(images[i]), v))
            if col_lo[j] <= v <= col_hi[j]:
                want_cols.append((j, v))
    capacity = len(want_rows) + len(want_cols)
    found = near_ties(
        scores,
        flagged,
        (lead, n_local),
        (images, row_lo, row_hi),
        (col_lo, col_hi, owner),
        capacity,
    )
    got_rows = sorted(zip(found.row_images.tolist(), found.row_scores.tolist(), strict=True))
    got_cols = sorted(zip(found.col_texts.tolist(), found.col_scores.tolist(), strict=True))
    assert got_rows == sorted(want_rows)
    assert got_cols == sorted(want_cols)
    assert capacity > 5
