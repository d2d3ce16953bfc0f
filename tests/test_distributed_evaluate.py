"""evaluate_sharded on two CPU processes (gloo) against evaluate on the whole test set."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch.distributed as dist
from early import early, gloo_run
from gloo import process_group

import ccr_metrics as cm

pytestmark = [
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(),
        reason="needs torch.distributed gloo",
    ),
    # German lacks some images and every language is ranked among all of them on
    # purpose: the mixed-gallery warning (test_galleries.py) is expected.
    pytest.mark.filterwarnings("ignore:the texts of the languages cover:UserWarning"),
]

WORLD_SIZE = 2
N_IMAGES, SPLIT, DIM = 12, 7, 5  # rank 0 holds images 0..6, rank 1 images 7..11
CASES = [
    {"ties": "average", "chunk_size": None},
    {"ties": "optimistic", "chunk_size": 2},
    {"ties": "pessimistic", "chunk_size": 5},
]


def whole_problem() -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Small-integer embeddings (exact products, many ties), texts grouped by rank."""
    rng = np.random.default_rng(7)
    images = rng.integers(-2, 3, (N_IMAGES, DIM)).astype(np.float32)
    owners = {
        "en": np.repeat(np.arange(N_IMAGES), 2),
        "de": np.array([i for i in range(N_IMAGES) if i % 4]),  # some images lack German
    }
    texts = {
        lang: (images[o] + rng.integers(-1, 2, (len(o), DIM))).astype(np.float32)
        for lang, o in owners.items()
    }
    return images, texts, owners


def shard(rank: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    images, texts, owners = whole_problem()
    lo, hi = (0, SPLIT) if rank == 0 else (SPLIT, N_IMAGES)
    keep = {lang: (o >= lo) & (o < hi) for lang, o in owners.items()}
    return (
        images[lo:hi],
        {lang: t[keep[lang]] for lang, t in texts.items()},
        {lang: o[keep[lang]] - lo for lang, o in owners.items()},
    )


def worker(rank: int, port: int, out_dir: str) -> None:
    with process_group(rank, port, WORLD_SIZE, timeout_s=60):
        images, texts, owners = shard(rank)
        errors = {}
        for i, case in enumerate(CASES):
            report = cm.evaluate_sharded(images, texts, owners, device="cpu", **case)
            report.save(Path(out_dir) / f"case{i}-rank{rank}.json")
        # One process with a NaN: every process must raise, none may hang.
        bad = images.copy()
        if rank == 1:
            bad[0, 0] = np.nan
        try:
            cm.evaluate_sharded(bad, texts, owners, device="cpu")
        except ValueError as exc:
            errors["nan"] = str(exc)
        try:
            cm.evaluate_sharded(images, texts, owners, device="cpu", languages=["en", "de"][rank:])
        except ValueError as exc:
            errors["languages"] = str(exc)
        try:
            cm.evaluate_sharded(images, texts, owners, device="cpu", k=[1, 5 + rank])
        except ValueError as exc:
            errors["k"] = str(exc)
        (Path(out_dir) / f"errors-rank{rank}.json").write_text(json.dumps(errors))


@early
def sharded_run(items: Sequence[pytest.Item]) -> Iterator[Future[Path]]:
    """The processes' run of ``worker``, in the background as the session starts (early.py)."""
    with gloo_run(worker, nprocs=WORLD_SIZE) as run:
        yield run


@pytest.fixture(scope="module")
def out_dir(early_work: Any) -> Iterator[Path]:
    with early_work(sharded_run) as run:
        yield run.result()


@pytest.mark.parametrize("index", range(len(CASES)))
def test_every_rank_gets_the_single_process_report(out_dir: Path, index: int) -> None:
    images, texts, owners = whole_problem()
    expected = cm.evaluate(images, texts, owners, device="cpu", **CASES[index])
    for rank in range(WORLD_SIZE):
        got = cm.Report.load(out_dir / f"case{index}-rank{rank}.json")
        for lang in texts:
            np.testing.assert_array_equal(got.text_to_image[lang], owners[lang])
            for d in ("i2t", "t2i"):
                np.testing.assert_array_equal(got.ranks[lang][d], expected.ranks[lang][d])
        summary = got.to_dict()
        assert summary["settings"].pop("processes") == WORLD_SIZE
        assert summary == expected.to_dict()


def test_bad_shard_on_one_process_fails_on_all(out_dir: Path) -> None:
    errors = [json.loads((out_dir / f"errors-rank{r}.json").read_text()) for r in range(2)]
    for rank, e in enumerate(errors):
        # Both processes say which one failed and why.
        assert "failed on 1 of 2 processes" in e["nan"]
        assert "process 1: image_embeds contains nan" in e["nan"]
        assert ("this process" if rank == 1 else "process 0") + " stopped too" in e["nan"]
        assert "every process must be called alike" in e["languages"]
        assert "process 1 with {'languages': ['de']}" in e["languages"].replace(
            "process 1 was called", "process 1"
        )
        assert "{'languages': ['en', 'de']}" in e["languages"]
        # Each setting is labelled, and only the ones that differ are shown.
        assert "with {'k': [1, 6]}" in e["k"] and "with {'k': [1, 5]}" in e["k"]


def test_without_process_group_it_is_evaluate() -> None:
    images, texts, owners = whole_problem()
    got = cm.evaluate_sharded(images, texts, owners, device="cpu")
    expected = cm.evaluate(images, texts, owners, device="cpu")
    for lang in texts:
        for d in ("i2t", "t2i"):
            np.testing.assert_array_equal(got.ranks[lang][d], expected.ranks[lang][d])


def test_results_use_all_fields(out_dir: Path) -> None:
    report: Any = cm.Report.load(out_dir / "case0-rank0.json")
    assert report.n_images == N_IMAGES
    assert report.languages == ["en", "de"]
