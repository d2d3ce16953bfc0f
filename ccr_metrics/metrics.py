"""torchmetrics Metrics for validation loops: Recall@K and Mean Rank Variance.

Both metrics rank each batch as it arrives and keep only what ranking yields: the rank
counts of each query for :class:`RecallAtK` (:func:`~ccr_metrics.rank_counts`, three
numbers per query, so that any tie policy, the expected recall included, is exact),
one rank per (instance, language) for :class:`MeanRankVariance`. Scores are never
stored. ``compute`` hands the accumulated state to :func:`~ccr_metrics.recall_at_k` or
:func:`~ccr_metrics.mean_rank_variance`, so a metric fed in batches gives exactly the
number one functional call on the concatenated data gives.

The states are torchmetrics list states reduced by concatenation: under
DistributedDataParallel, ``compute`` gathers every process's state and each process
returns the value over all of them. Given each row's ``dataset_index``, ``compute``
keeps one row per index, so the repeats a padding sampler (``DistributedSampler``)
adds are not counted twice and DDP gives the single-process number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast

import torch
from torchmetrics import Metric

from .core._backend import ArrayLike, to_tensor
from .core._validation import (
    InputError,
    check_bool_mask,
    check_choice,
    check_integer,
    check_ndim,
    check_numeric,
    check_positive_ints,
    first_nonfinite,
    shape_str,
)
from .core.mrv import REDUCTIONS, Reduction, checked_rank_matrix, mean_rank_variance
from .core.ranking import positive_ranks, rank_counts
from .core.recall import recall_at_k
from .core.ties import DEFAULT_TIES, EMPTY, TIES, Empty, RankCounts, Ties

__all__ = ["MeanRankVariance", "RecallAtK"]

RecallEmpty = Literal["error", "miss", "skip"]
#: :class:`RecallAtK`'s ``empty`` choices: the functional API's, and "skip".
RECALL_EMPTY: tuple[RecallEmpty, ...] = (*EMPTY, "skip")
_COUNT_STATES = ("above", "tied_negatives", "tied_positives")


class _RankMetric(Metric):
    """A Metric whose states are lists of 1-D float64 tensors joined by concatenation.

    Counts are kept in float64 too: exact for whole numbers up to 2**53.
    """

    @property
    def dtype(self) -> torch.dtype:
        """Float64, the dtype of every state.

        Under DDP, torchmetrics gives a process that saw no update an empty tensor of
        the metric's dtype to gather with the others' ranks; it must be theirs.
        """
        return torch.float64

    #: Dataset index ``[B]`` of each batch's rows, as float64 (exact below 2**53),
    #: when ``update`` was given them; one tensor while synchronised.
    dataset_index: list[torch.Tensor]

    def _add_index_state(self) -> None:
        self.add_state("dataset_index", default=[], dist_reduce_fx="cat")

    def _joined(self, state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Join a list state; after a DDP sync torchmetrics leaves one tensor instead."""
        state = _concatenated(state)
        if state.shape[0] == 0:
            raise InputError(
                f"{type(self).__name__}.compute() needs at least one update() since the "
                "metric was built or last reset()"
            )
        return state

    def _checked_index(
        self, dataset_index: ArrayLike | None, rows: int, batches: int, layout: str
    ) -> torch.Tensor | None:
        """``dataset_index`` as float64 ``[rows]`` on the metric's device, or None.

        ``batches`` is how many batches the state holds: either all of them come with
        indices or none does.
        """
        indexed = len(self.dataset_index) > 0
        if batches and indexed != (dataset_index is not None):
            raise InputError(
                "dataset_index must be given for every batch or for none: "
                + (
                    "earlier batches had it, this one has not"
                    if indexed
                    else "earlier batches had none, this one has it"
                ),
                argument="dataset_index",
            )
        if dataset_index is None:
            return None
        index, _ = to_tensor(dataset_index, "dataset_index")
        check_integer(index, "dataset_index", "dataset indices")
        if tuple(index.shape) != (rows,):
            raise InputError(
                f"dataset_index must have shape [{rows}] (one index per {layout}), got "
                f"{shape_str(index)}",
                argument="dataset_index",
            )
        bad = (index < 0) | (index >= 2**53)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise InputError(
                f"dataset_index has {int(index[i])} at [{i}]; indices must be in [0, 2**53)",
                argument="dataset_index",
            )
        return index.to(device=self.device, dtype=torch.float64)

    def _distinct_rows(self, rows: int) -> torch.Tensor | None:
        """Which of the ``rows`` accumulated rows to keep: the first of each dataset index.

        None without indices. The rows come back sorted by dataset index: the order of a
        single process reading the dataset in order, so that even a floating-point mean
        is the same to the last bit.
        """
        index = _concatenated(self.dataset_index)
        if index.shape[0] == 0:
            return None
        if index.shape[0] != rows:
            raise InputError(
                f"dataset_index was given for {index.shape[0]} of {rows} rows: under DDP "
                "every process must pass it with every batch, or none may",
                argument="dataset_index",
            )
        order = torch.argsort(index, stable=True)
        ordered = index[order]
        first = torch.ones(rows, dtype=torch.bool, device=index.device)
        first[1:] = ordered[1:] != ordered[:-1]
        return order[first]


