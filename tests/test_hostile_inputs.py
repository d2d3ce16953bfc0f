"""The hostile-input registry: one table of bad inputs over the Python API and the CLI.

Each refused case names its entry point, the input, and the words the message must
hold (the argument or flag, and the problem). A refusal must be the library's
``InputError`` (a ``ValueError``); any other exception, or a number, fails the case.
The CLI cases must exit 2 with one line on stderr, nothing on stdout and no traceback.

``ACCEPTED`` lists inputs that look odd but have a documented meaning, each checked
against the plain form it is equivalent to.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ccr_metrics as cm
from ccr_metrics.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multi30k_synthetic.npz"
RNG = np.random.default_rng(0)
S = RNG.standard_normal((4, 5))  # scores [Q, G]
X = RNG.standard_normal((6, 3)).astype(np.float32)  # embeddings [N, D]
R = np.array([[1.0, 2.0], [3.0, 3.0], [2.0, 5.0]])  # ranks [N, K]
IMG = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
TXT = torch.nn.functional.normalize(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))


def _tmp() -> str:
    import tempfile

    return tempfile.mkdtemp()


def meta(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape, device="meta")


def nan_at(a: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    out = np.array(a, dtype=np.float64)
    out[index] = np.nan
    return out


def report() -> cm.Report:
    return cm.evaluate(X, {"en": X, "de": X[::-1].copy()}, device="cpu")


@dataclass(frozen=True)
class Case:
    entry: str  # the public function (or CLI command) under test
    call: Callable[[Path], Any]
    words: tuple[str, ...]  # all must appear in the message
    error: type[Exception] = cm.InputError


def case(
    entry: str, call: Callable[[Path], Any], *words: str, error: type[Exception] = cm.InputError
) -> Case:
    return Case(entry, call, words, error)


def _twice(metric: Any, indices: list[Any]) -> Any:
    for index in indices:
        metric.update(torch.tensor(S), [0, 1, 2, 3], dataset_index=index)
    return metric.compute()


def _ranks_twice(metric: Any, batches: list[np.ndarray]) -> Any:
    for ranks in batches:
        metric.update_ranks(torch.tensor(ranks))
    return metric.compute()


def _write_npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


REFUSED: dict[str, Case] = {
    # ----------------------------------------------------------------- scores
    "scores NaN": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(nan_at(S, (2, 3)), [0, 1, 2, 3]),
        "scores",
        "nan",
        "[2, 3]",
    ),
    "scores inf": case(
        "rank_counts",
        lambda p: cm.rank_counts(np.where(S > 1, np.inf, S), [0, 1, 2, 3]),
        "scores",
        "inf",
    ),
    "scores 1-D": case(
        "positive_ranks", lambda p: cm.positive_ranks(S[0], [0]), "scores", "[Q, G]"
    ),
    "scores 3-D": case(
        "positive_ranks", lambda p: cm.positive_ranks(S[None], [0]), "scores", "[Q, G]"
    ),
    "scores empty": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(np.zeros((0, 5)), []),
        "scores",
        "at least one",
    ),
    "scores strings": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(np.array([["a", "b"]]), [0]),
        "scores",
        "numeric",
    ),
    "scores object": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(np.array([[1, None]], dtype=object), [0]),
        "scores",
        "numeric",
    ),
    "scores complex": case(
        "positive_ranks", lambda p: cm.positive_ranks(S + 1j, [0, 1, 2, 3]), "scores", "complex"
    ),
    "scores ragged list": case(
        "positive_ranks",
        lambda p: cm.positive_ranks([[1.0, 2.0], [3.0]], [0, 0]),
        "scores",
        "array",
    ),
    "scores meta": case(
        "positive_ranks", lambda p: cm.positive_ranks(meta(4, 5), [0, 1, 2, 3]), "scores", "meta"
    ),
    "scores None": case("positive_ranks", lambda p: cm.positive_ranks(None, [0]), "scores"),
    "image_to_text NaN": case(
        "image_to_text_ranks",
        lambda p: cm.image_to_text_ranks(nan_at(S[:, :4], (0, 1))),
        "scores",
        "nan",
    ),
    "text_to_image NaN": case(
        "text_to_image_ranks",
        lambda p: cm.text_to_image_ranks(nan_at(S.T, (1, 0)), [0, 1, 2, 3, 0]),
        "scores",
        "nan",
    ),
    # -------------------------------------------------------------- positives
    "positive out of range": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [0, 1, 5, 3]),
        "positives",
        "5",
        "query 2",
        "[0, 5)",
    ),
    "positive negative": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [0, -1, 2, 3]),
        "positives",
        "-1",
        "query 1",
    ),
    "positives float": case(
        "positive_ranks", lambda p: cm.positive_ranks(S, [0.0, 1.0, 2.0, 3.0]), "positives", "float"
    ),
    "positives too few": case(
        "positive_ranks", lambda p: cm.positive_ranks(S, [0, 1]), "positives", "4", "2"
    ),
    "positives ragged out of range": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [[0], [1, 7], [2], [3]]),
        "positives",
        "7",
        "query 1",
    ),
    "positives listed 0/1 mask": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [[0, 1, 0, 0, 0]] * 4),
        "positives",
        "0/1",
        "bool mask",
    ),
    "positives int mask": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, np.eye(4, 5, dtype=int)),
        "positives",
        "bool mask",
    ),
    "positives mask shape": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, np.ones((4, 4), bool)),
        "positives",
        "[4, 5]",
    ),
    "positives empty row": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(
            S, np.eye(4, 5, dtype=bool) & np.array([[True], [False], [True], [True]])
        ),
        "row 1",
        "no positive",
    ),
    "positives a dict": case(
        "positive_ranks", lambda p: cm.positive_ranks(S, {0: 1}), "positives", "dict"
    ),
    "positives strings": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [["a"], ["b"], ["c"], ["d"]]),
        "positives",
        "integer",
    ),
    "empty option": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [0, 1, 2, 3], empty="skip"),
        "empty",
        "'skip'",
    ),
    # ------------------------------------------------------------ options
    "ties unknown": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [0, 1, 2, 3], ties="random"),
        "ties",
        "'random'",
    ),
    "ties None": case(
        "positive_ranks", lambda p: cm.positive_ranks(S, [0, 1, 2, 3], ties=None), "ties", "None"
    ),
    "chunk_size zero": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [0, 1, 2, 3], chunk_size=0),
        "chunk_size",
        "0",
    ),
    "chunk_size float": case(
        "rank_counts",
        lambda p: cm.rank_counts(S, [0, 1, 2, 3], chunk_size=1.5),
        "chunk_size",
        "1.5",
    ),
    "chunk_size string": case(
        "positive_ranks",
        lambda p: cm.positive_ranks(S, [0, 1, 2, 3], chunk_size="2"),
        "chunk_size",
        "'2'",
    ),
    "best wrong length": case(
        "rank_counts", lambda p: cm.rank_counts(S, [0, 1, 2, 3], best=np.zeros(3)), "best", "[4]"
    ),
    "best NaN": case(
        "rank_counts",
        lambda p: cm.rank_counts(S, [0, 1, 2, 3], best=np.full(4, np.nan)),
        "best",
        "nan",
    ),
    # ------------------------------------------------------------- recall
    "k zero": case("recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, 2.0]), k=0), "k", "0"),
    "k negative list": case(
        "recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, 2.0]), k=[1, -5]), "k", "-5"
    ),
    "k float": case(
        "recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, 2.0]), k=1.5), "k", "1.5"
    ),
    "k string": case(
        "recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, 2.0]), k="5"), "k", "'5'"
    ),
    "k empty": case("recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, 2.0]), k=[]), "k"),
    "k bool": case(
        "recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, 2.0]), k=True), "k", "True"
    ),
    "ranks NaN": case(
        "recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, np.nan]), k=1), "ranks", "nan"
    ),
    "ranks below 1": case(
        "recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, 0.0]), k=1), "ranks", "0"
    ),
    "ranks 2-D": case("recall_at_k", lambda p: cm.recall_at_k(R, k=1), "ranks", "1-D"),
    "ranks empty": case(
        "recall_at_k", lambda p: cm.recall_at_k(np.array([]), k=1), "ranks", "at least one"
    ),
    "ranks meta": case("recall_at_k", lambda p: cm.recall_at_k(meta(3), k=1), "ranks", "meta"),
    "expected ties from ranks": case(
        "recall_at_k",
        lambda p: cm.recall_at_k(np.array([1.0]), k=1, ties="expected"),
        "ties",
        "RankCounts",
    ),
    "multilingual not mapping": case(
        "multilingual_recall", lambda p: cm.multilingual_recall([1, 2]), "ranks"
    ),
    "multilingual bad direction": case(
        "multilingual_recall",
        lambda p: cm.multilingual_recall({"en": {"x2y": np.array([1.0])}}),
        "x2y",
    ),
    "recall_spread empty": case(
        "recall_spread", lambda p: cm.recall_spread({}), "recall_by_language"
    ),
    "recall_spread NaN": case(
        "recall_spread", lambda p: cm.recall_spread({"en": float("nan"), "de": 0.5}), "en", "nan"
    ),
    # ---------------------------------------------------------------- MRV
    "mrv one language": case(
        "mean_rank_variance", lambda p: cm.mean_rank_variance(R[:, :1]), "two"
    ),
    "mrv NaN unmasked": case(
        "mean_rank_variance",
        lambda p: cm.mean_rank_variance(nan_at(R, (1, 0))),
        "ranks",
        "nan",
        "[1, 0]",
    ),
    "mrv 1-D": case(
        "mean_rank_variance", lambda p: cm.mean_rank_variance(R[:, 0]), "ranks", "[N, K]"
    ),
    "mrv mask shape": case(
        "mean_rank_variance",
        lambda p: cm.mean_rank_variance(R, mask=np.ones((3, 3), bool)),
        "mask",
        "[3, 2]",
    ),
    "mrv mask not bool": case(
        "mean_rank_variance",
        lambda p: cm.mean_rank_variance(R, mask=np.ones((3, 2))),
        "mask",
        "bool",
    ),
    "mrv reduction": case(
        "mean_rank_variance",
        lambda p: cm.mean_rank_variance(R, reduction="mean"),
        "reduction",
        "'mean'",
    ),
    "mrv overflow": case(
        "mean_rank_variance",
        lambda p: cm.mean_rank_variance(np.array([[1e200, 1.0], [3e200, 2.0]])),
        "ranks",
        "float64",
        "std",
    ),
    "mrv meta": case(
        "mean_rank_variance", lambda p: cm.mean_rank_variance(meta(3, 2)), "ranks", "meta"
    ),
    "instance variance strings": case(
        "instance_rank_variance",
        lambda p: cm.instance_rank_variance(np.array([["1", "2"]])),
        "ranks",
        "numeric",
    ),
    "ranks_per_image n_images float": case(
        "ranks_per_image",
        lambda p: cm.ranks_per_image(np.array([1.0, 2.0]), np.array([0, 1]), n_images=2.5),
        "n_images",
        "2.5",
    ),
    "ranks_per_image index": case(
        "ranks_per_image",
        lambda p: cm.ranks_per_image(np.array([1.0, 2.0]), np.array([0, 3]), n_images=2),
        "text_to_image",
        "3",
    ),
    "ranks_per_image lengths": case(
        "ranks_per_image",
        lambda p: cm.ranks_per_image(np.array([1.0, 2.0]), np.array([0]), n_images=2),
        "text_to_image",
        "2",
    ),
    "ranks_per_image reduction": case(
        "ranks_per_image",
        lambda p: cm.ranks_per_image(np.array([1.0]), np.array([0]), 1, caption_reduction="last"),
        "caption_reduction",
        "'last'",
    ),
    "consistency k zero": case("consistency_at_k", lambda p: cm.consistency_at_k(R, 0), "k", "0"),
    "pairwise one language": case(
        "pairwise_disagreement", lambda p: cm.pairwise_disagreement(R[:, :1]), "2 language"
    ),
    "largest_spread top zero": case(
        "largest_spread", lambda p: cm.largest_spread(R, top=0), "top", "0"
    ),
    "largest_spread languages": case(
        "largest_spread", lambda p: cm.largest_spread(R, languages=["en"]), "languages", "2"
    ),
    # ------------------------------------------------------------ evaluate
    "evaluate t2i unknown language": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X}, {"fr": np.arange(6)}, device="cpu"),
        "text_to_image",
        "'fr'",
    ),
    "evaluate t2i out of range": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X}, {"en": np.array([0, 1, 2, 3, 4, 9])}, device="cpu"),
        "text_to_image",
        "9",
        "position 5",
    ),
    "evaluate t2i wrong length": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X[:4]}, {"en": np.arange(6)}, device="cpu"),
        "text_to_image",
        "4",
    ),
    "evaluate t2i float": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X}, {"en": np.arange(6) * 1.0}, device="cpu"),
        "text_to_image",
        "integer",
    ),
    "evaluate t2i not mapping": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X}, np.arange(6), device="cpu"),
        "text_to_image",
        "map",
    ),
    "evaluate no languages": case(
        "evaluate", lambda p: cm.evaluate(X, {}, device="cpu"), "text_embeds"
    ),
    "evaluate texts not mapping": case(
        "evaluate", lambda p: cm.evaluate(X, X, device="cpu"), "text_embeds"
    ),
    "evaluate dims differ": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X[:, :2]}, device="cpu"),
        "text_embeds['en']",
        "dimension 2",
        "3",
    ),
    "evaluate image 1-D": case(
        "evaluate",
        lambda p: cm.evaluate(X[0], {"en": X}, device="cpu"),
        "image_embeds",
        "[count, D]",
    ),
    "evaluate int embeddings": case(
        "evaluate",
        lambda p: cm.evaluate(X.astype(int), {"en": X.astype(int)}, device="cpu"),
        "image_embeds",
        "floating point",
    ),
    "evaluate NaN embedding": case(
        "evaluate",
        lambda p: cm.evaluate(nan_at(X, (2, 1)), {"en": X}, device="cpu"),
        "image_embeds",
        "nan",
        "[2, 1]",
    ),
    "evaluate empty images": case(
        "evaluate", lambda p: cm.evaluate(X[:0], {"en": X}, device="cpu"), "image_embeds", "empty"
    ),
    "evaluate meta": case(
        "evaluate", lambda p: cm.evaluate(meta(4, 3), {"en": meta(4, 3)}), "image_embeds", "meta"
    ),
    "evaluate device meta": case(
        "evaluate", lambda p: cm.evaluate(X, {"en": X}, device="meta"), "device", "'meta'"
    ),
    "evaluate device bogus": case(
        "evaluate", lambda p: cm.evaluate(X, {"en": X}, device="gpu0"), "device", "'gpu0'"
    ),
    "evaluate ks bad": case(
        "evaluate", lambda p: cm.evaluate(X, {"en": X}, device="cpu", k=[0, -5]), "k", "0"
    ),
    "evaluate languages unknown": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X}, device="cpu", languages=["de"]),
        "language",
        "'de'",
    ),
    "evaluate languages repeated": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X, "de": X}, device="cpu", languages=["en", "de", "en"]),
        "languages",
        "'en'",
        "more than once",
    ),
    "evaluate caption_reduction": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X}, device="cpu", caption_reduction="last"),
        "caption_reduction",
        "'last'",
    ),
    "evaluate fp16 overflow": case(
        "evaluate",
        lambda p: cm.evaluate(
            (X * 300).astype(np.float16), {"en": (X * 300).astype(np.float16)}, device="cpu"
        ),
        "float16",
        "overflow",
    ),
    "evaluate rerank not callable": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X}, device="cpu", rerank=5),
        "rerank",
        "callable",
    ),
    "evaluate rerank_k zero": case(
        "evaluate",
        lambda p: cm.evaluate(
            X, {"en": X}, device="cpu", rerank=lambda lang, i, t: i * 0.0, rerank_k=0
        ),
        "rerank_k",
        "0",
    ),
    "evaluate rerank wrong length": case(
        "evaluate",
        lambda p: cm.evaluate(X, {"en": X}, device="cpu", rerank=lambda lang, i, t: torch.zeros(3)),
        "rerank",
        "score",
    ),
    "evaluate rerank NaN": case(
        "evaluate",
        lambda p: cm.evaluate(
            X, {"en": X}, device="cpu", rerank=lambda lang, i, t: torch.full(i.shape, float("nan"))
        ),
        "rerank",
        "nan",
    ),
    "evaluate rerank protocol": case(
        "evaluate",
        lambda p: cm.evaluate(
            X, {"en": X}, device="cpu", rerank=lambda lang, i, t: i * 0.0, rerank_protocol="argsort"
        ),
        "rerank_protocol",
        "'argsort'",
    ),
    "evaluate_scores nothing": case(
        "evaluate_scores", lambda p: cm.evaluate_scores(device="cpu"), "i2t"
    ),
    "evaluate_scores shapes": case(
        "evaluate_scores",
        lambda p: cm.evaluate_scores(i2t={"en": S}, t2i={"en": S}, device="cpu"),
        "t2i['en']",
        "images",
    ),
    "evaluate_scores NaN": case(
        "evaluate_scores",
        lambda p: cm.evaluate_scores(i2t={"en": nan_at(S[:, :4], (1, 2))}, device="cpu"),
        "i2t['en']",
        "nan",
    ),
    "evaluate_scores t2i unknown language": case(
        "evaluate_scores",
        lambda p: cm.evaluate_scores(
            i2t={"en": S}, text_to_image={"de": np.arange(5) % 4}, device="cpu"
        ),
        "text_to_image",
        "'de'",
    ),
    # ------------------------------------------------------------- re-ranking
    "reranked duplicate candidates": case(
        "reranked_ranks",
        lambda p: cm.reranked_ranks(S, np.array([[0, 0]] * 4), np.zeros((4, 2)), [0, 1, 2, 3]),
        "candidates",
        "repeats",
        "row 0",
    ),
    "reranked candidate range": case(
        "reranked_ranks",
        lambda p: cm.reranked_ranks(S, np.array([[0, 9]] * 4), np.zeros((4, 2)), [0, 1, 2, 3]),
        "candidates",
        "9",
    ),
    "reranked fine shape": case(
        "reranked_ranks",
        lambda p: cm.reranked_ranks(S, np.array([[0, 1]] * 4), np.zeros((4, 3)), [0, 1, 2, 3]),
        "fine",
        "[4, 2]",
    ),
    "reranked fine NaN": case(
        "reranked_rank_counts",
        lambda p: cm.reranked_rank_counts(
            S, np.array([[0, 1]] * 4), nan_at(np.zeros((4, 2)), (3, 1)), [0, 1, 2, 3]
        ),
        "fine",
        "nan",
    ),
    "reranked k above G": case(
        "reranked_ranks",
        lambda p: cm.reranked_ranks(
            S, np.tile(np.arange(6), (4, 1)) % 5, np.zeros((4, 6)), [0, 1, 2, 3]
        ),
        "candidates",
    ),
    "released fill NaN": case(
        "released_rerank_scores",
        lambda p: cm.released_rerank_scores(
            S, np.array([[0, 1]] * 4), np.zeros((4, 2)), fill=float("nan")
        ),
        "fill",
        "nan",
    ),
    "top_candidates k zero": case("top_candidates", lambda p: cm.top_candidates(S, 0), "k", "0"),
    "top_candidates k above G": case(
        "top_candidates", lambda p: cm.top_candidates(S, 6), "k", "6", "5"
    ),
    # ----------------------------------------------------------------- losses
    "loss meta": case(
        "one_to_k_contrastive_loss",
        lambda p: cm.one_to_k_contrastive_loss(meta(2, 3), meta(2, 2, 3), temperature=0.07),
        "meta",
    ),
    "loss batch mismatch": case(
        "one_to_k_contrastive_loss",
        lambda p: cm.one_to_k_contrastive_loss(
            torch.randn(2, 3), torch.randn(3, 2, 3), temperature=0.07
        ),
        "text_embeds",
        "2",
    ),
    "loss dim mismatch": case(
        "one_to_k_contrastive_loss",
        lambda p: cm.one_to_k_contrastive_loss(
            torch.randn(2, 3), torch.randn(2, 2, 4), temperature=0.07
        ),
        "text_embeds",
        "3",
    ),
    "loss NaN": case(
        "one_to_k_contrastive_loss",
        lambda p: cm.one_to_k_contrastive_loss(
            torch.full((2, 3), float("nan")), torch.randn(2, 2, 3), temperature=0.07
        ),
        "image_embeds",
        "nan",
    ),
    "loss temperature zero": case(
        "one_to_k_contrastive_loss",
        lambda p: cm.one_to_k_contrastive_loss(
            torch.randn(2, 3), torch.randn(2, 2, 3), temperature=0.0
        ),
        "temperature",
        "0",
    ),
    "loss mask shape": case(
        "one_to_k_contrastive_loss",
        lambda p: cm.one_to_k_contrastive_loss(
            torch.randn(2, 3),
            torch.randn(2, 2, 3),
            temperature=0.07,
            text_mask=torch.ones(2, 3, dtype=torch.bool),
        ),
        "text_mask",
        "[2, 2]",
    ),
    "loss variant": case(
        "one_to_k_contrastive_loss",
        lambda p: cm.one_to_k_contrastive_loss(
            torch.randn(2, 3), torch.randn(2, 2, 3), temperature=0.07, variant="other"
        ),
        "variant",
        "'other'",
    ),
    "loss numpy": case(
        "one_to_k_contrastive_loss",
        lambda p: cm.one_to_k_contrastive_loss(
            np.ones((2, 3)), torch.randn(2, 2, 3), temperature=0.07
        ),
        "image_embeds",
        "tensor",
    ),
    "one-to-one language range": case(
        "one_to_one_contrastive_loss",
        lambda p: cm.one_to_one_contrastive_loss(
            torch.randn(2, 3), torch.randn(2, 2, 3), language=torch.tensor([0, 5])
        ),
        "language",
        "5",
    ),
    "loss module NaN scale": case(
        "OneToKContrastiveLoss",
        lambda p: cm.OneToKContrastiveLoss(temperature=float("nan")),
        "temperature",
        "nan",
    ),
    "matching_loss labels": case(
        "matching_loss",
        lambda p: cm.matching_loss(torch.randn(4, 2), torch.tensor([0, 1, 2, 0])),
        "labels",
        "2",
    ),
    # --------------------------------------------------------------- sampling
    "mine 1-D": case("mine", lambda p: cm.mine(torch.randn(4)), "sim_i2t"),
    "mine temperature": case(
        "mine", lambda p: cm.mine(torch.randn(2, 4), temperature=-1.0), "temperature", "-1"
    ),
    "hard negatives mask shape": case(
        "hard_negatives",
        lambda p: cm.hard_negatives(torch.randn(2, 4), torch.ones(2, 3, dtype=torch.bool)),
        "positive_mask",
        "[2, 4]",
    ),
    "hard positives NaN": case(
        "hard_positive_probabilities",
        lambda p: cm.hard_positive_probabilities(torch.full((2, 2), float("nan"))),
        "sim",
        "nan",
    ),
    "released option": case(
        "released_hard_positive_probabilities",
        lambda p: cm.released_hard_positive_probabilities(torch.randn(2, 4), 0.07, option=7),
        "option",
        "7",
    ),
    # ------------------------------------------------------- reports and stats
    "bootstrap ci": case(
        "bootstrap_intervals", lambda p: cm.bootstrap_intervals(report(), ci=1.5), "ci", "1.5"
    ),
    "bootstrap resamples": case(
        "bootstrap_intervals",
        lambda p: cm.bootstrap_intervals(report(), n_resamples=0),
        "n_resamples",
        "0",
    ),
    "bootstrap method": case(
        "bootstrap_intervals",
        lambda p: cm.bootstrap_intervals(report(), method="normal"),
        "method",
        "'normal'",
    ),
    "compare different sets": case(
        "compare",
        lambda p: cm.compare(
            report(), cm.evaluate(X[:5], {"en": X[:5], "de": X[:5]}, device="cpu")
        ),
        "image",
    ),
    "breakdown k zero": case(
        "consistency_breakdown", lambda p: cm.consistency_breakdown(report(), k=0), "k", "0"
    ),
    "report with_ties": case(
        "Report.with_ties", lambda p: report().with_ties("random"), "ties", "'random'"
    ),
    "report recall language": case(
        "Report.query_ranks", lambda p: report().query_ranks("fr", "i2t"), "'fr'"
    ),
    "hard negative probabilities NaN": case(
        "hard_negative_probabilities",
        lambda p: cm.hard_negative_probabilities(
            torch.full((2, 4), float("nan")), torch.eye(2, 4, dtype=torch.bool)
        ),
        "sim",
        "nan",
    ),
    "hard positive languages mask": case(
        "hard_positive_languages",
        lambda p: cm.hard_positive_languages(
            torch.randn(2, 3), text_mask=torch.zeros(2, 3, dtype=torch.bool)
        ),
        "text_mask",
    ),
    "released languages option": case(
        "released_hard_positive_languages",
        lambda p: cm.released_hard_positive_languages(torch.randn(2, 4), 0.07, option=3),
        "option",
        "3",
    ),
    "matching_pairs not hard samples": case(
        "matching_pairs",
        lambda p: cm.matching_pairs((1, 2, 3)),
        "hard.positive_text",
        "1-D integer tensor",
    ),
    "resolve_device bogus": case(
        "resolve_device", lambda p: cm.resolve_device("tpu:x"), "device", "'tpu:x'"
    ),
    "sharded bad shapes": case(
        "evaluate_sharded",
        lambda p: cm.evaluate_sharded(X, {"en": X[:, :2]}, device="cpu"),
        "text_embeds['en']",
        "dimension",
    ),
    "gather a non-tensor": case(
        "all_gather_with_grad", lambda p: cm.all_gather_with_grad([1.0, 2.0]), "tensor", "list"
    ),
    "plot a non-report": case("plot_report", lambda p: cm.plot_report({"en": 1}), "report", "dict"),
    "plot suffix": case(
        "plot_report", lambda p: cm.plot_report(report(), p / "r.jpg"), "r.jpg", ".png"
    ),
    "plot_comparison a non-comparison": case(
        "plot_comparison", lambda p: cm.plot_comparison(report()), "comparison", "Report"
    ),
    # ------------------------------------------------------------ torchmetrics
    "RecallAtK k zero": case("RecallAtK", lambda p: cm.RecallAtK(k=0), "k", "0"),
    "RecallAtK ties": case("RecallAtK", lambda p: cm.RecallAtK(ties="random"), "ties", "'random'"),
    "RecallAtK NaN batch": case(
        "RecallAtK.update",
        lambda p: cm.RecallAtK().update(torch.tensor(nan_at(S, (0, 0))), [0, 1, 2, 3]),
        "scores",
        "nan",
    ),
    "RecallAtK positives range": case(
        "RecallAtK.update",
        lambda p: cm.RecallAtK().update(torch.tensor(S), [0, 1, 2, 9]),
        "positives",
        "9",
    ),
    "RecallAtK dataset_index float": case(
        "RecallAtK.update",
        lambda p: cm.RecallAtK().update(
            torch.tensor(S), [0, 1, 2, 3], dataset_index=torch.zeros(4)
        ),
        "dataset_index",
        "integer",
    ),
    "RecallAtK dataset_index some batches": case(
        "RecallAtK.update",
        lambda p: _twice(cm.RecallAtK(), [torch.arange(4), None]),
        "dataset_index",
    ),
    "RecallAtK compute before update": case(
        "RecallAtK.compute", lambda p: cm.RecallAtK().compute(), "update"
    ),
    "MRV metric reduction": case(
        "MeanRankVariance", lambda p: cm.MeanRankVariance(reduction="mean"), "reduction", "'mean'"
    ),
    "MRV metric 2-D scores": case(
        "MeanRankVariance.update",
        lambda p: cm.MeanRankVariance().update(torch.tensor(S), [0, 1, 2, 3]),
        "scores",
        "[B, K, G]",
    ),
    "MRV metric ranks NaN": case(
        "MeanRankVariance.update_ranks",
        lambda p: cm.MeanRankVariance().update_ranks(torch.tensor(nan_at(R, (0, 1)))),
        "ranks",
        "nan",
    ),
    "MRV metric languages change": case(
        "MeanRankVariance.update_ranks",
        lambda p: _ranks_twice(cm.MeanRankVariance(), [R, R[:, :1]]),
        "2",
    ),
    # ------------------------------------------------------------------- files
    # A missing file is the OSError Python users expect (the CLI exits 2 on it too).
    "load missing file": case(
        "load_embeddings",
        lambda p: cm.load_embeddings(p / "nope.npz"),
        "nope.npz",
        "no such file",
        error=FileNotFoundError,
    ),
    "load directory as npz": case(
        "load_embeddings", lambda p: cm.load_embeddings(p), "holds no arrays"
    ),
    "load unknown suffix": case(
        "load_embeddings",
        lambda p: cm.load_embeddings((p / "a.txt").write_text("x") and p / "a.txt"),
        "a.txt",
    ),
    "load npz no image": case(
        "load_embeddings",
        lambda p: cm.load_embeddings(_write_npz(p / "e.npz", **{"text.en": X})),
        "image",
    ),
    "load npz pickled": case(
        "load_embeddings",
        lambda p: cm.load_embeddings(
            _write_npz(p / "e.npz", image=X, **{"text.en": np.array([{}], dtype=object)})
        ),
        "text.en",
        "pickled",
    ),
    "load corrupt npz": case(
        "load_scores",
        lambda p: cm.load_scores((p / "s.npz").write_bytes(b"PK\x03\x04garbage") and p / "s.npz"),
        "s.npz",
    ),
    "load corrupt safetensors": case(
        "load_embeddings",
        lambda p: cm.load_embeddings(
            (p / "e.safetensors").write_bytes(b"\xff" * 16) and p / "e.safetensors"
        ),
        "e.safetensors",
    ),
    "load ranks 2-D": case(
        "load_ranks",
        lambda p: cm.load_ranks((np.save(p / "r.npy", R), p / "r.npy")[1]),
        "r.npy",
        "1-D",
    ),
    "load_arrays missing key file": case(
        "load_arrays",
        lambda p: cm.load_arrays(
            (p / "x.npy").write_bytes(b"\x93NUMPY\x01\x00garbage") and p / "x.npy"
        ),
        "x.npy",
    ),
    "load_rank_matrix lengths": case(
        "load_rank_matrix",
        lambda p: cm.load_rank_matrix(
            {
                "en": (np.save(p / "en.npy", np.arange(3)), p / "en.npy")[1],
                "de": (np.save(p / "de.npy", np.arange(4)), p / "de.npy")[1],
            }
        ),
        "de",
        "4",
    ),
    "load_released_ranks no folder": case(
        "load_released_ranks",
        lambda p: cm.load_released_ranks(p / "none", "m"),
        "none",
        "no such directory",
        error=FileNotFoundError,
    ),
    "load_reranking no candidates": case(
        "load_reranking",
        lambda p: cm.load_reranking(
            _write_npz(
                p / "s.npz", **{"i2t.en": S[:, :4], "i2t_candidates.en": np.zeros((4, 2), int)}
            )
        ),
        "i2t_fine.en",
    ),
    "load report missing": case(
        "Report.load",
        lambda p: cm.Report.load(p / "r.json"),
        "r.json",
        "no such file",
        error=FileNotFoundError,
    ),
    "load report not json": case(
        "Report.load",
        lambda p: cm.Report.load((p / "r.json").write_text("{") and p / "r.json"),
        "r.json",
    ),
    "load report wrong format": case(
        "Report.load",
        lambda p: cm.Report.load(
            (p / "r.json").write_text(json.dumps({"format": "other/9"})) and p / "r.json"
        ),
        "format",
    ),
}


def _cli(args: list[str]) -> Callable[[Path], list[str]]:
    return lambda p: [a.replace("{tmp}", str(p)).replace("{example}", str(EXAMPLE)) for a in args]


def _cli_with_file(make: Callable[[Path], Path], args: list[str]) -> Callable[[Path], list[str]]:
    def argv(p: Path) -> list[str]:
        path = make(p)
        return [a.replace("{file}", str(path)).replace("{tmp}", str(p)) for a in args]

    return argv


def _bad_embeddings(p: Path) -> Path:
    return _write_npz(p / "bad.npz", image=X, **{"text.en": X[:, :2]})


def _nan_scores(p: Path) -> Path:
    return _write_npz(p / "s.npz", **{"i2t.en": nan_at(S[:, :4], (1, 1))})


def _short_report(p: Path) -> Path:
    report().save(p / "a.json")
    doc = json.loads((p / "a.json").read_text())
    doc["ranks"]["en"]["i2t"] = doc["ranks"]["en"]["i2t"][:2]
    (p / "short.json").write_text(json.dumps(doc))
    return p / "short.json"


CLI_REFUSED: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    "unknown command": (_cli(["rank"]), ("invalid choice",)),
    "missing file": (_cli(["evaluate", "{tmp}/nope.npz", "--device", "cpu"]), ("nope.npz",)),
    "device meta": (_cli(["evaluate", "{example}", "--device", "meta"]), ("--device", "'meta'")),
    "device bogus": (_cli(["evaluate", "{example}", "--device", "gpu"]), ("--device", "'gpu'")),
    "k zero": (_cli(["evaluate", "{example}", "--k", "0"]), ("--k", "'0'")),
    "ties unknown": (_cli(["evaluate", "{example}", "--ties", "random"]), ("--ties", "random")),
    "csv in missing folder": (
        _cli(["evaluate", "{example}", "--csv", "{tmp}/no/r.csv"]),
        ("--csv", "does not exist"),
    ),
    "csv is a folder": (_cli(["evaluate", "{example}", "--csv", "{tmp}"]), ("--csv", "directory")),
    "json unwritable": (
        _cli(["evaluate", "{example}", "--json", "/proc/version"]),
        ("--json", "/proc/version"),
    ),
    "languages unknown": (
        _cli(["evaluate", "{example}", "--device", "cpu", "--languages", "ru"]),
        ("'ru'",),
    ),
    "embeddings dims": (
        _cli_with_file(_bad_embeddings, ["evaluate", "{file}", "--device", "cpu"]),
        ("bad.npz", "dimension"),
    ),
    "scores NaN": (
        _cli_with_file(_nan_scores, ["scores", "{file}", "--device", "cpu"]),
        ("s.npz", "nan"),
    ),
    "compare short report": (
        _cli_with_file(_short_report, ["compare", "{tmp}/a.json", "{file}"]),
        ("short.json",),
    ),
    "ci out of range": (_cli(["evaluate", "{example}", "--ci", "2"]), ("--ci", "2")),
    "chunk size zero": (
        _cli(["evaluate", "{example}", "--chunk-size", "0"]),
        ("--chunk-size", "'0'"),
    ),
    "resamples zero": (
        _cli(["evaluate", "{example}", "--ci", "0.9", "--n-resamples", "0"]),
        ("--n-resamples",),
    ),
    "ci method": (
        _cli(["evaluate", "{example}", "--ci", "0.9", "--ci-method", "normal"]),
        ("--ci-method", "normal"),
    ),
    "breakdown zero": (_cli(["evaluate", "{example}", "--breakdown", "0"]), ("--breakdown", "'0'")),
    "languages repeated": (
        _cli(["evaluate", "{example}", "--languages", "en", "en"]),
        ("'en'", "more than once"),
    ),
    "caption reduction": (
        _cli(["evaluate", "{example}", "--caption-reduction", "last"]),
        ("--caption-reduction", "last"),
    ),
    "plot in missing folder": (
        _cli(["evaluate", "{example}", "--plot", "{tmp}/no/p.png"]),
        ("--plot", "does not exist"),
    ),
    "plot suffix": (_cli(["evaluate", "{example}", "--plot", "{tmp}/p.jpg"]), ("--plot", ".jpg")),
    "seed not a number": (
        _cli(["evaluate", "{example}", "--ci", "0.9", "--seed", "x"]),
        ("--seed", "'x'"),
    ),
    "scores on embeddings": (
        _cli(["scores", "{example}", "--device", "cpu"]),
        ("multi30k_synthetic.npz",),
    ),
    "rerank protocol": (
        _cli_with_file(_nan_scores, ["scores", "{file}", "--rerank-protocol", "argsort"]),
        ("--rerank-protocol", "argsort"),
    ),
    "mrv reduction": (
        _cli(["mrv", "--ranks", "en=a.npy", "de=b.npy", "--reduction", "mean"]),
        ("--reduction", "mean"),
    ),
    "mrv on a score file": (
        _cli_with_file(_nan_scores, ["mrv", "--ranks", "en={file}", "de={file}"]),
        ("s.npz",),
    ),
    "compare missing report": (
        _cli(["compare", "{tmp}/a.json", "{tmp}/b.json"]),
        ("a.json", "no such file"),
    ),
    "compare not json": (
        _cli_with_file(
            lambda p: (p / "x.json").write_text("[") and p / "x.json",
            ["compare", "{file}", "{file}"],
        ),
        ("x.json",),
    ),
    "compare permutations zero": (
        _cli_with_file(
            _short_report, ["compare", "{tmp}/a.json", "{tmp}/a.json", "--permutations", "0"]
        ),
        ("--permutations", "'0'"),
    ),
    "pickled .pt": (
        _cli_with_file(
            lambda p: (torch.save({"image": object()}, p / "e.pt"), p / "e.pt")[1],
            ["evaluate", "{file}"],
        ),
        ("e.pt", "refused"),
    ),
}


def _outcome(
    call: Callable[[], Any], error: type[Exception] = cm.InputError
) -> tuple[str, BaseException | Any]:
    try:
        return "returned", call()
    except error as exc:
        return "refused", exc
    except Exception as exc:  # anything else is a leak
        return "leaked", exc


@pytest.mark.parametrize("name", list(REFUSED))
@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")  # torchmetrics' own
def test_refused_in_the_users_terms(name, tmp_path):
    entry = REFUSED[name]
    kind, result = _outcome(lambda: entry.call(tmp_path), entry.error)
    assert kind == "refused", f"{entry.entry}: {kind} {type(result).__name__}: {result!r}"[:400]
    message = str(result)
    for word in entry.words:
        assert word.lower() in message.lower(), (word, message)


@pytest.mark.parametrize("name", list(CLI_REFUSED))
def test_cli_refuses_with_one_line_and_status_2(name, tmp_path, capsys):
    argv, words = CLI_REFUSED[name]
    status = main(argv(tmp_path))
    out, err = capsys.readouterr()
    assert status == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ccr-metrics: error: "), err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def test_an_output_that_fails_at_the_end_names_flag_and_path(tmp_path, capsys, monkeypatch):
    """A write that fails after the work (a full disk) names the flag and the path."""
    target = tmp_path / "r.csv"

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pandas.DataFrame.to_csv", full_disk)
    status = main(["evaluate", str(EXAMPLE), "--device", "cpu", "--csv", str(target)])
    err = capsys.readouterr().err
    assert status == 2
    assert "--csv" in err and str(target) in err and "No space left" in err
    assert len(err.strip().splitlines()) == 1


def test_an_unwritable_output_is_refused_before_reading_the_input(tmp_path, capsys):
    """The --json check comes first: the missing input is not even looked at."""
    if not Path("/proc/version").is_file():
        pytest.skip("needs Linux's /proc, writable by no one")
    status = main(["evaluate", str(tmp_path / "missing.npz"), "--json", "/proc/version"])
    err = capsys.readouterr().err
    assert status == 2 and "--json" in err and "missing.npz" not in err


# Odd inputs with a documented meaning, each equal to its plain form.
ACCEPTED: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "k as 0-d tensor": (
        lambda: cm.recall_at_k(np.array([1.0, 3.0]), k=torch.tensor(2)),
        lambda: cm.recall_at_k(np.array([1.0, 3.0]), k=2),
    ),
    "k as numpy int": (
        lambda: cm.recall_at_k(np.array([1.0, 3.0]), k=np.int64(2)),
        lambda: cm.recall_at_k(np.array([1.0, 3.0]), k=2),
    ),
    "k beyond the gallery": (
        lambda: cm.recall_at_k(np.array([1.0, 3.0]), k=100),
        lambda: {100: 1.0},
    ),
    "embeddings that require grad": (
        lambda: cm.evaluate(
            torch.tensor(X, requires_grad=True), {"en": torch.tensor(X)}, device="cpu"
        ).recall(),
        lambda: cm.evaluate(X, {"en": X}, device="cpu").recall(),
    ),
    "scores that require grad": (
        lambda: cm.positive_ranks(torch.tensor(S, requires_grad=True), [0, 1, 2, 3]).tolist(),
        lambda: cm.positive_ranks(S, [0, 1, 2, 3]).tolist(),
    ),
    "negative scores": (
        lambda: cm.positive_ranks(S - 100, [0, 1, 2, 3]).tolist(),
        lambda: cm.positive_ranks(S, [0, 1, 2, 3]).tolist(),
    ),
    "repeated ragged positives": (
        lambda: cm.positive_ranks(S, [[0, 0], [1], [2, 2, 2], [3]]).tolist(),
        lambda: cm.positive_ranks(S, [0, 1, 2, 3]).tolist(),
    ),
    "two columns, listed indices": (
        lambda: cm.positive_ranks(S[:, :2], [[0, 1]] * 4).tolist(),
        lambda: cm.positive_ranks(S[:, :2], np.ones((4, 2), bool)).tolist(),
    ),
    "integer scores": (
        lambda: cm.positive_ranks(np.round(S * 3).astype(int), [0, 1, 2, 3]).tolist(),
        lambda: cm.positive_ranks(np.round(S * 3), [0, 1, 2, 3]).tolist(),
    ),
    "big-endian scores": (
        lambda: cm.positive_ranks(S.astype(">f8"), [0, 1, 2, 3]).tolist(),
        lambda: cm.positive_ranks(S, [0, 1, 2, 3]).tolist(),
    ),
    "non-contiguous scores": (
        lambda: cm.positive_ranks(np.asfortranarray(S)[:, ::-1], [4, 3, 2, 1]).tolist(),
        lambda: cm.positive_ranks(S[:, ::-1].copy(), [4, 3, 2, 1]).tolist(),
    ),
    "huge ranks, std": (
        lambda: cm.mean_rank_variance(np.array([[1e200, 3e200]]), reduction="std"),
        lambda: 1e200,
    ),
    "huge ranks, variance in range": (
        lambda: cm.mean_rank_variance(np.array([[2.0**500, 0.0], [0.0, 2.0**500]])),
        lambda: 2.0**998,  # ((2**500) / 2) ** 2, exact in binary
    ),
    "ranks as nested lists": (
        lambda: cm.mean_rank_variance([[1, 2], [3, 3]]),
        lambda: cm.mean_rank_variance(np.array([[1.0, 2.0], [3.0, 3.0]])),
    ),
    "0-based ranks for MRV (offset invariant)": (
        lambda: cm.mean_rank_variance(R - 1),
        lambda: cm.mean_rank_variance(R),
    ),
    "ranks_per_image n_images as numpy int": (
        lambda: cm.ranks_per_image(np.array([1.0, 2.0]), np.array([0, 1]), np.int64(2))[0].tolist(),
        lambda: [1.0, 2.0],
    ),
    "languages as one string": (
        lambda: cm.evaluate(X, {"en": X, "de": X}, device="cpu", languages="en").recall(),
        lambda: cm.evaluate(X, {"en": X, "de": X}, device="cpu", languages=["en"]).recall(),
    ),
    "evaluate_sharded outside a process group: one process": (
        lambda: cm.evaluate_sharded(X, {"en": X}, device="cpu").recall(),
        lambda: cm.evaluate(X, {"en": X}, device="cpu").recall(),
    ),
    "all_gather_with_grad outside a process group: itself": (
        lambda: cm.all_gather_with_grad(torch.arange(3.0)).tolist(),
        lambda: [0.0, 1.0, 2.0],
    ),
    "a second stage file without second-stage keys: a score file": (
        lambda: (
            cm.load_reranking(_write_npz(Path(_tmp()) / "s.npz", **{"i2t.en": S[:, :4]})).candidates
        ),
        lambda: {},
    ),
    "text_to_image for a language left out by languages=": (
        lambda: cm.evaluate(
            X, {"en": X, "de": X[:3]}, {"de": np.arange(3)}, device="cpu", languages=["en"]
        ).recall(),
        lambda: cm.evaluate(X, {"en": X}, device="cpu").recall(),
    ),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_with_a_documented_meaning(name):
    odd, plain = ACCEPTED[name]
    kind, result = _outcome(odd)
    assert kind == "returned", f"{kind} {type(result).__name__}: {result}"
    assert result == plain()


def test_the_registry_covers_every_public_function():
    """Every public function (and the loss class) has at least one refused case."""
    covered = {c.entry.split(".")[0] for c in REFUSED.values()}
    public = {
        name
        for name in cm.__all__
        if callable(getattr(cm, name)) and not isinstance(getattr(cm, name), type)
    }
    # Functions without array or option arguments to get wrong: nothing to refuse, or
    # refused elsewhere (the distributed gather needs a process group: tests/test_distributed_*).
    exempt: set[str] = set()
    missing = sorted(public - covered - exempt)
    assert missing == [], missing
    print(Counter(c.entry for c in REFUSED.values()))
