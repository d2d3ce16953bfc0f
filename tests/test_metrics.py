"""The torchmetrics classes against one functional call on the concatenated data.

Every comparison is exact: a metric fed in batches must give the very number that
``recall_at_k`` / ``mean_rank_variance`` give for all the data at once, under every tie
policy and positives form, however the data is split, and after a DDP sync.
"""

from __future__ import annotations

import copy
import itertools
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from early import early, gloo_run
from gloo import process_group
from hypothesis import given
from hypothesis import strategies as st
from torchmetrics import Metric

import ccr_metrics as cm
from ccr_metrics.metrics import MeanRankVariance, RecallAtK
from ccr_metrics.testing import retrieval_problems

TIES = cm.TIES
SPLITS = {
    "one batch": [12],
    "uneven": [5, 1, 4, 2],
    "singletons": [1] * 12,
}
Q, G = 12, 7  # recall: queries x gallery
B, K = 12, 3  # MRV: instances x languages, against G candidates


def tied_scores(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Scores drawn from four values, so that ties are everywhere."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, shape, generator=g).to(dtype) / 4


def positives_in_form(form: str, seed: int) -> Any:
    """Positives of the ``[Q, G]`` problem in one of the forms positive_ranks accepts."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(Q, G, generator=g) < 0.3
    mask[torch.arange(Q), torch.randint(0, G, (Q,), generator=g)] = True
    if form == "index":
        return mask.int().argmax(1)
    if form == "mask":
        return mask
    if form == "ragged":
        return [row.nonzero()[:, 0].tolist() for row in mask]
    if form == "numpy index array [Q, 2]":
        return np.stack([mask.int().argmax(1).numpy(), np.zeros(Q, dtype=np.int64)], axis=1)
    raise AssertionError(form)


def batches(sizes: list[int]) -> list[slice]:
    bounds = np.cumsum([0, *sizes])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def as_floats(result: dict[int, torch.Tensor]) -> dict[int, float]:
    return {k: float(v) for k, v in result.items()}


def mrv_problem(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores ``[B, K, G]``, per-language positives ``[B, K]`` and a mask ``[B, K]``.

    Masked-out entries hold NaN scores and index -1: the metric must not read them.
    """
    g = torch.Generator().manual_seed(seed)
    scores = tied_scores(seed, B, K, G)
    positives = torch.randint(0, G, (B, K), generator=g)
    mask = torch.rand(B, K, generator=g) < 0.75
    mask[0] = True
    mask[1] = torch.tensor([True, False, False])  # one language: no spread
    scores[~mask] = float("nan")
    positives[~mask] = -1
    return scores, positives, mask


def mrv_reference(
    scores: torch.Tensor,
    positives: torch.Tensor,
    mask: torch.Tensor | None,
    ties: str,
    reduction: str,
) -> float:
    """MRV of ranks from one positive_ranks call per language over all instances."""
    present = torch.ones(scores.shape[:2], dtype=torch.bool) if mask is None else mask
    clean_scores = torch.where(present[..., None], scores, 0.0)
    clean_positives = torch.where(present, positives, 0)
    ranks = torch.stack(
        [
            cm.positive_ranks(clean_scores[:, k], clean_positives[:, k], ties=ties)
            for k in range(scores.shape[1])
        ],
        dim=1,
    )
    return cm.mean_rank_variance(ranks, reduction=reduction, mask=present)


# ------------------------------------------------------------------ RecallAtK


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("form", ["index", "mask", "ragged", "numpy index array [Q, 2]"])
@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_recall_batches_equal_one_call(ties, form, split):
    scores = tied_scores(0, Q, G)
    positives = positives_in_form(form, 1)
    metric = RecallAtK(k=(1, 2, 5), ties=ties)
    for rows in batches(split):
        metric.update(scores[rows], positives[rows])
    expected = cm.rank_counts(scores, positives)
    for name in ("above", "tied_negatives", "tied_positives"):
        kept = torch.cat(getattr(metric, name))
        torch.testing.assert_close(kept, getattr(expected, name).double(), rtol=0, atol=0)
    assert as_floats(metric.compute()) == cm.recall_at_k(expected, (1, 2, 5), ties=ties)


@given(
    retrieval_problems(max_queries=10, max_gallery=8),
    st.sampled_from(TIES),
    st.data(),
)
def test_recall_any_split_equals_one_call(problem, ties, data):
    scores, positives = problem
    n = scores.shape[0]
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=4)) if n > 1 else set())
    metric = RecallAtK(k=(1, 3), ties=ties)
    for start, stop in zip([0, *cuts], [*cuts, n], strict=True):
        metric.update(scores[start:stop], positives[start:stop])
    expected = cm.recall_at_k(cm.rank_counts(scores, positives), (1, 3), ties=ties)
    assert as_floats(metric.compute()) == pytest.approx(expected, abs=1e-12)


