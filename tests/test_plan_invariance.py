"""The same ranks on every execution plan: chunk sizes, processes and shard layouts.

Ranks must be a function of the embeddings (and the dtype and device type) only. The
data have exact duplicate embeddings (duplicate captions and images, common in real
test sets), so any score computed with a different rounding in one plan breaks a tie.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from early import early, gloo_run
from gloo import process_group

import ccr_metrics as cm

# The fixtures leave some images without a text in a language and rank every language
# among all images on purpose: the mixed-gallery warning (test_galleries.py) is expected.
pytestmark = pytest.mark.filterwarnings("ignore:the texts of the languages cover:UserWarning")

N_IMAGES, DIM = 103, 64
SHARDINGS = {
    2: [[51, 52], [0, 103], [103, 0]],
    3: [[1, 100, 2], [50, 0, 53]],
    4: [[50, 1, 2, 50], [0, 3, 0, 100]],
}


def duplicated_problem(kind: str = "float"):
    """Images and captions with exact duplicates; French missing for many images."""
    rng = np.random.default_rng(11)
    if kind == "float":
        base = rng.standard_normal((N_IMAGES, DIM)).astype(np.float32)
    else:  # small integers: exact products, ties everywhere
        base = rng.integers(-2, 3, (N_IMAGES, DIM)).astype(np.float32)
    images = base.copy()
    images[1::7] = images[::7][: len(images[1::7])]  # duplicate images
    owners = {
        "en": np.repeat(np.arange(N_IMAGES), 2),
        "fr": np.array([i for i in range(N_IMAGES) if i % 3 == 0 or i > 90]),
    }
    texts = {}
    for lang, owner in owners.items():
        noise = (0.3 * rng.standard_normal((len(owner), DIM))).astype(np.float32)
        t = images[owner] + (noise if kind == "float" else np.round(noise))
        t[1::2] = t[0::2][: len(t[1::2])] if lang == "en" else t[1::2]  # duplicate captions
        texts[lang] = t.astype(np.float32)
    return images, texts, owners


def counts_of(report):
    return {
        (lang, d): (c.above.tolist(), c.tied_negatives.tolist(), c.tied_positives.tolist())
        for lang, dirs in report.counts.items()
        for d, c in dirs.items()
    }


@pytest.mark.parametrize("kind", ["float", "integer"])
def test_chunk_size_changes_no_rank(kind):
    images, texts, owners = duplicated_problem(kind)
    reference = cm.evaluate(images, texts, owners, device="cpu")
    for chunk_size in (1, 3, 7, 64, 1000):
        got = cm.evaluate(images, texts, owners, chunk_size=chunk_size, device="cpu")
        assert counts_of(got) == counts_of(reference), chunk_size


def test_the_data_have_ties_a_plan_could_break():
    """The duplicates tie for real: without fixed tiles a 1-row block breaks some."""
    images, texts, owners = duplicated_problem("float")
    report = cm.evaluate(images, texts, owners, device="cpu")
    tied = sum(
        int((c.tied_negatives > 0).sum()) for d in report.counts.values() for c in d.values()
    )
    assert tied > 20
    one_row = np.concatenate([images[i : i + 1] @ texts["en"].T for i in range(N_IMAGES)])
    assert (one_row != images @ texts["en"].T).any()  # the rounding a plan could bring


def shard_of(sizes, rank, problem):
    images, texts, owners = problem
    bounds = np.cumsum([0, *sizes])
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    keep = {lang: (o >= lo) & (o < hi) for lang, o in owners.items()}
    return (
        images[lo:hi],
        {lang: t[keep[lang]] for lang, t in texts.items()},
        {lang: o[keep[lang]] - lo for lang, o in owners.items()},
    )


def worker(rank: int, port: int, world_size: int, out_dir: str) -> None:
    # Up to four processes share two cores: one thread each, or they wait on each other.
    torch.set_num_threads(1)
    with process_group(rank, port, world_size, timeout_s=120):
        results = {}
        for kind in ("float", "integer"):
            problem = duplicated_problem(kind)
            for i, sizes in enumerate(SHARDINGS[world_size]):
                for chunk_size in (None, 3):
                    images, texts, owners = shard_of(sizes, rank, problem)
                    report = cm.evaluate_sharded(
                        images, texts, owners, chunk_size=chunk_size, device="cpu"
                    )
                    results[f"{kind}-{i}-{chunk_size}"] = {
                        f"{lang}/{d}": values for (lang, d), values in counts_of(report).items()
                    }
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(results))


@early
def sharded_runs(items: Sequence[pytest.Item]) -> Iterator[dict[int, Future[Path]]]:
    """Each world size's run of ``worker``, in the background from the session's start."""
    with contextlib.ExitStack() as stack:
        yield {n: stack.enter_context(gloo_run(worker, n, nprocs=n)) for n in sorted(SHARDINGS)}


@pytest.fixture(scope="module")
def runs(early_work):
    with early_work(sharded_runs) as futures:
        yield futures


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
@pytest.mark.parametrize("world_size", sorted(SHARDINGS))
def test_every_world_size_and_shard_layout_gives_the_same_ranks(runs, world_size):
    out = runs[world_size].result()
    for kind in ("float", "integer"):
        images, texts, owners = duplicated_problem(kind)
        expected = {
            f"{lang}/{d}": [list(v) for v in values]
            for (lang, d), values in counts_of(
                cm.evaluate(images, texts, owners, device="cpu")
            ).items()
        }
        for rank in range(world_size):
            got = json.loads((out / f"rank{rank}.json").read_text())
            for i, sizes in enumerate(SHARDINGS[world_size]):
                for chunk_size in (None, 3):
                    assert got[f"{kind}-{i}-{chunk_size}"] == expected, (kind, sizes, chunk_size)
