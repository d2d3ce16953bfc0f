"""Evaluation in one process: from embeddings (streamed) or from stored score matrices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from .._backend import ArrayLike
from .._validation import dtype_str, renamed
from ..mrv import CaptionReduction
from ..report import Report
from ..ties import DEFAULT_TIES, RankCounts, Ties
from .assemble import build_report, settings
from .inputs import options, prepare, score_matrices, text_owners
from .stream import (
    count_direction,
    n_blocks,
    product_counts,
    product_nonfinite,
    progress_bar,
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
    progress: bool = False,
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
        first caption, which for one caption per language (xFlickr&CO) is the only one.
    chunk_size : int, optional
        Queries per block; extra memory is ``O(chunk_size x gallery)``. Default: about
        2**26 scores per block on CPU (256 MB in float32), 2**28 on CUDA; each block is
        ranked in cache-sized pieces.
    device : str or torch.device, optional
        Where to compute. None or "auto": CUDA when available, else CPU.
    progress : bool, default False
        Show a progress bar over blocks (tqdm, on stderr).

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
        unknown language; or if an option is invalid.

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
    n_images = p.images.shape[0]
    rows_i2t = {lang: stream_rows(chunk_size, t.shape[0], p.device) for lang, t in p.texts.items()}
    rows_t2i = stream_rows(chunk_size, n_images, p.device)
    total = sum(
        n_blocks(n_images, rows_i2t[lang]) + n_blocks(t.shape[0], rows_t2i)
        for lang, t in p.texts.items()
    )
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
    progress: bool = False,
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
    owner_of = text_owners(text_to_image, n_texts, n_images)
    # Each matrix is ranked in its own dtype; the settings list them all.
    dtypes = sorted({dtype_str(m) for by_dir in matrices.values() for m in by_dir.values()})
    total = sum(
        n_blocks(m.shape[0], stream_rows(chunk_size, m.shape[1], dev))
        for by_dir in matrices.values()
        for m in by_dir.values()
    )
    counts: dict[str, dict[str, RankCounts]] = {}
    with progress_bar(progress, total) as bar:
        for lang, by_dir in matrices.items():
            owner = owner_of[lang].to(dev)
            counts[lang] = {
                direction: count_direction(
                    slices(m, dev),
                    direction,
                    m.shape[0],
                    owner,
                    stream_rows(chunk_size, m.shape[1], dev),
                    bar,
                    stored_nonfinite(f"{direction}[{lang!r}]"),
                )
                for direction, m in by_dir.items()
            }
    run = settings(ties, caption_reduction, list(matrices), "scores", dev, ", ".join(dtypes))
    return build_report(counts, owner_of, n_images, cutoffs, run)
