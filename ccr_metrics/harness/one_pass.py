"""Both directions of one language from one product: image-to-text rows, text-to-image columns.

Every score of a language is made once, on the image x text tile grid of :mod:`.tiles`,
and counted twice in the same read: for its row (an image query) and for its column (a
text query). Counting needs each query's threshold, its best positive score, before its
scores are read; the exact float of a threshold is only known from the tile that holds
it. So the pass runs on an *interval* per query, computed first from the embeddings
(:func:`pair_intervals`: the dot product in float64, widened by a bound on any float
rounding of it in the embeddings' dtype), and the exact thresholds are read from the
tiles on the way:

- a score above its query's interval is above the threshold, one below it is below;
- the scores inside an interval are the positives (known) and, rarely, near-ties: the
  rows that hold any score inside an interval other than their positives' are read
  again while their block is at hand, and those scores kept ("records");
- after the pass every exact threshold is known: the records are compared with it,
  and each threshold is checked to lie in its interval.

Where a threshold lies outside its interval (a BLAS that rounds more loosely than the
bound, TF32) or the records outgrow their budget (masses of exact ties), the pass runs
again with the exact thresholds as intervals, which counts ties directly. Either way the
counts are those of the tile scores, so every rank is the same on every plan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from ..core._two_way import TwoWayCounter, near_ties
from ..core._validation import InputError
from ..core.ties import RankCounts
from .stream import NonFinite, captions_of_images
from .tiles import GalleryTiles, ScoreBlock, padded_queries, score_block, tiling_for

# Kept scores per query (on average) before the pass gives up keeping them and runs
# again with exact thresholds: near-ties are a handful per query in real rankings.
_RECORDS_PER_QUERY = 32


class Intervals(NamedTuple):
    """Per query, bounds ``lo <= threshold <= hi``, in the scores' dtype."""

    lo: torch.Tensor
    hi: torch.Tensor