def test_recall_empty_miss_counts_queries_without_positive():
    scores = tied_scores(0, 4, 5)
    positives = [[0], [], [1, 2], []]
    metric = RecallAtK(k=5, empty="miss")
    metric.update(scores[:2], positives[:2])
    metric.update(scores[2:], positives[2:])
    assert as_floats(metric.compute()) == {5: 0.5}
    with pytest.raises(ValueError, match="no positive"):
        RecallAtK(k=5).update(scores, positives)


def test_recall_empty_skip_leaves_queries_without_positive_out():
    scores = tied_scores(0, 4, 5)
    positives = [[0], [], [1, 2], []]
    metric = RecallAtK(k=5, empty="skip")
    metric.update(scores[:2], positives[:2])
    metric.update(scores[2:], positives[2:])
    # Two queries with positives, both found in the top 5 of 5: 1.0, not "miss"'s 0.5.
    assert as_floats(metric.compute()) == {5: 1.0}
    kept = [0, 2]
    expected = cm.recall_at_k(cm.rank_counts(scores[kept], [positives[i] for i in kept]), 1)
    one = RecallAtK(k=1, empty="skip")
    one.update(scores, positives)
    assert as_floats(one.compute()) == pytest.approx(expected, abs=1e-12)


def test_recall_empty_skip_with_dataset_index_drops_the_same_rows():
    scores = tied_scores(1, 3, 4)
    metric = RecallAtK(k=1, empty="skip")
    # Query 1 has no positive; query 0 is repeated (a padding sampler's duplicate).
    metric.update(scores, [[0], [], [0]], dataset_index=[0, 1, 0])
    alone = RecallAtK(k=1)
    alone.update(scores[:1], [[0]])
    assert as_floats(metric.compute()) == as_floats(alone.compute())


def test_recall_empty_skip_of_every_query_says_so():
    metric = RecallAtK(k=1, empty="skip")
    metric.update(tied_scores(2, 2, 3), [[], []])
    with pytest.raises(ValueError, match="no query seen had a positive"):
        metric.compute()


