"""dataset_index: the repeats a padding DistributedSampler adds are counted once.

Ten instances over three gloo processes: DistributedSampler pads them to twelve, so
two instances are ranked twice. With each row's dataset index the metrics must give,
on every process, the very number one process gives on the ten instances in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from early import early, gloo_run
from gloo import process_group
from torch.utils.data import DistributedSampler

import ccr_metrics as cm
from ccr_metrics.metrics import MeanRankVariance, RecallAtK

N, K, G = 10, 3, 8  # instances x languages x gallery
WORLD_SIZE = 3


def problem() -> tuple[torch.Tensor, torch.Tensor]:
    """Tie-heavy scores ``[N, K, G]`` and each instance's positive ``[N]``."""
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 5, (N, K, G), generator=g).double() / 4
    return scores, torch.randint(0, G, (N,), generator=g)


def single_process() -> dict[str, Any]:
    scores, positives = problem()
    recall, mrv = RecallAtK(k=(1, 3)), MeanRankVariance()
    recall.update(scores[:, 0], positives)
    mrv.update(scores, positives)
    return {
        "recall": {k: float(v) for k, v in recall.compute().items()},
        "mrv": float(mrv.compute()),
    }


def worker(rank: int, port: int, out_dir: str) -> None:
    with process_group(rank, port, WORLD_SIZE, timeout_s=60):
        scores, positives = problem()
        sampler = DistributedSampler(range(N), num_replicas=WORLD_SIZE, rank=rank, seed=1)
        mine = torch.tensor(list(sampler))
        results: dict[str, Any] = {"indices": mine.tolist()}
        for indexed in (True, False):
            recall, mrv = RecallAtK(k=(1, 3)), MeanRankVariance()
            for batch in mine.split(3):  # batches of 3, 1
                extra = {"dataset_index": batch} if indexed else {}
                recall.update(scores[batch, 0], positives[batch], **extra)
                mrv.update(scores[batch], positives[batch], **extra)
            results[indexed] = {
                "recall": {k: float(v) for k, v in recall.compute().items()},
                "mrv": float(mrv.compute()),
            }
        # One process without indices while the others pass them: an error everywhere.
        recall = RecallAtK(k=1)
        extra = {} if rank == 2 else {"dataset_index": mine}
        recall.update(scores[mine, 0], positives[mine], **extra)
        try:
            recall.compute()
        except ValueError as exc:
            results["mixed"] = str(exc)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")


@early
def sampler_run(items: Sequence[pytest.Item]) -> Iterator[Future[Path]]:
    """The processes' run of ``worker``, in the background as the session starts (early.py)."""
    with gloo_run(worker, nprocs=WORLD_SIZE) as run:
        yield run


@pytest.fixture(scope="module")
def results(early_work: Any) -> list[dict[Any, Any]]:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")
    with early_work(sampler_run) as run:
        out = run.result()
        return [torch.load(out / f"rank{r}.pt") for r in range(WORLD_SIZE)]


def test_the_sampler_repeats_instances(results: list[dict[Any, Any]]) -> None:
    seen = [i for r in results for i in r["indices"]]
    assert len(seen) == 12 and sorted(set(seen)) == list(range(N))


def test_with_dataset_index_every_process_gets_the_single_process_number(
    results: list[dict[Any, Any]],
) -> None:
    expected = single_process()
    for r in results:
        assert r[True] == expected  # bitwise: MRV's rows come back in dataset order


def test_without_dataset_index_the_repeats_count_twice(results: list[dict[Any, Any]]) -> None:
    # What the index fixes: the padded value differs from the true one on this data.
    assert results[0][False]["mrv"] != single_process()["mrv"]
    assert all(r[False] == results[0][False] for r in results)


def test_some_processes_without_dataset_index_fail_on_every_process(
    results: list[dict[Any, Any]],
) -> None:
    for r in results:
        assert "dataset_index was given for 8 of 12 rows" in r["mixed"]


# ------------------------------------------------------------------ one process


def test_repeats_in_any_order_give_the_in_order_value() -> None:
    scores, positives = problem()
    order = torch.tensor([7, 2, 9, 0, 2, 5, 1, 8, 3, 7, 6, 4])  # 2 and 7 twice
    recall, mrv = RecallAtK(k=(1, 3)), MeanRankVariance()
    for batch in order.split(5):
        recall.update(scores[batch, 0], positives[batch], dataset_index=batch.numpy())
        mrv.update_ranks(
            torch.stack(
                [cm.positive_ranks(scores[batch, k], positives[batch]) for k in range(K)], 1
            ),
            dataset_index=batch,
        )
    ranks = torch.stack([cm.positive_ranks(scores[:, k], positives) for k in range(K)], 1)
    assert float(mrv.compute()) == cm.mean_rank_variance(ranks)
    expected = cm.recall_at_k(cm.rank_counts(scores[:, 0], positives), (1, 3))
    assert {k: float(v) for k, v in recall.compute().items()} == expected


@pytest.mark.parametrize(
    ("index", "match"),
    [
        (torch.tensor([0.0, 1.0]), r"dataset_index must hold integer .* got dtype float32"),
        (torch.tensor([True, False]), r"integer dataset indices, got dtype bool"),
        (torch.tensor([0, 1, 2]), r"dataset_index must have shape \[2\] \(one index per query\)"),
        (torch.tensor([[0, 1]]), r"shape \[2\] .* got \[1, 2\]"),
        (
            torch.tensor([4, -1]),
            r"dataset_index has -1 at \[1\]; indices must be in \[0, 2\*\*53\)",
        ),
        (["a", "b"], r"dataset_index must be numeric"),
    ],
)
def test_bad_dataset_index_is_named_and_leaves_the_state(index: Any, match: str) -> None:
    metric = RecallAtK(k=1)
    with pytest.raises(ValueError, match=match):
        metric.update(torch.eye(2), torch.tensor([0, 1]), dataset_index=index)
    assert metric.above == [] and metric.dataset_index == []


@pytest.mark.parametrize("first_indexed", [True, False])
def test_dataset_index_for_every_batch_or_none(first_indexed: bool) -> None:
    metric = MeanRankVariance()
    ranks = torch.ones(2, 2)
    metric.update_ranks(ranks, **({"dataset_index": [0, 1]} if first_indexed else {}))
    with pytest.raises(
        ValueError, match=r"dataset_index must be given for every batch or for none"
    ):
        metric.update_ranks(ranks, **({} if first_indexed else {"dataset_index": [2, 3]}))
    assert len(metric.ranks) == 1


def test_reset_forgets_the_indices() -> None:
    metric = MeanRankVariance()
    metric.update_ranks(torch.tensor([[1.0, 2.0]]), dataset_index=[0])
    metric.reset()
    metric.update_ranks(torch.tensor([[1.0, 3.0]]))  # no index now: fine after reset
    assert float(metric.compute()) == 1.0
