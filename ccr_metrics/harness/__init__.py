"""The evaluation harness: embeddings or saved score matrices in, a :class:`Report` out.

By stage: :mod:`.inputs` checks the arguments and lays out the languages,
:mod:`.stream` turns streamed or stored scores into rank counts block by block,
:mod:`.second_stage` does both for two-stage (re-ranking) models, :mod:`.assemble` builds the
:class:`~ccr_metrics.Report`. :mod:`.local` runs them in
one process, :mod:`.sharded` across torch.distributed processes.
"""

from .inputs import resolve_device
from .local import evaluate, evaluate_scores
from .second_stage import PROTOCOLS as RERANK_PROTOCOLS
from .sharded import evaluate_sharded

__all__ = ["RERANK_PROTOCOLS", "evaluate", "evaluate_scores", "evaluate_sharded", "resolve_device"]
