"""Two-stage (re-ranking) evaluation: candidates from streamed products, then a scorer.

The first stage streams the image x text products in the fixed tiles of :mod:`.tiles`
(never the full matrix) and keeps, per query, its top ``k`` candidates
(:func:`~ccr_metrics.top_candidates`' tie rule: the lower gallery index wins at the
boundary) and the counts of the non-candidate segment (:mod:`ccr_metrics._cascade`).
Then the user's scorer re-scores each (image, text) pair that either direction needs,
once, in batches; the candidate segment is counted from those scores, and the two
segments make the cascade rank counts. The filled protocol of the released code ranks
the matrix of fine scores at the candidates and -100 elsewhere instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal, NamedTuple

import torch

from .._progress import progress_bar
from ..core._backend import ArrayLike, to_tensor
from ..core._cascade import (
    CandidatePositives,
    CountRows,
    candidate_slots,
    checked_candidates,
    checked_fine,
    coarse_part,
    combine,
    fine_part,
)
from ..core._counting import count_against
from ..core._pairs import shared_pairs
from ..core._positives import Counts, counts_from_positives
from ..core._selection import select_top
from ..core._validation import InputError, check_choice, check_positive_int, dtype_str, shape_str
from ..core.ties import Empty, RankCounts
from .stream import Block, NonFinite, Positives, captions_of_images, image_of_texts
from .tiles import GalleryTiles, ScoreBlock, padded_queries, score_block, tiling_for

#: ``score_pairs(language, image_index, text_index) -> scores``: the second stage.
Scorer = Callable[[str, torch.Tensor, torch.Tensor], Any]
Protocol = Literal["cascade", "filled"]
PROTOCOLS: tuple[Protocol, ...] = ("cascade", "filled")
#: The score the released evaluation gives every item outside the candidates.
RELEASED_FILL = -100.0


class RerankOptions(NamedTuple):
    """The checked ``rerank*`` arguments of a scorer."""

    scorer: Scorer
    k: int
    batch_size: int


# Stored second stages: {language: {direction: (candidates [Q, k], fine [Q, k])}}.
Given = dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]


def rerank_options(rerank: Scorer | None, k: object, batch_size: object) -> RerankOptions | None:
    """Check the ``rerank*`` arguments of the harness; None when there is no scorer."""
    if rerank is None:
        return None
    if not callable(rerank):
        raise InputError(
            "rerank must be a callable score_pairs(language, image_index, text_index), "
            f"got {type(rerank).__name__}",
            argument="rerank",
        )
    return RerankOptions(
        rerank,
        check_positive_int("rerank_k", k),
        check_positive_int("rerank_batch_size", batch_size),
    )


def check_protocol(protocol: object) -> Protocol:
    """Return ``rerank_protocol`` if it is one of :data:`PROTOCOLS`, else raise naming it."""
    return check_choice("rerank_protocol", protocol, PROTOCOLS)  # type: ignore[arg-type]


def given_rerank(
    candidates: Mapping[str, Mapping[str, ArrayLike]] | None,
    fine: Mapping[str, Mapping[str, ArrayLike]] | None,
    shapes: Mapping[str, Mapping[str, tuple[int, int]]],
    device: torch.device,
) -> Given:
    """Check stored second stages against the ``(Q, G)`` of each language and direction."""
    if candidates is None and fine is None:
        return {}
    if candidates is None or fine is None:
        missing = "candidates" if candidates is None else "fine"
        raise InputError(f"candidates and fine go together: {missing} is missing", argument=missing)
    for name, given, other in (("candidates", candidates, fine), ("fine", fine, candidates)):
        for direction, by_lang in given.items():
            if direction not in ("i2t", "t2i"):
                raise InputError(
                    f"{name} is keyed by direction, 'i2t' or 't2i', got {direction!r}",
                    argument=name,
                )
            for lang in by_lang:
                where = f"[{direction!r}][{lang!r}]"
                if direction not in shapes.get(lang, {}):
                    raise InputError(
                        f"{name}{where}: there are no {direction} scores in language {lang!r} "
                        f"to re-rank (languages: {list(shapes)})",
                        argument=name,
                    )
                if lang not in other.get(direction, {}):
                    missing = "fine" if name == "candidates" else "candidates"
                    raise InputError(
                        f"{name}{where} is given but {missing}{where} is not", argument=missing
                    )
    out: Given = {}
    for direction, by_lang in candidates.items():
        for lang, c in by_lang.items():
            n_queries, n_gallery = shapes[lang][direction]
            where = f"[{direction!r}][{lang!r}]"
            cand = checked_candidates(c, n_queries, n_gallery, device, name=f"candidates{where}")
            f = checked_fine(
                fine[direction][lang],
                cand.shape,
                device,
                name=f"fine{where}",
                candidates_name=f"candidates{where}",
            )
            out.setdefault(lang, {})[direction] = (cand, f)
    return out


def rerank_settings(protocol: Protocol, k: int | None) -> dict[str, Any]:
    """Describe the second stage for the Report's ``settings`` (``k`` None: stored)."""
    name = "cascade" if protocol == "cascade" else f"filled ({RELEASED_FILL:g})"
    return {"rerank": name, "rerank_k": "stored" if k is None else k}


