"""The Recall@K check: :data:`RECALL_PROPERTIES` and :func:`check_recall_function`.

Canonical call: ``fn(scores [Q, G], positives, k) -> fraction in [0, 1]``, with
:func:`ccr_metrics.recall_at_k` of :func:`ccr_metrics.rank_counts` as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

from ..core._validation import check_choice
from .problems import (
    _SLACK,
    _TRANSFORMS,
    _draw_problem,
    _new_column,
    _permuted_columns,
    _recall_of,
    _reference_recall,
    _shifted,
)
from .runner import (
    BACKENDS,
    CLAIMS,
    DEFAULT_MAX_EXAMPLES,
    FORMS,
    Backend,
    CheckResult,
    Claim,
    Form,
    Options,
    Property,
    _checked,
    _close,
    _register,
    _Violation,
    run_check,
)

RECALL_TABLE: list[Property] = []


def _draw_k(data: st.DataObject, scores: npt.NDArray[np.float64]) -> int:
    return data.draw(st.integers(1, scores.shape[1] + 1))


@_register(
    RECALL_TABLE,
    "reference",
    "on scores without ties, R@k is the fraction of queries with fewer than k items above "
    "their positive (ccr_metrics.recall_at_k)",
)
def _recall_reference(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=False, multi=False)
    k = _draw_k(data, scores)
    got = _recall_of(options, scores, positives, k)
    want = _reference_recall(scores, positives, k, "optimistic")
    if not _close(got, want, 1e-6):
        raise _Violation({"scores": scores, "positives": positives, "k": k}, got, want)


@_register(
    RECALL_TABLE,
    "best_positive",
    "with several positives, a query counts as found at k when any of them is within the "
    "top k (not only the first listed, not the fraction of positives found)",
    when=lambda o: o.positives != "index",
)
def _recall_best_positive(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=False, multi=True)
    k = _draw_k(data, scores)
    got = _recall_of(options, scores, positives, k)
    want = _reference_recall(scores, positives, k, "optimistic")
    if not _close(got, want, 1e-6):
        raise _Violation({"scores": scores, "positives": positives, "k": k}, got, want)


@_register(
    RECALL_TABLE,
    "tie_bounds",
    "with ties, R@k lies between the pessimistic recall (tied negatives first) and the "
    "optimistic one",
)
def _recall_tie_bounds(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=True, multi=None)
    k = _draw_k(data, scores)
    got = _recall_of(options, scores, positives, k)
    low = _reference_recall(scores, positives, k, "pessimistic")
    high = _reference_recall(scores, positives, k, "optimistic")
    if not low - _SLACK <= got <= high + _SLACK:
        raise _Violation(
            {"scores": scores, "positives": positives, "k": k},
            got,
            {"between pessimistic": low, "and optimistic": high},
        )


@_register(
    RECALL_TABLE,
    "tie_policy",
    "with ties, R@k is this library's under the declared policy "
    "(recall_at_k(rank_counts(...), k, ties=...))",
    when=lambda o: o.declared,
)
def _recall_tie_policy(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=True, multi=None)
    k = _draw_k(data, scores)
    got = _recall_of(options, scores, positives, k)
    want = _reference_recall(scores, positives, k, options.policy)
    if not _close(got, want, 1e-6):
        shown = {"scores": scores, "positives": positives, "k": k, "ties": options.ties}
        raise _Violation(shown, got, want)


@_register(
    RECALL_TABLE,
    "monotone_in_k",
    "R@k never decreases as k grows, and is 1 once k reaches the gallery size",
)
def _recall_monotone_in_k(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    g = scores.shape[1]
    by_k = np.asarray([_recall_of(options, scores, positives, k) for k in range(1, g + 1)])
    if bool(np.any(np.diff(by_k) < -_SLACK)) or not _close(by_k[-1], 1.0, 1e-6):
        raise _Violation(
            {"scores": scores, "positives": positives},
            {f"R@1..R@{g}": by_k},
            f"non-decreasing, with R@{g} = 1",
        )


@_register(
    RECALL_TABLE,
    "negative_scores",
    "negative scores (cosines below 0) count like any others: lowering every score by a "
    "constant changes no R@k",
)
def _recall_negative_scores(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    k = _draw_k(data, scores)
    shifted = _shifted(data, scores)
    before = _recall_of(options, scores, positives, k)
    after = _recall_of(options, shifted, positives, k)
    if not _close(after, before, 1e-6):
        raise _Violation(
            {"scores": scores, "positives": positives, "k": k, "lowered scores": shifted},
            {"lowered": after},
            {"as before": before},
        )


@_register(
    RECALL_TABLE,
    "gallery_permutation",
    "reordering the gallery columns (the positives moved with them) changes no R@k",
)
def _recall_gallery_permutation(data: st.DataObject, options: Options) -> None:
    problem = _draw_problem(data, options, ties=options.declared, multi=None)
    k = _draw_k(data, problem[0])
    (scores, positives), order = _permuted_columns(data, problem)
    before = _recall_of(options, *problem, k)
    after = _recall_of(options, scores, positives, k)
    if not _close(after, before, 1e-6):
        raise _Violation(
            {"scores": problem[0], "positives": problem[1], "k": k, "column order": order},
            {"reordered": after},
            {"as before": before},
        )


@_register(RECALL_TABLE, "query_permutation", "reordering the queries changes no R@k")
def _recall_query_permutation(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    k = _draw_k(data, scores)
    order = data.draw(st.permutations(range(scores.shape[0])))
    before = _recall_of(options, scores, positives, k)
    after = _recall_of(options, scores[order], [positives[q] for q in order], k)
    if not _close(after, before, 1e-6):
        raise _Violation(
            {"scores": scores, "positives": positives, "k": k, "query order": order},
            {"reordered": after},
            {"as before": before},
        )


@_register(
    RECALL_TABLE,
    "increasing_transform",
    "a strictly increasing transform of the scores (2s + 1, s**3, exp(s / 4)) changes no R@k",
)
def _recall_increasing_transform(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    k = _draw_k(data, scores)
    name = data.draw(st.sampled_from(sorted(_TRANSFORMS)))
    before = _recall_of(options, scores, positives, k)
    after = _recall_of(options, _TRANSFORMS[name](scores), positives, k)
    if not _close(after, before, 1e-6):
        raise _Violation(
            {"scores": scores, "positives": positives, "k": k, "transform": name},
            {"transformed": after},
            {"as before": before},
        )


@_register(
    RECALL_TABLE,
    "added_negative",
    "adding a gallery item that is no query's positive never raises R@k",
)
def _recall_added_negative(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    k = _draw_k(data, scores)
    wider = _new_column(data, scores, ties=options.declared)
    before = _recall_of(options, scores, positives, k)
    after = _recall_of(options, wider, positives, k)
    if after > before + _SLACK:
        raise _Violation(
            {"scores": scores, "positives": positives, "k": k, "added column": wider[:, -1]},
            {"before": before, "after": after},
            "after <= before",
        )


#: The properties of :func:`check_recall_function`.
RECALL_PROPERTIES: tuple[Property, ...] = tuple(RECALL_TABLE)


def check_recall_function(
    fn: Callable[..., Any],
    *,
    ties: Claim = "expected",
    positives: Form = "ragged",
    backend: Backend = "numpy",
    adapter: Callable[..., Any] | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> CheckResult:
    """Check a Recall@K function against the invariants of :data:`RECALL_PROPERTIES`.

    Parameters
    ----------
    fn : callable
        Called as ``fn(scores, positives, k)`` with ``scores`` and ``positives`` as
        for :func:`check_rank_function` and ``k`` a positive int (up to ``G + 1``). It
        returns the fraction of queries whose best positive is within the top ``k``,
        a number in ``[0, 1]`` (a float, 0-dim array or tensor).
    ties : {"expected", "average", "optimistic", "pessimistic", "arbitrary"}, default "expected"
        The tie policy of ``fn``, as :func:`~ccr_metrics.recall_at_k` applies it to
        rank counts: ``"expected"`` is the expected recall under a random order of the
        tied items, ``"average"`` counts a query when its average rank is ``<= k``.
        ``"arbitrary"`` (an argsort's order) is checked against the pessimistic and
        optimistic recall only.
    positives, backend
        As for :func:`check_rank_function`.
    adapter : callable, optional
        Called as ``adapter(fn, scores, positives, k)`` in place of ``fn(scores,
        positives, k)``.
    max_examples : int, default 50
        Examples drawn per property (derandomized, no database).

    Returns
    -------
    CheckResult
        The names of the properties that held.

    Raises
    ------
    CheckFailure
        An ``AssertionError`` naming each failed property, with its shrunk input.
    ValueError
        If ``fn`` or ``adapter`` is not callable, or an option is not a valid choice.

    Examples
    --------
    This library's recall, which takes ranks or counts, checked through an adapter:

    >>> import ccr_metrics as cm
    >>> def from_scores(fn, scores, positives, k):
    ...     return fn(cm.rank_counts(scores, positives), k)[k]
    >>> result = check_recall_function(cm.recall_at_k, adapter=from_scores, max_examples=10)
    >>> result.properties[:3]
    ('reference', 'best_positive', 'tie_bounds')
    """
    budget = _checked(fn, adapter, max_examples)
    check_choice("ties", ties, CLAIMS)
    check_choice("positives", positives, FORMS)
    check_choice("backend", backend, BACKENDS)
    options = Options(fn, adapter, backend=backend, ties=ties, positives=positives)
    return run_check("check_recall_function", RECALL_PROPERTIES, options, budget)
