"""Re-ranking's first stage from one product: candidates of rows and columns, counts, pairs.

With a scorer, ``evaluate`` takes each query's candidates and the counts behind them
from the one pass over the image x text tiles (``harness/one_pass_stage.py``): rows
select their texts with ``select_top``, columns their images with ``ColumnTop`` across
blocks. The oracles: a stable sort for the candidates (higher score first, equal
scores in index order), the per-direction first stage of text x image products where
every score is exact (whole-number embeddings), and a plain loop for the pairs scored.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_one_pass import problem, tile_scores
from test_selection import KINDS, oracle, rows_of, tile_major

from ccr_metrics.core._counting import numba_available
from ccr_metrics.core._selection import ColumnTop
from ccr_metrics.harness.one_pass_stage import one_pass_stages
from ccr_metrics.harness.second_stage import FirstStage, first_stage, pair_scores
from ccr_metrics.harness.stream import captions_of_images, image_of_texts

pytestmark = pytest.mark.filterwarnings("ignore:the texts of the languages cover:UserWarning")

KERNELS = ("numba", "torch")


class _Bar:
    def update(self) -> None:
        pass


def _refuse(row: int, column: int, value: float) -> None:
    raise ValueError(f"non-finite {value} at {row}, {column}")


def _kernel(kernel: str, monkeypatch) -> None:
    if kernel == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", [*KINDS, "every 4th row high"])
@pytest.mark.parametrize("k", [1, 16, 40])
@pytest.mark.parametrize("first_block", ["below k", "2k or more"])
def test_column_top_is_the_stable_sort_prefix_of_each_column(
    kernel, dtype, kind, k, first_block, monkeypatch
):
    """Blocks of rows of uneven heights: the first below k (no primed threshold) or of
    2k rows or more (thresholds primed from every 4th row), then smaller and larger
    ones; heavy ties, ascending runs (most cuts), and sampled rows far above the rest
    (a primed threshold too high: those columns are merged again)."""
    _kernel(kernel, monkeypatch)
    rng = np.random.default_rng(k * 11 + len(kind))
    n_rows, n_columns = 230, 301
    if kind == "every 4th row high":
        matrix = rng.standard_normal((n_rows, n_columns))
        matrix[::4] += 10
    else:
        matrix = rows_of(kind, n_rows, n_columns, rng)
    matrix = matrix.astype(dtype)
    heights = [max(1, k // 2), 3, 61, 100] if first_block == "below k" else [2 * k + 9, 1, 44, 70]
    top = ColumnTop(n_columns, k, torch.from_numpy(matrix).dtype, torch.device("cpu"))
    start = 0
    for height in [*heights, n_rows]:
        stop = min(start + height, n_rows)
        if stop <= start:
            break
        block, lo, hi, first = tile_major(matrix[start:stop], 128, 5)
        block = block.astype(dtype)
        # Padding rows below the real ones, as the harness's blocks have.
        padded = np.concatenate([block, np.full_like(block[:, :2], 1e30)], axis=1)
        top.add(
            torch.from_numpy(np.ascontiguousarray(padded)), (0, stop - start, start), lo, hi, first
        )
        start = stop
    values, index = top.result()
    expected = oracle(matrix.T, k)
    assert index.numpy().tolist() == expected.tolist()
    assert values.numpy().tolist() == np.take_along_axis(matrix.T, expected, 1).tolist()


CASES = [
    ("integer", 41, 70, 8, 1, 5),
    ("integer", 300, 30, 3, 5, 7),  # most images without a caption
    ("integer", 12, 40, 2, 6, 50),  # k above both galleries
    ("equal", 9, 20, 4, 3, 4),  # every score tied
]


def _old_stages(images, texts, owner, k, rows):
    """The per-direction first stage: each direction streams its own product."""
    out = {}
    for d, queries, gallery, positives in (
        ("i2t", images, texts, captions_of_images(owner)),
        ("t2i", texts, images, image_of_texts(owner)),
    ):
        out[d] = first_stage(queries, gallery, positives, rows, k, _Bar(), _refuse)
    return out


def _same(a: FirstStage, b: FirstStage) -> None:
    assert a.candidates.tolist() == b.candidates.tolist()
    assert [c.tolist() for c in a.coarse[0]] == [c.tolist() for c in b.coarse[0]]
    assert a.coarse[1].tolist() == b.coarse[1].tolist()
    for x, y in zip(a.positives, b.positives, strict=True):
        assert x.tolist() == y.tolist()
    assert a.is_query.tolist() == b.is_query.tolist()


@pytest.mark.parametrize(("kind", "n", "m", "dim", "seed", "k"), CASES)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("block_rows", [8, 512])
def test_one_pass_stages_equal_the_per_direction_first_stages(
    kind, n, m, dim, seed, k, kernel, block_rows, monkeypatch
):
    """Whole-number embeddings: every score is exact in either product's orientation,
    so the two routes must agree on candidates, counts and positives to the last tie."""
    _kernel(kernel, monkeypatch)
    images, texts, owner = problem(kind, n, m, dim, seed)
    new = one_pass_stages(images, texts, owner, k, block_rows, _Bar(), _refuse)
    old = _old_stages(images, texts, owner, k, block_rows)
    _same(new["i2t"], old["i2t"])
    _same(new["t2i"], old["t2i"])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("kind", ["float", "duplicate"])
def test_one_pass_candidates_are_the_top_k_of_the_tile_scores(kind, kernel, monkeypatch):
    """Float embeddings: the candidates of both directions are the stable-sort top k of
    the very scores the tiles hold, and the counts behind them are a loop's."""
    _kernel(kernel, monkeypatch)
    images, texts, owner = problem(kind, 70, 150, 12, 9)
    k = 20
    stages = one_pass_stages(images, texts, owner, k, 8, _Bar(), _refuse)
    scores = tile_scores(images, texts).double().numpy()
    assert stages["i2t"].candidates.tolist() == oracle(scores, k).tolist()
    assert stages["t2i"].candidates.tolist() == oracle(scores.T, k).tolist()
    # The non-candidate segment of text queries whose image is not a candidate.
    coarse, has_other = stages["t2i"].coarse
    own = owner.numpy()
    for j in range(texts.shape[0]):
        column, cand = scores[:, j], set(stages["t2i"].candidates[j].tolist())
        assert bool(has_other[j]) == (own[j] not in cand)
        if own[j] in cand:
            continue
        best = column[own[j]]
        rest = [i for i in range(images.shape[0]) if i not in cand]
        assert int(coarse[0][j]) == k + sum(column[i] > best for i in rest)
        assert int(coarse[1][j]) == sum(column[i] == best for i in rest) - 1


