"""Evaluation of a test set sharded across torch.distributed processes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from .. import distributed
from .._progress import progress_bar
from ..analysis.report import Report
from ..core._backend import ArrayLike
from ..core._validation import InputError, check_finite, dtype_str
from ..core.mrv import CaptionReduction, MrvImages
from ..core.ties import DEFAULT_TIES, RankCounts, Ties
from .assemble import settings
from .galleries import (
    Galleries,
    check_galleries,
    check_mrv_images,
    coverage,
    expand_rows,
    gallery_rows,
    recorded,
    side,
    sizes,
    through,
    warn_if_mixed,
)
from .inputs import Prepared, prepare
from .second_stage import (
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
from .shard_blocks import sharded_first_stage, sharded_one_pass
from .stream import (
    Positives,
    Progress,
    check_progress,
    show_progress,
    stream_rows,
)

__all__ = ["evaluate_sharded"]


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
    galleries: Mapping[str, ArrayLike] | None = None,
    mrv_images: MrvImages = "two",
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
    galleries : mapping of str to array-like of int, each shape [G_lr], optional
        Per-language galleries, as for :func:`evaluate`, given by every process or by
        none: the images of this process's shard that each language covers, as indices
        into its ``image_embeds`` (any order; an empty one where the shard holds none).
        Together they are the galleries of the concatenated test set.
    mrv_images : {"two", "all"}, default "two"
        As for :func:`evaluate`.
    timeout : float, optional
        Seconds any one collective may wait for the other processes before this
        process raises :class:`TimeoutError` (above 0, at most a year); None (the
        default) waits as long as the process group's own timeout (30 minutes unless
        ``init_process_group`` was given another). Each process may give its own.

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
        or the options (``galleries`` given on some processes only included).
    TimeoutError
        When ``timeout`` is given and another process stalls or is never called: after
        ``timeout`` seconds, naming the process that stalled where the group's store
        tells (see Notes).
    RuntimeError
        When another process fails (raises) or ends during the evaluation: at once,
        naming it and its error where the group's store tells.

    Warns
    -----
    UserWarning
        As :func:`evaluate`, on every process, where the languages' texts cover
        different images of the whole test set and no ``galleries`` are given.

    Notes
    -----
    Text shards stay where they are. Blocks of images are broadcast from the process
    that holds them, together with bounds on each image's best caption score (its
    captions are local to it); every process scores them against its own texts once and
    counts both directions from those scores, as :func:`evaluate` does (image rows, text
    columns; see "One product for both directions" in ``docs/ranking.md``). The row
    counts are summed across processes once per language, with the exact thresholds
    gathered for the few near-ties kept on the way: exact, and ``O(images + texts)``
    numbers on top of the broadcast image embeddings. With a second stage each
    direction's queries are broadcast in turn instead. Only the final rank arrays are
    gathered. Scores are computed on the same global tile grid as :func:`evaluate`'s, so
    the counts, ties included, do not depend on how the test set is split, on
    ``chunk_size`` or on the number of processes (on one device type and BLAS). Empty
    shards are allowed. Without an initialised process group this is :func:`evaluate`.
    With ``galleries``, a language's images are its galleries' images of every process,
    numbered in rank order (the positions :func:`evaluate` gives them in the
    concatenated gallery), and the same holds for them.

    After a :class:`TimeoutError` or a :class:`RuntimeError` of a lost process the
    process group cannot be used any more: call
    ``torch.distributed.destroy_process_group()`` and end the process, on every
    process. Neither waits: with ``timeout`` no collective is left in flight past it
    (on gloo; NCCL keeps the group's own timeout). A process whose evaluation raises
    notes it in the group's store, so that the others stop waiting at once and name it;
    an invalid shard, an overflowing product or a failing ``rerank`` scorer (a
    ``ValueError`` or ``TypeError``) is instead raised on every process together, and
    the group stays usable.

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
    options = {
        "k": k,
        "ties": ties,
        "languages": languages,
        "caption_reduction": caption_reduction,
        "chunk_size": chunk_size,
        "device": device,
        "progress": progress,
        "rerank": rerank,
        "rerank_k": rerank_k,
        "rerank_batch_size": rerank_batch_size,
        "rerank_protocol": rerank_protocol,
        "galleries": galleries,
        "mrv_images": mrv_images,
        "timeout": timeout,
    }
    with distributed.shared_work("evaluating sharded embeddings", timeout=timeout):
        return _evaluate_sharded(image_embeds, text_embeds, text_to_image, options)


def _evaluate_sharded(
    image_embeds: ArrayLike,
    text_embeds: Mapping[str, ArrayLike],
    text_to_image: Mapping[str, ArrayLike] | None,
    options: Mapping[str, Any],
) -> Report:
    """Evaluate this process's shard with the others; ``options`` are the keyword arguments.

    The shard is checked first, and every process raises when any shard is bad; then
    the processes agree on the layout (:func:`_agreed_views`) and count each language
    together (:func:`_shared_language`); only the counts are gathered.
    """
    shard = _checked_shard(image_embeds, text_embeds, text_to_image, options)
    views = _agreed_views(shard, options)
    p, rank = shard.p, distributed.get_rank()
    image_offsets = _offsets([view["sizes"][0] for view in views])
    n_images = image_offsets[-1]
    galleries = None
    if shard.galleries is None:
        covered = np.sum([view["coverage"] for view in views], axis=0).tolist()
        warn_if_mixed(dict(zip(p.texts, covered[:-1], strict=True)), covered[-1], n_images)
    else:
        sizes_ = np.sum([view["galleries"] for view in views], axis=0).tolist()
        galleries = recorded(dict(zip(p.texts, (int(n) for n in sizes_), strict=True)), n_images)
    counts: dict[str, dict[str, RankCounts]] = {}
    owners: dict[str, np.ndarray] = {}
    n_texts = sum(sum(view["sizes"][1:]) for view in views)
    # Resolved on rank 0 only, the one process that shows a bar.
    progress = rank == 0 and show_progress(options["progress"], 2 * n_images * n_texts)
    passes = 1 if shard.second is None else 2  # with a second stage, one per direction
    with progress_bar(progress, passes * len(p.texts) * len(views)) as bar:
        for i, lang in enumerate(p.texts):
            i2t, t2i = _shared_language(shard, lang, i, views, image_offsets, progress, bar)
            # Every process's sizes are known: one collective per gather, not two.
            n_texts_ = [view["sizes"][1 + i] for view in views]
            counts[lang] = {
                "i2t": _gather_counts(i2t, [view["sizes"][0] for view in views]),
                "t2i": _gather_counts(t2i, n_texts_),
            }
            global_owner = p.owners[lang].to(p.device) + image_offsets[rank]
            owners[lang] = distributed.gather_rows(global_owner, sizes=n_texts_).cpu().numpy()
    run = settings(
        options["ties"],
        options["caption_reduction"],
        list(p.texts),
        "embeddings",
        p.device,
        dtype_str(p.images),
        mrv_images=shard.mrv_images,
        galleries=galleries,
    )
    run["processes"] = len(views)
    if shard.second is not None:
        run.update(rerank_settings(shard.protocol, shard.second.k))
    return Report.from_counts(counts, owners, n_images, p.ks, run)


class _Shard(NamedTuple):
    """The checked inputs and options of this process."""

    p: Prepared
    second: RerankOptions | None
    protocol: Protocol
    galleries: Galleries | None  # local image indices per language
    mrv_images: MrvImages
    chunk_size: int | None


def _checked_shard(
    image_embeds: ArrayLike,
    text_embeds: Mapping[str, ArrayLike],
    text_to_image: Mapping[str, ArrayLike] | None,
    options: Mapping[str, Any],
) -> _Shard:
    """Check this process's shard and options; raise on every process if any is bad.

    Everything is checked before any collective: an error half-way would leave the
    other processes waiting.
    """
    error: Exception | None = None
    try:
        p = prepare(
            image_embeds,
            text_embeds,
            text_to_image,
            options["k"],
            options["ties"],
            options["languages"],
            options["caption_reduction"],
            options["device"],
            shard=True,
        )
        check_finite(p.images, "image_embeds")
        for lang, t in p.texts.items():
            check_finite(t, f"text_embeds[{lang!r}]")
        shard = _Shard(
            p,
            rerank_options(options["rerank"], options["rerank_k"], options["rerank_batch_size"]),
            check_protocol(options["rerank_protocol"]),
            check_galleries(
                options["galleries"], p.owners, p.images.shape[0], text_embeds, shard=True
            ),
            check_mrv_images(options["mrv_images"]),
            options["chunk_size"],
        )
        check_progress(options["progress"])
        distributed.check_timeout(options["timeout"])
    except (TypeError, ValueError) as exc:
        error = exc
    distributed.raise_if_any_failed(error, "checking the input shards")
    return shard


def _agreed_views(shard: _Shard, options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every process's view of the test set, after checking that all were called alike.

    A view holds the layout (languages, dimension, dtype, options), which must be the
    same everywhere, and this process's sizes: images then texts per language, the
    images each language's texts cover then those all cover, and the gallery sizes.
    """
    p, second = shard.p, shard.second
    # As JSON (tuples become lists), so that it compares equal with the other views.
    layout = _as_json(
        {
            "languages": list(p.texts),
            "dim": p.images.shape[1],
            "dtype": str(p.dtype),
            "k": list(p.ks),
            "ties": options["ties"],
            "caption_reduction": options["caption_reduction"],
            "chunk_size": options["chunk_size"],
            "rerank": None if second is None else [second.k, second.batch_size, shard.protocol],
            "galleries": shard.galleries is not None,
            "mrv_images": shard.mrv_images,
        }
    )
    covered, shared = coverage(p.owners, p.images.shape[0])
    views = distributed.gather_objects(
        {
            **layout,
            "sizes": [p.images.shape[0], *(t.shape[0] for t in p.texts.values())],
            "coverage": [*covered.values(), shared],
            "galleries": None if shard.galleries is None else sizes(shard.galleries),
        }
    )
    rank = distributed.get_rank()
    for r, view in enumerate(views):
        view_layout = {**view, "galleries": view["galleries"] is not None}
        differing = [k for k in layout if view_layout[k] != layout[k]]
        if differing:
            theirs = {k: view_layout[k] for k in differing}
            ours = {k: layout[k] for k in differing}
            raise InputError(
                f"every process must be called alike: process {r} was called with "
                f"{theirs}, process {rank} with {ours}"
            )
        if view["galleries"] is not None:
            view["galleries"] = list(view["galleries"].values())
    # Every process sees the same sizes: all raise alike, none waits.
    if sum(view["sizes"][0] for view in views) == 0:
        raise InputError("image_embeds is empty on every process", argument="image_embeds")
    for i, lang in enumerate(p.texts):
        if sum(view["sizes"][1 + i] for view in views) == 0:
            raise InputError(
                f"text_embeds[{lang!r}] is empty on every process",
                argument=f"text_embeds[{lang!r}]",
            )
    return views