def pair_intervals(images: torch.Tensor, texts: torch.Tensor, owner: torch.Tensor) -> Intervals:
    """Bounds on the score of every text with its own image, whatever the rounding.

    ``images`` ``[N, D]``, ``texts`` ``[M, D]``, ``owner`` ``[M]``. Any evaluation of a
    dot product in a dtype of unit roundoff ``u`` (any order, with or without fused
    multiply-adds) is within ``gamma = (D + 2) u / (1 - (D + 2) u)`` times
    ``sum |a_k b_k|`` of the exact value. The estimate here is one such evaluation
    (in float32 for float32 and narrower dtypes, float64 for float64), so the bounds
    are the estimate widened by both gammas, plus a slack for underflow and for the
    rounding of the bounds themselves, then rounded outwards into the dtype. Returns
    ``[M]`` bounds.
    """
    dtype, dim = images.dtype, images.shape[1]
    work = torch.float64 if dtype == torch.float64 else torch.float32
    lo = torch.empty(texts.shape[0], dtype=dtype, device=texts.device)
    hi = torch.empty_like(lo)
    width_per_magnitude = _gamma(dtype, dim) + _gamma(work, dim)
    # The magnitude's own rounding, and that of the two ends, in relative terms.
    width_per_magnitude = width_per_magnitude * (1 + 4 * _gamma(work, dim)) + 4 * _unit(work)
    floor = (dim + 2) * torch.finfo(dtype).tiny
    step = max(1, (1 << 22) // max(dim, 1))  # temporaries of about 16 MB
    for a in range(0, texts.shape[0], step):
        terms = images[owner[a : a + step]].to(work) * texts[a : a + step].to(work)
        approx = terms.sum(1)
        width = terms.abs_().sum(1) * width_per_magnitude + floor
        width += approx.abs() * (4 * _unit(work))
        low, high = (approx - width).to(dtype), (approx + width).to(dtype)
        inf = torch.full_like(low, torch.inf)
        lo[a : a + step] = torch.nextafter(low, -inf)
        hi[a : a + step] = torch.nextafter(high, inf)
    return Intervals(lo, hi)


def _unit(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps) / 2


def _gamma(dtype: torch.dtype, dim: int) -> float:
    nu = (dim + 2) * _unit(dtype)
    return nu / (1 - nu) if nu < 1 else float("inf")


def row_intervals(pairs: Intervals, owner: torch.Tensor, n_images: int) -> Intervals:
    """Bounds on every image's best caption score; ``+inf`` for an image without one."""
    lo = pairs.lo.new_full((n_images,), torch.inf)
    hi = torch.full_like(lo, torch.inf)
    lo.scatter_reduce_(0, owner, pairs.lo, reduce="amax", include_self=False)
    hi.scatter_reduce_(0, owner, pairs.hi, reduce="amax", include_self=False)
    return Intervals(lo, hi)


class Records:
    """Scores kept from inside an interval: (query, score) per direction, within a budget.

    Row queries are global image indices, column queries local text indices.
    """

    def __init__(self, n_queries: int) -> None:
        self.rows: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.columns: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.budget = _RECORDS_PER_QUERY * n_queries + 4096
        self.full = False

    def add(self, kind: str, query: torch.Tensor, score: torch.Tensor) -> None:
        """Keep (query, score) pairs of ``kind`` "rows" or "columns", unless over budget."""
        self.budget -= query.numel()
        if self.budget < 0:
            self.full = True
            self.rows, self.columns = [], []
        if not self.full:
            (self.rows if kind == "rows" else self.columns).append((query, score))

    def resolve(self, kind: str, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per query of ``thresholds``: kept scores above its exact threshold, and equal to it."""
        above = torch.zeros(thresholds.shape[0], dtype=torch.long, device=thresholds.device)
        tied = torch.zeros_like(above)
        for query, score in self.rows if kind == "rows" else self.columns:
            b = thresholds[query]
            above.index_add_(0, query, (score > b).long())
            tied.index_add_(0, query, (score == b).long())
        return above, tied


class Pass:
    """One pass over a language's tiles: row counts, column counts, positives, records.

    ``columns`` are the intervals of this process's texts ``[M_r]`` and ``owner`` their
    images as global indices; ``n_images`` the images of every process. With
    ``records``, the rows holding near-ties are read again into it.
    """

    def __init__(
        self, columns: Intervals, owner: torch.Tensor, n_images: int, records: Records | None
    ) -> None:
        self.columns, self.owner, self.records = columns, owner, records
        self.counter = TwoWayCounter(columns.lo, columns.hi)
        self.row_counts = torch.zeros((3, n_images), dtype=torch.long, device=owner.device)
        self.values = columns.lo.new_zeros(owner.shape[0])  # each text's score with its image

    def block(
        self,
        block: ScoreBlock,
        start: int,
        span: tuple[int, int],
        rows: Intervals,
        positives: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        """Count a block of image rows from global row ``start``; rows ``span`` are real.

        ``rows`` are the block rows' intervals ``[R]``; ``positives`` the (block row,
        local text) pairs in the block (None: none). Raises the counter's error on a
        non-finite score, its position as (global image, local text).
        """
        lo, hi = span
        counts = torch.zeros((3, block.scores.shape[1]), dtype=torch.int32, device=rows.lo.device)
        tiles = block.gallery
        for t in range(tiles.tiles.shape[0]):
            c0, c1 = tiles.local_range(t)
            columns = (c0, c1, t * tiles.width - tiles.lead)
            try:
                self.counter.count(
                    block.scores[t], (lo - start, hi - start), columns, rows.lo, rows.hi, counts
                )
            except InputError as exc:
                if exc.argument != "scores" or exc.position is None:
                    raise
                row, text = exc.position
                raise InputError(
                    str(exc), argument="scores", position=(start + row, text), value=exc.value
                ) from None
        known = None
        if positives is not None:
            query, column = positives
            values = block.at(query, column)
            self.values[column] = values
            known = (query, column, values)
        if self.records is not None:
            self._read_again(self.records, block, start, rows, counts, known)
        self.row_counts[:, lo:hi] += counts[:, lo - start : hi - start]

    def _read_again(
        self,
        records: Records,
        block: ScoreBlock,
        start: int,
        rows: Intervals,
        counts: torch.Tensor,
        known: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    ) -> None:
        """Keep the near-ties of the rows whose interval counts the positives do not explain.

        ``known`` are the block's positive pairs: (block row, local text, score).
        """
        expected = torch.zeros(counts.shape[1], dtype=torch.long, device=counts.device)
        if known is not None:
            query, column, values = known
            in_row = (values >= rows.lo[query]) & (values <= rows.hi[query])
            in_column = (values >= self.columns.lo[column]) & (values <= self.columns.hi[column])
            expected.index_add_(0, query, in_row.long() + in_column.long())
        inside = counts[1] - counts[0] + counts[2]
        flagged = (inside > expected).nonzero()[:, 0]
        if flagged.numel() == 0:
            return
        tiles = block.gallery
        image = start + flagged
        found = near_ties(
            block.scores,
            flagged,
            (tiles.lead, tiles.n_local),
            (image, rows.lo[flagged], rows.hi[flagged]),
            (self.columns.lo, self.columns.hi, self.owner),
            int(inside[flagged].sum()),
        )
        records.add("rows", found.row_images, found.row_scores)
        records.add("columns", found.col_texts, found.col_scores)


def padded(x: torch.Tensor, offset: int, height: int) -> torch.Tensor:
    """``x`` at rows ``offset ..`` of a ``[height]`` vector of ``+inf`` (no query)."""
    out = x.new_full((height,), torch.inf)
    out[offset : offset + x.shape[0]] = x
    return out


class Thresholds(NamedTuple):
    """The exact thresholds a pass read, and whether the interval counts are exact."""

    best: torch.Tensor  # [N_r] every local image's best caption score (+inf: no caption)
    values: torch.Tensor  # [M_r] every local text's score with its image
    exact: bool  # every threshold within its interval and no record dropped


def thresholds(
    run: Pass, pairs: Intervals, rows: Intervals, owner: torch.Tensor, records: Records
) -> Thresholds:
    """Read the exact thresholds off a pass and check them against their intervals.

    ``owner`` are the local texts' local images; ``rows`` the local images' intervals.
    """
    best = rows.lo.new_full(rows.lo.shape, torch.inf)
    best.scatter_reduce_(0, owner, run.values, reduce="amax", include_self=False)
    has_caption = torch.isfinite(rows.lo)
    inside = bool(((run.values >= pairs.lo) & (run.values <= pairs.hi)).all())
    inside &= bool(((best >= rows.lo) & (best <= rows.hi) | ~has_caption).all())
    return Thresholds(best, run.values, inside and not records.full)


def interval_counts(
    run: Pass, records: Records, row_best: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the counts of a pass on intervals: rows' (above, tied negatives), columns'.

    ``row_best`` ``[N]`` are every image's exact thresholds (global), ``values`` the
    local texts'. The rows are this process's part only, to be summed over processes.
    """
    above, row_tied = records.resolve("rows", row_best)
    row_above = run.row_counts[0] + above
    col_above, _ = run.counter.column_counts()
    above, col_tied = records.resolve("columns", values)
    return row_above, row_tied, col_above + above, col_tied


def exact_counts(run: Pass) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the counts of a pass on exact thresholds: rows' (above, tied), columns'.

    The tied counts include the positives.
    """
    col_above, col_atleast = run.counter.column_counts()
    row_above = run.row_counts[0]
    return row_above, run.row_counts[1] - row_above, col_above, col_atleast - col_above


def direction_counts(
    rows: tuple[torch.Tensor, torch.Tensor],
    columns: tuple[torch.Tensor, torch.Tensor],
    found: Thresholds,
    owner: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions' counts, int64 ``[3, N_r]`` and ``[3, M_r]``, from (above, tied).

    ``rows`` and ``columns`` are the local images' and texts' counts; their tied counts
    include the positives after an exact pass and are negatives only otherwise.
    """
    row_above, row_tied = rows
    col_above, col_tied = columns
    tied_positives = torch.zeros_like(row_above)
    tied_positives.index_add_(0, owner, (found.values == found.best[owner]).long())
    if not found.exact:
        row_tied, col_tied = row_tied - tied_positives, col_tied - 1
    has_caption = torch.isfinite(found.best)
    i2t = torch.stack([row_above, row_tied, tied_positives])
    t2i = torch.stack([col_above, col_tied, torch.ones_like(col_tied)])
    return torch.where(has_caption, i2t, 0), t2i


def one_pass_counts(
    images: torch.Tensor,
    texts: torch.Tensor,
    owner: torch.Tensor,
    block_rows: int,
    bar: Any,
    nonfinite: NonFinite,
) -> tuple[RankCounts, RankCounts]:
    """Count both directions of one language from one pass over its image x text tiles.

    ``images`` ``[N, D]`` and ``texts`` ``[M, D]`` on one device, ``owner`` ``[M]`` each
    text's image. ``block_rows`` image rows make a block (rounded up to whole tiles).
    A non-finite score goes to ``nonfinite`` (image, text, value). Returns the
    image-to-text and the text-to-image counts.
    """
    i2t, t2i, _ = one_pass(images, texts, owner, block_rows, bar, nonfinite)
    return RankCounts(*i2t.cpu().numpy()), RankCounts(*t2i.cpu().numpy())


#: Called with each block of the first pass: ``(block, start, stop)``, its real image rows.
OnBlock = Callable[[ScoreBlock, int, int], None]


def one_pass(
    images: torch.Tensor,
    texts: torch.Tensor,
    owner: torch.Tensor,
    block_rows: int,
    bar: Any,
    nonfinite: NonFinite,
    on_block: OnBlock | None = None,
) -> tuple[torch.Tensor, torch.Tensor, Thresholds]:
    """:func:`one_pass_counts` as tensors, with the thresholds; ``on_block`` sees every block.

    Returns the counts ``[3, N]`` and ``[3, M]`` (above, tied negatives, tied positives)
    and the exact thresholds. ``on_block`` is called once per block of the first pass,
    after its scores are counted (so they are finite).
    """
    pairs = pair_intervals(images, texts, owner)
    rows = row_intervals(pairs, owner, images.shape[0])
    records = Records(images.shape[0] + texts.shape[0])
    try:
        run = _local_pass(images, texts, owner, rows, pairs, records, block_rows, bar, on_block)
        found = thresholds(run, pairs, rows, owner, records)
        if found.exact:
            counts = interval_counts(run, records, found.best, found.values)
        else:
            exact = Intervals(found.best, found.best), Intervals(found.values, found.values)
            run = _local_pass(images, texts, owner, *exact, None, block_rows, None)
            counts = exact_counts(run)
    except InputError as exc:
        if exc.argument != "scores" or exc.position is None or exc.value is None:
            raise
        row, text = exc.position
        nonfinite(row, text, exc.value)
    i2t, t2i = direction_counts(counts[:2], counts[2:], found, owner)
    return i2t, t2i, found


def _local_pass(
    images: torch.Tensor,
    texts: torch.Tensor,
    owner: torch.Tensor,
    rows: Intervals,
    columns: Intervals,
    records: Records | None,
    block_rows: int,
    bar: Any,
    on_block: OnBlock | None = None,
) -> Pass:
    """One pass over the tiles of ``images`` x ``texts``, blocks of image rows at a time.

    ``bar`` (None: none) advances once per block; ``on_block`` sees each counted block.
    """
    n_images, n_texts = images.shape[0], texts.shape[0]
    tiling = tiling_for(n_images, n_texts, images.device)
    tiles = GalleryTiles(texts, 0, tiling.gallery)
    block_rows = _round_up(block_rows, tiling.queries)
    positives = captions_of_images(owner)
    state = Pass(columns, owner, n_images, records)
    buffer = None
    for a in range(0, n_images, block_rows):
        b = min(a + block_rows, n_images)
        height = _round_up(b - a, tiling.queries)
        block = score_block(padded_queries(images, 0, a, height), tiles, tiling, buffer)
        buffer = block.scores
        block_rows_iv = Intervals(padded(rows.lo[a:b], 0, height), padded(rows.hi[a:b], 0, height))
        state.block(block, a, (a, b), block_rows_iv, positives(a, b))
        if on_block is not None:
            on_block(block, a, b)
        if bar is not None:
            bar.update()
    return state


def _round_up(n: int, step: int) -> int:
    return max(step, -(-n // step) * step)
