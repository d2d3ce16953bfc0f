"""Two CPU processes (gloo) against one process on the concatenated batch.

Each rank holds a share of a global batch: uneven with ``validate=True`` (which gathers
the shapes), even with ``validate=False`` (which must not). After the gather's backward
sums the ranks' contributions, a rank's local feature gradients must be ``W`` (= 2)
times the single-process gradients of its rows; the loss must equal the single-process
loss (global mode) or average to it over the ranks (``local_loss``). See the notes in
``ccr_metrics.training.losses``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from early import early, gloo_run
from gloo import process_group

from ccr_metrics import distributed
from ccr_metrics.training.losses import OneToKContrastiveLoss

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)

WORLD_SIZE = 2
UNEVEN = {0: slice(0, 4), 1: slice(4, 6)}  # 4 images on rank 0, 2 on rank 1
EVEN = {0: slice(0, 3), 1: slice(3, 6)}  # validate=False: the same B everywhere
N_IMAGES, N_LANGUAGES, DIM = 6, 3, 8
SCENARIOS = [
    {"variant": "paper", "local_loss": False, "masked": False, "validate": True},
    {"variant": "paper", "local_loss": False, "masked": True, "validate": True},
    {"variant": "paper", "local_loss": True, "masked": True, "validate": True},
    {"variant": "paper", "local_loss": True, "masked": False, "validate": True},
    {"variant": "released", "local_loss": False, "masked": True, "validate": True},
    {"variant": "released", "local_loss": True, "masked": False, "validate": True},
    {"variant": "paper", "local_loss": False, "masked": False, "validate": False},
    {"variant": "paper", "local_loss": False, "masked": True, "validate": False},
    {"variant": "paper", "local_loss": True, "masked": True, "validate": False},
    {"variant": "paper", "local_loss": True, "masked": False, "validate": False},
    {"variant": "released", "local_loss": False, "masked": True, "validate": False},
    {"variant": "released", "local_loss": True, "masked": False, "validate": False},
]
# Tensor methods that read a value back to the host (a sync on a GPU).
SYNCS = ("item", "tolist", "nonzero", "__bool__", "__int__", "__float__", "__index__")


def rows_of(rank: int, scenario: dict[str, Any]) -> slice:
    return (UNEVEN if scenario["validate"] else EVEN)[rank]


@contextmanager
def counting_calls() -> Iterator[dict[str, int]]:
    """Count all_gather_shapes and host-sync calls inside the block (no pytest here)."""
    calls = dict.fromkeys(("all_gather_shapes", *SYNCS), 0)
    originals: dict[str, Any] = {name: getattr(torch.Tensor, name) for name in SYNCS}
    original_shapes = distributed.all_gather_shapes

    def wrap(name: str, function: Any) -> Any:
        def counting(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return counting

    for name, function in originals.items():
        setattr(torch.Tensor, name, wrap(name, function))
    distributed.all_gather_shapes = wrap("all_gather_shapes", original_shapes)  # type: ignore[assignment]
    try:
        yield calls
    finally:
        for name, function in originals.items():
            setattr(torch.Tensor, name, function)
        distributed.all_gather_shapes = original_shapes  # type: ignore[assignment]


def global_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(N_IMAGES, DIM, generator=g, dtype=torch.float64), dim=-1)
    texts = F.normalize(
        torch.randn(N_IMAGES, N_LANGUAGES, DIM, generator=g, dtype=torch.float64), dim=-1
    )
    mask = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]]).bool()
    return images, texts, mask


def run_scenario(
    module: OneToKContrastiveLoss,
    images: torch.Tensor,
    texts: torch.Tensor,
    mask: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    images = images.clone().requires_grad_(True)
    texts = texts.clone().requires_grad_(True)
    module.zero_grad()
    terms = module(images, texts, mask)
    terms.total.backward()
    assert images.grad is not None and texts.grad is not None
    assert module.logit_scale.grad is not None
    return {
        "total": terms.total.detach(),
        "i2t": terms.i2t.detach(),
        "t2i": terms.t2i.detach(),
        "image_grad": images.grad,
        "text_grad": texts.grad,
        "scale_grad": module.logit_scale.grad.clone(),
    }


def worker(rank: int, port: int, out_dir: str) -> None:
    # Built before the process group exists: nothing about ranks may be frozen here.
    modules = [
        OneToKContrastiveLoss(
            temperature=0.1,
            variant=s["variant"],
            local_loss=s["local_loss"],
            validate=s["validate"],
        )
        for s in SCENARIOS
    ]
    with process_group(rank, port, WORLD_SIZE, timeout_s=60):
        images, texts, mask = global_batch()
        results: dict[str, Any] = {
            "rank": distributed.get_rank(),
            "world_size": distributed.get_world_size(),
            "scenarios": [],
        }
        for module, scenario in zip(modules, SCENARIOS, strict=True):
            rows = rows_of(rank, scenario)
            local_mask = mask[rows] if scenario["masked"] else None
            with counting_calls() as calls:
                result = run_scenario(module.double(), images[rows], texts[rows], local_mask)
            result["calls"] = calls
            results["scenarios"].append(result)
        # Processes that disagree on K must all get the same ValueError, not a hang.
        k = 2 if rank == 0 else 3
        try:
            OneToKContrastiveLoss()(torch.zeros(2, 4), torch.zeros(2, k, 4))
        except ValueError as exc:
            results["mismatch_error"] = str(exc)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")


@early
def ranks_run(items: Sequence[pytest.Item]) -> Iterator[Future[Path]]:
    """The processes' run of ``worker``, in the background as the session starts (early.py)."""
    with gloo_run(worker, nprocs=WORLD_SIZE) as run:
        yield run


