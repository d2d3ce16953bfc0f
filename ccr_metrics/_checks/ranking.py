"""The rank check: :data:`RANK_PROPERTIES` and :func:`check_rank_function`.

Canonical call: ``fn(scores [Q, G], positives) -> 1-based ranks [Q]``, with
:func:`ccr_metrics.positive_ranks` as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..core._validation import check_choice
from ..core.ranking import positive_ranks
from .problems import (
    _SLACK,
    _TRANSFORMS,
    _draw_problem,
    _new_column,
    _permuted_columns,
    _ranks_of,
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

RANK_TABLE: list[Property] = []


@_register(RANK_TABLE, "one_based", "a query whose positive scores highest in its row has rank 1")
def _rank_one_based(data: st.DataObject, options: Options) -> None:
    scores, _ = _draw_problem(data, options, ties=False, multi=False)
    positives = [[int(np.argmax(row))] for row in scores]
    got = _ranks_of(options, scores, positives)
    if not _close(got, 1.0, 1e-6):
        raise _Violation({"scores": scores, "positives": positives}, got, np.ones_like(got))


@_register(
    RANK_TABLE,
    "reference",
    "on scores without ties, a rank is 1 + the number of items above the positive "
    "(ccr_metrics.positive_ranks)",
)
def _rank_reference(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=False, multi=False)
    got = _ranks_of(options, scores, positives)
    want = positive_ranks(scores, positives)
    if not _close(got, want, 1e-6):
        raise _Violation({"scores": scores, "positives": positives}, got, want)


@_register(
    RANK_TABLE,
    "best_positive",
    "with several positives, a query's rank is that of its best-scoring one, in whatever "
    "order they are listed",
    when=lambda o: o.positives != "index",
)
def _rank_best_positive(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=False, multi=True)
    got = _ranks_of(options, scores, positives)
    want = positive_ranks(scores, positives)
    if not _close(got, want, 1e-6):
        raise _Violation({"scores": scores, "positives": positives}, got, want)


@_register(
    RANK_TABLE,
    "tie_bounds",
    "with ties, a rank lies between the optimistic rank (1 + items above) and the "
    "pessimistic one (also counting the tied negatives)",
)
def _rank_tie_bounds(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=True, multi=None)
    got = _ranks_of(options, scores, positives)
    low = positive_ranks(scores, positives, ties="optimistic")
    high = positive_ranks(scores, positives, ties="pessimistic")
    if not bool(np.all((low - _SLACK <= got) & (got <= high + _SLACK))):
        raise _Violation(
            {"scores": scores, "positives": positives},
            got,
            {"between optimistic": low, "and pessimistic": high},
        )


@_register(
    RANK_TABLE,
    "tie_policy",
    "with ties, a rank is this library's rank under the declared policy "
    "(positive_ranks(..., ties=...))",
    when=lambda o: o.declared,
)
def _rank_tie_policy(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=True, multi=None)
    got = _ranks_of(options, scores, positives)
    want = positive_ranks(scores, positives, ties=options.policy)
    if not _close(got, want, 1e-6):
        raise _Violation(
            {"scores": scores, "positives": positives, "ties": options.ties}, got, want
        )


@_register(
    RANK_TABLE,
    "negative_scores",
    "negative scores (cosines below 0) rank like any others: lowering every score by a "
    "constant changes no rank",
)
def _rank_negative_scores(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    shifted = _shifted(data, scores)
    before = _ranks_of(options, scores, positives)
    after = _ranks_of(options, shifted, positives)
    if not _close(after, before, 1e-6):
        raise _Violation(
            {"scores": scores, "positives": positives, "lowered scores": shifted},
            {"lowered": after},
            {"as before": before},
        )


@_register(
    RANK_TABLE,
    "gallery_permutation",
    "reordering the gallery columns (the positives moved with them) changes no rank",
)
def _rank_gallery_permutation(data: st.DataObject, options: Options) -> None:
    problem = _draw_problem(data, options, ties=options.declared, multi=None)
    (scores, positives), order = _permuted_columns(data, problem)
    before = _ranks_of(options, *problem)
    after = _ranks_of(options, scores, positives)
    if not _close(after, before, 1e-6):
        raise _Violation(
            {"scores": problem[0], "positives": problem[1], "column order": order},
            {"reordered": after},
            {"as before": before},
        )


@_register(
    RANK_TABLE, "query_permutation", "reordering the queries reorders their ranks the same way"
)
def _rank_query_permutation(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    order = data.draw(st.permutations(range(scores.shape[0])))
    before = _ranks_of(options, scores, positives)
    after = _ranks_of(options, scores[order], [positives[q] for q in order])
    if not _close(after, before[order], 1e-6):
        raise _Violation(
            {"scores": scores, "positives": positives, "query order": order},
            {"reordered": after},
            {"ranks[query order]": before[order]},
        )


@_register(
    RANK_TABLE,
    "increasing_transform",
    "a strictly increasing transform of the scores (2s + 1, s**3, exp(s / 4)) changes no rank",
)
def _rank_increasing_transform(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    name = data.draw(st.sampled_from(sorted(_TRANSFORMS)))
    before = _ranks_of(options, scores, positives)
    after = _ranks_of(options, _TRANSFORMS[name](scores), positives)
    if not _close(after, before, 1e-6):
        raise _Violation(
            {"scores": scores, "positives": positives, "transform": name},
            {"transformed": after},
            {"as before": before},
        )


@_register(
    RANK_TABLE,
    "added_negative",
    "adding a gallery item that is no query's positive never improves a rank and worsens "
    "it by at most 1",
)
def _rank_added_negative(data: st.DataObject, options: Options) -> None:
    scores, positives = _draw_problem(data, options, ties=options.declared, multi=None)
    wider = _new_column(data, scores, ties=options.declared)
    before = _ranks_of(options, scores, positives)
    after = _ranks_of(options, wider, positives)
    change = after - before
    if not bool(np.all((change >= -_SLACK) & (change <= 1 + _SLACK))):
        raise _Violation(
            {"scores": scores, "positives": positives, "added column": wider[:, -1]},
            {"before": before, "after": after},
            "before <= after <= before + 1",
        )


#: The properties of :func:`check_rank_function`, in the order they run.
RANK_PROPERTIES: tuple[Property, ...] = tuple(RANK_TABLE)


def check_rank_function(
    fn: Callable[..., Any],
    *,
    ties: Claim = "expected",
    positives: Form = "ragged",
    backend: Backend = "numpy",
    adapter: Callable[..., Any] | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> CheckResult:
    """Check a function that ranks positives against the invariants of :data:`RANK_PROPERTIES`.

    Parameters
    ----------
    fn : callable
        Called as ``fn(scores, positives)``: ``scores`` a float64 ``[Q, G]`` matrix
        (higher is better), ``positives`` the relevant columns of each query in the form
        ``positives`` names. It returns the 1-based rank of each query's best positive,
        ``[Q]``, as a numpy array, tensor or list.
    ties : {"expected", "average", "optimistic", "pessimistic", "arbitrary"}, default "expected"
        The tie policy ``fn`` implements, as :func:`~ccr_metrics.positive_ranks` names
        them. ``"arbitrary"`` is for a function that breaks ties in an order of its own
        (an argsort): it is checked to lie between the optimistic and pessimistic
        ranks, and the invariances are checked on tie-free scores only.
    positives : {"ragged", "mask", "index"}, default "ragged"
        What ``fn`` receives: lists of column indices (several per query, in no
        particular order), a bool mask ``[Q, G]``, or one int64 column per query
        ``[Q]`` (the multi-positive property is then skipped).
    backend : {"numpy", "torch"}, default "numpy"
        Whether ``scores`` and array positives are numpy arrays or torch tensors.
    adapter : callable, optional
        Called as ``adapter(fn, scores, positives)`` in place of ``fn(scores,
        positives)``, for functions with another signature (0-based output, a
        transposed matrix, extra arguments).
    max_examples : int, default 50
        Examples drawn per property. The search is derandomized and keeps no example
        database, so a run is reproducible; raise it to search harder.

    Returns
    -------
    CheckResult
        The names of the properties that held.

    Raises
    ------
    CheckFailure
        An ``AssertionError``, if a property fails: for each failed property its name
        and meaning, the smallest input found, what ``fn`` returned and what was
        expected. ``.failed`` holds the names.
    ValueError
        If ``fn`` or ``adapter`` is not callable, or an option is not a valid choice.

    Notes
    -----
    Scores are whole numbers (above 0 except where a property lowers them): four
    values where ties are wanted, all distinct otherwise, so every float dtype holds
    them exactly. Queries number 1 to 5, gallery items 1 to 7.

    Examples
    --------
    >>> import ccr_metrics as cm
    >>> print(check_rank_function(cm.positive_ranks, max_examples=10))
    check_rank_function(positive_ranks): 10 properties hold on 10 examples each
    """
    budget = _checked(fn, adapter, max_examples)
    check_choice("ties", ties, CLAIMS)
    check_choice("positives", positives, FORMS)
    check_choice("backend", backend, BACKENDS)
    options = Options(fn, adapter, backend=backend, ties=ties, positives=positives)
    return run_check("check_rank_function", RANK_PROPERTIES, options, budget)
