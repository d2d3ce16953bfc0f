"""Evaluation of a test set sharded across torch.distributed processes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import distributed
from .._backend import ArrayLike
from .._counting import count_against
from .._positives import counts_from_positives
from .._validation import InputError, check_finite, dtype_str, renamed
from ..mrv import CaptionReduction
from ..report import Report
from ..ties import DEFAULT_TIES, RankCounts, Ties
from .assemble import settings
from .inputs import prepare
from .stream import Positives, captions_of_images, image_of_texts, progress_bar, stream_rows

__all__ = ["evaluate_sharded"]


@renamed(ks="k", caption_reduce="caption_reduction")
def evaluate_sharded(
    image_embeds: ArrayLike,
    text_embeds: Mapping[str, ArrayLike],
    text_to_image: Mapping[str, ArrayLike] | None = None,
    *,
    k: int | Iterable[int] = (1, 5, 10),
    ties: Ties = DEFAULT_TIES,
    languages: Sequence[str] | None = None,
    caption_reduction: CaptionReduction = "first",
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Report:
    """Evaluate a test set whose embeddings are sharded across torch.distributed processes.

    The DDP case: each process embedded its own share of the instances. Call this on
    every process, with the same options, passing that process's shard; every process
    gets the same :class:`Report`, equal to :func:`evaluate` on the shards concatenated
    in rank order.

    Parameters
    ----------
    image_embeds : array-like or torch.Tensor, shape [N_r, D]
        This process's images.
    text_embeds : mapping of str to array-like, each shape [M_lr, D]
        This process's texts per language; every process names the same languages.
    text_to_image : mapping of str to array-like of int, each shape [M_lr], optional
        The image of each local text as an index into this process's ``image_embeds``
        (an instance's image and texts live on the same process).
    k, ties, languages, caption_reduction, chunk_size, device, progress
        As for :func:`evaluate`; ``progress`` shows a bar on rank 0 only.

    Returns
    -------
    Report
        Over all ``N = sum_r N_r`` images, numbered in rank order (rank 0's first),
        and all texts likewise.

    Raises
    ------
    ValueError
        On every process, when any process's shard is invalid (as for
        :func:`evaluate`), or when processes disagree on the languages, the embedding
        dimension or dtype, or the options.

    Notes
    -----
    Gallery shards stay where they are. Query blocks are broadcast from the process that
    holds them, together with each query's best positive score (its positives are
    local to it); every process counts how many of its gallery items score above, or
    tie with, that score, and the counts are summed across processes: exact, and
    ``O(queries)`` integers per block on top of the broadcast query embeddings. Only
    the final rank arrays are gathered. Without an initialised process group this is
    :func:`evaluate`.

    Examples
    --------
    Without a process group the one process holds the whole test set, and the result is
    :func:`evaluate`'s:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images = rng.standard_normal((20, 8)).astype(np.float32)
    >>> texts = {"en": images + rng.standard_normal((20, 8)).astype(np.float32)}
    >>> from ccr_metrics import evaluate
    >>> sharded = evaluate_sharded(images, texts, device="cpu")
    >>> sharded.recall() == evaluate(images, texts, device="cpu").recall()
    True
    """
    error: ValueError | None = None
    try:
        p = prepare(
            image_embeds, text_embeds, text_to_image, k, ties, languages, caption_reduction, device
        )
        # Checked before any collective: an error half-way would leave the others waiting.
        check_finite(p.images, "image_embeds")
        for lang, t in p.texts.items():
            check_finite(t, f"text_embeds[{lang!r}]")
    except ValueError as exc:
        error = exc
    if distributed.any_process(error is not None):
        raise error or ValueError("another process rejected its shard of the input")
    layout = {
        "languages": list(p.texts),
        "dim": p.images.shape[1],
        "dtype": str(p.dtype),
        "options": (p.ks, ties, caption_reduction, chunk_size),
    }
    views = distributed.gather_objects(
        {**layout, "sizes": [p.images.shape[0], *(t.shape[0] for t in p.texts.values())]}
    )
    for r, view in enumerate(views):
        differing = [k for k in layout if view[k] != layout[k]]
        if differing:
            theirs = {k: view[k] for k in differing}
            ours = {k: layout[k] for k in differing}
            raise InputError(f"process {r} was called with {theirs}, this process with {ours}")
    rank = distributed.get_rank()
    n_images_by_rank = [view["sizes"][0] for view in views]
    image_offsets = np.cumsum([0, *n_images_by_rank])
    n_images = int(image_offsets[-1])
    languages_ = list(p.texts)
    counts: dict[str, dict[str, RankCounts]] = {}
    owners: dict[str, np.ndarray] = {}
    with progress_bar(progress and rank == 0, 2 * len(languages_) * len(views)) as bar:
        for i, lang in enumerate(languages_):
            t = p.texts[lang]
            owner = p.owners[lang].to(p.device)
            n_texts_by_rank = [view["sizes"][1 + i] for view in views]
            rows = stream_rows(chunk_size, max(n_images, sum(n_texts_by_rank)), p.device)
            i2t = _sharded_counts(
                p.images, t, captions_of_images(owner), n_images_by_rank, rows, bar
            )
            t2i = _sharded_counts(t, p.images, image_of_texts(owner), n_texts_by_rank, rows, bar)
            global_owner = owner + int(image_offsets[rank])
            counts[lang] = {"i2t": _gather_counts(i2t), "t2i": _gather_counts(t2i)}
            owners[lang] = _gather_rows(global_owner).cpu().numpy()
    return Report.from_counts(
        counts,
        text_to_image=owners,
        n_images=n_images,
        ks=p.ks,
        settings={
            **settings(
                ties, caption_reduction, languages_, "embeddings", p.device, dtype_str(p.images)
            ),
            "processes": len(views),
        },
    )


def _sharded_counts(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    positives: Positives,
    n_queries_by_rank: list[int],
    rows: int,
    bar: Any,
) -> torch.Tensor:
    """Count this process's queries against the gallery shards of all processes.

    ``positives(a, b)`` gives the positive pairs of local queries ``a:b`` as
    (query offset in the block, local gallery column). Returns int64 ``[3, Q_r]``:
    above, tied negatives, tied positives; zero for a query without a positive.
    """
    rank = distributed.get_rank()
    dim, dtype, dev = queries.shape[1], queries.dtype, queries.device
    out = torch.empty((3, queries.shape[0]), dtype=torch.long, device=dev)
    for src, n_src in enumerate(n_queries_by_rank):
        for a in range(0, n_src, rows):
            b = min(a + rows, n_src)
            if src == rank:
                block = queries[a:b].contiguous()
                query, column = positives(a, b)
                scores = block @ gallery.T
                # Only the positives' process knows the best scores: it counts its own
                # shard in full (tied positives included) and sends the thresholds.
                local = counts_from_positives(
                    scores,
                    (query, column),
                    chunk_size=None,
                    empty="miss",
                    positives_name="text_to_image",
                )
                best = torch.zeros(b - a, dtype=dtype, device=dev)
                best.scatter_reduce_(
                    0, query, scores[query, column], reduce="amax", include_self=False
                )
            else:
                block = torch.empty((b - a, dim), dtype=dtype, device=dev)
                best = torch.empty(b - a, dtype=dtype, device=dev)
            distributed.broadcast(block, src)
            distributed.broadcast(best, src)
            if src == rank:
                shard = torch.zeros((2, b - a), dtype=torch.long, device=dev)
            else:
                scores = block @ gallery.T
                shard = torch.stack(count_against(scores, best, chunk_size=None))
            distributed.all_reduce_sum(shard)
            if src == rank:
                above, tied_negatives, tied_positives = local
                has_positive = tied_positives > 0
                # Items of other shards that tie with the best are negatives.
                out[0, a:b] = torch.where(has_positive, above + shard[0], 0)
                out[1, a:b] = torch.where(has_positive, tied_negatives + shard[1], 0)
                out[2, a:b] = tied_positives
        bar.update()
    return out


def _gather_counts(counts: torch.Tensor) -> RankCounts:
    """Every process's counts ``[3, Q_r]``, concatenated in rank order, as numpy."""
    above, tied_negatives, tied_positives = (_gather_rows(c).cpu().numpy() for c in counts)
    return RankCounts(above, tied_negatives, tied_positives)


def _gather_rows(t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return distributed.all_gather_with_grad(t)
