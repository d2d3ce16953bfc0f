"""Evaluation in one process: from embeddings (streamed) or from stored score matrices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from .._progress import progress_bar
from ..analysis.report import Report
from ..core._backend import ArrayLike
from ..core._validation import InputError, dtype_str
from ..core.mrv import CaptionReduction, MrvImages
from ..core.ties import DEFAULT_TIES, RankCounts, Ties
from .assemble import build_report, settings
from .galleries import (
    Side,
    check_galleries,
    check_mrv_images,
    coverage,
    expand,
    gallery_candidates,
    gallery_rows,
    mapped,
    positions,
    recorded,
    side,
    sizes,
    through,
    warn_if_mixed,
)
from .inputs import Prepared, options, prepare, score_matrices, text_owners
from .one_pass import one_pass_counts
from .one_pass_stage import one_pass_stages
from .second_stage import (
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
    Block,
    NonFinite,
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
from .tiles import tiled_blocks

__all__ = ["evaluate", "evaluate_scores"]


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
    galleries: Mapping[str, ArrayLike] | None = None,
    mrv_images: MrvImages = "two",
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
    galleries : mapping of str to array-like of int, each shape [G_l], optional
        Per-language galleries: the indices (into ``image_embeds``, any order) of the
        images each language covers, for test sets where each language has images of
        its own (WIT). A language's texts are then ranked among its own images only,
        and its image-to-text queries are its own images; every text's image must be
        in its language's gallery. Default: every language ranked among all ``N``
        images (one shared gallery), with a warning where the languages' texts cover
        different images. The same indices for every language keep one shared gallery
        without the warning. With a second stage, candidates come from the language's
        gallery (stored ``candidates["t2i"]`` must lie in it) and ``rerank`` gets image
        indices into ``image_embeds`` as always.
    mrv_images : {"two", "all"}, default "two"
        The images MRV is taken over: those with texts in two or more of the evaluated
        languages, or in every one (``"all"``). The Report says how many
        (:meth:`~ccr_metrics.Report.mrv_image_counts`).

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
        unknown language; if an option is invalid; if ``rerank`` returns anything
        but one finite real score per pair; or if ``galleries`` lacks an evaluated
        language, names an unknown one, repeats an image, holds an index out of range
        or misses the image of one of its language's texts (the message names the
        language and position).

    Warns
    -----
    UserWarning
        Without ``galleries``, where the evaluated languages' texts cover different
        sets of images: each language is then ranked among the other languages'
        images too. The message names ``galleries=``.

    Notes
    -----
    Image-to-text: each image queries one language's texts; its rank is that of its
    best caption; images without a text in the language are not queries there.
    Text-to-image: each text queries all images (with ``galleries``, its language's:
    the language is then evaluated as the test set of its gallery's images and its
    texts, on the tile grid of gallery positions). The products are computed in the
    embeddings' common dtype (float32 stays float32), as fixed-shape image x text tiles
    on a grid of global indices, each score once: both directions are counted from it
    in one read (image-to-text along its row, text-to-image down its column). So every
    score, and every rank, ties included, is the same whatever ``chunk_size`` (and
    equals :func:`evaluate_sharded` on any sharding) on one device type and BLAS; see
    "Same ranks on every execution plan" in ``docs/ranking.md``. The ranks are
    :func:`evaluate_scores`'s on ``S = image_embeds @ text_embeds.T`` and ``S.T``
    wherever the BLAS rounds that product as it rounds the tiles.

    With ``rerank``, the same one pass over the image x text tiles keeps each query's
    ``rerank_k`` best candidates (image rows their texts, text columns their images; of
    items tied at the boundary, the lower index) and the counts of the items behind
    them; the full matrix is never held. The pairs the queries need are then scored, each once even
    when both directions need it (an image's candidate text whose candidate images
    include that image), and the Report's ranks are the cascade's (or the filled
    protocol's), its settings naming which (``rerank``, ``rerank_k``). See
    ``docs/reranking.md``.

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

    Per-language galleries: English describes images 0-29, German 20-49; each is
    ranked among its own 30 images, and MRV is over the 10 images both describe:

    >>> texts = {"en": texts["en"][:30], "de": texts["de"][20:]}
    >>> owners = {"en": np.arange(30), "de": np.arange(20, 50)}
    >>> galleries = {"en": np.arange(30), "de": np.arange(20, 50)}
    >>> report = evaluate(images, texts, owners, galleries=galleries, device="cpu")
    >>> report.mrv_image_counts()
    {'i2t': 10, 't2i': 10}
    >>> report.settings["galleries"]
    {'en': 30, 'de': 30}
    """
    p = prepare(
        image_embeds, text_embeds, text_to_image, k, ties, languages, caption_reduction, device
    )
    mrv_images = check_mrv_images(mrv_images)
    n_images = p.images.shape[0]
    gal = check_galleries(galleries, p.owners, n_images, text_embeds)
    if gal is None:
        warn_if_mixed(*coverage(p.owners, n_images), n_images)
    sizes_ = {lang: n_images if gal is None else len(gal[lang]) for lang in p.texts}
    n_scores = 2 * sum(sizes_[lang] * t.shape[0] for lang, t in p.texts.items())
    progress = show_progress(check_progress(progress), n_scores)
    second = rerank_options(rerank, rerank_k, rerank_batch_size)
    protocol = check_protocol(rerank_protocol)
    shapes = {
        lang: {"i2t": (n_images, t.shape[0]), "t2i": (t.shape[0], n_images)}
        for lang, t in p.texts.items()
    }
    given = given_rerank(candidates, fine, shapes, p.device)
    if second is not None and given:
        raise InputError(
            "give a scorer (rerank) or stored second-stage scores (candidates and fine), not both",
            argument="rerank",
        )
    two_passes = bool(given)
    rows_i2t, rows_t2i, total = _stream_plan(p, sizes_, chunk_size, two_passes)
    counts: dict[str, dict[str, RankCounts]] = {}
    with progress_bar(progress, total) as bar:
        for lang in p.texts:
            s = side(p.images, p.owners[lang], None if gal is None else gal[lang])
            rows = (rows_i2t[lang], rows_t2i[lang])
            if second is not None or given:
                stage = _Stage(second, given.get(lang, {}), protocol, progress)
                counts[lang] = _reranked_language(p, lang, s, stage, rows, bar)
            else:
                counts[lang] = _language_counts(p, lang, s, rows, bar)
    run = settings(
        ties,
        caption_reduction,
        list(p.texts),
        "embeddings",
        p.device,
        dtype_str(p.images),
        mrv_images=mrv_images,
        galleries=recorded(sizes(gal), n_images),
    )
    if second is not None or given:
        run.update(rerank_settings(protocol, None if second is None else second.k))
    return build_report(counts, p.owners, n_images, p.ks, run)