def test_recall_accepts_numpy_and_returns_float64_tensors_in_k_order():
    metric = RecallAtK(k=(10, 1))
    metric.update(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    result = metric.compute()
    assert list(result) == [10, 1]
    assert all(v.dtype == torch.float64 and v.ndim == 0 for v in result.values())
    assert as_floats(result) == {10: 1.0, 1: 0.5}


# ------------------------------------------------------------ MeanRankVariance


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("reduction", cm.REDUCTIONS)
@pytest.mark.parametrize("positives_shape", ["[B]", "[B, K]"])
@pytest.mark.parametrize("masked", [False, True], ids=["no mask", "mask"])
@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_mrv_batches_equal_per_language_ranks(ties, reduction, positives_shape, masked, split):
    scores, positives, mask = mrv_problem(2)
    if positives_shape == "[B]":
        positives = positives.clamp(min=0)[:, 0]
        expanded = positives[:, None].expand(B, K)
    else:
        expanded = positives
    if not masked:
        scores = torch.nan_to_num(scores, nan=0.25)
        expanded = expanded.clamp(min=0)
        positives = positives.clamp(min=0)
    metric = MeanRankVariance(reduction=reduction, ties=ties)
    for rows in batches(split):
        metric.update(scores[rows], positives[rows], mask[rows] if masked else None)
    expected = mrv_reference(scores, expanded, mask if masked else None, ties, reduction)
    assert float(metric.compute()) == expected


def test_mrv_t2i_layout_matches_text_to_image_ranks():
    # K translations of each caption query all N images: positives are the instances.
    g = torch.Generator().manual_seed(3)
    images = torch.randn(6, 4, generator=g, dtype=torch.float64)
    texts = images[:, None] + 0.8 * torch.randn(6, K, 4, generator=g, dtype=torch.float64)
    scores = texts @ images.T  # [B, K, N]
    metric = MeanRankVariance(reduction="std")
    metric.update(scores[:4], torch.arange(4))
    metric.update(scores[4:], torch.arange(4, 6))
    per_language = torch.stack(
        [cm.text_to_image_ranks(scores[:, k]) for k in range(K)], dim=1
    )  # fmt: skip
    assert float(metric.compute()) == cm.mean_rank_variance(per_language, reduction="std")


def test_mrv_update_ranks_mixes_with_update():
    scores, positives, mask = mrv_problem(4)
    ties, reduction = "pessimistic", "variance"
    metric = MeanRankVariance(reduction=reduction, ties=ties)
    metric.update(scores[:5], positives[:5], mask[:5])
    first = float(metric.compute())
    # Ranks of the rest, computed elsewhere; masked entries hold NaN.
    rest = torch.stack(
        [
            cm.positive_ranks(
                torch.nan_to_num(scores[5:, k]), positives[5:, k].clamp(min=0), ties=ties
            )
            for k in range(K)
        ],
        dim=1,
    )
    rest[~mask[5:]] = float("nan")
    metric.update_ranks(rest.numpy(), mask[5:].numpy())
    assert metric.update_count == 2
    # The cached value of the first compute() must not survive update_ranks.
    assert float(metric.compute()) != first
    assert float(metric.compute()) == mrv_reference(scores, positives, mask, ties, reduction)


def test_mrv_update_ranks_takes_0_based_and_integer_ranks():
    metric = MeanRankVariance()
    metric.update_ranks(torch.tensor([[0, 2], [1, 1], [4, 0]]))
    assert float(metric.compute()) == cm.mean_rank_variance(np.array([[1, 3], [2, 2], [5, 1]]))


def test_mrv_batch_without_present_language_adds_nothing():
    metric = MeanRankVariance()
    metric.update(tied_scores(0, 2, 2, 3), torch.tensor([0, 1]))
    value = float(metric.compute())
    metric.update(torch.full((3, 2, 3), float("nan")), torch.full((3,), -1), torch.zeros(3, 2) > 0)
    assert float(metric.compute()) == value


# --------------------------------------------------------- shared invariants


@dataclass
class Case:
    """A metric, the arguments of ``update`` for some rows of its data, the functional answer."""

    make: Callable[[], Metric]
    args: Callable[[slice], tuple[Any, ...]]
    reference: Callable[[], Any]
    queries: int  # number of ranks the state should hold after all rows


RECALL_SCORES = tied_scores(5, Q, G)
RECALL_POSITIVES = positives_in_form("ragged", 6)
MRV_SCORES, MRV_POSITIVES, MRV_MASK = mrv_problem(7)

CASES = {
    "RecallAtK": Case(
        make=lambda: RecallAtK(k=(1, 5)),
        args=lambda rows: (RECALL_SCORES[rows], RECALL_POSITIVES[rows]),
        reference=lambda: cm.recall_at_k(cm.rank_counts(RECALL_SCORES, RECALL_POSITIVES), (1, 5)),
        queries=Q,
    ),
    "MeanRankVariance": Case(
        make=lambda: MeanRankVariance(),
        args=lambda rows: (MRV_SCORES[rows], MRV_POSITIVES[rows], MRV_MASK[rows]),
        reference=lambda: mrv_reference(
            MRV_SCORES, MRV_POSITIVES, MRV_MASK, cm.DEFAULT_TIES, "variance"
        ),
        queries=B * K,
    ),
}


def value_of(result: Any) -> Any:
    return as_floats(result) if isinstance(result, dict) else float(result)


def feed(case: Case, metric: Metric, sizes: tuple[int, ...] = (5, 7)) -> None:
    for rows in batches(list(sizes)):
        metric.update(*case.args(rows))


@pytest.fixture(params=CASES.values(), ids=CASES.keys())
def case(request) -> Case:
    return request.param


def test_flags(case):
    metric = case.make()
    assert metric.is_differentiable is False
    assert metric.full_state_update is False
    assert metric.higher_is_better is isinstance(metric, RecallAtK)


def test_compute_before_update_is_a_clear_error(case):
    metric = case.make()
    # torchmetrics warns first; the metric then refuses with a ValueError.
    with (
        pytest.warns(UserWarning, match="before the ``update``"),
        pytest.raises(ValueError, match=r"compute\(\) needs at least one update\(\)"),
    ):
        metric.compute()


def test_reset_clears_everything(case):
    metric = case.make()
    feed(case, metric)
    assert value_of(metric.compute()) == case.reference()
    metric.reset()
    assert all(getattr(metric, name) == [] for name in metric.metric_state)
    assert metric.update_count == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="update"):
            metric.compute()
    feed(case, metric, (12,))
    assert value_of(metric.compute()) == case.reference()


