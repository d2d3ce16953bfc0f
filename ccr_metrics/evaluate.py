"""Multilingual evaluation: embeddings or saved score matrices in, a :class:`Report` out.

Scores are produced block by block (a block of queries against the whole gallery of
one language) and ranked as they come, so the full ``N x M`` matrix is never held:
extra memory is ``O(chunk x gallery)``. Embeddings are moved to the device once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple, NoReturn

import numpy as np
import torch

from . import distributed
from ._backend import ArrayLike, to_tensor
from ._counting import check_chunk_size, count_against
from ._validation import (
    InputError,
    check_choice,
    check_finite,
    check_ndim,
    check_numeric,
    check_positive_ints,
    dtype_str,
    shape_str,
)
from .mrv import CAPTION_REDUCTIONS, CaptionReduction
from .ranking import (
    DEFAULT_TIES,
    TIES,
    Empty,
    RankCounts,
    Ties,
    counts_from_positives,
    text_owner_index,
)
from .report import Report

__all__ = ["evaluate", "evaluate_scores", "evaluate_sharded", "resolve_device"]

Block = Callable[[int, int], torch.Tensor]
# Raises for a non-finite score at (row, column) with its value, in the caller's terms.
NonFinite = Callable[[int, int, float], NoReturn]
# The positive pairs of queries a:b of a block: (offset in the block, gallery column).
Positives = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]

# Scores per block when chunk_size is None. Large enough that a block's matrix product
# runs at full speed (a few rows against a large gallery re-read the whole gallery for
# every block: 6x slower measured at 10 rows than at 640 against 100,000 x 256), small
# enough to bound memory and to be counted while still in cache: 2**23 (32 MB in
# float32) on CPU, where the bare product itself was fastest (of 2**19 .. 2**26, at
# 5,000 x 25,000 x 256 on AVX-512), 2**28 on CUDA.
_CPU_STREAM_ELEMENTS = 1 << 23
_CUDA_STREAM_ELEMENTS = 1 << 28


def evaluate(
    image_embeds: ArrayLike,
    text_embeds: Mapping[str, ArrayLike],
    text_to_image: Mapping[str, ArrayLike] | None = None,
    *,
    ks: int | Iterable[int] = (1, 5, 10),
    ties: Ties = DEFAULT_TIES,
    languages: Sequence[str] | None = None,
    caption_reduce: CaptionReduction = "first",
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
    ks : int or iterable of int, default (1, 5, 10)
        Recall cut-offs.
    ties : {"expected", "average", "optimistic", "pessimistic"}, default "expected"
        Tie policy, as for :func:`~ccr_metrics.positive_ranks`; the Report keeps the
        rank counts, so recall under ``"expected"`` is the exact expected recall.
    languages : sequence of str, optional
        The languages to evaluate (and to take MRV over), in this order. Default: all.
    caption_reduce : {"first", "mean", "min", "median"}, default "first"
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
    embeddings' common dtype (float32 stays float32), so the ranks equal
    :func:`evaluate_scores` on ``image_embeds @ text_embeds.T`` and its transpose's
    counterpart ``text_embeds @ image_embeds.T``.

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
    p = _prepare(
        image_embeds, text_embeds, text_to_image, ks, ties, languages, caption_reduce, device
    )
    n_images = p.images.shape[0]
    rows_i2t = {lang: _stream_rows(chunk_size, t.shape[0], p.device) for lang, t in p.texts.items()}
    rows_t2i = _stream_rows(chunk_size, n_images, p.device)
    total = sum(
        _n_blocks(n_images, rows_i2t[lang]) + _n_blocks(t.shape[0], rows_t2i)
        for lang, t in p.texts.items()
    )
    counts: dict[str, dict[str, RankCounts]] = {}
    with _progress(progress, total) as bar:
        for lang, t in p.texts.items():
            owner = p.owners[lang].to(p.device)
            text_name = f"text_embeds[{lang!r}]"
            counts[lang] = {
                "i2t": _stream_counts(
                    _products(p.images, t, rows_i2t[lang]),
                    n_images,
                    _captions_of_images(owner),
                    rows_i2t[lang],
                    bar,
                    empty="miss",
                    nonfinite=_product_nonfinite("image_embeds", p.images, text_name, t),
                ),
                "t2i": _stream_counts(
                    _products(t, p.images, rows_t2i),
                    t.shape[0],
                    _image_of_texts(owner),
                    rows_t2i,
                    bar,
                    empty="error",
                    nonfinite=_product_nonfinite(text_name, t, "image_embeds", p.images),
                ),
            }
    return Report.from_counts(
        counts,
        text_to_image={lang: o.cpu().numpy() for lang, o in p.owners.items()},
        n_images=n_images,
        ks=p.ks,
        settings=_settings(
            ties, caption_reduce, list(p.texts), "embeddings", p.device, dtype_str(p.images)
        ),
    )


def evaluate_sharded(
    image_embeds: ArrayLike,
    text_embeds: Mapping[str, ArrayLike],
    text_to_image: Mapping[str, ArrayLike] | None = None,
    *,
    ks: int | Iterable[int] = (1, 5, 10),
    ties: Ties = DEFAULT_TIES,
    languages: Sequence[str] | None = None,
    caption_reduce: CaptionReduction = "first",
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
    ks, ties, languages, caption_reduce, chunk_size, device, progress
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
    >>> sharded = evaluate_sharded(images, texts, device="cpu")
    >>> sharded.recall() == evaluate(images, texts, device="cpu").recall()
    True
    """
    error: ValueError | None = None
    try:
        p = _prepare(
            image_embeds, text_embeds, text_to_image, ks, ties, languages, caption_reduce, device
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
        "options": (p.ks, ties, caption_reduce, chunk_size),
    }
    views = distributed.gather_objects(
        {**layout, "sizes": [p.images.shape[0], *(t.shape[0] for t in p.texts.values())]}
    )
    for r, view in enumerate(views):
        differing = [k for k in layout if view[k] != layout[k]]
        if differing:
            theirs = {k: view[k] for k in differing}
            ours = {k: layout[k] for k in differing}
            raise ValueError(f"process {r} was called with {theirs}, this process with {ours}")
    rank = distributed.get_rank()
    n_images_by_rank = [view["sizes"][0] for view in views]
    image_offsets = np.cumsum([0, *n_images_by_rank])
    n_images = int(image_offsets[-1])
    languages_ = list(p.texts)
    counts: dict[str, dict[str, RankCounts]] = {}
    owners: dict[str, np.ndarray] = {}
    with _progress(progress and rank == 0, 2 * len(languages_) * len(views)) as bar:
        for i, lang in enumerate(languages_):
            t = p.texts[lang]
            owner = p.owners[lang].to(p.device)
            n_texts_by_rank = [view["sizes"][1 + i] for view in views]
            rows = _stream_rows(chunk_size, max(n_images, sum(n_texts_by_rank)), p.device)
            i2t = _sharded_counts(
                p.images, t, _captions_of_images(owner), n_images_by_rank, rows, bar
            )
            t2i = _sharded_counts(t, p.images, _image_of_texts(owner), n_texts_by_rank, rows, bar)
            global_owner = owner + int(image_offsets[rank])
            counts[lang] = {"i2t": _gather_counts(i2t), "t2i": _gather_counts(t2i)}
            owners[lang] = _gather_rows(global_owner).cpu().numpy()
    return Report.from_counts(
        counts,
        text_to_image=owners,
        n_images=n_images,
        ks=p.ks,
        settings={
            **_settings(
                ties, caption_reduce, languages_, "embeddings", p.device, dtype_str(p.images)
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
                    missing="text_to_image",
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


class _Prepared(NamedTuple):
    """Checked embeddings on the compute device, in their common dtype."""

    images: torch.Tensor  # [N, D]
    texts: dict[str, torch.Tensor]  # selected languages, in order: [M_l, D]
    owners: dict[str, torch.Tensor]  # [M_l] on the CPU
    ks: tuple[int, ...]
    device: torch.device
    dtype: torch.dtype


def _prepare(
    image_embeds: ArrayLike,
    text_embeds: Mapping[str, ArrayLike],
    text_to_image: Mapping[str, ArrayLike] | None,
    ks: int | Iterable[int],
    ties: str,
    languages: Sequence[str] | None,
    caption_reduce: str,
    device: str | torch.device | None,
) -> _Prepared:
    """Validate the arguments of :func:`evaluate` and move the embeddings once."""
    cutoffs = check_positive_ints("ks", ks)
    check_choice("ties", ties, TIES)
    check_choice("caption_reduce", caption_reduce, CAPTION_REDUCTIONS)
    dev = resolve_device(device)
    images = _embeddings(image_embeds, "image_embeds")
    if not isinstance(text_embeds, Mapping) or not text_embeds:
        raise ValueError("text_embeds must map each language to its text embeddings [M, D]")
    selected = _select_languages(languages, list(text_embeds))
    texts = {lang: _embeddings(text_embeds[lang], f"text_embeds[{lang!r}]") for lang in selected}
    dim = images.shape[1]
    for lang, t in texts.items():
        if t.shape[1] != dim:
            raise ValueError(
                f"text_embeds[{lang!r}] has dimension {t.shape[1]} ({shape_str(t)}) but "
                f"image_embeds has {dim} ({shape_str(images)})"
            )
    owners = _owners(text_to_image, {lang: t.shape[0] for lang, t in texts.items()}, len(images))
    dtype = images.dtype
    for t in texts.values():
        dtype = torch.promote_types(dtype, t.dtype)
    return _Prepared(
        images=images.detach().to(device=dev, dtype=dtype),
        texts={lang: t.detach().to(device=dev, dtype=dtype) for lang, t in texts.items()},
        owners=owners,
        ks=cutoffs,
        device=dev,
        dtype=dtype,
    )


def evaluate_scores(
    i2t: Mapping[str, ArrayLike] | None = None,
    t2i: Mapping[str, ArrayLike] | None = None,
    text_to_image: Mapping[str, ArrayLike] | None = None,
    *,
    ks: int | Iterable[int] = (1, 5, 10),
    ties: Ties = DEFAULT_TIES,
    languages: Sequence[str] | None = None,
    caption_reduce: CaptionReduction = "first",
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
    text_to_image, ks, ties, languages, caption_reduce, chunk_size, device, progress
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
    ...                          text_to_image={"en": [0, 1, 0]}, ks=(1,), device="cpu")
    >>> report.recall()
    {'en': {'i2t': {1: 1.0}, 't2i': {1: 0.6666666666666666}}}
    """
    cutoffs = check_positive_ints("ks", ks)
    check_choice("ties", ties, TIES)
    check_choice("caption_reduce", caption_reduce, CAPTION_REDUCTIONS)
    dev = resolve_device(device)
    given = {"i2t": dict(i2t or {}), "t2i": dict(t2i or {})}
    available = list(dict.fromkeys([*given["i2t"], *given["t2i"]]))
    if not available:
        raise ValueError("evaluate_scores needs i2t or t2i score matrices for some language")
    selected = _select_languages(languages, available)
    matrices: dict[str, dict[str, torch.Tensor]] = {lang: {} for lang in selected}
    for direction, by_lang in given.items():
        for lang in selected:
            if lang in by_lang:
                m, _ = to_tensor(by_lang[lang], f"{direction}[{lang!r}]")
                check_ndim(m, f"{direction}[{lang!r}]", 2, _LAYOUT[direction])
                check_numeric(m, f"{direction}[{lang!r}]")
                matrices[lang][direction] = m
    n_images, n_texts = _score_shapes(matrices)
    owners = _owners(text_to_image, n_texts, n_images)
    # Each matrix is ranked in its own dtype; the settings list them all.
    dtypes = sorted({dtype_str(m) for by_dir in matrices.values() for m in by_dir.values()})

    total = 0
    for by_dir in matrices.values():
        for m in by_dir.values():
            total += _n_blocks(m.shape[0], _stream_rows(chunk_size, m.shape[1], dev))
    counts: dict[str, dict[str, RankCounts]] = {}
    with _progress(progress, total) as bar:
        for lang in selected:
            owner = owners[lang].to(dev)
            counts[lang] = {}
            for direction, m in matrices[lang].items():
                rows = _stream_rows(chunk_size, m.shape[1], dev)
                block = _slices(m, dev)
                nonfinite = _stored_nonfinite(f"{direction}[{lang!r}]")
                if direction == "i2t":
                    counts[lang]["i2t"] = _stream_counts(
                        block,
                        n_images,
                        _captions_of_images(owner),
                        rows,
                        bar,
                        empty="miss",
                        nonfinite=nonfinite,
                    )
                else:
                    counts[lang]["t2i"] = _stream_counts(
                        block,
                        m.shape[0],
                        _image_of_texts(owner),
                        rows,
                        bar,
                        empty="error",
                        nonfinite=nonfinite,
                    )
    return Report.from_counts(
        counts,
        text_to_image={lang: owners[lang].cpu().numpy() for lang in selected},
        n_images=n_images,
        ks=cutoffs,
        settings=_settings(ties, caption_reduce, selected, "scores", dev, ", ".join(dtypes)),
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return the device to compute on: CUDA when available for None or "auto".

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or names CUDA where none is available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available")
    return dev


_LAYOUT = {"i2t": "[N, M] (images x texts)", "t2i": "[M, N] (texts x images)"}


def _captions_of_images(owner: torch.Tensor) -> Positives:
    """Positive pairs of image queries ``a:b``: (offset in the block, text column)."""
    order = torch.argsort(owner, stable=True)
    sorted_owner = owner[order]

    def pairs(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        bounds = torch.tensor([a, b], device=owner.device)
        lo, hi = torch.searchsorted(sorted_owner, bounds).tolist()
        return sorted_owner[lo:hi] - a, order[lo:hi]

    return pairs


def _image_of_texts(owner: torch.Tensor) -> Positives:
    """Positive pairs of text queries ``a:b``: (offset in the block, image column)."""
    return lambda a, b: (torch.arange(b - a, device=owner.device), owner[a:b])


def _stream_counts(
    block: Block,
    n_queries: int,
    positives: Positives,
    rows: int,
    bar: Any,
    *,
    empty: Empty,
    nonfinite: NonFinite,
) -> RankCounts:
    """Count ``n_queries`` queries one block of scores at a time, as numpy int64 counts.

    With ``empty="miss"``, a query without a positive (an image with no text in the
    language) gets zero counts: it is no query there. A NaN or infinity among the
    scores is handed to ``nonfinite`` (row, column, value), which raises in the
    caller's terms.
    """
    out = torch.empty((3, n_queries), dtype=torch.long)
    for a in range(0, n_queries, rows):
        b = min(a + rows, n_queries)
        s = block(a, b)
        try:
            counts = counts_from_positives(
                s, positives(a, b), chunk_size=None, empty=empty, missing="text_to_image"
            )
        except InputError as exc:
            if exc.argument != "scores" or exc.position is None or exc.value is None:
                raise
            row, column = exc.position
            nonfinite(a + row, column, exc.value)
        out[:, a:b] = torch.stack(counts).cpu()
        bar.update()
    above, tied_negatives, tied_positives = out.numpy()
    return RankCounts(above, tied_negatives, tied_positives)


def _stored_nonfinite(name: str) -> NonFinite:
    """Report a non-finite entry of the stored score matrix ``name``."""

    def report(row: int, column: int, value: float) -> NoReturn:
        raise InputError(
            f"{name} contains {value} at index [{row}, {column}]; it must be finite",
            argument=name,
            position=(row, column),
            value=value,
        )

    return report


def _product_nonfinite(
    queries_name: str, queries: torch.Tensor, gallery_name: str, gallery: torch.Tensor
) -> NonFinite:
    """Report a non-finite product: a non-finite embedding, or an overflow of its dtype.

    Embeddings are not checked up front: a NaN or infinity in either shows in the
    products, where the counting catches it for free; only then are they searched.
    """

    def report(row: int, column: int, value: float) -> NoReturn:
        check_finite(queries, queries_name)
        check_finite(gallery, gallery_name)
        raise InputError(
            f"the dot product of {queries_name} row {row} and {gallery_name} row {column} is "
            f"{value} in {dtype_str(queries)}, although both are finite: their products "
            "overflow that dtype; pass the embeddings as float32",
            argument=queries_name,
            position=(row,),
            value=value,
        )

    return report


def _embeddings(x: ArrayLike, name: str) -> torch.Tensor:
    t, _ = to_tensor(x, name)
    check_ndim(t, name, 2, "[count, D]")
    check_numeric(t, name)
    if not t.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {dtype_str(t)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty ({shape_str(t)})")
    return t


def _select_languages(languages: Sequence[str] | None, available: list[str]) -> list[str]:
    if languages is None:
        return available
    if isinstance(languages, str):
        languages = [languages]
    unknown = [lang for lang in languages if lang not in available]
    if unknown:
        raise ValueError(f"unknown language(s) {unknown}; available: {available}")
    if not languages:
        raise ValueError("languages must name at least one language")
    return list(dict.fromkeys(languages))


def _owners(
    text_to_image: Mapping[str, ArrayLike] | None, n_texts: Mapping[str, int], n_images: int
) -> dict[str, torch.Tensor]:
    mapping = dict(text_to_image or {})
    owners = {}
    for lang, m in n_texts.items():
        try:
            owners[lang] = text_owner_index(
                mapping.get(lang), n_texts=m, n_images=n_images, device=torch.device("cpu")
            )
        except ValueError as exc:
            raise ValueError(f"language {lang!r}: {exc}") from None
    return owners


def _score_shapes(
    matrices: Mapping[str, Mapping[str, torch.Tensor]],
) -> tuple[int, dict[str, int]]:
    """``N`` and each language's ``M_l`` from the matrices, checked to agree."""
    n_images: int | None = None
    n_texts: dict[str, int] = {}
    for lang, by_dir in matrices.items():
        for direction, m in by_dir.items():
            n, k = (m.shape[0], m.shape[1]) if direction == "i2t" else (m.shape[1], m.shape[0])
            name = f"{direction}[{lang!r}] {shape_str(m)}"
            if n_images is None:
                n_images = n
            elif n != n_images:
                raise ValueError(f"{name} has {n} images but other matrices have {n_images}")
            if n_texts.setdefault(lang, k) != k:
                raise ValueError(
                    f"{name} has {k} texts but the other direction has {n_texts[lang]}"
                )
    if n_images is None:
        raise ValueError("evaluate_scores needs i2t or t2i score matrices for some language")
    return n_images, n_texts


def _products(queries: torch.Tensor, gallery: torch.Tensor, rows: int) -> Block:
    """Blocks of ``queries @ gallery.T``, computed when asked for.

    Every block is written into one buffer: each block is ranked before the next is
    asked for, and a fresh multi-MB allocation per block costs ~10% in page faults.
    """
    buffer = queries.new_empty((min(rows, queries.shape[0]), gallery.shape[0]))
    return lambda a, b: torch.mm(queries[a:b], gallery.T, out=buffer[: b - a])


def _slices(scores: torch.Tensor, device: torch.device) -> Block:
    """Blocks of rows of a stored matrix, moved to ``device`` one at a time."""
    return lambda a, b: scores[a:b].to(device)


def _stream_rows(chunk_size: int | None, n_gallery: int, device: torch.device) -> int:
    """Return the queries per block: ``chunk_size`` checked, or the streaming default."""
    rows = check_chunk_size(chunk_size)
    if rows is not None:
        return rows
    budget = _CUDA_STREAM_ELEMENTS if device.type == "cuda" else _CPU_STREAM_ELEMENTS
    return max(1, budget // max(n_gallery, 1))


def _n_blocks(n: int, rows: int) -> int:
    return -(-n // rows)


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return nullcontext(_NoBar())
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="block", desc="ranking")


class _NoBar:
    def update(self, n: int = 1) -> None:
        """Do nothing: progress is off."""


def _settings(
    ties: str,
    caption_reduce: str,
    languages: list[str],
    source: str,
    device: torch.device,
    dtype: str,
) -> dict[str, Any]:
    return {
        "ties": ties,
        "caption_reduce": caption_reduce,
        "languages": languages,
        "source": source,
        "device": str(device),
        "dtype": dtype,
    }