class RecallAtK(_RankMetric):
    """Recall@K over all queries seen since the last reset, as a torchmetrics Metric.

    Parameters
    ----------
    k : int or iterable of int, default (1, 5, 10)
        Cut-offs.
    ties : {"expected", "average", "optimistic", "pessimistic"}, default "expected"
        Tie policy, as for :func:`~ccr_metrics.recall_at_k` on counts: ``"expected"``
        counts each query with the exact probability of a hit under a shuffled tie.
    empty : {"error", "miss", "skip"}, default "error"
        What a query without any positive gets: a ValueError in ``update``, a miss at
        every cut-off (as :func:`~ccr_metrics.rank_counts`' ``empty="miss"``), or
        ``"skip"``: it is left out, as if never seen (the image-to-text queries of
        images without a caption in a language, as :func:`~ccr_metrics.evaluate`
        leaves them out).
    prefix : str, optional
        When given, ``compute()`` returns the flat names a
        :class:`~ccr_metrics.MetricKey` gives, ready for a logger: with
        ``prefix="en/t2i"``, ``{"en/t2i/R@1": tensor, ...}`` (``""``: ``"R@1"``).
    **kwargs
        torchmetrics options such as ``sync_on_compute``, ``process_group`` or
        ``compute_on_cpu``.

    Raises
    ------
    ValueError
        If a cut-off is not a positive integer, or ``ties`` or ``empty`` is not a
        valid choice.

    Notes
    -----
    ``update(scores, positives)`` ranks a batch of ``B`` queries against the
    ``G`` candidates its scores cover, usually the full gallery. The state is the rank
    counts (items above, tied negatives, tied positives) ``[B]`` of every batch, on the
    metric's device; scores may live on any device. ``compute()`` returns
    ``{k: tensor}`` of float64 scalar tensors (the torchmetrics convention) holding the
    fractions :func:`~ccr_metrics.recall_at_k` gives for all accumulated counts.

    A query counts at ``k`` when its best positive's rank is ``<= k``, with ties
    resolved by ``ties`` (or, for ``"expected"``, with its probability of being within
    the top ``k``). This is neither torchmetrics' ``RetrievalRecall`` (the
    fraction of a query's positives found) nor its ``RetrievalHitRate`` (which breaks
    ties by sort order); see ``docs/metrics.md``.

    Examples
    --------
    >>> import torch
    >>> metric = RecallAtK(k=(1, 2))
    >>> metric.update(torch.tensor([[0.9, 0.1, 0.5],
    ...                             [0.2, 0.8, 0.8]]), torch.tensor([2, 1]))
    >>> metric.update(torch.tensor([[0.3, 0.2, 0.1]]), [[0, 2]])  # two positives
    >>> metric.compute()
    {1: tensor(0.5000, dtype=torch.float64), 2: tensor(1., dtype=torch.float64)}

    With ``empty="skip"``, a query without positives does not count:

    >>> skipping = RecallAtK(k=1, empty="skip")
    >>> skipping.update(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), [[0], []])
    >>> skipping.compute()
    {1: tensor(1., dtype=torch.float64)}
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    #: Rank counts ``[B]`` per batch, as float64; one tensor each while synchronised.
    above: list[torch.Tensor]
    tied_negatives: list[torch.Tensor]
    tied_positives: list[torch.Tensor]

    def __init__(
        self,
        k: int | Iterable[int] = (1, 5, 10),
        *,
        ties: Ties = DEFAULT_TIES,
        empty: RecallEmpty = "error",
        prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        cutoffs = check_positive_ints("k", k)
        check_choice("ties", ties, TIES)
        check_choice("empty", empty, RECALL_EMPTY)
        _check_prefix(prefix)
        super().__init__(**kwargs)
        self.k = cutoffs
        self.ties = ties
        self.empty = empty
        self.prefix = prefix
        for name in ("above", "tied_negatives", "tied_positives"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._add_index_state()

    def update(
        self,
        scores: ArrayLike,
        positives: ArrayLike | Sequence[Sequence[int]],
        *,
        dataset_index: ArrayLike | None = None,
    ) -> None:
        """Count a batch of queries and keep their rank counts.

        Parameters
        ----------
        scores : torch.Tensor or array-like, shape [B, G]
            Similarity of each of the batch's ``B`` queries to each of ``G``
            candidates; any real dtype and device.
        positives : torch.Tensor, array-like or sequence of sequences of int
            The relevant columns of each query in any form
            :func:`~ccr_metrics.positive_ranks` accepts: indices ``[B]``, a bool mask
            ``[B, G]``, or ``B`` lists of column indices.
        dataset_index : torch.Tensor or array-like of int, shape [B], optional
            Each query's index in the dataset. When given (with every batch, on every
            process), ``compute`` counts each index once: the repeats a padding
            ``DistributedSampler`` adds are dropped. The same index must mean the same
            query.

        Raises
        ------
        ValueError
            As :func:`~ccr_metrics.positive_ranks`: ``scores`` not 2-D, empty or
            non-finite; ``positives`` of the wrong shape, out of range, or leaving a
            query without a positive while ``empty="error"``; ``dataset_index`` not
            integer ``[B]`` in ``[0, 2**53)``, or given for some batches and not
            others. The state is unchanged.
        """
        s, _ = to_tensor(scores, "scores")
        rows = s.shape[0] if s.ndim else 0
        index = self._checked_index(dataset_index, rows, len(self.above), "query")
        empty: Empty = "miss" if self.empty == "skip" else self.empty
        counts = rank_counts(s, positives, empty=empty)
        tensors = [
            cast(torch.Tensor, getattr(counts, name)).to(device=self.device, dtype=torch.float64)
            for name in _COUNT_STATES
        ]
        if self.empty == "skip":
            # Zero tied positives: the query has no positive at all.
            kept = tensors[2] > 0
            tensors = [t[kept] for t in tensors]
            index = None if index is None else index[kept]
        for name, tensor in zip(_COUNT_STATES, tensors, strict=True):
            getattr(self, name).append(tensor)
        if index is not None:
            self.dataset_index.append(index)

    def compute(self) -> dict[int, torch.Tensor] | dict[str, torch.Tensor]:
        """Recall at each cut-off over every query seen (on every process, under DDP).

        Returns
        -------
        recall : dict of int (or, with ``prefix``, str) to torch.Tensor
            ``{k: fraction}``, float64 scalar tensors on the metric's device, in the
            order the cut-offs were given; with ``prefix``, keyed by flat name.

        Raises
        ------
        ValueError
            If no query was added since construction or the last ``reset()`` (with
            ``empty="skip"``: none with a positive), or (under DDP) some processes
            passed ``dataset_index`` and others did not.
        """
        if self.empty == "skip" and self.update_called and _concatenated(self.above).numel() == 0:
            raise InputError(
                "RecallAtK.compute(): no query seen had a positive (empty='skip' left "
                "every one out), so recall is undefined",
                argument="empty",
            )
        above = self._joined(self.above)
        keep = self._distinct_rows(above.shape[0])
        states = [above, self._joined(self.tied_negatives), self._joined(self.tied_positives)]
        if keep is not None:
            states = [state[keep] for state in states]
        counts = RankCounts(*(state.long() for state in states))
        recall = recall_at_k(counts, self.k, ties=self.ties)
        values = {
            k: torch.tensor(v, dtype=torch.float64, device=self.device) for k, v in recall.items()
        }
        if self.prefix is None:
            return values
        return {_flat(self.prefix, f"R@{k}"): v for k, v in values.items()}


class MeanRankVariance(_RankMetric):
    """Mean Rank Variance over all instances seen since the last reset, as a Metric.

    Parameters
    ----------
    reduction : {"variance", "std"}, default "variance"
        As for :func:`~ccr_metrics.mean_rank_variance`: the paper's Eq. 7, or the mean
        standard deviation that the released code computed.
    ties : {"expected", "average", "optimistic", "pessimistic"}, default "expected"
        Tie policy used by ``update`` to rank the scores, as for
        :func:`~ccr_metrics.positive_ranks` (the expected and the average rank are
        the same).
    prefix : str, optional
        When given, ``compute()`` returns ``{"<prefix>/mrv_<reduction>": tensor}``, the
        flat name a :class:`~ccr_metrics.MetricKey` gives (``prefix="t2i"``:
        ``"t2i/mrv_variance"``), ready for a logger.
    **kwargs
        torchmetrics options such as ``sync_on_compute``, ``process_group`` or
        ``compute_on_cpu``.

    Raises
    ------
    ValueError
        If ``reduction`` or ``ties`` is not a valid choice.

    Notes
    -----
    ``update(scores, positives, mask=None)`` takes ``B`` instances, each queried in
    ``K`` languages against the same ``G`` candidates: for text-to-image retrieval,
    ``scores[j, k]`` holds the similarities of instance ``j``'s language-``k``
    caption to every image, and ``positives[j]`` is image ``j``'s index. The batch
    is ranked in one call of :func:`~ccr_metrics.positive_ranks` on its ``B * K``
    query rows; rows outside ``mask`` are not ranked.

    :meth:`update_ranks` adds ranks computed elsewhere instead: image-to-text ranks
    whose text galleries differ in size between languages, or a re-ranker's ranks.
    Both forms feed the same state and can be mixed.

    The state is each batch's float64 ranks ``[B, K]`` (kept flattened, NaN where a
    language is missing) and its ``K``, on the metric's device. Every batch must have
    the same ``K``. ``compute()``
    returns a float64 scalar tensor: :func:`~ccr_metrics.mean_rank_variance` of all
    accumulated rows, with the missing entries masked. Calling the metric (torchmetrics'
    ``forward``) takes ``update``'s arguments and returns the batch's value.

    Examples
    --------
    >>> import torch
    >>> metric = MeanRankVariance()
    >>> scores = torch.tensor([[[0.9, 0.1, 0.5],    # instance 0, language 0: rank 1
    ...                         [0.2, 0.1, 0.7]],   # instance 0, language 1: rank 2
    ...                        [[0.3, 0.6, 0.2],    # instance 1, language 0: rank 1
    ...                         [0.8, 0.4, 0.9]]])  # instance 1, language 1: rank 3
    >>> metric.update(scores, torch.tensor([0, 1]))  # [B, K, G] = [2, 2, 3]
    >>> metric.compute()  # instance variances 0.25 and 1
    tensor(0.6250, dtype=torch.float64)
    >>> metric.update_ranks(torch.tensor([[4.0, 9.0]]))  # variance 6.25
    >>> metric.compute()
    tensor(2.5000, dtype=torch.float64)
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0

    #: Float64 ranks ``[B * K]`` per batch (rows of ``[B, K]``, NaN where a language is
    #: missing); one tensor of all ranks while synchronised.
    ranks: list[torch.Tensor]
    #: ``K`` of each batch as a float64 ``[1]``; all batches must agree.
    languages: list[torch.Tensor]

    def __init__(
        self,
        *,
        reduction: Reduction = "variance",
        ties: Ties = DEFAULT_TIES,
        prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("ties", ties, TIES)
        _check_prefix(prefix)
        super().__init__(**kwargs)
        self.reduction = reduction
        self.ties = ties
        self.prefix = prefix
        # Flat 1-D rows rather than [B, K]: a process without updates sends torchmetrics'
        # 1-D empty placeholder, which must have the others' number of dimensions.
        self.add_state("ranks", default=[], dist_reduce_fx="cat")
        self.add_state("languages", default=[], dist_reduce_fx="cat")
        self._add_index_state()

    def update(
        self,
        scores: ArrayLike,
        positives: ArrayLike,
        mask: ArrayLike | None = None,
        *,
        dataset_index: ArrayLike | None = None,
    ) -> None:
        """Rank a batch of instances in every language and keep the ranks ``[B, K]``.

        Parameters
        ----------
        scores : torch.Tensor or array-like, shape [B, K, G]
            Similarity of instance ``j``'s query in language ``k`` to each of ``G``
            candidates; any real dtype and device.
        positives : torch.Tensor or array-like of int, shape [B] or [B, K]
            The relevant candidate of each instance, the same in every language
            (``[B]``, e.g. the image of a caption) or per language (``[B, K]``).
            Entries outside ``mask`` are not read.
        mask : torch.Tensor or array-like of bool, shape [B, K], optional
            Which languages each instance has. Rows outside it are neither checked nor
            ranked, so they may hold filler (NaN scores, index -1).
        dataset_index : torch.Tensor or array-like of int, shape [B], optional
            Each instance's index in the dataset. When given (with every batch, on
            every process), ``compute`` keeps each index once: the repeats a padding
            ``DistributedSampler`` adds are dropped.

        Raises
        ------
        ValueError
            If ``scores`` is not 3-D, is empty, holds NaN or infinity in a row inside
            ``mask``, or has a ``K`` other than earlier batches'; if ``positives`` is
            not integer, has the wrong shape, or holds an index outside ``[0, G)``
            inside ``mask``; if ``mask`` is not bool ``[B, K]``; if ``dataset_index``
            is not integer ``[B]`` in ``[0, 2**53)`` or is given for some batches and
            not others. The state is unchanged.
        """
        s, _ = to_tensor(scores, "scores")
        check_ndim(s, "scores", 3, "[B, K, G] (instances x languages x gallery)")
        check_numeric(s, "scores")
        n, k, g = s.shape
        if n == 0 or k == 0 or g == 0:
            raise InputError(
                "scores must have at least one instance, language and candidate, "
                f"got {shape_str(s)}",
                argument="scores",
            )
        self._check_languages(k, "scores")
        index = self._checked_index(dataset_index, n, len(self.ranks), "instance")
        present = _checked_mask(mask, n, k, s.device)
        columns = _positive_columns(positives, present, g)
        ranks = torch.full((n, k), float("nan"), dtype=torch.float64, device=s.device)
        if bool(present.any()):
            rows = s.reshape(n * k, g)
            keep = present.reshape(-1)
            # Boolean indexing copies the rows: only pay for it when some are missing.
            if not bool(keep.all()):
                rows = rows[keep]
            try:
                ranks[present] = cast(
                    torch.Tensor, positive_ranks(rows, columns[present], ties=self.ties)
                )
            except ValueError:
                # The core names a position among the flattened rows; name it in [B, K, G].
                found = first_nonfinite(torch.where(present[..., None], s, torch.zeros_like(s)))
                if found is None:
                    raise
                position, value = found
                raise InputError(
                    f"scores contains {value} at {list(position)}; scores must be finite "
                    "(mark missing languages with mask)",
                    argument="scores",
                ) from None
        self._keep(ranks, index)

    def update_ranks(
        self,
        ranks: ArrayLike,
        mask: ArrayLike | None = None,
        *,
        dataset_index: ArrayLike | None = None,
    ) -> None:
        """Keep ranks computed elsewhere, one per instance and language.

        Parameters
        ----------
        ranks : torch.Tensor or array-like, shape [B, K]
            Rank of instance ``j`` in language ``k``, 0-based or 1-based alike (MRV
            does not depend on the offset), on any device.
        mask : torch.Tensor or array-like of bool, shape [B, K], optional
            Which ranks exist; entries outside it may hold anything, NaN included.
        dataset_index : torch.Tensor or array-like of int, shape [B], optional
            As for :meth:`update`.

        Raises
        ------
        ValueError
            If ``ranks`` is not 2-D and numeric, is empty, has a ``K`` other than
            earlier batches', or holds NaN or infinity inside ``mask``; if ``mask`` is
            not bool ``[B, K]``; ``dataset_index`` as for :meth:`update`. The state is
            unchanged.
        """
        r, present, _ = checked_rank_matrix(ranks, mask, rows="B")
        n, k = r.shape
        if n == 0 or k == 0:
            raise InputError(
                f"ranks must have at least one instance and language, got {shape_str(r)}",
                argument="ranks",
            )
        self._check_languages(k, "ranks")
        index = self._checked_index(dataset_index, n, len(self.ranks), "instance")
        kept = torch.where(present, r, torch.full_like(r, float("nan")))
        # torchmetrics wraps only `update` to count the call and drop a cached result;
        # the same wrapper makes this a second, equally valid way to update.
        self._wrap_update(self._keep)(kept, index)

    def compute(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """MRV over every instance seen (on every process, under DDP).

        Returns
        -------
        mrv : torch.Tensor
            Float64 scalar on the metric's device; with ``prefix``, ``{name: scalar}``.

        Raises
        ------
        ValueError
            If nothing was added since construction or the last ``reset()``, or no
            instance has ranks in two or more languages.
        """
        widths = torch.unique(self._joined(self.languages))
        if widths.shape[0] > 1:
            # update() refuses a second K, so the batches that differ came from other processes.
            raise InputError(
                f"processes hold ranks for different numbers of languages "
                f"{[int(w) for w in widths]}; every batch needs the same K"
            )
        ranks = self._joined(self.ranks).reshape(-1, int(widths[0]))
        keep = self._distinct_rows(ranks.shape[0])
        if keep is not None:
            ranks = ranks[keep]
        value = mean_rank_variance(ranks, reduction=self.reduction, mask=~torch.isnan(ranks))
        result = torch.tensor(value, dtype=torch.float64, device=self.device)
        if self.prefix is None:
            return result
        return {_flat(self.prefix, f"mrv_{self.reduction}"): result}

    def _check_languages(self, k: int, name: str) -> None:
        if self.languages and int(self.languages[-1]) != k:
            raise InputError(
                f"{name} covers {k} languages, earlier batches {int(self.languages[-1])}; "
                "every batch needs the same K (mark missing languages with mask)",
                argument=name,
            )

    def _keep(self, ranks: torch.Tensor, index: torch.Tensor | None) -> None:
        """Add a batch's ranks ``[B, K]`` (and dataset indices ``[B]``) to the state."""
        self.ranks.append(ranks.reshape(-1).to(self.device))
        k = torch.tensor([ranks.shape[1]], dtype=torch.float64, device=self.device)
        self.languages.append(k)
        if index is not None:
            self.dataset_index.append(index)


def _concatenated(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Join a list state into one tensor (empty when the list is)."""
    if isinstance(state, list):
        return torch.cat(state) if state else torch.empty(0, dtype=torch.float64)
    return state


def _check_prefix(prefix: str | None) -> None:
    if prefix is not None and not isinstance(prefix, str):
        raise InputError(
            f"prefix must be a string such as 'en/t2i' (or None), got {prefix!r}",
            argument="prefix",
        )


def _flat(prefix: str, label: str) -> str:
    """Join ``prefix`` and ``label`` into a flat metric name (``label`` alone for "")."""
    return f"{prefix.rstrip('/')}/{label}" if prefix else label


def _checked_mask(mask: ArrayLike | None, n: int, k: int, device: torch.device) -> torch.Tensor:
    """``mask`` as a bool tensor ``[n, k]`` on ``device``; all True when None."""
    if mask is None:
        return torch.ones(n, k, dtype=torch.bool, device=device)
    m, _ = to_tensor(mask, "mask")
    return check_bool_mask(m, "mask", (n, k), "(instances x languages)", device)


def _positive_columns(positives: ArrayLike, present: torch.Tensor, g: int) -> torch.Tensor:
    """``positives`` as a LongTensor ``[B, K]``, range-checked where ``present``."""
    n, k = present.shape
    p, _ = to_tensor(positives, "positives")
    check_integer(p, "positives", "gallery indices")
    if tuple(p.shape) == (n,):
        p = p[:, None].expand(n, k)
    elif tuple(p.shape) != (n, k):
        raise InputError(
            f"positives must have shape [{n}] (one candidate per instance) or [{n}, {k}] "
            f"(one per instance and language), got {shape_str(p)}",
            argument="positives",
        )
    p = p.to(device=present.device, dtype=torch.long)
    bad = present & ((p < 0) | (p >= g))
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise InputError(
            f"positives has candidate index {int(p[i, j])} at [{i}, {j}], outside [0, {g})",
            argument="positives",
        )
    return p