def test_state_is_ranks_or_counts_not_scores(case):
    metric = case.make()
    feed(case, metric, (3, 3, 6))
    states = metric.metric_state
    per_query = ["above", "tied_negatives", "tied_positives"] if "above" in states else ["ranks"]
    for name in per_query:
        assert torch.cat(states[name]).numel() == case.queries
    for tensors in states.values():
        assert all(t.dtype == torch.float64 and t.ndim == 1 for t in tensors)
    # Everything kept is O(queries): per query its ranks or counts, and at most one
    # number per batch beyond them.
    kept = sum(t.numel() for ts in states.values() for t in ts)
    assert kept <= len(per_query) * case.queries + 3


def test_scores_requiring_grad_leave_no_graph(case):
    metric = case.make()
    for rows in batches([5, 7]):
        scores, *rest = case.args(rows)
        metric.update(scores.clone().requires_grad_(True), *rest)
    assert not any(t.requires_grad for ts in metric.metric_state.values() for t in ts)
    assert value_of(metric.compute()) == case.reference()


def test_forward_returns_the_batch_and_accumulates(case):
    metric, first_only = case.make(), case.make()
    first, second = batches([5, 7])
    first_only.update(*case.args(first))
    assert value_of(metric(*case.args(first))) == value_of(first_only.compute())
    metric(*case.args(second))
    assert value_of(metric.compute()) == case.reference()


def test_clone_pickle_and_merge_state(case):
    first, second = batches([5, 7])
    metric = case.make()
    metric.update(*case.args(first))
    for copied in (metric.clone(), copy.deepcopy(metric), pickle.loads(pickle.dumps(metric))):
        copied.update(*case.args(second))
        assert value_of(copied.compute()) == case.reference()
    # The copies' updates left the original alone. merge_state puts the incoming rows
    # first: merging the first rows into a metric holding the rest keeps the order.
    rest = case.make()
    rest.update(*case.args(second))
    rest.merge_state(metric)
    assert value_of(rest.compute()) == case.reference()


def test_failed_update_leaves_state_unchanged(case):
    metric = case.make()
    metric.update(*case.args(slice(0, 5)))
    before = value_of(metric.compute())
    scores, *rest = case.args(slice(0, 2))
    with pytest.raises(ValueError, match="scores contains nan"):
        metric.update(torch.full_like(scores, float("nan")), *rest)
    assert value_of(metric.compute()) == before


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RecallAtK(k=0), "k must hold positive integers"),
        (lambda: RecallAtK(k=[]), "k must name at least one cut-off"),
        (lambda: RecallAtK(k=(1, 2.5)), "k must hold positive integers"),
        (lambda: RecallAtK(ties="random"), "ties must be one of"),
        (lambda: RecallAtK(empty="drop"), "empty must be one of"),
        (lambda: MeanRankVariance(reduction="mean"), "reduction must be one of"),
        (lambda: MeanRankVariance(ties="first"), "ties must be one of"),
        (lambda: RecallAtK(sync_on_compute="yes"), "sync_on_compute"),
    ],
)
def test_bad_options(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("scores", "positives", "match"),
    [
        (torch.zeros(5), [0] * 5, r"scores must be 2-D \[Q, G\]"),
        (torch.zeros(2, 3, 4), [0, 0], "scores must be 2-D"),
        (torch.zeros(0, 3), [], "at least one query"),
        (torch.tensor([[0.0, float("inf")]]), [0], r"scores contains inf at \[0, 1\]"),
        (torch.zeros(2, 3), torch.tensor([0, 3]), r"column index 3 at query 1, outside \[0, 3\)"),
        (torch.zeros(2, 3), torch.tensor([0]), r"shape \[2\]"),
        (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), "bool mask"),
        (torch.zeros(2, 3), torch.tensor([0.0, 1.0]), "integer column indices"),
    ],
)
def test_recall_bad_update(scores, positives, match):
    metric = RecallAtK()
    with pytest.raises(ValueError, match=match):
        metric.update(scores, positives)
    assert metric.above == [] and metric.tied_positives == []


