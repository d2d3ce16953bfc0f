"""ccr-metrics: exact Recall@K and Mean Rank Variance for cross-lingual cross-modal retrieval.

The functional core: :func:`rank_counts` counts, per query, the items above and tied with
its best positive (:class:`RankCounts`), :func:`positive_ranks` turns them into exact ranks
with a stated tie policy,
:func:`recall_at_k` and :func:`mean_rank_variance` turn ranks into the paper's numbers,
:func:`image_to_text_ranks` / :func:`text_to_image_ranks` rank the two directions and
:func:`multilingual_recall` builds the per-language table.
"""

from . import losses, sampling
from .harness import evaluate, evaluate_scores, evaluate_sharded
from .mrv import (
    CAPTION_REDUCTIONS,
    REDUCTIONS,
    instance_rank_variance,
    mean_rank_variance,
    ranks_per_image,
)
from .ranking import (
    DEFAULT_TIES,
    TIES,
    RankCounts,
    image_to_text_ranks,
    positive_ranks,
    rank_counts,
    text_to_image_ranks,
)
from .recall import multilingual_recall, recall_at_k
from .report import Report
from .stats import bootstrap_intervals, compare

__all__ = [
    "CAPTION_REDUCTIONS",
    "DEFAULT_TIES",
    "REDUCTIONS",
    "TIES",
    "RankCounts",
    "Report",
    "bootstrap_intervals",
    "compare",
    "evaluate",
    "evaluate_scores",
    "evaluate_sharded",
    "image_to_text_ranks",
    "instance_rank_variance",
    "losses",
    "mean_rank_variance",
    "multilingual_recall",
    "positive_ranks",
    "rank_counts",
    "ranks_per_image",
    "recall_at_k",
    "sampling",
    "text_to_image_ranks",
]
__version__ = "0.1.0"