@pytest.fixture(scope="module")
def rank_results(early_work: Any) -> list[dict[str, Any]]:
    with early_work(ranks_run) as run:
        out_dir = run.result()
        return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]


def single_process(scenario: dict[str, Any]) -> dict[str, torch.Tensor]:
    images, texts, mask = global_batch()
    module = OneToKContrastiveLoss(
        temperature=0.1, variant=scenario["variant"], local_loss=scenario["local_loss"]
    ).double()
    return run_scenario(module, images, texts, mask if scenario["masked"] else None)


def test_ranks_are_read_at_call_time(rank_results: list[dict[str, Any]]) -> None:
    assert [r["rank"] for r in rank_results] == [0, 1]
    assert all(r["world_size"] == WORLD_SIZE for r in rank_results)
    # Here, in the parent, there is no process group.
    assert not distributed.is_distributed()
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    x = torch.zeros(2, 3)
    assert distributed.all_gather_with_grad(x) is x
    assert distributed.all_gather_shapes(x) == [(2, 3)]


@pytest.mark.parametrize("index", range(len(SCENARIOS)))
def test_gathered_loss_and_gradients_match_one_process(
    rank_results: list[dict[str, Any]], index: int
) -> None:
    scenario = SCENARIOS[index]
    reference = single_process(scenario)
    per_rank = [r["scenarios"][index] for r in rank_results]
    for name in ("total", "i2t", "t2i"):
        values = torch.stack([r[name] for r in per_rank])
        if scenario["local_loss"]:
            torch.testing.assert_close(values.mean(), reference[name])
        else:
            for value in values:
                torch.testing.assert_close(value, reference[name])
    for rank, result in enumerate(per_rank):
        rows = rows_of(rank, scenario)
        torch.testing.assert_close(result["image_grad"], WORLD_SIZE * reference["image_grad"][rows])
        torch.testing.assert_close(result["text_grad"], WORLD_SIZE * reference["text_grad"][rows])
    # What DistributedDataParallel does with the temperature: average over the ranks.
    scale_grads = torch.stack([r["scale_grad"] for r in per_rank])
    torch.testing.assert_close(scale_grads.mean(), reference["scale_grad"])


def test_mismatched_languages_raise_on_every_rank(rank_results: list[dict[str, Any]]) -> None:
    for result in rank_results:
        assert "same shape beyond dim 0" in result["mismatch_error"]
        assert "rank 0: [2, 2, 4], rank 1: [2, 3, 4]" in result["mismatch_error"]


@pytest.mark.parametrize("index", range(len(SCENARIOS)))
def test_validate_false_gathers_no_shapes_and_makes_no_host_sync(
    rank_results: list[dict[str, Any]], index: int
) -> None:
    scenario = SCENARIOS[index]
    for result in rank_results:
        calls = result["scenarios"][index]["calls"]
        if scenario["validate"]:
            assert calls["all_gather_shapes"] == 1  # one forward: one gather of shapes
            assert calls["__bool__"] > 0  # the value checks (the counter does count)
        else:
            assert calls == dict.fromkeys(("all_gather_shapes", *SYNCS), 0)