def _shared_language(
    shard: _Shard,
    lang: str,
    i: int,
    views: list[dict[str, Any]],
    image_offsets: list[int],
    progress: bool,
    bar: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count language ``lang`` (the ``i``-th) with the other processes: ``[3, N_r]``, ``[3, M_r]``.

    With galleries the language's images are numbered by gallery position: every
    process's gallery images, in rank order, as :func:`evaluate` numbers its gallery.
    """
    p, rank = shard.p, distributed.get_rank()
    gallery = None if shard.galleries is None else shard.galleries[lang]
    s = side(p.images, p.owners[lang], gallery)
    text_offsets = _offsets([view["sizes"][1 + i] for view in views])
    if shard.galleries is None:
        gallery_offsets = image_offsets
    else:
        gallery_offsets = _offsets([view["galleries"][i] for view in views])
    t = p.texts[lang]
    if shard.second is None:
        rows = stream_rows(shard.chunk_size, text_offsets[-1], p.device)
        offsets = (gallery_offsets, text_offsets)
        i2t, t2i = sharded_one_pass(s.images, t, s.owner, offsets, rows, bar)
    else:
        rows = stream_rows(shard.chunk_size, max(gallery_offsets[-1], text_offsets[-1]), p.device)
        second = shard.second
        if gallery is not None:
            # The scorer takes image indices: look the global gallery positions up.
            local = gallery_rows(torch.arange(p.images.shape[0]), s.gallery) + image_offsets[rank]
            index = distributed.gather_rows(local.to(p.device))
            second = second._replace(scorer=through(second.scorer, index, p.device))
        offsets = (gallery_offsets, text_offsets)
        i2t, t2i = _sharded_reranked(
            s.images, t, s.owner, offsets, rows, second, shard.protocol, lang, progress, bar
        )
    return expand_rows(i2t, s.gallery, p.images.shape[0]), t2i


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
    i2t = sharded_first_stage(
        images, texts, i2t_global, image_offsets, text_offsets, rows, second.k, bar
    )
    t2i = sharded_first_stage(
        texts, images, t2i_global, text_offsets, image_offsets, rows, second.k, bar
    )
    # The scorer runs on each process alone: a process whose scorer fails tells the
    # others, and all raise together (the group stays usable).
    error: Exception | None = None
    try:
        fine_i2t, fine_t2i = pair_scores(
            second.scorer,
            language,
            i2t,
            t2i,
            second.batch_size,
            progress and rank == 0,
            image_offset=image_offsets[rank],
            text_offset=text_offsets[rank],
        )
        counts = (
            stage_counts(i2t, fine_i2t, protocol, i2t_global, n_texts, i2t_empty),
            stage_counts(t2i, fine_t2i, protocol, t2i_global, n_images, t2i_empty),
        )
    except (TypeError, ValueError) as exc:
        error = exc
    distributed.raise_if_any_failed(error, f"re-scoring language {language!r}")
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


def _offsets(sizes: list[int]) -> list[int]:
    """Every process's first global index, then the total: ``[0, s0, s0 + s1, ...]``."""
    return [int(x) for x in np.cumsum([0, *sizes])]


def _gather_counts(counts: torch.Tensor, sizes: list[int]) -> RankCounts:
    """Every process's counts ``[3, Q_r]`` (``Q_r`` is ``sizes[r]``), in rank order, as numpy."""
    gathered = distributed.gather_rows(counts.T.contiguous(), sizes=sizes).T.cpu().numpy()
    return RankCounts(*gathered)


def _as_json(obj: Any) -> Any:
    """``obj`` as it arrives from :func:`distributed.gather_objects`."""
    return json.loads(json.dumps(obj))
