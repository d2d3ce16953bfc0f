"""ccr-metrics: exact Recall@K and Mean Rank Variance for cross-lingual cross-modal retrieval.

Every public object is reachable from here (listed once in ``docs/api.md``); the
hypothesis strategies of the optional ``testing`` extra live in
:mod:`ccr_metrics.testing`. The core: :func:`rank_counts` counts, per query, the items
above and tied with its best positive (:class:`RankCounts`), :func:`positive_ranks`
turns them into ranks with a stated tie policy, :func:`recall_at_k` and
:func:`mean_rank_variance` into the paper's numbers. The harness (:func:`evaluate`,
:func:`evaluate_scores`, :func:`evaluate_sharded`) returns a :class:`Report`, whose
numbers are named by :class:`MetricKey`.
"""

from typing import Any

from ._version import __version__
from .analysis.breakdown import Breakdown, consistency_breakdown
from .analysis.lists_report import ListsReport, evaluate_lists
from .analysis.plots import plot_comparison, plot_report
from .analysis.report import Report, bootstrap_intervals
from .analysis.results import Comparison, Difference, Interval, Intervals, MetricKey
from .analysis.stats import compare
from .core._validation import InputError
from .core.consistency import consistency_at_k, largest_spread, pairwise_disagreement, recall_spread
from .core.mrv import (
    CAPTION_REDUCTIONS,
    MRV_IMAGES,
    REDUCTIONS,
    instance_rank_variance,
    mean_rank_variance,
    ranks_per_image,
)
from .core.ranking import (
    image_to_text_ranks,
    positive_ranks,
    rank_counts,
    text_to_image_ranks,
)
from .core.recall import multilingual_recall, recall_at_k
from .core.rerank import (
    released_rerank_scores,
    reranked_rank_counts,
    reranked_ranks,
    top_candidates,
)
from .core.ties import DEFAULT_TIES, TIES, RankCounts
from .datasets import (
    BENCHMARKS,
    Benchmark,
    EncodedBenchmark,
    encode_benchmark,
    load_benchmark,
)
from .distributed import all_gather_with_grad
from .harness import (
    RERANK_PROTOCOLS,
    evaluate,
    evaluate_scores,
    evaluate_sharded,
    resolve_device,
)
from .io import (
    Embeddings,
    Reranking,
    Scores,
    load_arrays,
    load_embeddings,
    load_rank_matrix,
    load_ranks,
    load_released_ranks,
    load_reranking,
    load_scores,
)
from .lists_io import load_ranked_lists
from .training.losses import (
    ContrastiveLossTerms,
    HardSamples,
    MatchingPairs,
    OneToKContrastiveLoss,
    matching_loss,
    matching_pairs,
    one_to_k_contrastive_loss,
    one_to_one_contrastive_loss,
)
from .training.sampling import (
    hard_negative_probabilities,
    hard_negatives,
    hard_positive_languages,
    hard_positive_probabilities,
    mine,
    released_hard_positive_languages,
    released_hard_positive_probabilities,
)

# torchmetrics takes seconds to import: its metrics are loaded on first use.
_LAZY = {"MeanRankVariance": "metrics", "RecallAtK": "metrics"}


def __getattr__(name: str) -> Any:
    """Load the torchmetrics classes when first asked for (PEP 562)."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ccr_metrics' has no attribute {name!r}")


__all__ = [
    "BENCHMARKS",
    "CAPTION_REDUCTIONS",
    "DEFAULT_TIES",
    "MRV_IMAGES",
    "REDUCTIONS",
    "RERANK_PROTOCOLS",
    "TIES",
    "Benchmark",
    "Breakdown",
    "Comparison",
    "ContrastiveLossTerms",
    "Difference",
    "Embeddings",
    "EncodedBenchmark",
    "HardSamples",
    "InputError",
    "Interval",
    "Intervals",
    "ListsReport",
    "MatchingPairs",
    "MeanRankVariance",
    "MetricKey",
    "OneToKContrastiveLoss",
    "RankCounts",
    "RecallAtK",
    "Report",
    "Reranking",
    "Scores",
    "__version__",
    "all_gather_with_grad",
    "bootstrap_intervals",
    "compare",
    "consistency_at_k",
    "consistency_breakdown",
    "encode_benchmark",
    "evaluate",
    "evaluate_lists",
    "evaluate_scores",
    "evaluate_sharded",
    "hard_negative_probabilities",
    "hard_negatives",
    "hard_positive_languages",
    "hard_positive_probabilities",
    "image_to_text_ranks",
    "instance_rank_variance",
    "largest_spread",
    "load_arrays",
    "load_benchmark",
    "load_embeddings",
    "load_rank_matrix",
    "load_ranked_lists",
    "load_ranks",
    "load_released_ranks",
    "load_reranking",
    "load_scores",
    "matching_loss",
    "matching_pairs",
    "mean_rank_variance",
    "mine",
    "multilingual_recall",
    "one_to_k_contrastive_loss",
    "one_to_one_contrastive_loss",
    "pairwise_disagreement",
    "plot_comparison",
    "plot_report",
    "positive_ranks",
    "rank_counts",
    "ranks_per_image",
    "recall_at_k",
    "recall_spread",
    "released_hard_positive_languages",
    "released_hard_positive_probabilities",
    "released_rerank_scores",
    "reranked_rank_counts",
    "reranked_ranks",
    "resolve_device",
    "text_to_image_ranks",
    "top_candidates",
]