def good_mrv() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(2, 3, 4), torch.tensor([0, 1])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.zeros(2, 4), torch.tensor([0, 1])), r"scores must be 3-D \[B, K, G\]"),
        ((torch.zeros(2, 3, 0), torch.tensor([0, 1])), r"at least one .* got \[2, 3, 0\]"),
        ((torch.zeros(2, 3, 4, dtype=torch.bool), torch.tensor([0, 1])), "must hold numbers"),
        ((torch.zeros(2, 3, 4), torch.tensor([0.0, 1.0])), "integer gallery indices"),
        ((torch.zeros(2, 3, 4), torch.tensor([True, False])), "integer gallery indices"),
        ((torch.zeros(2, 3, 4), torch.tensor([0, 1, 2])), r"shape \[2\] .* or \[2, 3\]"),
        ((torch.zeros(2, 3, 4), torch.zeros(3, 2, dtype=torch.long)), r"got \[3, 2\]"),
        ((torch.zeros(2, 3, 4), torch.tensor([0, 4])), r"index 4 at \[1, 0\], outside \[0, 4\)"),
        (
            (torch.zeros(2, 3, 4), torch.tensor([[0, 0, 0], [0, -1, 0]])),
            r"index -1 at \[1, 1\]",
        ),
        ((*good_mrv(), torch.ones(2, 3)), "mask must be a bool array, got dtype float32"),
        ((*good_mrv(), torch.ones(3, 2, dtype=torch.bool)), r"mask must have shape \[2, 3\]"),
    ],
)
def test_mrv_bad_update(args, match):
    metric = MeanRankVariance()
    with pytest.raises(ValueError, match=match):
        metric.update(*args)
    assert metric.ranks == [] and metric.languages == []


def test_mrv_non_finite_score_named_in_batch_coordinates():
    scores, positives = good_mrv()
    scores[1, 2, 3] = float("nan")
    scores[0, 1, 0] = float("inf")  # outside the mask: ignored
    mask = torch.tensor([[True, False, True], [True, True, True]])
    with pytest.raises(ValueError, match=r"scores contains nan at \[1, 2, 3\]"):
        MeanRankVariance().update(scores, positives, mask)
    scores[1, 2, 3] = 0.0
    MeanRankVariance().update(scores, positives, mask)


def test_mrv_every_batch_needs_the_same_languages():
    metric = MeanRankVariance()
    metric.update(*good_mrv())
    with pytest.raises(ValueError, match="scores covers 2 languages, earlier batches 3"):
        metric.update(torch.zeros(2, 2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="ranks covers 4 languages, earlier batches 3"):
        metric.update_ranks(torch.ones(1, 4))
    metric.reset()
    metric.update_ranks(torch.ones(1, 4))  # a reset forgets K


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.ones(3),), r"ranks must be 2-D \[B, K\]"),
        ((torch.ones(0, 3),), r"at least one instance and language, got \[0, 3\]"),
        ((torch.ones(2, 2, dtype=torch.bool),), "must hold numbers"),
        ((torch.tensor([[1.0, float("nan")]]),), r"ranks contains nan at \[0, 1\]"),
        (
            (torch.tensor([[1.0, float("inf")]]), torch.tensor([[True, False]])),
            None,  # outside the mask: fine
        ),
        ((torch.ones(2, 2), torch.ones(2, 3, dtype=torch.bool)), r"mask must have shape \[2, 2\]"),
    ],
)
def test_mrv_bad_update_ranks(args, match):
    metric = MeanRankVariance()
    if match is None:
        metric.update_ranks(*args)
        assert metric.update_count == 1
        return
    with pytest.raises(ValueError, match=match):
        metric.update_ranks(*args)
    assert metric.ranks == [] and metric.update_count == 0


