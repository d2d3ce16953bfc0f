"""The hostile-input registry: one table of bad inputs over the Python API and the CLI.

Each refused case names its entry point, the input, and the words the message must
hold (the argument or flag, and the problem). A refusal must be the library's
``InputError`` (a ``ValueError``); any other exception, or a number, fails the case.
The CLI cases must exit 2 with one line on stderr, nothing on stdout and no traceback.

``ACCEPTED`` lists inputs that look odd but have a documented meaning, each checked
against the plain form it is equivalent to.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import struct
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from waiting import bounded

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
    "load_benchmark bad line": case(
        "load_benchmark",
        lambda p: cm.load_benchmark(
            "xm3600", (p / "captions.jsonl").write_text('{"image/key": "a"}\n{') and p
        ),
        "captions.jsonl, line 2",
        "not a JSON object",
    ),
    "encode_benchmark wrong rows": case(
        "encode_benchmark",
        lambda p: cm.encode_benchmark(
            cm.Benchmark("b", "test", ["a", "b"], {"en": ["x", "y"]}, {"en": [0, 1]}),
            lambda paths: np.zeros((1, 2)),
            lambda texts, language: np.zeros((len(texts), 2)),
            batch_size=2,
        ),
        "encode_images",
        "batch 0",
    ),
    "load_ranked_lists repeated item": case(
        "load_ranked_lists",
        lambda p: cm.load_ranked_lists(
            (p / "en.json").write_text("[[0, 1], [2, 2]]") and p / "en.json"
        ),
        "en.json",
        "query 1",
        "twice",
    ),
    "evaluate_lists k beyond the depth": case(
        "evaluate_lists",
        lambda p: cm.evaluate_lists({"en": np.array([[0, 1], [1, 0]])}, n_images=2, k=5),
        "k=5",
        "depth 2",
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
    "lists k beyond the depth": (
        _cli_with_file(
            lambda p: (p / "l_en.json").write_text("[[0, 1], [1, 0]]") and p / "l_en.json",
            ["lists", "--lists", "{tmp}/l_{language}.json", "--languages", "en", "--n-images", "2"],
        ),
        ("k=5", "depth 2"),
    ),
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


# ------------------- containers that lie and outputs that are not files (issue 20, 2 and 3)


def _npy_bytes(values: np.ndarray, claimed: tuple[int, ...]) -> bytes:
    """A .npy file holding ``values`` whose header claims shape ``claimed``."""
    out = io.BytesIO()
    header = {"descr": values.dtype.str, "fortran_order": False, "shape": claimed}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + values.tobytes()


def _zip(path: Path, members: list[tuple[str, bytes]], compression: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a name written twice
        with zipfile.ZipFile(path, "w", compression=compression) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return path


def _lying_npz(p: Path, claimed: tuple[int, ...], compression: int = zipfile.ZIP_STORED) -> Path:
    """Scores whose 'i2t.en' header claims ``claimed`` for its [4, 5] values: a map of
    the claim would run on into the next member, which holds other scores."""
    members = [("i2t.en.npy", _npy_bytes(S, claimed)), ("t2i.en.npy", _npy_bytes(S.T * 9, (5, 4)))]
    return _zip(p / "s.npz", members, compression)


def _cut_pt(p: Path) -> Path:
    """A .pt file of scores whose storage record holds 64 of the 160 bytes its tensor needs."""
    torch.save({"i2t.en": torch.tensor(S)}, p / "whole.pt")
    with zipfile.ZipFile(p / "whole.pt") as whole:
        members = [
            (i.filename, whole.read(i)[: 64 if i.filename.endswith("/data/0") else None])
            for i in whole.infolist()
        ]
    return _zip(p / "s.pt", members, zipfile.ZIP_STORED)


def _safetensors(p: Path, header: bytes, data: bytes = b"") -> Path:
    (p / "e.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)
    return p / "e.safetensors"


def _f64(key: str, begin: int) -> str:
    """A header entry: ``key`` holds 20 float64 values (160 bytes) from ``begin`` on."""
    return f'"{key}": {{"dtype": "F64", "shape": [4, 5], "data_offsets": [{begin}, {begin + 160}]}}'


def _header(*entries: str) -> bytes:
    return ("{" + ", ".join(entries) + "}").encode()


def _fifo(p: Path, name: str) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(p / name)
    return p / name


def _comparison() -> Any:
    return cm.compare(report(), report(), n_resamples=20, n_permutations=20)


REFUSED.update(
    {
        "load npz member claims more values (stored)": case(
            "load_scores",
            lambda p: cm.load_scores(_lying_npz(p, (6, 5))),
            "s.npz",
            "'i2t.en'",
            "[6, 5]",
            "160 bytes of data",
        ),
        "load npz member claims more values (deflated)": case(
            "load_scores",
            lambda p: cm.load_scores(_lying_npz(p, (6, 5), zipfile.ZIP_DEFLATED)),
            "s.npz",
            "'i2t.en'",
            "[6, 5]",
        ),
        "load npz member claims fewer values": case(
            "load_scores",
            lambda p: cm.load_scores(_lying_npz(p, (3, 5), zipfile.ZIP_DEFLATED)),
            "s.npz",
            "'i2t.en'",
            "[3, 5]",
        ),
        "load npz key stored twice": case(
            "load_scores",
            lambda p: cm.load_scores(
                _zip(
                    p / "s.npz",
                    [("i2t.en.npy", _npy_bytes(S, (4, 5)))] * 2,
                    zipfile.ZIP_STORED,
                )
            ),
            "s.npz",
            "'i2t.en'",
            "twice",
        ),
        "load .npy ranks claim more values": case(
            "load_ranks",
            lambda p: cm.load_ranks(
                (p / "r.npy").write_bytes(_npy_bytes(np.arange(3.0), (5,))) and p / "r.npy"
            ),
            "r.npy",
            "[5]",
        ),
        "load folder .npy claims fewer values": case(
            "load_arrays",
            lambda p: cm.load_arrays((p / "i2t.en.npy").write_bytes(_npy_bytes(S, (2, 5))) and p),
            "i2t.en.npy",
            "[2, 5]",
        ),
        "load .pt record cut short": case(
            "load_scores",
            lambda p: cm.load_scores(_cut_pt(p)),
            "s.pt",
            "'i2t.en'",
            "data/0",
            "holds 64 bytes",
            "needs 160",
        ),
        "load safetensors header nested 100,000 deep": case(
            "load_embeddings",
            lambda p: cm.load_embeddings(_safetensors(p, b"[" * 100_000 + b"]" * 100_000)),
            "e.safetensors",
            "nested",
        ),
        "load safetensors tensors overlapping": case(
            "load_scores",
            lambda p: cm.load_scores(
                _safetensors(p, _header(_f64("i2t.en", 0), _f64("t2i.en", 80)), bytes(240))
            ),
            "e.safetensors",
            "'t2i.en'",
            "'i2t.en'",
            "80",
        ),
        "load safetensors tensor named twice": case(
            "load_scores",
            lambda p: cm.load_scores(
                _safetensors(p, _header(_f64("i2t.en", 0), _f64("i2t.en", 0)), bytes(160))
            ),
            "e.safetensors",
            "'i2t.en' twice",
        ),
        "load safetensors metadata not text": case(
            "load_scores",
            lambda p: cm.load_scores(
                _safetensors(
                    p, _header('"__metadata__": {"a": [1]}', _f64("i2t.en", 0)), bytes(160)
                )
            ),
            "e.safetensors",
            "__metadata__",
        ),
        "Report.save to a FIFO": case(
            "Report.save",
            lambda p: bounded(lambda: report().save(_fifo(p, "r.json"))),
            "r.json",
            "FIFO",
        ),
        "Report.save to a device": case(
            "Report.save", lambda p: report().save("/dev/null"), "/dev/null", "device"
        ),
        "Report.save to a folder": case(
            "Report.save", lambda p: report().save(p), "path '", "is a directory"
        ),
        "Report.save in a missing folder": case(
            "Report.save", lambda p: report().save(p / "no" / "r.json"), "r.json", "does not exist"
        ),
        "plot_report to a FIFO": case(
            "plot_report",
            lambda p: bounded(lambda: cm.plot_report(report(), _fifo(p, "r.png"))),
            "r.png",
            "FIFO",
        ),
        "plot_comparison to a folder": case(
            "plot_comparison",
            lambda p: cm.plot_comparison(_comparison(), (p / "c.png").mkdir() or p / "c.png"),
            "c.png",
            "directory",
        ),
    }
)


def _three_ranks(p: Path) -> Path:
    np.save(p / "r.npy", np.array([0.0, 1.0, 2.0]))
    return p / "r.npy"


CLI_REFUSED.update(
    {
        "json to a device": (
            _cli(["evaluate", "{example}", "--json", "/dev/null"]),
            ("--json", "/dev/null", "character device"),
        ),
        "scores npz member claims more values": (
            _cli_with_file(lambda p: _lying_npz(p, (6, 5)), ["scores", "{file}"]),
            ("s.npz", "'i2t.en'", "[6, 5]"),
        ),
        "scores safetensors header nested 100,000 deep": (
            _cli_with_file(
                lambda p: _safetensors(p, b"{" + b'"a": {' * 100_000 + b"}" * 100_001),
                ["scores", "{file}"],
            ),
            ("e.safetensors", "nested"),
        ),
        "mrv instances zero": (
            _cli(["mrv", "--ranks", "en=a.npy", "de=b.npy", "--instances", "0"]),
            ("--instances", "'0'"),
        ),
        "mrv instances beyond the files": (
            _cli_with_file(
                _three_ranks, ["mrv", "--ranks", "en={file}", "de={file}", "--instances", "4"]
            ),
            ("--instances", "4", "3 instances"),
        ),
    }
)


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "{example}", "--json", "{fifo}"],
        ["evaluate", "{example}", "--csv", "{fifo}"],
        ["evaluate", "{example}", "--plot", "{fifo}.png"],
        ["mrv", "--ranks", "en=a.npy", "de=b.npy", "--json", "{fifo}"],
    ],
    ids=["evaluate --json", "evaluate --csv", "evaluate --plot", "mrv --json"],
)
def test_cli_refuses_a_fifo_output_at_once(argv, tmp_path, capsys):
    """The check runs while parsing, never opening the FIFO: no wait for a reader."""
    fifo = _fifo(tmp_path, "out.png" if "{fifo}.png" in argv else "out")
    flag = argv[-2]
    args = [a.replace("{example}", str(EXAMPLE)).replace("{fifo}.png", str(fifo)) for a in argv]
    status = bounded(lambda: main([a.replace("{fifo}", str(fifo)) for a in args]))
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and flag in err and "FIFO" in err, err


# --------- integers at the edges and values that are not what they seem (issue 20, 1 and 4)

BIG = 2**63  # one past int64: where the expected-hits arithmetic wrapped
TIED = cm.rank_counts(np.zeros((4, 4)), [0, 1, 2, 3])  # each positive tied with 3 negatives
RANKS = np.array([1.0, 3.0, 12.0, 2.0])
SMALL = np.clip(np.round(S * 2), -7, 7)  # scores that float8 (and every dtype below) holds
XT = torch.tensor(X)


def _dot(language: str, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    return (XT[images] * XT[texts]).sum(-1)


def _edited_report(p: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    report().save(p / "r.json")
    doc = json.loads((p / "r.json").read_text())
    edit(doc)
    (p / "edited.json").write_text(json.dumps(doc))
    return p / "edited.json"


def _quietly(make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``make()`` without the warnings that quantized, CSR and matrix types are going."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return make()


def _quantized() -> torch.Tensor:
    return torch.quantize_per_tensor(torch.tensor(SMALL, dtype=torch.float32), 0.5, 0, torch.qint8)


def _loss(image: Any, text: Any, **options: Any) -> Any:
    return cm.one_to_k_contrastive_loss(image, text, **{"temperature": 0.07, **options})


def _k(value: Any) -> Case:
    return case("recall_at_k", lambda p: cm.recall_at_k(RANKS, k=value), "k")


REFUSED.update(
    {
        # cut-offs and counts that are not positive integers (bytes iterated as 53 before)
        "k bytes": case("recall_at_k", lambda p: cm.recall_at_k(RANKS, k=b"5"), "k", "b'5'"),
        "k bytearray": case(
            "recall_at_k", lambda p: cm.recall_at_k(RANKS, k=bytearray(b"5")), "k", "bytearray"
        ),
        "k digits as text": case(
            "recall_at_k", lambda p: cm.recall_at_k(RANKS, k="12"), "k", "'12'"
        ),
        "k a list of bytes": case(
            "recall_at_k", lambda p: cm.recall_at_k(RANKS, k=[b"1"]), "k", "b'1'"
        ),
        "k a list with True": case(
            "recall_at_k", lambda p: cm.recall_at_k(RANKS, k=[True, 2]), "k", "True"
        ),
        "k a mapping": case(
            "recall_at_k", lambda p: cm.recall_at_k(RANKS, k={5: 1}), "k", "{5: 1}"
        ),
        "k 0-d float array": _k(np.array(2.0)),
        "k 0-d bool array": _k(np.array(True)),
        "k numpy bool": _k(np.bool_(True)),
        "k bool tensor": _k(torch.tensor(True)),
        "k float tensor": _k(torch.tensor(2.0)),
        "k numpy float": _k(np.float64(2)),
        "k None": _k(None),
        "k -2**63": _k(-BIG),
        "k complex": _k(1 + 0j),
        "k nested list": _k([[1]]),
        "k 2-D array": case(
            "recall_at_k", lambda p: cm.recall_at_k(RANKS, k=np.array([[1, 2]])), "k", "[1, 2]"
        ),
        "k empty array": case(
            "recall_at_k",
            lambda p: cm.recall_at_k(RANKS, k=np.array([], dtype=int)),
            "k",
            "at least one",
        ),
        "hits k bytes": case("RankCounts.hits", lambda p: TIED.hits(b"1"), "k", "b'1'"),
        "hits k True": case("RankCounts.hits", lambda p: TIED.hits(True), "k", "True"),
        "multilingual k bytes": case(
            "multilingual_recall",
            lambda p: cm.multilingual_recall({"en": {"i2t": RANKS}}, k=b"5"),
            "k",
        ),
        "consistency k bytes": case(
            "consistency_at_k", lambda p: cm.consistency_at_k(R, b"2"), "k", "b'2'"
        ),
        "largest_spread top bytes": case(
            "largest_spread", lambda p: cm.largest_spread(R, top=b"1"), "top"
        ),
        "largest_spread top True": case(
            "largest_spread", lambda p: cm.largest_spread(R, top=True), "top", "True"
        ),
        "top_candidates k 2**63": case(
            "top_candidates", lambda p: cm.top_candidates(S, BIG), "k", str(BIG), "[1, 5]"
        ),
        "top_candidates k True": case(
            "top_candidates", lambda p: cm.top_candidates(S, True), "k", "True"
        ),
        "top_candidates k bytes": case(
            "top_candidates", lambda p: cm.top_candidates(S, b"2"), "k", "b'2'"
        ),
        "top_candidates k 2.0": case(
            "top_candidates", lambda p: cm.top_candidates(S, 2.0), "k", "2.0"
        ),
        "ranks_per_image n_images 2**63": case(
            "ranks_per_image",
            lambda p: cm.ranks_per_image(np.array([1.0]), np.array([0]), BIG),
            "n_images",
            "at most 2147483647",
        ),
        "ranks_per_image n_images 10**12 (8 TB)": case(
            "ranks_per_image",
            lambda p: cm.ranks_per_image(np.array([1.0]), np.array([0]), 10**12),
            "n_images",
            "at most",
        ),
        "ranks_per_image n_images bytes": case(
            "ranks_per_image",
            lambda p: cm.ranks_per_image(np.array([1.0]), np.array([0]), b"2"),
            "n_images",
        ),
        "ranks_per_image n_images True": case(
            "ranks_per_image",
            lambda p: cm.ranks_per_image(np.array([1.0]), np.array([0]), True),
            "n_images",
            "True",
        ),
        "chunk_size True": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(S, [0, 1, 2, 3], chunk_size=True),
            "chunk_size",
            "True",
        ),
        "chunk_size bytes": case(
            "rank_counts",
            lambda p: cm.rank_counts(S, [0, 1, 2, 3], chunk_size=b"2"),
            "chunk_size",
        ),
        "evaluate k bytes": case(
            "evaluate", lambda p: cm.evaluate(X, {"en": X}, device="cpu", k=b"5"), "k", "b'5'"
        ),
        "evaluate rerank_k True": case(
            "evaluate",
            lambda p: cm.evaluate(X, {"en": X}, device="cpu", rerank=_dot, rerank_k=True),
            "rerank_k",
        ),
        "RecallAtK k bytes": case("RecallAtK", lambda p: cm.RecallAtK(k=b"5"), "k", "b'5'"),
        "bootstrap n_resamples 2**63 (ran without end)": case(
            "bootstrap_intervals",
            lambda p: bounded(lambda: cm.bootstrap_intervals(report(), n_resamples=BIG)),
            "n_resamples",
            "at most 1000000",
        ),
        "bootstrap n_resamples 10**9": case(
            "bootstrap_intervals",
            lambda p: bounded(lambda: cm.bootstrap_intervals(report(), n_resamples=10**9)),
            "n_resamples",
            "at most",
        ),
        "bootstrap n_resamples True": case(
            "bootstrap_intervals",
            lambda p: cm.bootstrap_intervals(report(), n_resamples=True),
            "n_resamples",
        ),
        "bootstrap n_resamples bytes": case(
            "bootstrap_intervals",
            lambda p: cm.bootstrap_intervals(report(), n_resamples=b"20"),
            "n_resamples",
        ),
        "compare n_permutations 2**63": case(
            "compare",
            lambda p: bounded(
                lambda: cm.compare(report(), report(), n_resamples=5, n_permutations=BIG)
            ),
            "n_permutations",
            "at most",
        ),
        "compare n_resamples 2**63": case(
            "compare",
            lambda p: bounded(lambda: cm.compare(report(), report(), n_resamples=BIG)),
            "n_resamples",
            "at most",
        ),
        "compare seed text": case(
            "compare",
            lambda p: cm.compare(report(), report(), n_resamples=5, n_permutations=5, seed="x"),
            "seed",
            "'x'",
        ),
        "consistency_breakdown k bytes": case(
            "consistency_breakdown", lambda p: cm.consistency_breakdown(report(), k=b"1"), "k"
        ),
        "Report n_images bytes": case(
            "Report.from_counts",
            lambda p: cm.Report.from_counts(
                {"en": {"i2t": TIED}}, {"en": np.arange(4)}, n_images=b"4"
            ),
            "n_images",
        ),
        "Report n_images 2**63": case(
            "Report.from_counts",
            lambda p: cm.Report.from_counts(
                {"en": {"i2t": TIED}}, {"en": np.arange(4)}, n_images=BIG
            ),
            "n_images",
            str(BIG),
        ),
        "Report ks bytes": case(
            "Report.from_counts",
            lambda p: cm.Report.from_counts(
                {"en": {"i2t": TIED}}, {"en": np.arange(4)}, n_images=4, ks=(b"1",)
            ),
            "ks",
        ),
        "Report.load n_images near 2**63": case(
            "Report.load",
            lambda p: cm.Report.load(_edited_report(p, lambda d: d.update(n_images=BIG - 1))),
            "edited.json",
            "n_images",
        ),
        "Report.load n_images 2**64": case(
            "Report.load",
            lambda p: cm.Report.load(_edited_report(p, lambda d: d.update(n_images=2**64))),
            "edited.json",
            "n_images",
        ),
        "Report.load n_images true": case(
            "Report.load",
            lambda p: cm.Report.load(_edited_report(p, lambda d: d.update(n_images=True))),
            "n_images",
            "boolean",
        ),
        "Report.load ks 0": case(
            "Report.load",
            lambda p: cm.Report.load(_edited_report(p, lambda d: d["settings"].update(ks=[0]))),
            "edited.json",
            "settings.ks",
            "0",
        ),
        "Report.load a count of 2**63 - 1": case(
            "Report.load",
            lambda p: cm.Report.load(
                _edited_report(
                    p, lambda d: d["counts"]["en"]["i2t"]["above"].__setitem__(0, BIG - 1)
                )
            ),
            "edited.json",
            "en.i2t",
        ),
        "Report.hits k True": case(
            "Report.hits", lambda p: report().hits("en", "i2t", True), "k", "True"
        ),
        # seeds, refused naming seed rather than inside numpy's SeedSequence
        **{
            f"bootstrap seed {value!r}": case(
                "bootstrap_intervals",
                lambda p, value=value: cm.bootstrap_intervals(report(), n_resamples=5, seed=value),
                "seed",
                repr(value),
            )
            for value in (b"1", "1", -1, 1.5, True, [1, 2])
        },
        "Intervals seed negative": case(
            "Intervals",
            lambda p: cm.Intervals(ci=0.9, method="percentile", n_resamples=5, seed=-1, values={}),
            "Intervals.seed",
            "-1",
        ),
        "with_confidence seed negative": case(
            "Report.with_confidence",
            lambda p: report().with_confidence(n_resamples=5, seed=-5),
            "seed",
            "-5",
        ),
        "released option True": case(
            "released_hard_positive_probabilities",
            lambda p: cm.released_hard_positive_probabilities(torch.eye(2, 6), 0.07, option=True),
            "option",
            "True",
        ),
        # recalls and ranks out of their range
        **{
            f"recall_spread {value!r}": case(
                "recall_spread",
                lambda p, value=value: cm.recall_spread({"en": value, "de": 0.5}),
                "recall_by_language['en']",
                str(value),
            )
            for value in (True, 1.5, -0.1, "0.5", None, 100)
        },
        "recall_spread an array": case(
            "recall_spread",
            lambda p: cm.recall_spread({"en": np.array([0.5, 0.2]), "de": 0.25}),
            "recall_by_language['en']",
        ),
        "recall_spread a list": case(
            "recall_spread", lambda p: cm.recall_spread([0.5, 0.2]), "recall_by_language"
        ),
        "recall_spread a language that is no string": case(
            "recall_spread",
            lambda p: cm.recall_spread({1: 0.5, "de": 0.25}),
            "recall_by_language",
            "1",
        ),
        **{
            f"consistency rank {value}": case(
                "consistency_at_k",
                lambda p, value=value: cm.consistency_at_k(np.array([[1.0, 1], [2, value]]), 1),
                "ranks",
                str(value),
                "[1, 1]",
                "1-based",
            )
            for value in (0.0, -3.0, 0.5)
        },
        "consistency ranks bool": case(
            "consistency_at_k", lambda p: cm.consistency_at_k(np.ones((2, 2), bool), 1), "bool"
        ),
        "recall ranks bool": case(
            "recall_at_k", lambda p: cm.recall_at_k(np.array([True, True]), k=1), "ranks", "bool"
        ),
        "recall ranks -inf": case(
            "recall_at_k", lambda p: cm.recall_at_k(np.array([1.0, -np.inf]), k=1), "ranks", "-inf"
        ),
        "recall ranks datetime": case(
            "recall_at_k",
            lambda p: cm.recall_at_k(np.array([1, 2], "datetime64[s]"), k=1),
            "ranks",
            "datetime64",
        ),
        "recall ranks uint64 beyond int64": case(
            "recall_at_k",
            lambda p: cm.recall_at_k(np.array([1, 2**64 - 1], np.uint64), k=1),
            "ranks",
            "int64",
        ),
        "mrv ranks bool": case(
            "mean_rank_variance", lambda p: cm.mean_rank_variance(np.ones((2, 2), bool)), "bool"
        ),
        # scores of dtypes and layouts the computation cannot take exactly
        "scores quantized": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(_quietly(_quantized), torch.arange(4)),
            "scores",
            "qint8",
            "dequantize",
        ),
        "scores masked array": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(np.ma.masked_array(S, mask=S > 1), [0, 1, 2, 3]),
            "scores",
            "masked",
        ),
        "scores torch uint64 beyond int64": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(
                torch.tensor([[2**63, 1]], dtype=torch.uint64), torch.tensor([1])
            ),
            "scores",
            "uint64",
        ),
        "scores bits8": case(
            "rank_counts",
            lambda p: cm.rank_counts(
                torch.zeros(2, 2, dtype=torch.uint8).view(torch.bits8), [0, 1]
            ),
            "scores",
            "bits8",
        ),
        # empty dimensions
        "evaluate embeddings of dimension 0": case(
            "evaluate",
            lambda p: cm.evaluate(
                np.zeros((4, 0), np.float32), {"en": np.zeros((4, 0), np.float32)}
            ),
            "image_embeds",
            "dimension 0",
        ),
        "evaluate text embeddings of dimension 0": case(
            "evaluate",
            lambda p: cm.evaluate(X, {"en": np.zeros((6, 0), np.float32)}, device="cpu"),
            "text_embeds['en']",
            "dimension 0",
        ),
        "evaluate_scores no texts": case(
            "evaluate_scores",
            lambda p: cm.evaluate_scores(i2t={"en": np.zeros((4, 0))}, device="cpu"),
            "i2t['en']",
            "no texts",
        ),
        "loss dimension 0": case(
            "one_to_k_contrastive_loss",
            lambda p: _loss(torch.zeros(2, 0), torch.zeros(2, 2, 0)),
            "image_embeds",
            "empty",
        ),
        "loss no languages": case(
            "one_to_k_contrastive_loss",
            lambda p: _loss(torch.randn(2, 3), torch.zeros(2, 0, 3)),
            "text_embeds",
            "[2, 0, 3]",
        ),
        # the loss names an overflow instead of returning NaN
        "loss products overflow float32": case(
            "one_to_k_contrastive_loss",
            lambda p: _loss(torch.full((2, 3), 1e20), torch.full((2, 2, 3), 1e20)),
            "overflow",
            "float32",
            "normalise",
        ),
        "loss tiny temperature overflows": case(
            "one_to_k_contrastive_loss",
            lambda p: _loss(torch.randn(2, 3), torch.randn(2, 2, 3), temperature=1e-300),
            "overflow",
            "temperature",
        ),
        "OneToKContrastiveLoss products overflow": case(
            "OneToKContrastiveLoss",
            lambda p: cm.OneToKContrastiveLoss()(
                torch.full((2, 3), 1e20), torch.full((2, 2, 3), 1e20)
            ),
            "overflow",
        ),
        "loss float8": case(
            "one_to_k_contrastive_loss",
            lambda p: _loss(
                torch.randn(2, 3).to(torch.float8_e4m3fn),
                torch.randn(2, 2, 3).to(torch.float8_e4m3fn),
            ),
            "image_embeds",
            "float8_e4m3fn",
        ),
        "loss sparse": case(
            "one_to_k_contrastive_loss",
            lambda p: _loss(torch.randn(2, 3).to_sparse(), torch.randn(2, 2, 3)),
            "image_embeds",
            "sparse",
        ),
        "loss temperature True": case(
            "one_to_k_contrastive_loss",
            lambda p: _loss(torch.randn(2, 3), torch.randn(2, 2, 3), temperature=True),
            "temperature",
        ),
        # positives that mix forms or nest too deep
        "positives an index among lists": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(S, [[0], 1, [2], [3]]),
            "positives",
            "query 1",
            "one index",
        ),
        "positives a list among indices": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(S, [0, [1], 2, 3]),
            "positives",
            "query 1",
            "a list",
        ),
        "positives lists nested three deep, ragged": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(S, [[[0], [1]], [1], [2], [3]]),
            "positives",
            "query 0",
            "nested",
        ),
        "positives lists nested three deep": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(S, [[[0]], [[1]], [[2]], [[3]]]),
            "positives",
        ),
        "positives True in an index list": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(S, [[True], [1], [2], [3]]),
            "positives",
            "query 0",
            "True",
        ),
        "positives None in an index list": case(
            "rank_counts", lambda p: cm.rank_counts(S, [[0], [None], [2], [3]]), "query 1", "None"
        ),
        "positives an index past int64": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(S, [[0], [1], [BIG], [3]]),
            "positives",
            str(BIG),
            "query 2",
        ),
        "positives one index past uint64": case(
            "positive_ranks",
            lambda p: cm.positive_ranks(S, [2**64, 1, 2, 3]),
            "positives",
            str(2**64),
            "query 0",
        ),
        "text_to_image mixed": case(
            "text_to_image_ranks",
            lambda p: cm.text_to_image_ranks(S.T, [0, [1], 2, 3, 0]),
            "text_to_image",
        ),
        "text_to_image bools": case(
            "text_to_image_ranks",
            lambda p: cm.text_to_image_ranks(S.T, [True, False, True, True, False]),
            "text_to_image",
            "bool",
        ),
        "reranked candidates mixed": case(
            "reranked_ranks",
            lambda p: cm.reranked_ranks(
                S, [[0, 1], [0, [1]], [0, 1], [0, 1]], np.zeros((4, 2)), [0, 1, 2, 3]
            ),
            "candidates",
        ),
        # language names that flat metric names (en/i2t/R@1) cannot carry
        **{
            f"evaluate language {name!r}": case(
                "evaluate",
                lambda p, name=name: cm.evaluate(X, {name: X}, device="cpu"),
                "text_embeds",
                f"language name {name!r}",
            )
            for name in ("en/x", "", "average", 1)
        },
        "evaluate_scores language with '/'": case(
            "evaluate_scores",
            lambda p: cm.evaluate_scores(i2t={"a/b": S[:, :4]}, device="cpu"),
            "i2t",
            "'a/b'",
        ),
        "Report language with '/'": case(
            "Report.from_counts",
            lambda p: cm.Report.from_counts(
                {"a/b": {"i2t": TIED}}, {"a/b": np.arange(4)}, n_images=4
            ),
            "'a/b'",
            "'/'",
        ),
        "Report ranks language 'average'": case(
            "Report",
            lambda p: cm.Report({"average": {"i2t": RANKS}}, {"average": np.arange(4)}, n_images=4),
            "ranks",
            "'average'",
        ),
        "Report.load language with '/'": case(
            "Report.load",
            lambda p: cm.Report.load(
                _edited_report(
                    p, lambda d: d.update(json.loads(json.dumps(d).replace('"de"', '"d/e"')))
                )
            ),
            "edited.json",
            "'d/e'",
        ),
    }
)

if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:  # an extended long double
    REFUSED["scores long double not exact in float64"] = case(
        "positive_ranks",
        lambda p: cm.positive_ranks(
            np.array([[1.0, 1.0]], np.longdouble) + np.array([[0, np.finfo(np.longdouble).eps]]),
            [0],
        ),
        "scores",
        str(np.dtype(np.longdouble)),
        "[0, 1]",
    )


def _tied_scores(p: Path) -> Path:
    return _write_npz(p / "tied.npz", **{"i2t.en": np.zeros((5, 5))})


def _scores_cli(*args: str) -> Callable[[Path], list[str]]:
    return _cli_with_file(_tied_scores, ["scores", "{file}", "--device", "cpu", *args])


CLI_REFUSED.update(
    {
        **{
            f"k {text!r}": (_scores_cli("--k", text), ("--k", repr(text)))
            for text in ("1e3", "0x10", "1_0", "\u0663", "-0", "2.0", "")
        },
        "k past Python's digit limit": (_scores_cli("--k", "9" * 5000), ("--k",)),
        "breakdown at a cut-off not in --k": (
            _scores_cli("--breakdown", "2"),
            ("--breakdown", "2", "--k", "1 5 10"),
        ),
        "breakdown 2**63 not in --k": (_scores_cli("--breakdown", str(BIG)), ("--breakdown",)),
        **{
            f"seed {text}": (_scores_cli("--ci", "0.9", "--seed", text), ("--seed", repr(text)))
            for text in ("-1", "1.5", "x")
        },
        "n-resamples 2**63": (
            _scores_cli("--ci", "0.9", "--n-resamples", str(BIG)),
            ("--n-resamples", "at most 1000000"),
        ),
        "n-resamples 10**9": (
            _scores_cli("--ci", "0.9", "--n-resamples", str(10**9)),
            ("--n-resamples",),
        ),
        "compare permutations 2**63": (
            _cli_with_file(
                _short_report,
                ["compare", "{tmp}/a.json", "{tmp}/a.json", "--permutations", str(BIG)],
            ),
            ("--permutations", "at most"),
        ),
        "compare seed negative": (
            _cli_with_file(
                _short_report, ["compare", "{tmp}/a.json", "{tmp}/a.json", "--seed", "-3"]
            ),
            ("--seed", "'-3'"),
        ),
        "compare a report of 2**63 - 1 images": (
            _cli_with_file(
                lambda p: _edited_report(p, lambda d: d.update(n_images=BIG - 1)),
                ["compare", "{file}", "{file}"],
            ),
            ("edited.json", "n_images"),
        ),
        "ci True": (_scores_cli("--ci", "True"), ("--ci", "'True'")),
        "ci nan": (_scores_cli("--ci", "nan"), ("--ci", "'nan'")),
    }
)

# evaluate_sharded's timeout, refused with the shard's checks (on every process of a
# group; multi-process faults are in test_distributed_faults.py).
REFUSED.update(
    {
        f"evaluate_sharded timeout {label}": case(
            "evaluate_sharded",
            lambda p, value=value: cm.evaluate_sharded(X, {"en": X}, device="cpu", timeout=value),
            "timeout must be a number of seconds above 0",
            shown,
        )
        for label, value, shown in [
            ("0", 0, "got 0"),
            ("negative", -1.0, "got -1.0"),
            ("nan", float("nan"), "got nan"),
            ("inf", float("inf"), "got inf"),
            ("past a year", 1e30, "got 1e+30"),
            ("True", True, "got True"),
            ("str", "5", "got '5'"),
            ("timedelta", datetime.timedelta(seconds=5), "timedelta"),
            ("2-d array", np.ones((1, 1)), "array"),
        ]
    }
)


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


def _ranks_of(scores: Any) -> list[float]:
    return cm.positive_ranks(scores, [0, 1, 2, 3]).tolist()


def _same_recall(**options: Any) -> Any:
    return cm.evaluate(X, {"en": X}, device="cpu", progress=False, **options).recall()


# Integers at the edges and values that are not what they seem (issue 20, items 1 and 4).
# A cut-off past the gallery counts every positive within reach, at any size.
ACCEPTED.update(
    {
        **{
            f"k = {label} with tied counts: every positive within reach": (
                lambda k=k: cm.recall_at_k(TIED, k=k),
                lambda k=k: {k: 1.0},
            )
            for label, k in (
                ("2**63 - 1", BIG - 1),
                ("2**63", BIG),
                ("2**64", 2**64),
                ("10**400", 10**400),
            )
        },
        **{
            f"k = 2**63, ties={ties!r}": (
                lambda ties=ties: cm.recall_at_k(TIED, k=BIG, ties=ties),
                lambda: {BIG: 1.0},
            )
            for ties in ("optimistic", "pessimistic", "average")
        },
        "k = 2**63 on torch counts": (
            lambda: cm.recall_at_k(cm.rank_counts(torch.zeros(4, 4), torch.arange(4)), k=BIG),
            lambda: {BIG: 1.0},
        ),
        "k = [1, 2**63] on counts": (
            lambda: list(cm.recall_at_k(TIED, k=[1, BIG]).items())[1:],
            lambda: [(BIG, 1.0)],
        ),
        **{
            f"k = {label} on ranks": (
                lambda k=k: cm.recall_at_k(RANKS, k=k),
                lambda k=k: {int(k): 1.0},
            )
            for label, k in (
                ("2**63", BIG),
                ("10**400", 10**400),
                ("uint64 2**63", np.uint64(BIG)),
                ("uint64 max", np.uint64(2**64 - 1)),
            )
        },
        "k one below a float rank past 2**53: compared exactly, not rounded up": (
            lambda: cm.recall_at_k(np.array([2.0**54 + 4]), k=[2**54 + 3, 2**54 + 4]),
            lambda: {2**54 + 3: 0.0, 2**54 + 4: 1.0},  # float(2**54 + 3) is 2**54 + 4
        ),
        "k as a 0-d array": (
            lambda: cm.recall_at_k(RANKS, k=np.array(2)),
            lambda: cm.recall_at_k(RANKS, k=2),
        ),
        "k as a 1-D array": (
            lambda: cm.recall_at_k(RANKS, k=np.array([2, 5])),
            lambda: cm.recall_at_k(RANKS, k=[2, 5]),
        ),
        "k as a 1-D tensor": (
            lambda: cm.recall_at_k(RANKS, k=torch.tensor([1, 2])),
            lambda: cm.recall_at_k(RANKS, k=[1, 2]),
        ),
        "k as a range": (
            lambda: cm.recall_at_k(RANKS, k=range(1, 3)),
            lambda: cm.recall_at_k(RANKS, k=[1, 2]),
        ),
        "hits k = 2**63": (lambda: TIED.hits(BIG).tolist(), lambda: [1.0] * 4),
        "hits k = 2**64, optimistic": (
            lambda: TIED.hits(2**64, ties="optimistic").tolist(),
            lambda: [1.0] * 4,
        ),
        "hits k as a 0-d array": (
            lambda: TIED.hits(np.array(2)).tolist(),
            lambda: TIED.hits(2).tolist(),
        ),
        "multilingual_recall k = 2**63": (
            lambda: cm.multilingual_recall({"en": {"i2t": TIED}}, k=BIG)["mean_recall"],
            lambda: {"en": 1.0},
        ),
        **{
            f"consistency k = {label}": (
                lambda k=k: cm.consistency_at_k(R, k),
                lambda: {"all": 1.0, "some": 0.0, "none": 0.0},
            )
            for label, k in (("2**63", BIG), ("2**64", 2**64), ("uint64 max", np.uint64(2**64 - 1)))
        },
        "consistency k as 0-d array and tensor": (
            lambda: [cm.consistency_at_k(R, np.array(2)), cm.consistency_at_k(R, torch.tensor(2))],
            lambda: [cm.consistency_at_k(R, 2)] * 2,
        ),
        "consistency: a rank 0 outside the mask is not looked at": (
            lambda: cm.consistency_at_k(
                np.array([[0.0, 1, 1], [1, 2, 1]]), 1, mask=np.array([[0, 1, 1], [1, 1, 1]]) > 0
            ),
            lambda: {"all": 0.5, "some": 0.5, "none": 0.0},
        ),
        "largest_spread top = 2**63: every instance": (
            lambda: cm.largest_spread(R, top=BIG).to_dict(),
            lambda: cm.largest_spread(R, top=len(R)).to_dict(),
        ),
        "top_candidates k as a 0-d array and tensor": (
            lambda: [
                cm.top_candidates(S, np.array(2)).tolist(),
                cm.top_candidates(S, torch.tensor(2)).tolist(),
            ],
            lambda: [cm.top_candidates(S, 2).tolist()] * 2,
        ),
        "ranks_per_image n_images as a 0-d array": (
            lambda: cm.ranks_per_image(np.array([1.0, 2.0]), np.array([0, 1]), np.array(2))[
                0
            ].tolist(),
            lambda: [1.0, 2.0],
        ),
        **{
            f"chunk_size {label}: one block": (
                lambda size=size: (
                    _ranks_of(S) == cm.positive_ranks(S, [0, 1, 2, 3], chunk_size=size).tolist()
                ),
                lambda: True,
            )
            for label, size in (("2**63", BIG), ("2**64", 2**64), ("as a 0-d array", np.array(2)))
        },
        "rank_counts chunk_size 2**63": (
            lambda: cm.rank_counts(S, [0, 1, 2, 3], chunk_size=BIG).above.tolist(),
            lambda: cm.rank_counts(S, [0, 1, 2, 3]).above.tolist(),
        ),
        "reranked_ranks chunk_size 2**63": (
            lambda: cm.reranked_ranks(
                S, np.array([[0, 1]] * 4), np.zeros((4, 2)), [0, 1, 2, 3], chunk_size=BIG
            ).tolist(),
            lambda: cm.reranked_ranks(
                S, np.array([[0, 1]] * 4), np.zeros((4, 2)), [0, 1, 2, 3]
            ).tolist(),
        ),
        "evaluate chunk_size 2**63": (lambda: _same_recall(chunk_size=BIG), lambda: _same_recall()),
        "evaluate k = 2**63": (
            lambda: _same_recall(k=BIG)["en"],
            lambda: {"i2t": {BIG: 1.0}, "t2i": {BIG: 1.0}},
        ),
        "evaluate k as a 0-d array": (
            lambda: _same_recall(k=np.array(2)),
            lambda: _same_recall(k=2),
        ),
        "evaluate rerank_k = 2**63: every candidate": (
            lambda: _same_recall(rerank=_dot, rerank_k=BIG),
            lambda: _same_recall(rerank=_dot, rerank_k=len(X)),
        ),
        "evaluate rerank_batch_size = 2**63: one batch": (
            lambda: _same_recall(rerank=_dot, rerank_batch_size=BIG),
            lambda: _same_recall(rerank=_dot),
        ),
        "evaluate_scores k = 2**64 on tied scores": (
            lambda: cm.evaluate_scores(
                i2t={"en": np.zeros((4, 4))}, device="cpu", k=2**64, progress=False
            ).recall()["en"]["i2t"],
            lambda: {2**64: 1.0},
        ),
        "Report ks = (2**64,) saved and loaded": (
            lambda: _saved_and_loaded(
                cm.Report.from_counts(
                    {"en": {"i2t": TIED}}, {"en": np.arange(4)}, n_images=4, ks=(2**64,)
                )
            ).recall(),
            lambda: {"en": {"i2t": {2**64: 1.0}}},
        ),
        "Report.hits k = 10**400 on hand-made ranks": (
            lambda: (
                cm.Report({"en": {"t2i": RANKS}}, {"en": np.arange(4)}, n_images=12)
                .hits("en", "t2i", 10**400)
                .tolist()
            ),
            lambda: [1.0] * 4,
        ),
        "Report ks = (2**63,)": (
            lambda: cm.Report.from_counts(
                {"en": {"i2t": TIED}}, {"en": np.arange(4)}, n_images=4, ks=(BIG,)
            ).recall(),
            lambda: {"en": {"i2t": {BIG: 1.0}}},
        ),
        "RecallAtK k = 2**63": (
            lambda: {k: float(v) for k, v in _metric_recall(BIG).items()},
            lambda: {BIG: 1.0},
        ),
        "bootstrap seed and n_resamples as 0-d arrays": (
            lambda: (
                cm.bootstrap_intervals(report(), n_resamples=np.array(20), seed=np.array(3)).values
            ),
            lambda: cm.bootstrap_intervals(report(), n_resamples=20, seed=3).values,
        ),
        "bootstrap seed of any size": (
            lambda: cm.bootstrap_intervals(report(), n_resamples=5, seed=2**200).seed,
            lambda: 2**200,
        ),
        "compare n_permutations as a 0-d array": (
            lambda: (
                cm.compare(report(), report(), n_resamples=5, n_permutations=np.array(5)).values
            ),
            lambda: cm.compare(report(), report(), n_resamples=5, n_permutations=5).values,
        ),
        "consistency_breakdown k = 2**63: every instance found everywhere": (
            lambda: cm.consistency_breakdown(report(), k=BIG).to_dict()["directions"]["i2t"][
                "consistency"
            ],
            lambda: {"all": 1.0, "some": 0.0, "none": 0.0},
        ),
        "released option as a 0-d array": (
            lambda: cm.released_hard_positive_probabilities(
                torch.eye(2, 6), 0.07, option=np.array(1)
            ).tolist(),
            lambda: cm.released_hard_positive_probabilities(
                torch.eye(2, 6), 0.07, option=1
            ).tolist(),
        ),
        "recall_spread of numpy and 0-d tensor recalls": (
            lambda: cm.recall_spread({"en": np.float32(0.5), "de": torch.tensor(0.25)}),
            lambda: {"range": 0.25, "std": 0.125, "best": "en", "worst": "de"},
        ),
        # dtypes converted where exact: the same ranks as float64 (int64) scores
        # (unsigned ones shifted by 10: the same order, the same ranks)
        **{
            f"scores {label}": (lambda odd=odd: _ranks_of(odd()), lambda: _ranks_of(SMALL))
            for label, odd in (
                ("long double", lambda: SMALL.astype(np.longdouble)),
                ("float8_e4m3fn", lambda: torch.tensor(SMALL).to(torch.float8_e4m3fn)),
                ("float8_e5m2", lambda: torch.tensor(SMALL).to(torch.float8_e5m2)),
                ("bfloat16", lambda: torch.tensor(SMALL).bfloat16()),
                ("numpy uint16", lambda: (SMALL + 10).astype(np.uint16)),
                ("numpy uint32", lambda: (SMALL + 10).astype(np.uint32)),
                ("numpy uint64", lambda: (SMALL + 10).astype(np.uint64)),
                ("torch uint16", lambda: torch.tensor(SMALL + 10).to(torch.uint16)),
                ("torch uint32", lambda: torch.tensor(SMALL + 10).to(torch.uint32)),
                ("torch uint64", lambda: torch.tensor(SMALL + 10).to(torch.uint64)),
            )
        },
        **{
            f"scores {label}": (lambda odd=odd: _ranks_of(odd()), lambda: _ranks_of(S))
            for label, odd in (
                ("sparse COO", lambda: torch.tensor(S).to_sparse()),
                ("sparse CSR", lambda: _quietly(torch.tensor(S).to_sparse_csr)),
                ("np.matrix", lambda: _quietly(lambda: np.matrix(S))),
            )
        },
        "int64 scores past float64's integers": (
            lambda: cm.positive_ranks(np.array([[2**62 + 1, 2**62]]), [1]).tolist(),
            lambda: [2.0],  # 2**62 + 1 is above: no rounding to a tie
        ),
        "ranks of odd dtypes": (
            lambda: [
                cm.recall_at_k(r, k=1)
                for r in (
                    np.array([1, 3], np.uint8),
                    np.array([1, 3], np.uint64),
                    np.array([1.0, 3.0], np.longdouble),
                    np.array([1.0, 3.0], np.float16),
                    torch.tensor([1, 3], dtype=torch.uint16),
                    torch.tensor([1.0, 3.0]).to(torch.float8_e4m3fn),
                    torch.tensor([1.0, 3.0]).to_sparse(),
                )
            ],
            lambda: [{1: 0.5}] * 7,
        ),
        "MRV of odd dtypes": (
            lambda: [
                cm.mean_rank_variance(r)
                for r in (
                    R.astype(np.longdouble),
                    torch.tensor(R).to(torch.float8_e4m3fn),
                    torch.tensor(R).to_sparse(),
                    R.astype(np.uint64),
                )
            ],
            lambda: [cm.mean_rank_variance(R)] * 4,
        ),
        "evaluate long double, float8 and sparse embeddings": (
            lambda: [
                cm.evaluate(i, {"en": t}, device="cpu", progress=False).recall()
                for i, t in (
                    (SMALL.astype(np.longdouble), SMALL.astype(np.longdouble)),
                    (
                        torch.tensor(SMALL).to(torch.float8_e4m3fn),
                        torch.tensor(SMALL).to(torch.float8_e4m3fn),
                    ),
                    (torch.tensor(SMALL).to_sparse(), torch.tensor(SMALL)),
                )
            ],
            lambda: [cm.evaluate(SMALL, {"en": SMALL}, device="cpu", progress=False).recall()] * 3,
        ),
        "evaluate_scores float8 scores": (
            lambda: cm.evaluate_scores(
                i2t={"en": torch.tensor(SMALL[:, :4]).to(torch.float8_e4m3fn)},
                device="cpu",
                progress=False,
            ).recall(),
            lambda: cm.evaluate_scores(
                i2t={"en": SMALL[:, :4]}, device="cpu", progress=False
            ).recall(),
        ),
        "loss of float16 embeddings far from unit length: computed in float32": (
            lambda: bool(
                torch.isfinite(
                    _loss(
                        torch.full((2, 3), 300.0).half(), torch.full((2, 2, 3), 300.0).half()
                    ).total
                )
            ),
            lambda: True,
        ),
        # positives that look odd but say one thing
        "positives as sets of indices": (
            lambda: _ranks_of_positives([{0}, {1}, {2}, {3}]),
            lambda: _ranks_of(S),
        ),
        "positives as tuples": (
            lambda: _ranks_of_positives(((0,), (1,), (2,), (3,))),
            lambda: _ranks_of(S),
        ),
        "positives uint64 indices": (
            lambda: _ranks_of_positives(np.array([0, 1, 2, 3], np.uint64)),
            lambda: _ranks_of(S),
        ),
        # language names that flat names carry
        **{
            f"language {name!r} round-trips through flat names": (
                lambda name=name: _flat_round_trip(
                    cm.evaluate(X, {name: X}, device="cpu", progress=False)
                ),
                lambda: True,
            )
            for name in ("en.x", "R@1", "e\nn", "i2t", "mean_recall")
        },
        "largest_spread column names with '/'": (
            lambda: list(cm.largest_spread(R, languages=["a/b", "c"]).columns),
            lambda: ["instance", "spread", "a/b", "c"],
        ),
    }
)

ACCEPTED.update(
    {
        f"evaluate_sharded timeout as {label}: its value in seconds": (
            lambda value=value: cm.evaluate_sharded(
                X, {"en": X}, device="cpu", timeout=value
            ).recall(),
            lambda: cm.evaluate(X, {"en": X}, device="cpu").recall(),
        )
        for label, value in [
            ("numpy float32", np.float32(5)),
            ("0-d array", np.array(5.0)),
            ("0-d tensor", torch.tensor(5)),
            ("int", 5),
        ]
    }
)


def _saved_and_loaded(result: cm.Report) -> cm.Report:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        result.save(Path(folder) / "r.json")
        return cm.Report.load(Path(folder) / "r.json")


def _ranks_of_positives(positives: Any) -> list[float]:
    return cm.positive_ranks(S, positives).tolist()


def _metric_recall(k: int) -> Any:
    metric = cm.RecallAtK(k=k)
    metric.update(torch.zeros(4, 4), torch.arange(4))
    return metric.compute()


def _flat_round_trip(result: cm.Report) -> bool:
    flat = result.to_flat_dict()
    return bool(flat) and all(
        result[name] == value or value != value for name, value in flat.items()
    )


@pytest.mark.parametrize("k", [BIG, 2**64, 10**400], ids=["2**63", "2**64", "10**400"])
def test_cli_cut_off_past_the_gallery_counts_every_positive(k, tmp_path, capsys):
    """On a tied gallery of 5, R@k for any k >= 5 is 100.00 (it printed 20.00 for 2**63)."""
    path = _tied_scores(tmp_path)
    status = main(
        ["scores", str(path), "--device", "cpu", "--k", str(k), "--json", str(tmp_path / "r.json")]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["recall"]["en"]["i2t"] == {str(k): 1.0}
    assert "100.00" in out


@pytest.mark.parametrize(
    ("odd", "plain"),
    [
        (["--k", " 5"], ["--k", "5"]),
        (["--k", "+5"], ["--k", "5"]),
        (["--k", "5", "5"], ["--k", "5"]),
        (["--chunk-size", str(BIG)], []),
        (["--chunk-size", str(2**64)], []),
        (
            ["--ci", "0.9", "--n-resamples", "5", "--seed", "+7"],
            ["--ci", "0.9", "--n-resamples", "5", "--seed", "7"],
        ),
    ],
    ids=[
        "k with a space",
        "k with a plus",
        "k twice",
        "chunk 2**63",
        "chunk 2**64",
        "seed with a plus",
    ],
)
def test_cli_odd_numbers_read_as_their_plain_form(odd, plain, tmp_path, capsys):
    path = str(_tied_scores(tmp_path))
    outputs = []
    for args in (odd, plain):
        status = main(["scores", path, "--device", "cpu", *args])
        out, err = capsys.readouterr()
        assert status == 0, err
        outputs.append(out)
    assert outputs[0] == outputs[1]


def test_cli_seed_of_any_size(tmp_path, capsys):
    """numpy seeds any non-negative integer; the saved report keeps it and loads again."""
    path, saved = str(_tied_scores(tmp_path)), tmp_path / "r.json"
    args = ["scores", path, "--device", "cpu", "--ci", "0.9", "--n-resamples", "5"]
    status = main([*args, "--seed", str(2**200), "--json", str(saved)])
    assert status == 0, capsys.readouterr().err
    assert cm.Report.load(saved).intervals.seed == 2**200


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
