"""Evaluation of a test set sharded across torch.distributed processes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np
import torch

from .. import distributed
from .._progress import progress_bar
from ..analysis.report import Report
from ..core._backend import ArrayLike
from ..core._selection import select_top
from ..core._validation import InputError, check_finite, dtype_str, renamed
from ..core.mrv import CaptionReduction
from ..core.ties import DEFAULT_TIES, RankCounts, Ties
from .assemble import settings
from .inputs import prepare
from .second_stage import (
    Collector,
    FirstStage,
    Protocol,
    RerankOptions,
    Scorer,
    check_protocol,
    direction_positives,
    pair_scores,
    rerank_options,
    rerank_settings,
    stage_counts,
)
from .stream import (
    Positives,
    Progress,
    block_counts,
    captions_of_images,
    check_progress,
    image_of_texts,
    show_progress,
    stream_rows,
)
from .tiles import GalleryTiles, ScoreBlock, padded_queries, score_block, tiling_for

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
    progress: Progress = "auto",
    timeout: float | None = None,
    rerank: Scorer | None = None,
    rerank_k: int = 128,
    rerank_batch_size: int = 4096,
    rerank_protocol: Protocol = "cascade",
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
    rerank, rerank_k, rerank_batch_size, rerank_protocol
        A second stage, as for :func:`evaluate`. Each process re-scores the candidates
        of its own queries; ``image_index`` and ``text_index`` are then *global*
        indices (rank 0's items first), so the scorer must reach every item of the
        test set, as a DDP process reading the whole dataset does. Candidates are
        merged from every process's top ``rerank_k``; only ranks are gathered.
    timeout : float, optional
        Seconds any one collective may wait for the other processes before this
        process raises :class:`TimeoutError`, naming itself and the step; None (the
        default) waits as long as the process group's own timeout (30 minutes unless
        ``init_process_group`` was given another).

    Returns
    -------
    Report
        Over all ``N = sum_r N_r`` images, numbered in rank order (rank 0's first),
        and all texts likewise.

    Raises
    ------
    ValueError
        On every process, when any process's shard is invalid (as for
        :func:`evaluate`; the message names the processes and their first error line),
        or when processes disagree on the languages, the embedding dimension or dtype,
        or the options.
    TimeoutError
        When ``timeout`` is given and another process stalls, dies or is never called;
        the process group is then unusable, and the program should end.

    Notes
    -----
    Gallery shards stay where they are. Query blocks are broadcast from the process that
    holds them, together with each query's best positive score (its positives are
    local to it); every process counts how many of its gallery items score above, or
    tie with, that score, and the counts are summed across processes: exact, and
    ``O(queries)`` integers per block on top of the broadcast query embeddings. Only
    the final rank arrays are gathered. Scores are computed on the same global tile
    grid as :func:`evaluate`'s, so the counts, ties included, do not depend on how the
    test set is split, on ``chunk_size`` or on the number of processes (on one device
    type and BLAS). Empty shards are allowed. Without an initialised process group
    this is :func:`evaluate`.

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
    with distributed.collective_timeout(timeout, "evaluating sharded embeddings"):
        return _evaluate_sharded(
            image_embeds,
            text_embeds,
            text_to_image,
            k=k,
            ties=ties,
            languages=languages,
            caption_reduction=caption_reduction,
            chunk_size=chunk_size,
            device=device,
            progress=progress,
            rerank=rerank,
            rerank_k=rerank_k,
            rerank_batch_size=rerank_batch_size,
            rerank_protocol=rerank_protocol,
        )


def _evaluate_sharded(
    image_embeds: ArrayLike,
    text_embeds: Mapping[str, ArrayLike],
    text_to_image: Mapping[str, ArrayLike] | None,
    *,
    k: int | Iterable[int],
    ties: Ties,
    languages: Sequence[str] | None,
    caption_reduction: CaptionReduction,
    chunk_size: int | None,
    device: str | torch.device | None,
    progress: Progress,
    rerank: Scorer | None,
    rerank_k: int,
    rerank_batch_size: int,
    rerank_protocol: Protocol,
) -> Report:
    error: Exception | None = None
    try:
        p = prepare(
            image_embeds,
            text_embeds,
            text_to_image,
            k,
            ties,
            languages,
            caption_reduction,
            device,
            shard=True,
        )
        # Checked before any collective: an error half-way would leave the others waiting.
        check_finite(p.images, "image_embeds")
        for lang, t in p.texts.items():
            check_finite(t, f"text_embeds[{lang!r}]")
        second = rerank_options(rerank, rerank_k, rerank_batch_size)
        protocol = check_protocol(rerank_protocol)
        check_progress(progress)
    except (TypeError, ValueError) as exc:
        error = exc
    distributed.raise_if_any_failed(error, "checking the input shards")
    # As JSON (tuples become lists), so that it compares equal with the other views.
    layout = _as_json(
        {
            "languages": list(p.texts),
            "dim": p.images.shape[1],
            "dtype": str(p.dtype),
            "k": list(p.ks),
            "ties": ties,
            "caption_reduction": caption_reduction,
            "chunk_size": chunk_size,
            "rerank": None if second is None else [second.k, second.batch_size, protocol],
        }
    )
    views = distributed.gather_objects(
        {**layout, "sizes": [p.images.shape[0], *(t.shape[0] for t in p.texts.values())]}
    )
    rank = distributed.get_rank()
    for r, view in enumerate(views):
        differing = [k for k in layout if view[k] != layout[k]]
        if differing:
            theirs = {k: view[k] for k in differing}
            ours = {k: layout[k] for k in differing}
            raise InputError(
                f"every process must be called alike: process {r} was called with "
                f"{theirs}, process {rank} with {ours}"
            )
    image_offsets = _offsets([view["sizes"][0] for view in views])
    n_images = image_offsets[-1]
    # Every process sees the same sizes: all raise alike, none waits.
    if n_images == 0:
        raise InputError("image_embeds is empty on every process", argument="image_embeds")
    for i, lang in enumerate(p.texts):
        if sum(view["sizes"][1 + i] for view in views) == 0:
            raise InputError(
                f"text_embeds[{lang!r}] is empty on every process",
                argument=f"text_embeds[{lang!r}]",
            )
    languages_ = list(p.texts)
    counts: dict[str, dict[str, RankCounts]] = {}
    owners: dict[str, np.ndarray] = {}
    n_texts = sum(sum(view["sizes"][1:]) for view in views)
    # Resolved on rank 0 only, the one process that shows a bar.
    progress = rank == 0 and show_progress(progress, 2 * n_images * n_texts)
    with progress_bar(progress, 2 * len(languages_) * len(views)) as bar:
        for i, lang in enumerate(languages_):
            t = p.texts[lang]
            owner = p.owners[lang].to(p.device)
            text_offsets = _offsets([view["sizes"][1 + i] for view in views])
            rows = stream_rows(chunk_size, max(n_images, text_offsets[-1]), p.device)
            if second is None:
                i2t = _sharded_counts(
                    p.images, t, captions_of_images(owner), image_offsets, text_offsets, rows, bar
                )
                t2i = _sharded_counts(
                    t, p.images, image_of_texts(owner), text_offsets, image_offsets, rows, bar
                )
            else:
                i2t, t2i = _sharded_reranked(
                    p.images,
                    t,
                    owner,
                    (image_offsets, text_offsets),
                    rows,
                    second,
                    protocol,
                    lang,
                    progress,
                    bar,
                )
            global_owner = owner + image_offsets[rank]
            counts[lang] = {"i2t": _gather_counts(i2t), "t2i": _gather_counts(t2i)}
            owners[lang] = distributed.gather_rows(global_owner).cpu().numpy()
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
            **({} if second is None else rerank_settings(protocol, second.k)),
        },
    )


def _sharded_counts(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    positives: Positives,
    query_offsets: list[int],
    gallery_offsets: list[int],
    rows: int,
    bar: Any,
) -> torch.Tensor:
    """Count this process's queries against the gallery shards of all processes.

    ``positives(a, b)`` gives the positive pairs of local queries ``a:b`` as (query
    offset, local gallery item). ``query_offsets`` and ``gallery_offsets`` are every
    process's first global index, then the totals. Scores are made on the global tile
    grid (:mod:`.tiles`), so they are the floats :func:`evaluate` makes. Returns int64
    ``[3, Q_r]``: above, tied negatives, tied positives; zero without a positive.
    """
    rank = distributed.get_rank()
    dim, dtype, dev = queries.shape[1], queries.dtype, queries.device
    tiling = tiling_for(query_offsets[-1], gallery_offsets[-1], dev)
    tiles = GalleryTiles(gallery, gallery_offsets[rank], tiling.gallery)
    rows = -(-rows // tiling.queries) * tiling.queries
    out = torch.empty((3, queries.shape[0]), dtype=torch.long, device=dev)
    buffer = None
    for src in range(len(query_offsets) - 1):
        first, stop = query_offsets[src], query_offsets[src + 1]
        for start in range(first // tiling.queries * tiling.queries, stop, rows):
            # The block is rows start .. start + rows of the global grid; src holds
            # the queries lo .. hi of them.
            lo, hi = max(start, first), min(start + rows, stop)
            if src == rank:
                block = padded_queries(queries, first, start, rows)
                query, column = positives(lo - first, hi - first)
                scores = score_block(block, tiles, tiling, buffer)
                buffer = scores.scores
                local, best = block_counts(
                    scores, query + (lo - start), column, hi - start, empty="miss"
                )
            else:
                block = torch.empty((rows, dim), dtype=dtype, device=dev)
                best = torch.empty(rows, dtype=dtype, device=dev)
            distributed.broadcast(block, src)
            distributed.broadcast(best, src)
            if src == rank:
                shard = torch.zeros((2, rows), dtype=torch.long, device=dev)
            else:
                scores = score_block(block, tiles, tiling, buffer)
                buffer = scores.scores
                shard = torch.stack(scores.count(best))
            distributed.all_reduce_sum(shard)
            if src == rank:
                above, tied_negatives, tied_positives = (c[lo - start :] for c in local)
                has_positive = tied_positives > 0
                # Items of other shards that tie with the best are negatives.
                mine = slice(lo - start, hi - start)
                out[0, lo - first : hi - first] = torch.where(
                    has_positive, above + shard[0, mine], 0
                )
                out[1, lo - first : hi - first] = torch.where(
                    has_positive, tied_negatives + shard[1, mine], 0
                )
                out[2, lo - first : hi - first] = tied_positives
        bar.update()
    return out


def _sharded_reranked(
    images: torch.Tensor,
    texts: torch.Tensor,
    owner: torch.Tensor,
    offsets: tuple[list[int], list[int]],
    rows: int,
    second: RerankOptions,
    protocol: Protocol,
    language: str,
    progress: bool,
    bar: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions of one language with a second stage: counts ``[3, Q_r]`` each.

    ``offsets`` are every process's first image and first text, then the totals.
    """
    rank = distributed.get_rank()
    image_offsets, text_offsets = offsets
    n_images, n_texts = image_offsets[-1], text_offsets[-1]
    i2t_positives, i2t_empty = direction_positives("i2t", owner)
    t2i_positives, t2i_empty = direction_positives("t2i", owner)
    # Positives with global gallery columns (an instance's image and texts share a shard).
    i2t_global = _shifted(i2t_positives, text_offsets[rank])
    t2i_global = _shifted(t2i_positives, image_offsets[rank])
    i2t = _sharded_first_stage(
        images, texts, i2t_global, image_offsets, text_offsets, rows, second.k, bar
    )
    t2i = _sharded_first_stage(
        texts, images, t2i_global, text_offsets, image_offsets, rows, second.k, bar
    )
    fine_i2t, fine_t2i = pair_scores(
        second.scorer,
        language,
        i2t,
        t2i,
        n_texts,
        second.batch_size,
        progress and rank == 0,
        image_offset=image_offsets[rank],
        text_offset=text_offsets[rank],
    )
    counts = (
        stage_counts(i2t, fine_i2t, protocol, i2t_global, n_texts, i2t_empty),
        stage_counts(t2i, fine_t2i, protocol, t2i_global, n_images, t2i_empty),
    )
    i2t_counts, t2i_counts = (
        torch.from_numpy(np.stack([c.above, c.tied_negatives, c.tied_positives])).to(images.device)
        for c in counts
    )
    return i2t_counts, t2i_counts