def _stage(candidates: torch.Tensor, is_query: torch.Tensor) -> FirstStage:
    empty = torch.zeros(0, dtype=torch.long)
    return FirstStage(candidates, ((empty, empty, empty), empty.bool()), None, is_query)  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ["index order", "shuffled"])
def test_pair_scores_scores_each_needed_pair_once(order):
    """Every (image, text) pair either direction needs is scored exactly once, and each
    slot reads its own pair's score; candidates out of index order take the sort."""
    g = torch.Generator().manual_seed(4)
    n_images, n_texts, k = 30, 50, 9
    i2t = torch.stack([torch.randperm(n_texts, generator=g)[:k] for _ in range(n_images)])
    # Each text's candidates: the images listing it (pairs both directions need) first,
    # then others, k distinct in all.
    rows = []
    for j in range(n_texts):
        listing = [i for i in range(n_images) if j in i2t[i].tolist()][: k // 2]
        others = [i for i in torch.randperm(n_images, generator=g).tolist() if i not in listing]
        rows.append(torch.tensor((listing + others)[:k])[torch.randperm(k, generator=g)])
    t2i = torch.stack(rows)
    if order == "index order":
        i2t, t2i = i2t.sort(1).values, t2i.sort(1).values
    is_query = torch.rand(n_images, generator=g) > 0.2
    calls = []

    def scorer(language, image, text):
        calls.extend(zip(image.tolist(), text.tolist(), strict=True))
        return (image * 1000 + text).double()

    fine_i2t, fine_t2i = pair_scores(
        scorer,
        "en",
        _stage(i2t, is_query),
        _stage(t2i, torch.ones(n_texts).bool()),
        7,
        False,
    )
    needed = {(i, int(t)) for i in range(n_images) if is_query[i] for t in i2t[i]}
    needed |= {(int(i), j) for j in range(n_texts) for i in t2i[j]}
    assert sorted(calls) == sorted(needed)
    for i in range(n_images):
        for s, t in enumerate(i2t[i].tolist()):
            assert fine_i2t[i, s] == (i * 1000 + t if is_query[i] else 0)
    for j in range(n_texts):
        for s, i in enumerate(t2i[j].tolist()):
            assert fine_t2i[j, s] == i * 1000 + j


def test_column_top_refuses_scores_of_another_dtype():
    """The compiled merge would compare float64 scores with float32 thresholds."""
    top = ColumnTop(3, 1, torch.float32, torch.device("cpu"))
    with pytest.raises(TypeError, match=r"scores are torch\.float64"):
        top.add(torch.zeros((1, 2, 3), dtype=torch.float64), (0, 2, 0), [0], [3], [0])
