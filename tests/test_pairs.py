"""Where each text-to-image candidate pair sits among the image-to-text pairs.

``shared_pairs`` has a compiled loop and a torch path; both must give, for every
text-to-image slot, the position of the same (image, text) pair among the image-to-text
pairs, or -1. The oracle is a dictionary built by a plain loop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccr_metrics.core._counting import numba_available
from ccr_metrics.core._pairs import shared_pairs


def _loop(row_images, texts, images, text_offset):
    where = {}
    for p, image in enumerate(row_images.tolist()):
        for s, text in enumerate(texts[p].tolist()):
            where[(image, text)] = p * texts.shape[1] + s
    out = [
        [where.get((image, text_offset + m), -1) for image in images[m].tolist()]
        for m in range(images.shape[0])
    ]
    return torch.tensor(out, dtype=torch.long).reshape(images.shape)


def _distinct_rows(rng, n_rows, width, high):
    return torch.from_numpy(
        np.stack([rng.choice(high, width, replace=False) for _ in range(n_rows)])
    ).long()


@pytest.mark.parametrize("kernel", ["numba", "torch"])
@pytest.mark.parametrize("sort_rows", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_shared_pairs_find_every_pair_a_loop_finds(kernel, sort_rows, seed, monkeypatch):
    """Random candidates, in index order or shuffled; rows of images that are not
    queries (gaps), texts of other shards (outside the offset's range), images past
    every row's."""
    if kernel == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    rng = np.random.default_rng(seed)
    n_images, n_texts, text_offset, n_local = 40, 60, 10, 30
    row_images = torch.from_numpy(np.sort(rng.choice(n_images, 25, replace=False))).long()
    if not sort_rows:
        row_images = row_images[torch.from_numpy(rng.permutation(25))]
    texts = _distinct_rows(rng, 25, 12, n_texts)
    images = _distinct_rows(rng, n_local, 9, n_images + 5)
    if sort_rows:
        texts, images = texts.sort(1).values, images.sort(1).values
    got = shared_pairs(row_images, texts, images, text_offset)
    expected = _loop(row_images, texts, images, text_offset)
    assert got.tolist() == expected.tolist()
    assert int((got >= 0).sum()) > 0  # the draw shares pairs


@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_shared_pairs_of_empty_sides_are_all_minus_one(kernel, monkeypatch):
    if kernel == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("CCR_METRICS_KERNEL", kernel)
    images = torch.tensor([[0, 1], [1, 2]])
    none = shared_pairs(
        torch.zeros(0, dtype=torch.long), torch.zeros((0, 3), dtype=torch.long), images, 0
    )
    assert none.tolist() == [[-1, -1], [-1, -1]]
    no_columns = shared_pairs(
        torch.tensor([0, 1]), torch.zeros((2, 0), dtype=torch.long), images, 0
    )
    assert no_columns.tolist() == [[-1, -1], [-1, -1]]
    assert shared_pairs(torch.tensor([0]), torch.tensor([[0]]), images[:0], 0).shape == (0, 2)
