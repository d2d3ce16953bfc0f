"""evaluate_sharded with a second stage, on 1-3 gloo processes, against evaluate.

Integer embeddings make the products exact and ties frequent, so the merged top-k
candidates, their tie rule at the boundary, and the counts of the segment behind them
are all checked bit for bit, with empty shards and a language with gaps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from gloo import process_group

import ccr_metrics as cm

# The fixtures leave some images without a text in a language and rank every language
# among all images on purpose: the mixed-gallery warning (test_galleries.py) is expected.
pytestmark = pytest.mark.filterwarnings("ignore:the texts of the languages cover:UserWarning")

N_IMAGES, DIM, K = 31, 6, 5
LAYOUTS = {2: [[0, 31], [15, 16]], 3: [[10, 1, 20], [0, 30, 1]]}


def problem():
    rng = np.random.default_rng(5)
    images = rng.integers(-2, 3, (N_IMAGES, DIM)).astype(np.float32)
    owners = {
        "en": np.repeat(np.arange(N_IMAGES), 2),
        "de": np.array([i for i in range(N_IMAGES) if i % 4 != 1]),
    }
    texts = {
        lang: (images[o] + rng.integers(-1, 2, (len(o), DIM))).astype(np.float32)
        for lang, o in owners.items()
    }
    return images, texts, owners


def scorer_of(images, texts, seen=None):
    """A deterministic cross-encoder over *global* indices, with ties."""
    mix = torch.from_numpy(np.random.default_rng(1).integers(-1, 2, (DIM, DIM)).astype(np.float32))

    def score_pairs(language, image_index, text_index):
        if seen is not None:
            seen.setdefault(language, []).extend(
                zip(image_index.tolist(), text_index.tolist(), strict=True)
            )
        a = torch.from_numpy(images)[image_index] @ mix
        return torch.round((a * torch.from_numpy(texts[language])[text_index]).sum(1) / 4)

    return score_pairs


def shard_of(sizes, rank, data):
    images, texts, owners = data
    bounds = np.cumsum([0, *sizes])
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    keep = {lang: (o >= lo) & (o < hi) for lang, o in owners.items()}
    return (
        images[lo:hi],
        {lang: t[keep[lang]] for lang, t in texts.items()},
        {lang: o[keep[lang]] - lo for lang, o in owners.items()},
    )


def counts_of(report):
    return {
        f"{lang}/{d}": [c.above.tolist(), c.tied_negatives.tolist(), c.tied_positives.tolist()]
        for lang, dirs in report.counts.items()
        for d, c in dirs.items()
    }


def worker(rank: int, port: int, world_size: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    with process_group(rank, port, world_size, timeout_s=120):
        data = problem()
        images, texts, _ = data
        results = {}
        for i, sizes in enumerate(LAYOUTS[world_size]):
            # The scorer reaches the whole test set in rank order (the shards' texts
            # concatenated), as a DDP process reading the dataset does.
            glob = [shard_of(sizes, r, data) for r in range(world_size)]
            all_texts = {lang: np.concatenate([g[1][lang] for g in glob]) for lang in texts}
            seen: dict[str, list] = {}
            score = scorer_of(images, all_texts, seen)
            local = glob[rank]
            for protocol in cm.RERANK_PROTOCOLS:
                report = cm.evaluate_sharded(
                    *local,
                    device="cpu",
                    rerank=score,
                    rerank_k=K,
                    rerank_batch_size=7,
                    rerank_protocol=protocol,
                    chunk_size=4,
                )
                results[f"{i}-{protocol}"] = counts_of(report)
            results[f"{i}-seen"] = seen
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(results))


def concatenated(sizes, world_size):
    data = problem()
    glob = [shard_of(sizes, r, data) for r in range(world_size)]
    images = data[0]
    texts = {lang: np.concatenate([g[1][lang] for g in glob]) for lang in data[1]}
    bounds = np.cumsum([0, *sizes])
    owners = {
        lang: np.concatenate([g[2][lang] + bounds[r] for r, g in enumerate(glob)])
        for lang in data[1]
    }
    return images, texts, owners


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
@pytest.mark.parametrize("world_size", sorted(LAYOUTS))
def test_sharded_reranking_equals_one_process(tmp_path, world_size, gloo_pool):
    gloo_pool.run(worker, world_size, str(tmp_path), nprocs=world_size)
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world_size)]
    for i, sizes in enumerate(LAYOUTS[world_size]):
        images, texts, owners = concatenated(sizes, world_size)
        score = scorer_of(images, texts)
        for protocol in cm.RERANK_PROTOCOLS:
            expected = cm.evaluate(
                images,
                texts,
                owners,
                device="cpu",
                rerank=score,
                rerank_k=K,
                rerank_protocol=protocol,
            )
            for rank in range(world_size):
                assert got[rank][f"{i}-{protocol}"] == counts_of(expected), (sizes, protocol)
        # Within a process each pair is scored at most once per protocol run.
        for rank in range(world_size):
            for pairs in got[rank][f"{i}-seen"].values():
                per_run = len(pairs) // len(cm.RERANK_PROTOCOLS)
                assert len({tuple(p) for p in pairs[:per_run]}) == per_run
