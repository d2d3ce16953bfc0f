"""Evaluation in one process: from embeddings (streamed) or from stored score matrices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from .._progress import progress_bar
from ..analysis.report import Report
from ..core._backend import ArrayLike
from ..core._validation import InputError, dtype_str, renamed
from ..core.mrv import CaptionReduction
from ..core.ties import DEFAULT_TIES, RankCounts, Ties
from .assemble import build_report, settings
from .inputs import Prepared, options, prepare, score_matrices, text_owners
from .second_stage import (
    Given,
    Protocol,
    RerankOptions,
    Scorer,
    check_protocol,
    direction_positives,
    first_stage,
    given_rerank,
    pair_scores,
    rerank_options,
    rerank_settings,
    stage_counts,
    stored_first_stage,
)
from .stream import (
    Progress,
    check_progress,
    count_direction,
    n_blocks,
    product_counts,
    product_nonfinite,
    show_progress,
    slices,
    stored_nonfinite,
    stream_rows,
)

__all__ = ["evaluate", "evaluate_scores"]


@renamed(ks="k", caption_reduce="caption_reduction")
def evaluate(
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
    rerank: Scorer | None = None,
    rerank_k: int = 128,
    rerank_batch_size: int = 4096,
    rerank_protocol: Protocol = "cascade",
    candidates: Mapping[str, Mapping[str, ArrayLike]] | None = None,
    fine: Mapping[str, Mapping[str, ArrayLike]] | None = None,
) -> Report:
    """Evaluate image-text retrieval in every language from embeddings.

    Parameters
    ----------
    image_embeds : array-like or torch.Tensor, shape [N, D]
        Image embeddings. Scores are dot products: L2-normalise first for cosine.
    text_embeds : mapping of str to array-like, each shape [M_l, D]
        Text embeddings per language.
    text_to_image : mapping of str to array-like of int, each shape [M_l], optional
        The image of each text, per language. A language without an entry needs
        ``M_l == N`` (text ``i`` describes image ``i``).
    k : int or iterable of int, default (1, 5, 10)
        Recall cut-offs.
    ties : {"expected", "average", "optimistic", "pessimistic"}, default "expected"
        Tie policy, as for :func:`~ccr_metrics.positive_ranks`; the Report keeps the
        rank counts, so recall under ``"expected"`` is the exact expected recall.
    languages : sequence of str, optional
        The languages to evaluate (and to take MRV over), in this order. Default: all.
    caption_reduction : {"first", "mean", "min", "median"}, default "first"
        How text-to-image MRV turns the ranks of an image's several captions in one
        language into one (see :func:`~ccr_metrics.ranks_per_image`). "first" uses the
        caption that comes first in the file order (the lowest text index of the image
        in ``text_to_image``), not the best-ranked one; for one caption per language
        (xFlickr&CO) it is the only one. "min" takes the best-ranked caption.
    chunk_size : int, optional
        Queries per block; extra memory is ``O(chunk_size x gallery)``. Default: about
        2**23 scores per block on CPU (32 MB in float32), 2**28 on CUDA.
    device : str or torch.device, optional
        Where to compute. None or "auto": CUDA when available, else CPU.
    progress : bool or "auto", default "auto"
        Show a progress bar over blocks (tqdm, on stderr). "auto": when stderr is a
        terminal and the work is large (``2**26`` scores or more, seconds on a CPU).
    rerank : callable, optional
        A second stage: ``rerank(language, image_index, text_index) -> scores``, a
        cross-encoder scoring a batch of (image, text) pairs. ``image_index`` and
        ``text_index`` are 1-D int64 tensors of equal length on the evaluation device
        (``text_index`` into that language's texts); it returns one real score per
        pair (a 1-D tensor or array), higher meaning more alike. Each query's top
        ``rerank_k`` candidates by embedding similarity are re-scored and ranked
        first (see Notes). Default: no second stage.
    rerank_k : int, default 128
        Candidates per query (the ``k_test`` of ALBEF-style code: 128, or 256 on COCO);
        cut to the gallery size.
    rerank_batch_size : int, default 4096
        Pairs per call of ``rerank``.
    rerank_protocol : {"cascade", "filled"}, default "cascade"
        "cascade": the candidates by their re-scored score, then every other item by
        its embedding similarity (:func:`~ccr_metrics.reranked_ranks`). "filled": the
        released protocol, the re-scored candidates and -100 for every other item
        (:func:`~ccr_metrics.released_rerank_scores`), ranked under ``ties``.
    candidates, fine : mapping of direction to mapping of str to array-like, optional
        Second-stage scores computed elsewhere instead of ``rerank``:
        ``candidates["i2t"][lang]`` ``[N, k]`` (text indices) and ``fine["i2t"][lang]``
        ``[N, k]`` (their scores), ``["t2i"][lang]`` ``[M_l, k]`` (image indices), for
        any (direction, language); the others are ranked by embeddings alone.

    Returns
    -------
    Report
        Ranks for both directions in every selected language, with recall, mean
        recall, averages and MRV computed from them.

    Raises
    ------
    ValueError
        If an embedding array is not 2-D, not real, holds NaN or infinity, or its
        dimension differs from the images'; if a mapping is missing where ``M_l != N``,
        has the wrong length or an index out of range; if ``languages`` names an
        unknown language; if an option is invalid; or if ``rerank`` returns anything
        but one finite real score per pair.

    Notes
    -----
    Image-to-text: each image queries one language's texts; its rank is that of its
    best caption; images without a text in the language are not queries there.
    Text-to-image: each text queries all images. The products are computed in the
    embeddings' common dtype (float32 stays float32), as fixed-shape tiles on a grid
    of global indices, so every score, and every rank, ties included, is the same
    whatever ``chunk_size`` (and equals :func:`evaluate_sharded` on any sharding) on
    one device type and BLAS; see "Same ranks on every execution plan" in
    ``docs/ranking.md``. The ranks are :func:`evaluate_scores`'s on
    ``image_embeds @ text_embeds.T`` and ``text_embeds @ image_embeds.T`` wherever the
    BLAS rounds those products as it rounds the tiles.

    With ``rerank``, each direction's products are streamed once, as without it, and
    each query keeps its ``rerank_k`` best candidates (of items tied at the boundary,
    the lower index) and the counts of the items behind them; the full matrix is never
    held. The pairs the queries need are then scored, each once even when both
    directions need it (an image's candidate text whose candidate images include that
    image), and the Report's ranks are the cascade's (or the filled protocol's), its
    settings naming which (``rerank``, ``rerank_k``). See ``docs/reranking.md``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images = rng.standard_normal((50, 16)).astype(np.float32)
    >>> texts = {"en": images + 0.5 * rng.standard_normal((50, 16)).astype(np.float32),
    ...          "de": images + 0.9 * rng.standard_normal((50, 16)).astype(np.float32)}
    >>> report = evaluate(images, texts, device="cpu")
    >>> report.recall()["en"]["t2i"]
    {1: 0.98, 5: 1.0, 10: 1.0}
    >>> round(report.to_dict()["mrv"]["t2i"]["std"], 3)
    0.45
    """
    p = prepare(
        image_embeds, text_embeds, text_to_image, k, ties, languages, caption_reduction, device
    )
    n_scores = 2 * p.images.shape[0] * sum(t.shape[0] for t in p.texts.values())
    progress = show_progress(check_progress(progress), n_scores)
    second = rerank_options(rerank, rerank_k, rerank_batch_size)
    protocol = check_protocol(rerank_protocol)
    shapes = {
        lang: {"i2t": (p.images.shape[0], t.shape[0]), "t2i": (t.shape[0], p.images.shape[0])}
        for lang, t in p.texts.items()
    }
    given = given_rerank(candidates, fine, shapes, p.device)
    if second is not None and given:
        raise InputError(
            "give a scorer (rerank) or stored second-stage scores (candidates and fine), not both",
            argument="rerank",
        )
    if second is not None or given:
        return _reranked(p, second, given, protocol, ties, caption_reduction, chunk_size, progress)
    n_images = p.images.shape[0]
    rows_i2t, rows_t2i, total = _stream_plan(p, chunk_size)
    counts: dict[str, dict[str, RankCounts]] = {}
    with progress_bar(progress, total) as bar:
        for lang, t in p.texts.items():
            owner = p.owners[lang].to(p.device)
            text_name = f"text_embeds[{lang!r}]"
            counts[lang] = {
                "i2t": product_counts(
                    p.images,
                    t,
                    "i2t",
                    owner,
                    rows_i2t[lang],
                    bar,
                    product_nonfinite("image_embeds", p.images, text_name, t),
                ),
                "t2i": product_counts(
                    t,
                    p.images,
                    "t2i",
                    owner,
                    rows_t2i,
                    bar,
                    product_nonfinite(text_name, t, "image_embeds", p.images),
                ),
            }
    run = settings(
        ties, caption_reduction, list(p.texts), "embeddings", p.device, dtype_str(p.images)
    )
    return build_report(counts, p.owners, n_images, p.ks, run)


def _stream_plan(p: Prepared, chunk_size: int | None) -> tuple[dict[str, int], int, int]:
    """Query rows per block of each language's i2t pass and of the t2i passes, and blocks."""
    n_images = p.images.shape[0]
    rows_i2t = {lang: stream_rows(chunk_size, t.shape[0], p.device) for lang, t in p.texts.items()}
    rows_t2i = stream_rows(chunk_size, n_images, p.device)
    total = sum(
        n_blocks(n_images, rows_i2t[lang]) + n_blocks(t.shape[0], rows_t2i)
        for lang, t in p.texts.items()
    )
    return rows_i2t, rows_t2i, total


def _reranked(
    p: Prepared,
    second: RerankOptions | None,
    given: Given,
    protocol: Protocol,
    ties: Ties,
    caption_reduction: CaptionReduction,
    chunk_size: int | None,
    progress: bool,
) -> Report:
    """:func:`evaluate` with a second stage: a scorer (``rerank``) or stored ``fine``."""
    n_images = p.images.shape[0]
    rows_i2t, rows_t2i, total = _stream_plan(p, chunk_size)
    counts: dict[str, dict[str, RankCounts]] = {}
    with progress_bar(progress, total) as bar:
        for lang, t in p.texts.items():
            owner = p.owners[lang].to(p.device)
            text_name = f"text_embeds[{lang!r}]"
            counts[lang] = {}
            stages = {}
            for d in ("i2t", "t2i"):
                queries, gallery = (p.images, t) if d == "i2t" else (t, p.images)
                names = ("image_embeds", text_name) if d == "i2t" else (text_name, "image_embeds")
                nonfinite = product_nonfinite(names[0], queries, names[1], gallery)
                rows = rows_i2t[lang] if d == "i2t" else rows_t2i
                stored = given.get(lang, {}).get(d)
                if second is None and stored is None:  # no second stage for this one
                    counts[lang][d] = product_counts(
                        queries, gallery, d, owner, rows, bar, nonfinite
                    )
                    continue
                positives, _ = direction_positives(d, owner)
                stages[d] = first_stage(
                    queries,
                    gallery,
                    positives,
                    rows,
                    second.k if second is not None else 0,
                    bar,
                    nonfinite,
                    candidates=None if stored is None else stored[0],
                )
            if second is not None:
                fine = dict(
                    zip(
                        ("i2t", "t2i"),
                        pair_scores(
                            second.scorer,
                            lang,
                            stages["i2t"],
                            stages["t2i"],
                            t.shape[0],
                            second.batch_size,
                            progress,
                        ),
                        strict=True,
                    )
                )
            else:
                fine = {d: given[lang][d][1] for d in stages}
            for d, stage in stages.items():
                positives, empty = direction_positives(d, owner)
                n_gallery = t.shape[0] if d == "i2t" else n_images
                counts[lang][d] = stage_counts(
                    stage, fine[d], protocol, positives, n_gallery, empty
                )
    run = settings(
        ties, caption_reduction, list(p.texts), "embeddings", p.device, dtype_str(p.images)
    )
    k = None if second is None else second.k
    return build_report(counts, p.owners, n_images, p.ks, {**run, **rerank_settings(protocol, k)})


@renamed(ks="k", caption_reduce="caption_reduction")
def evaluate_scores(
    i2t: Mapping[str, ArrayLike] | None = None,
    t2i: Mapping[str, ArrayLike] | None = None,
    text_to_image: Mapping[str, ArrayLike] | None = None,
    *,
    k: int | Iterable[int] = (1, 5, 10),
    ties: Ties = DEFAULT_TIES,
    languages: Sequence[str] | None = None,
    caption_reduction: CaptionReduction = "first",
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    progress: Progress = "auto",
    candidates: Mapping[str, Mapping[str, ArrayLike]] | None = None,
    fine: Mapping[str, Mapping[str, ArrayLike]] | None = None,
    rerank_protocol: Protocol = "cascade",
) -> Report:
    """Evaluate saved score matrices, per language and direction.

    Parameters
    ----------
    i2t : mapping of str to array-like, each shape [N, M_l], optional
        Image-to-text scores per language (row: image, column: text).
    t2i : mapping of str to array-like, each shape [M_l, N], optional
        Text-to-image scores per language (row: text, column: image). At least one of
        ``i2t`` and ``t2i`` is needed; a language may have one direction only.
    text_to_image, k, ties, languages, caption_reduction, chunk_size, device, progress
        As for :func:`evaluate`.
    candidates, fine : mapping of direction to mapping of str to array-like, optional
        A second stage (re-ranking) computed elsewhere, as for :func:`evaluate`:
        ``candidates["i2t"][lang]`` ``[N, k]`` and ``fine["i2t"][lang]`` ``[N, k]``,
        ``["t2i"][lang]`` ``[M_l, k]``. The stored matrices are then the first-stage
        (coarse) scores, and the ranks are cascade ranks
        (:func:`~ccr_metrics.reranked_ranks`) for those directions.
    rerank_protocol : {"cascade", "filled"}, default "cascade"
        As for :func:`evaluate`.

    Returns
    -------
    Report

    Raises
    ------
    ValueError
        If no matrix is given, the matrices disagree on ``N`` or ``M_l``, scores are
        not finite, or as :func:`evaluate`.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([[0.9, 0.1, 0.3],
    ...               [0.2, 0.8, 0.7]])
    >>> report = evaluate_scores(i2t={"en": s}, t2i={"en": s.T},
    ...                          text_to_image={"en": [0, 1, 0]}, k=(1,), device="cpu")
    >>> report.recall()
    {'en': {'i2t': {1: 1.0}, 't2i': {1: 0.6666666666666666}}}
    """
    cutoffs, dev = options(k, ties, caption_reduction, device)
    matrices, n_images, n_texts = score_matrices(i2t, t2i, languages)
    known = dict.fromkeys([*(i2t or {}), *(t2i or {})])
    owner_of = text_owners(text_to_image, n_texts, n_images, known)
    # Each matrix is ranked in its own dtype; the settings list them all.
    dtypes = sorted({dtype_str(m) for by_dir in matrices.values() for m in by_dir.values()})
    total = sum(
        n_blocks(m.shape[0], stream_rows(chunk_size, m.shape[1], dev))
        for by_dir in matrices.values()
        for m in by_dir.values()
    )
    progress = show_progress(
        check_progress(progress),
        sum(m.shape[0] * m.shape[1] for by_dir in matrices.values() for m in by_dir.values()),
    )
    protocol = check_protocol(rerank_protocol)
    shapes = {
        lang: {d: (m.shape[0], m.shape[1]) for d, m in by_dir.items()}
        for lang, by_dir in matrices.items()
    }
    given = given_rerank(candidates, fine, shapes, dev)
    counts: dict[str, dict[str, RankCounts]] = {}
    with progress_bar(progress, total) as bar:
        for lang, by_dir in matrices.items():
            owner = owner_of[lang].to(dev)
            counts[lang] = {}
            for direction, m in by_dir.items():
                rows = stream_rows(chunk_size, m.shape[1], dev)
                nonfinite = stored_nonfinite(f"{direction}[{lang!r}]")
                if direction not in given.get(lang, {}):
                    counts[lang][direction] = count_direction(
                        slices(m, dev), direction, m.shape[0], owner, rows, bar, nonfinite
                    )
                    continue
                cand, f = given[lang][direction]
                positives, empty = direction_positives(direction, owner)
                stage = stored_first_stage(
                    slices(m, dev), m.shape[0], m.shape[1], positives, rows, cand, bar, nonfinite
                )
                counts[lang][direction] = stage_counts(
                    stage, f, protocol, positives, m.shape[1], empty
                )
    run = settings(ties, caption_reduction, list(matrices), "scores", dev, ", ".join(dtypes))
    if given:
        run.update(rerank_settings(protocol, None))
    return build_report(counts, owner_of, n_images, cutoffs, run)
