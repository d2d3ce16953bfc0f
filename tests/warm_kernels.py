"""Compile the package's numba loops into numba's cache, for a test session to load.

Run by conftest.py in a background process from the start of a session. On a machine
whose cache is cold, the suite would otherwise compile each loop in its own process the
first time a test reaches it, about 25 s of one core in all; compiled here, on the core
a serial suite (and its collection, for its first seconds) leaves idle, most loops are
in the cache before a test needs them, and a test that gets there first compiles as
before (a cold suite took 142-150 s here, 134 s with this). The calls are tiny and go
through the public functions, so they compile what the suite's calls compile: both
dtypes, one thread and two, the layouts the counting loops specialise on, and a
re-ranking. Without numba there is nothing to compile and this ends at once.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

import ccr_metrics as cm
from ccr_metrics.core._counting import numba_available


def _scorer(language: str, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return (image * 7 + text).double()


def main() -> None:
    if not numba_available():
        return
    # Roughly in the order the suite first needs them: float32 counting on two threads
    # and one, the one pass and a re-ranking, then float64 and the rest.
    for dtype in (np.float32, np.float64):
        for threads in (2, 1):
            torch.set_num_threads(threads)
            _count(dtype)
        torch.set_num_threads(2)
        _evaluate(torch.float32 if dtype == np.float32 else torch.float64)
    torch.set_num_threads(1)
    _evaluate(torch.float32)
    _evaluate(torch.float64)


def _count(dtype: type) -> None:
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((40, 300)).astype(dtype)
    index = rng.integers(0, 300, 40)
    mask = np.zeros(scores.shape, bool)
    mask[np.arange(40), index] = True
    cm.positive_ranks(scores, index)
    cm.positive_ranks(scores, mask)
    cm.positive_ranks(np.asfortranarray(scores), index)
    if dtype == np.float32:
        # A strided view too large to copy (64 KiB): the column loop on any layout.
        wide = np.asfortranarray(rng.standard_normal((201, 200)).astype(dtype))[1:]
        cm.positive_ranks(wide, rng.integers(0, 200, 200))


def _evaluate(dtype: torch.dtype) -> None:
    images = torch.randn(30, 8, dtype=dtype)
    images[1] = images[0]  # ties inside the threshold intervals: near_ties
    texts = {"en": torch.randn(60, 8, dtype=dtype)}
    owners = {"en": torch.arange(60) % 30}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cm.evaluate(images, texts, owners, device="cpu", progress=False)
        cm.evaluate(images, texts, owners, device="cpu", progress=False, rerank=_scorer, rerank_k=5)


if __name__ == "__main__":
    main()