def _stream_plan(
    p: Prepared, n_gallery: Mapping[str, int], chunk_size: int | None, two_passes: bool
) -> tuple[dict[str, int], dict[str, int], int]:
    """Query rows per block of each language's i2t and t2i passes, and the blocks in all.

    ``n_gallery`` is each language's number of images (its gallery's, with galleries).
    Without a second stage one pass of image blocks counts both directions; with one
    (``two_passes``) each direction streams its own queries.
    """
    rows_i2t = {lang: stream_rows(chunk_size, t.shape[0], p.device) for lang, t in p.texts.items()}
    rows_t2i = {lang: stream_rows(chunk_size, n_gallery[lang], p.device) for lang in p.texts}
    total = sum(
        tiled_blocks(n_gallery[lang], t.shape[0], rows_i2t[lang], p.device)
        + (tiled_blocks(t.shape[0], n_gallery[lang], rows_t2i[lang], p.device) if two_passes else 0)
        for lang, t in p.texts.items()
    )
    return rows_i2t, rows_t2i, total


def _nonfinite(p: Prepared, lang: str, s: Side, direction: str) -> NonFinite:
    """Report a non-finite product of one language and direction in the user's indices."""
    t, text_name = p.texts[lang], f"text_embeds[{lang!r}]"
    if direction == "i2t":
        return mapped(product_nonfinite("image_embeds", p.images, text_name, t), rows=s.gallery)
    return mapped(product_nonfinite(text_name, t, "image_embeds", p.images), columns=s.gallery)


def _language_counts(
    p: Prepared, lang: str, s: Side, rows: tuple[int, int], bar: Any
) -> dict[str, RankCounts]:
    """Both directions of one language from embeddings, in its gallery (``s``)."""
    t = p.texts[lang]
    i2t, t2i = one_pass_counts(s.images, t, s.owner, rows[0], bar, _nonfinite(p, lang, s, "i2t"))
    return {"i2t": expand(i2t, s.gallery, p.images.shape[0]), "t2i": t2i}


class _Stage(NamedTuple):
    """The second stage of one language: a scorer, or stored candidates and fine scores."""

    second: RerankOptions | None
    given: Mapping[str, tuple[torch.Tensor, torch.Tensor]]  # {direction: (candidates, fine)}
    protocol: Protocol
    progress: bool