def _shifted(positives: Positives, offset: int) -> Positives:
    """``positives`` with ``offset`` added to every gallery column."""

    def pairs(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        query, column = positives(a, b)
        return query, column + offset

    return pairs


def _sharded_first_stage(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    positives: Positives,
    query_offsets: list[int],
    gallery_offsets: list[int],
    rows: int,
    k: int,
    bar: Any,
) -> FirstStage:
    """Run the first stage of this process's queries against every process's gallery shard.

    As :func:`_sharded_counts`, each query block is broadcast from its process and
    scored on the global tile grid by every process; each process sends its shard's
    top ``k`` (``-inf`` padding where the shard holds fewer), the query's process
    merges them into the global top ``k`` (shards come in index order, so the lower
    index still wins a tie), broadcasts the threshold of the non-candidate segment,
    and the counts of every shard are summed. ``positives`` give global columns.
    """
    rank, world = distributed.get_rank(), len(query_offsets) - 1
    dim, dtype, dev = queries.shape[1], queries.dtype, queries.device
    n_gallery = gallery_offsets[-1]
    k = min(k, n_gallery)
    tiling = tiling_for(query_offsets[-1], n_gallery, dev)
    tiles = GalleryTiles(gallery, gallery_offsets[rank], tiling.gallery)
    ranges = [tiles.local_range(t) for t in range(tiles.tiles.shape[0])]
    lo, hi = [r[0] for r in ranges], [r[1] for r in ranges]
    base = gallery_offsets[rank] - tiles.lead  # global index of the first tile's column 0
    first = [base + t * tiles.width for t in range(len(ranges))]
    mine = min(k, gallery.shape[0])
    rows = -(-rows // tiling.queries) * tiling.queries
    stage = Collector(
        query_offsets[rank + 1] - query_offsets[rank], n_gallery, k, positives, _no_overflow
    )
    buffer = None
    for src in range(world):
        start_q, stop_q = query_offsets[src], query_offsets[src + 1]
        for start in range(start_q // tiling.queries * tiling.queries, stop_q, rows):
            lo_q, hi_q = max(start, start_q), min(start + rows, stop_q)
            if src == rank:
                block = padded_queries(queries, start_q, start, rows)
            else:
                block = torch.empty((rows, dim), dtype=dtype, device=dev)
            distributed.broadcast(block, src)
            scores = score_block(block, tiles, tiling, buffer)
            buffer = scores.scores
            values = scores.scores.new_full((1, rows, k), -torch.inf)
            index = torch.full((1, rows, k), -1, dtype=torch.long, device=dev)
            if mine:
                s = scores.scores if scores.scores.is_contiguous() else scores.scores.contiguous()
                values[0, :, :mine], index[0, :, :mine] = select_top(s, lo, hi, first, mine)
            values, index = distributed.gather_rows(values), distributed.gather_rows(index)
            if src != rank:
                best = torch.empty(rows, dtype=dtype, device=dev)
                distributed.broadcast(best, src)
                distributed.all_reduce_sum(torch.stack(scores.count(best)))
                continue
            # Every shard's top k side by side, in rank (= index) order: [rows, W k].
            merged_v = values.permute(1, 0, 2).reshape(rows, world * k)
            merged_i = index.permute(1, 0, 2).reshape(rows, world * k)
            place = select_top(merged_v[None].contiguous(), [0], [world * k], [0], k)[1]
            span = slice(lo_q - start, hi_q - start)
            stage.add(
                lo_q - start_q,
                hi_q - start_q,
                merged_i.gather(1, place)[span],
                merged_v.gather(1, place)[span],
                _shared_counter(scores, span, src),
                _local_at(scores, span.start, gallery_offsets[rank]),
            )
        bar.update()
    return stage.result(dev)


def _shared_counter(
    scores: ScoreBlock, span: slice, src: int
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Count rows ``span`` of a block against ``best`` over every process's shard."""

    def count(best: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padded = best.new_zeros(scores.scores.shape[1])
        padded[span] = best
        distributed.broadcast(padded, src)
        total = distributed.all_reduce_sum(torch.stack(scores.count(padded)))
        return total[0, span], total[1, span]

    return count


def _local_at(
    scores: ScoreBlock, row_offset: int, gallery_offset: int
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Look up (query, global column) scores of this process's own shard."""
    return lambda rows, columns: scores.at(rows + row_offset, columns - gallery_offset)


def _no_overflow(row: int, column: int, value: float) -> NoReturn:
    # The embeddings were checked finite up front: only an overflowing product is left.
    raise InputError(
        f"a dot product of query {row} and gallery item {column} is {value}: the "
        "embeddings' products overflow their dtype; pass them as float32",
        argument="image_embeds",
    )


def _offsets(sizes: list[int]) -> list[int]:
    """Every process's first global index, then the total: ``[0, s0, s0 + s1, ...]``."""
    return [int(x) for x in np.cumsum([0, *sizes])]


def _gather_counts(counts: torch.Tensor) -> RankCounts:
    """Every process's counts ``[3, Q_r]``, concatenated in rank order, as numpy."""
    gathered = distributed.gather_rows(counts.T.contiguous()).T.cpu().numpy()
    return RankCounts(*gathered)


def _as_json(obj: Any) -> Any:
    """``obj`` as it arrives from :func:`distributed.gather_objects`."""
    return json.loads(json.dumps(obj))