def test_mrv_needs_an_instance_in_two_languages():
    metric = MeanRankVariance()
    metric.update(torch.zeros(3, 1, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="two or more languages"):
        metric.compute()


# ----------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_and_states():
    scores, positives, mask = mrv_problem(8)
    on_gpu = MeanRankVariance().to("cuda")
    on_cpu = MeanRankVariance()  # CUDA scores, CPU state
    for metric in (on_gpu, on_cpu):
        metric.update(scores[:5].cuda(), positives[:5].cuda(), mask[:5].cuda())
        metric.update(scores[5:].half().cuda(), positives[5:].cuda(), mask[5:].cuda())
    assert on_gpu.ranks[0].device.type == "cuda" and on_cpu.ranks[0].device.type == "cpu"
    assert on_gpu.compute().device.type == "cuda"
    halves = torch.cat([scores[:5], scores[5:].half().double()])
    expected = mrv_reference(halves, positives, mask, cm.DEFAULT_TIES, "variance")
    assert float(on_gpu.compute()) == float(on_cpu.compute()) == expected

    recall = RecallAtK(k=(1, 3)).to("cuda")
    recall.update(RECALL_SCORES[:5].cuda(), RECALL_POSITIVES[:5])
    recall.update(RECALL_SCORES[5:].cuda(), RECALL_POSITIVES[5:])
    result = recall.compute()
    assert all(v.device.type == "cuda" for v in result.values())
    assert as_floats(result) == cm.recall_at_k(
        cm.rank_counts(RECALL_SCORES, RECALL_POSITIVES), (1, 3)
    )


# --------------------------------------------------------------------- DDP

WORLD_SIZE = 2
# Rows each process feeds, in batches: uneven shares, and process 1 idle in "idle".
DDP_SHARES = {
    "uneven": {0: [slice(0, 2), slice(2, 7)], 1: [slice(7, 12)]},
    "idle": {0: [slice(0, 12)], 1: []},
}


def ddp_worker(rank: int, port: int, out_dir: str) -> None:
    with process_group(rank, port, WORLD_SIZE, timeout_s=30):
        warnings.simplefilter("ignore", UserWarning)  # compute() on the idle process
        results: dict[str, Any] = {}
        for scenario, shares in DDP_SHARES.items():
            for name, case in CASES.items():
                metric = case.make()
                for rows in shares[rank]:
                    metric.update(*case.args(rows))
                results[scenario, name] = value_of(metric.compute())
                # compute() gathers, then restores this process's own state.
                state = metric.above if isinstance(metric, RecallAtK) else metric.ranks
                results[scenario, name, "local"] = sum(t.numel() for t in state)
        # Processes that disagree on K get the same error, not a hang.
        mismatched = MeanRankVariance()
        mismatched.update_ranks(torch.ones(2, 2 + rank))
        try:
            mismatched.compute()
        except ValueError as exc:
            results["mismatch"] = str(exc)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")


@early
def ddp_run(items: Sequence[pytest.Item]) -> Iterator[Future[Path]]:
    """The processes' run of ``ddp_worker``, in the background as the session starts (early.py)."""
    with gloo_run(ddp_worker, nprocs=WORLD_SIZE) as run:
        yield run


@pytest.fixture(scope="module")
def ddp_results(early_work: Any) -> list[dict[Any, Any]]:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")
    with early_work(ddp_run) as run:
        out_dir = run.result()
        return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]


@pytest.mark.parametrize("scenario", DDP_SHARES)
@pytest.mark.parametrize("name", CASES)
def test_ddp_every_process_computes_the_global_value(ddp_results, scenario, name):
    case = CASES[name]
    per_query = case.queries // Q
    for rank, results in enumerate(ddp_results):
        assert results[scenario, name] == case.reference()
        local_rows = sum(s.stop - s.start for s in DDP_SHARES[scenario][rank])
        assert results[scenario, name, "local"] == local_rows * per_query


def test_ddp_mismatched_languages_raise_on_every_process(ddp_results):
    for results in ddp_results:
        assert "different numbers of languages [2, 3]" in results["mismatch"]
