"""Retrieval problems for the rank and recall checks: drawn, varied and passed on.

A :data:`Problem` is a score matrix ``[Q, G]`` with each query's positives as lists of
distinct columns. Here are how one is drawn, the related problems the invariances
compare it to (columns permuted, scores lowered or transformed, a column added), how
the positives are handed over in the declared form, how the checked function's ranks or
recall are read back, and this library's recall as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

from ..core.ranking import rank_counts
from ..core.recall import recall_at_k
from ..core.ties import Ties
from .runner import Options, _as_float_array, _Violation

# Slack of the order relations on ranks and recall: what float32 arithmetic leaves.
_SLACK = 1e-6

Problem = tuple[npt.NDArray[np.float64], list[list[int]]]


def _draw_problem(
    data: st.DataObject, options: Options, *, ties: bool, multi: bool | None
) -> Problem:
    """Scores ``[Q, G]`` (all > 0) with positives as lists of distinct columns.

    ``ties`` draws from four values, otherwise all scores differ; ``multi`` gives every
    query two or more positives, False one, None either (one for the index form).
    """
    if options.positives == "index":
        multi = False
    elif multi is None:
        multi = data.draw(st.booleans())
    q = data.draw(st.integers(1, 5))
    g = data.draw(st.integers(2 if multi else 1, 7))
    n = q * g
    if ties:
        values = data.draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    else:
        values = [v + 1 for v in data.draw(st.permutations(range(n)))]
    scores = np.asarray(values, dtype=np.float64).reshape(q, g)
    column = st.integers(0, g - 1)
    if multi:
        rows = st.lists(column, min_size=2, max_size=g, unique=True)
        positives = [data.draw(rows) for _ in range(q)]
    else:
        positives = [[data.draw(column)] for _ in range(q)]
    return scores, positives


def _positives_arg(options: Options, positives: list[list[int]], n_gallery: int) -> Any:
    if options.positives == "ragged":
        return [list(p) for p in positives]
    if options.positives == "index":
        return options.array(np.asarray([p[0] for p in positives], dtype=np.int64))
    mask = np.zeros((len(positives), n_gallery), dtype=bool)
    for q, columns in enumerate(positives):
        mask[q, columns] = True
    return options.array(mask)


def _ranks_of(
    options: Options, scores: npt.NDArray[np.float64], positives: list[list[int]]
) -> npt.NDArray[np.float64]:
    shown = {"scores": scores, "positives": positives}
    out = options.call(
        shown, options.array(scores), _positives_arg(options, positives, scores.shape[1])
    )
    wanted = f"1-based ranks of shape [{scores.shape[0]}]"
    got = _as_float_array(out, shown, wanted)
    if got.shape != (scores.shape[0],):
        raise _Violation(shown, out, wanted)
    return got


def _recall_of(
    options: Options, scores: npt.NDArray[np.float64], positives: list[list[int]], k: int
) -> float:
    shown = {"scores": scores, "positives": positives, "k": k}
    out = options.call(
        shown, options.array(scores), _positives_arg(options, positives, scores.shape[1]), k
    )
    wanted = "one number, R@k as a fraction in [0, 1]"
    got = _as_float_array(out, shown, wanted)
    if got.size != 1:
        raise _Violation(shown, out, wanted)
    return float(got.reshape(()))


def _reference_recall(
    scores: npt.NDArray[np.float64], positives: list[list[int]], k: int, ties: Ties
) -> float:
    return recall_at_k(rank_counts(scores, positives), k, ties=ties)[k]


def _permuted_columns(data: st.DataObject, problem: Problem) -> tuple[Problem, list[int]]:
    scores, positives = problem
    order = data.draw(st.permutations(range(scores.shape[1])))
    new_place = np.argsort(order)  # old column j sits at new_place[j]
    moved = [[int(new_place[c]) for c in p] for p in positives]
    return (scores[:, order], moved), list(order)


def _shifted(data: st.DataObject, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``scores`` minus a constant that makes some or all of them negative."""
    return scores - data.draw(st.integers(1, int(scores.max()) + 5))


_TRANSFORMS: dict[str, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]] = {
    "2 * s + 1": lambda s: 2 * s + 1,
    "s ** 3": lambda s: s**3,
    "exp(s / 4)": lambda s: np.exp(s / 4),
}


def _new_column(
    data: st.DataObject, scores: npt.NDArray[np.float64], *, ties: bool
) -> npt.NDArray[np.float64]:
    """One more gallery item's scores: from the tie values, or between existing scores."""
    values = st.integers(1, 4) if ties else st.integers(0, int(scores.max())).map(lambda v: v + 0.5)
    column = data.draw(st.lists(values, min_size=scores.shape[0], max_size=scores.shape[0]))
    return np.concatenate([scores, np.asarray(column, dtype=np.float64)[:, None]], axis=1)