def _reranked_language(
    p: Prepared, lang: str, s: Side, stage: _Stage, rows: tuple[int, int], bar: Any
) -> dict[str, RankCounts]:
    """Both directions of one language with a second stage, in its gallery (``s``).

    With a gallery the queries and candidates are gallery positions: stored image
    candidates are mapped to them, and the scorer gets image indices back.
    """
    t, second = p.texts[lang], stage.second
    given = dict(stage.given)
    if "i2t" in given:
        cand, scores = given["i2t"]
        given["i2t"] = (gallery_rows(cand, s.gallery), gallery_rows(scores, s.gallery))
    if "t2i" in given:
        name = f"candidates['t2i'][{lang!r}]"
        cand = gallery_candidates(given["t2i"][0], s.gallery, p.images.shape[0], name)
        given["t2i"] = (cand, given["t2i"][1])
    counts: dict[str, RankCounts] = {}
    stages = {}
    if second is not None:  # both directions' candidates from one product
        nonfinite = _nonfinite(p, lang, s, "i2t")
        stages = one_pass_stages(s.images, t, s.owner, second.k, rows[0], bar, nonfinite)
    else:
        for d, n in zip(("i2t", "t2i"), rows, strict=True):
            queries, gallery = (s.images, t) if d == "i2t" else (t, s.images)
            nonfinite = _nonfinite(p, lang, s, d)
            if d not in given:  # no second stage for this one
                counts[d] = product_counts(queries, gallery, d, s.owner, n, bar, nonfinite)
                continue
            positives, _ = direction_positives(d, s.owner)
            stored = given[d][0]
            stages[d] = first_stage(queries, gallery, positives, n, 0, bar, nonfinite, stored)
    if second is not None:
        scorer = through(second.scorer, s.gallery, p.device)
        scored = pair_scores(
            scorer,
            lang,
            stages["i2t"],
            stages["t2i"],
            second.batch_size,
            stage.progress,
        )
        fine = dict(zip(("i2t", "t2i"), scored, strict=True))
    else:
        fine = {d: given[d][1] for d in stages}
    for d, first in stages.items():
        positives, empty = direction_positives(d, s.owner)
        n_gallery = t.shape[0] if d == "i2t" else s.images.shape[0]
        counts[d] = stage_counts(first, fine[d], stage.protocol, positives, n_gallery, empty)
    counts["i2t"] = expand(counts["i2t"], s.gallery, p.images.shape[0])
    return counts


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
    galleries: Mapping[str, ArrayLike] | None = None,
    mrv_images: MrvImages = "two",
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
    galleries : mapping of str to array-like of int, each shape [G_l], optional
        Per-language galleries, as for :func:`evaluate`. The matrices stay over all
        ``N`` images: a language's ``t2i`` scores are read at its gallery's columns
        only (stored ``candidates["t2i"]`` are image indices in its gallery), and its
        ``i2t`` rows of images outside the gallery are no queries.
    mrv_images : {"two", "all"}, default "two"
        As for :func:`evaluate`.

    Returns
    -------
    Report

    Raises
    ------
    ValueError
        If no matrix is given, the matrices disagree on ``N`` or ``M_l``, scores are
        not finite, or as :func:`evaluate`.

    Warns
    -----
    UserWarning
        As :func:`evaluate`, where the languages' texts cover different images and no
        ``galleries`` are given.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([[0.9, 0.1, 0.3],
    ...               [0.2, 0.8, 0.7]])
    >>> report = evaluate_scores(i2t={"en": s}, t2i={"en": s.T},
    ...                          text_to_image={"en": [0, 1, 0]}, k=(1,), device="cpu")
    >>> report.recall()
    {'en': {'i2t': {1: 1.0}, 't2i': {1: 0.6666666666666666}}}

    A German text of image 1 that scores image 0 higher: among all images it misses,
    in a German gallery of image 1 alone it cannot:

    >>> de = {"de": np.array([[0.9, 0.4]])}
    >>> mixed = evaluate_scores(t2i=de, text_to_image={"de": [1]}, k=(1,), device="cpu")
    >>> own = evaluate_scores(t2i=de, text_to_image={"de": [1]}, galleries={"de": [1]},
    ...                       k=(1,), device="cpu")
    >>> mixed.recall()["de"]["t2i"], own.recall()["de"]["t2i"]
    ({1: 0.0}, {1: 1.0})
    """
    cutoffs, dev = options(k, ties, caption_reduction, device)
    mrv_images = check_mrv_images(mrv_images)
    matrices, n_images, n_texts = score_matrices(i2t, t2i, languages)
    known = dict.fromkeys([*(i2t or {}), *(t2i or {})])
    owner_of = text_owners(text_to_image, n_texts, n_images, known)
    gal = check_galleries(galleries, owner_of, n_images, known)
    if gal is None:
        warn_if_mixed(*coverage(owner_of, n_images), n_images)
    views = {
        lang: {
            d: _stored(m, d, lang, owner_of[lang], None if gal is None else gal[lang], dev)
            for d, m in by_dir.items()
        }
        for lang, by_dir in matrices.items()
    }
    # Each matrix is ranked in its own dtype; the settings list them all.
    dtypes = sorted({dtype_str(m) for by_dir in matrices.values() for m in by_dir.values()})
    every = [v for by_dir in views.values() for v in by_dir.values()]
    total = sum(n_blocks(v.n_queries, stream_rows(chunk_size, v.n_gallery, dev)) for v in every)
    progress = show_progress(
        check_progress(progress), sum(v.n_queries * v.n_gallery for v in every)
    )
    protocol = check_protocol(rerank_protocol)
    shapes = {
        lang: {d: (m.shape[0], m.shape[1]) for d, m in by_dir.items()}
        for lang, by_dir in matrices.items()
    }
    given = given_rerank(candidates, fine, shapes, dev)
    counts: dict[str, dict[str, RankCounts]] = {}
    with progress_bar(progress, total) as bar:
        for lang, by_dir in views.items():
            counts[lang] = {}
            for d, v in by_dir.items():
                rows = stream_rows(chunk_size, v.n_gallery, dev)
                stored = given.get(lang, {}).get(d)
                if stored is None:
                    counts[lang][d] = count_direction(
                        v.block, d, v.n_queries, v.owner, rows, bar, v.nonfinite
                    )
                    continue
                counts[lang][d] = _stored_stage(v, stored, protocol, rows, bar, n_images)
    run = settings(
        ties,
        caption_reduction,
        list(matrices),
        "scores",
        dev,
        ", ".join(dtypes),
        mrv_images=mrv_images,
        galleries=recorded(sizes(gal), n_images),
    )
    if given:
        run.update(rerank_settings(protocol, None))
    return build_report(counts, owner_of, n_images, cutoffs, run)


class _Stored(NamedTuple):
    """A stored matrix as the counting reads it: blocks of rows, in the language's gallery."""

    block: Block
    n_queries: int
    n_gallery: int
    owner: torch.Tensor  # [M_l] on the device; gallery positions for t2i with a gallery
    nonfinite: NonFinite
    gallery: torch.Tensor | None  # a t2i matrix's columns kept (image indices); None: all
    where: tuple[str, str]  # (direction, language)