class FirstStage(NamedTuple):
    """One direction of one language after the first stage; ``Q`` queries."""

    candidates: torch.Tensor  # [Q, k] gallery indices, in index order
    coarse: tuple[Counts, torch.Tensor]  # the non-candidate segment, and which rows use it
    positives: CandidatePositives  # every positive pair, with its slot among the candidates
    is_query: torch.Tensor  # [Q] bool: rows with a positive (an image without text: none)


def first_stage(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    positives: Positives,
    rows: int,
    k: int,
    bar: Any,
    nonfinite: NonFinite,
    candidates: torch.Tensor | None = None,
) -> FirstStage:
    """Stream ``queries @ gallery.T`` in tiles; keep candidates and non-candidate counts.

    Each query's top ``k`` (cut to the gallery size) become its candidates, unless
    ``candidates`` ``[Q, k]`` are given. Memory: one block of scores plus ``O(Q k)``.
    """
    n_queries, n_gallery = queries.shape[0], gallery.shape[0]
    k = min(k, n_gallery)
    tiling = tiling_for(n_queries, n_gallery, queries.device)
    tiles = GalleryTiles(gallery, 0, tiling.gallery)
    rows = -(-rows // tiling.queries) * tiling.queries
    lo, hi, first = tiles.layout()
    k = k if candidates is None else candidates.shape[1]
    stage = Collector(n_queries, n_gallery, k, positives, nonfinite)
    buffer = None
    for a in range(0, n_queries, rows):
        b = min(a + rows, n_queries)
        height = -(-(b - a) // tiling.queries) * tiling.queries
        block = score_block(padded_queries(queries, 0, a, height), tiles, tiling, buffer)
        buffer = block.scores
        if candidates is None:
            chosen = select_top(block.scores.contiguous(), lo, hi, first, k)[1][: b - a]
        else:
            chosen = candidates[a:b]
        stage.add(a, b, chosen, None, _counter(block, b - a), block.at)
        bar.update()
    return stage.result(queries.device)


def stored_first_stage(
    block: Block,
    n_queries: int,
    n_gallery: int,
    positives: Positives,
    rows: int,
    candidates: torch.Tensor,
    bar: Any,
    nonfinite: NonFinite,
) -> FirstStage:
    """Read a stored score matrix in blocks: the first stage, with given candidates."""
    stage = Collector(n_queries, n_gallery, candidates.shape[1], positives, nonfinite)
    for a in range(0, n_queries, rows):
        b = min(a + rows, n_queries)
        s = block(a, b)
        stage.add(a, b, candidates[a:b], None, partial(_count_stored, s), partial(_at, s))
        bar.update()
    return stage.result(candidates.device)


def _count_stored(s: torch.Tensor, best: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return count_against(s, best, chunk_size=None)


def _at(s: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    return s[rows, columns]


class Collector:
    """The first stage's results, block by block."""

    def __init__(
        self, n_queries: int, n_gallery: int, k: int, positives: Positives, nonfinite: NonFinite
    ) -> None:
        self.n_queries, self.n_gallery, self.k = n_queries, n_gallery, k
        self.positives, self.nonfinite = positives, nonfinite
        self.parts: list[tuple[torch.Tensor, tuple[Counts, torch.Tensor], CandidatePositives]] = []

    def add(
        self,
        a: int,
        b: int,
        candidates: torch.Tensor,
        at_candidates: torch.Tensor | None,
        count_rows: CountRows,
        at_pairs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> None:
        """Count queries ``a:b`` of a block whose candidates are ``candidates``.

        ``at_candidates`` are their coarse scores, or None to look them up with
        ``at_pairs``.
        """
        query, column = self.positives(a, b)
        try:
            slots = candidate_slots(candidates, self.n_gallery, query, column)
            if at_candidates is None:
                rows = torch.arange(b - a, device=candidates.device)
                k = candidates.shape[1]
                at_candidates = at_pairs(rows.repeat_interleave(k), candidates.reshape(-1))
                at_candidates = at_candidates.reshape(b - a, k)
            coarse = coarse_part(count_rows, at_pairs, at_candidates, slots)
        except InputError as exc:
            if exc.argument != "scores" or exc.position is None or exc.value is None:
                raise
            row, item = exc.position
            self.nonfinite(a + row, item, exc.value)
        self.parts.append((candidates, coarse, slots._replace(query=slots.query + a)))

    def result(self, device: torch.device) -> FirstStage:
        """Join the blocks into the first stage of all ``Q`` queries (none on a shard)."""
        if not self.parts:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return FirstStage(
                torch.zeros((0, self.k), dtype=torch.long, device=device),
                ((empty, empty, empty), empty.bool()),
                CandidatePositives(empty, empty, empty),
                empty.bool(),
            )
        parts = self.parts
        above, tied_negatives, tied_positives = (
            torch.cat([p[1][0][i] for p in parts]) for i in range(3)
        )
        has_other = torch.cat([p[1][1] for p in parts])
        slots = CandidatePositives(
            *(torch.cat([getattr(p[2], f) for p in parts]) for f in CandidatePositives._fields)
        )
        is_query = torch.zeros(self.n_queries, dtype=torch.bool, device=device)
        is_query[slots.query] = True
        return FirstStage(
            torch.cat([p[0] for p in parts]),
            ((above, tied_negatives, tied_positives), has_other),
            slots,
            is_query,
        )


def _counter(
    block: ScoreBlock, n_rows: int
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Count a block's first ``n_rows`` rows against ``best`` ``[n_rows]``."""

    def count(best: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padded = best.new_zeros(block.scores.shape[1])
        padded[:n_rows] = best
        above, tied = block.count(padded)
        return above[:n_rows], tied[:n_rows]

    return count


def pair_scores(
    scorer: Scorer,
    language: str,
    i2t: FirstStage,
    t2i: FirstStage,
    batch_size: int,
    progress: bool,
    image_offset: int = 0,
    text_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score every (image, text) pair a query needs, each once; return ``fine`` per direction.

    Image-to-text rows pair an image (a query with a caption) with its candidate texts;
    text-to-image rows pair a text with its candidate images. A pair both need is scored
    once. Returns float64 ``fine`` ``[N, k]`` and ``[M, k']`` (0 for rows no query has).
    The queries are images ``image_offset ..`` and texts ``text_offset ..`` (a shard's,
    under :func:`~ccr_metrics.evaluate_sharded`); candidates are global.
    """
    device = i2t.candidates.device
    images = image_offset + torch.arange(i2t.candidates.shape[0], device=device)
    texts = text_offset + torch.arange(t2i.candidates.shape[0], device=device)
    # The image-to-text pairs row by row, then the text-to-image pairs no image asked
    # for; each text-to-image slot reads its pair's score.
    query_texts = i2t.candidates[i2t.is_query]
    query_images = images[i2t.is_query]
    at = shared_pairs(query_images, query_texts, t2i.candidates, text_offset).reshape(-1)
    own = at < 0
    n_i2t = query_texts.numel()
    at = torch.where(own, n_i2t + torch.cumsum(own, 0) - 1, at)
    pair_image = torch.cat(
        [query_images.repeat_interleave(query_texts.shape[1]), t2i.candidates.reshape(-1)[own]]
    )
    pair_text = torch.cat(
        [query_texts.reshape(-1), texts.repeat_interleave(t2i.candidates.shape[1])[own]]
    )
    values = torch.empty(pair_image.shape[0], dtype=torch.float64, device=device)
    batches = -(-pair_image.shape[0] // batch_size)
    with progress_bar(progress, batches, unit="batch", desc=f"re-scoring {language}") as bar:
        for a in range(0, pair_image.shape[0], batch_size):
            image, text = pair_image[a : a + batch_size], pair_text[a : a + batch_size]
            values[a : a + batch_size] = _checked_scores(
                scorer(language, image, text), image, text, language
            )
            bar.update()
    fine_i2t = torch.zeros(i2t.candidates.shape, dtype=torch.float64, device=device)
    fine_i2t[i2t.is_query] = values[:n_i2t].reshape(-1, i2t.candidates.shape[1])
    fine_t2i = values[at].reshape(t2i.candidates.shape)
    return fine_i2t, fine_t2i


def _checked_scores(
    result: Any, image: torch.Tensor, text: torch.Tensor, language: str
) -> torch.Tensor:
    """Return the scorer's answer as float64 ``[n]``; refuse another shape or a non-finite."""
    n = image.shape[0]
    try:
        scores, _ = to_tensor(result, "rerank")
    except InputError as exc:
        raise InputError(
            f"rerank returned something that is not scores for language {language!r}: {exc}",
            argument="rerank",
        ) from None
    if scores.is_complex() or scores.dtype == torch.bool:
        raise InputError(
            f"rerank must return real scores, got dtype {dtype_str(scores)} for language "
            f"{language!r}",
            argument="rerank",
        )
    if tuple(scores.shape) != (n,):
        raise InputError(
            f"rerank must return one score per pair, shape [{n}], got {shape_str(scores)} "
            f"for language {language!r}",
            argument="rerank",
        )
    scores = scores.detach().to(device=image.device, dtype=torch.float64)
    bad = ~torch.isfinite(scores)
    if bool(bad.any()):
        at = int(bad.nonzero()[0, 0])
        raise InputError(
            f"rerank returned {float(scores[at])} for language {language!r}, image "
            f"{int(image[at])}, text {int(text[at])}; scores must be finite",
            argument="rerank",
        )
    return scores


def stage_counts(
    stage: FirstStage,
    fine: torch.Tensor,
    protocol: Protocol,
    positives: Positives,
    n_gallery: int,
    empty: Empty,
) -> RankCounts:
    """Count one direction: the cascade, or the released filled matrix."""
    if protocol == "cascade":
        counts = combine(
            stage.coarse,
            fine_part(fine, stage.positives),
            empty=empty,
            positives_name="text_to_image",
            n_gallery=n_gallery,
        )
    else:
        counts = _filled_counts(stage.candidates, fine, positives, n_gallery, empty)
    above, tied_negatives, tied_positives = (c.cpu().numpy() for c in counts)
    return RankCounts(above, tied_negatives, tied_positives)


def _filled_counts(
    candidates: torch.Tensor,
    fine: torch.Tensor,
    positives: Positives,
    n_gallery: int,
    empty: Empty,
) -> Counts:
    """Count the matrix holding ``fine`` at the candidates and -100 elsewhere."""
    n_queries = candidates.shape[0]
    rows = max(1, (1 << 22) // n_gallery)
    nothing = torch.zeros(0, dtype=torch.long, device=candidates.device)
    parts: list[Counts] = [(nothing, nothing, nothing)]  # a shard may hold no query
    for a in range(0, n_queries, rows):
        b = min(a + rows, n_queries)
        filled = fine.new_full((b - a, n_gallery), RELEASED_FILL)
        filled.scatter_(1, candidates[a:b], fine[a:b])
        parts.append(
            counts_from_positives(
                filled,
                positives(a, b),
                chunk_size=None,
                empty=empty,
                positives_name="text_to_image",
            )
        )
    above, tied_negatives, tied_positives = (torch.cat([p[i] for p in parts]) for i in range(3))
    return above, tied_negatives, tied_positives


def direction_positives(direction: str, owner: torch.Tensor) -> tuple[Positives, Empty]:
    """Return the positives of a direction's queries and what a query without one gets."""
    if direction == "i2t":
        return captions_of_images(owner), "miss"
    return image_of_texts(owner), "error"