def _stored(
    m: torch.Tensor,
    direction: str,
    lang: str,
    owner: torch.Tensor,
    gallery: torch.Tensor | None,
    device: torch.device,
) -> _Stored:
    """Read ``m`` (``i2t`` ``[N, M_l]`` or ``t2i`` ``[M_l, N]``) in one language's gallery.

    Image-to-text queries outside the gallery have no caption (no query): their rows
    are read as they are. Text-to-image rows keep the gallery's columns only.
    """
    name, where = f"{direction}[{lang!r}]", (direction, lang)
    owner = owner.to(device)
    if direction == "i2t" or gallery is None or gallery.shape[0] == m.shape[1]:
        return _Stored(
            slices(m, device), m.shape[0], m.shape[1], owner, stored_nonfinite(name), None, where
        )
    return _Stored(
        lambda a, b: m[a:b][:, gallery].to(device),
        m.shape[0],
        gallery.shape[0],
        positions(owner, gallery),
        mapped(stored_nonfinite(name), columns=gallery),
        gallery,
        where,
    )


def _stored_stage(
    v: _Stored,
    stored: tuple[torch.Tensor, torch.Tensor],
    protocol: Protocol,
    rows: int,
    bar: Any,
    n_images: int,
) -> RankCounts:
    """Count a stored matrix with stored second-stage candidates and fine scores."""
    candidates, fine = stored
    direction, lang = v.where
    name = f"candidates[{direction!r}][{lang!r}]"
    candidates = gallery_candidates(candidates, v.gallery, n_images, name)
    positives, empty = direction_positives(direction, v.owner)
    stage = stored_first_stage(
        v.block, v.n_queries, v.n_gallery, positives, rows, candidates, bar, v.nonfinite
    )
    return stage_counts(stage, fine, protocol, positives, v.n_gallery, empty)
