"""Invariant checks of user-written ranks, Recall@K, MRV and 1-to-K losses.

The engine behind :func:`ccr_metrics.testing.check_rank_function` and its siblings. Each
check owns one table of :class:`Property` entries (a name, a one-line meaning and a test
that draws an input with hypothesis, calls the user's function and raises a violation).
:func:`run_check` runs every entry that applies to the options given, derandomized and
without an example database, and gathers the shrunk counter-examples into one
:class:`CheckFailure`. This library is the oracle where it computes the same quantity;
the other properties relate the function's outputs on related inputs to each other.

Canonical calls (what the user's function, or its ``adapter``, receives):

- ranks: ``fn(scores [Q, G], positives) -> 1-based ranks [Q]``;
- recall: ``fn(scores [Q, G], positives, k) -> fraction in [0, 1]``;
- MRV: ``fn(ranks [N, K]) -> float``, and ``fn(ranks, mask=mask)`` when masked;
- loss: ``fn(image_embeds [B, D], text_embeds [B, K, D], temperature=tau) -> 0-dim
  tensor`` (or a tuple whose first item is it), ``text_mask=`` added when masked.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from ._contrastive import VARIANTS, Variant, one_to_k_contrastive_loss
from ._validation import InputError, check_choice, check_positive_int
from .mrv import REDUCTIONS, Reduction, mean_rank_variance
from .ranking import positive_ranks, rank_counts
from .recall import recall_at_k
from .ties import TIES, Ties

__all__ = [
    "CLAIMS",
    "DEFAULT_MAX_EXAMPLES",
    "LOSS_PROPERTIES",
    "MRV_PROPERTIES",
    "RANK_PROPERTIES",
    "RECALL_PROPERTIES",
    "CheckFailure",
    "CheckResult",
    "Property",
    "PropertyFailure",
    "check_contrastive_loss",
    "check_mrv_function",
    "check_rank_function",
    "check_recall_function",
]

Claim = Literal["optimistic", "pessimistic", "average", "expected", "arbitrary"]
#: The tie behaviours a checked rank or recall function can declare: a policy of
#: :data:`~ccr_metrics.TIES`, or ``"arbitrary"`` (ties broken in an order of its own,
#: as an argsort does), checked against the optimistic and pessimistic bounds only.
CLAIMS: tuple[Claim, ...] = (*TIES, "arbitrary")
Form = Literal["ragged", "mask", "index"]
FORMS: tuple[Form, ...] = ("ragged", "mask", "index")
Backend = Literal["numpy", "torch"]
BACKENDS: tuple[Backend, ...] = ("numpy", "torch")
#: Examples each property draws unless ``max_examples`` says otherwise.
DEFAULT_MAX_EXAMPLES = 50
# The gradient check runs two evaluations per embedding entry: it gets a fifth of the budget.
_GRADIENT_SHARE = 5
_TEMPERATURES = (0.05, 0.07, 0.1, 0.5, 1.0)
# Slack of the order relations on ranks and recall: what float32 arithmetic leaves.
_SLACK = 1e-6


class _Violation(Exception):
    """A property did not hold on one input; what the report shows about it."""

    def __init__(self, inputs: dict[str, Any], returned: Any, expected: Any) -> None:
        super().__init__("property violated")
        self.inputs = inputs
        self.returned = returned
        self.expected = expected


@dataclass(frozen=True)
class Options:
    """What the user said about the checked function, and how to call it."""

    fn: Callable[..., Any]
    adapter: Callable[..., Any] | None = None
    backend: Backend = "numpy"
    ties: Claim = "expected"
    positives: Form = "ragged"
    reduction: Reduction = "variance"
    masked: bool = False
    variant: Variant = "paper"
    rtol: float = 1e-6

    def call(self, shown: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Call the function (through the adapter); an exception becomes a violation."""
        try:
            if self.adapter is None:
                return self.fn(*args, **kwargs)
            return self.adapter(self.fn, *args, **kwargs)
        except Exception as exc:  # the user's code may raise anything: report it
            raise _Violation(shown, f"raised {type(exc).__name__}: {exc}", "a result") from exc

    def array(self, a: npt.NDArray[Any]) -> Any:
        """Return a copy of ``a`` as the backend's array type (the function may write to it)."""
        return torch.from_numpy(a.copy()) if self.backend == "torch" else a.copy()

    @property
    def declared(self) -> bool:
        """Whether the function claims a tie policy (rather than an arbitrary tie order)."""
        return self.ties != "arbitrary"

    @property
    def policy(self) -> Ties:
        """The declared tie policy; only the properties that apply when one is declared ask."""
        return cast(Ties, self.ties)


@dataclass(frozen=True)
class Property:
    """One named invariant of a check: ``test(data, options)`` raises on a counter-example."""

    #: Short identifier, what a failure names.
    name: str
    #: The invariant in one line.
    meaning: str
    #: Draws an input from ``data``, calls the function through the options, raises on a
    #: counter-example.
    test: Callable[[st.DataObject, Options], None]
    #: Whether the property applies to what the user declared (a mask, a tie policy).
    applies: Callable[[Options], bool]


@dataclass(frozen=True)
class PropertyFailure:
    """A property that failed: its shrunk input, what the function gave, what was expected."""

    name: str
    meaning: str
    inputs: dict[str, Any]
    returned: Any
    expected: Any

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.meaning}", "  input:"]
        lines += [_line(f"    {key} = ", value) for key, value in self.inputs.items()]
        lines.append(_line("  returned: ", self.returned))
        lines.append(_line("  expected: ", self.expected))
        return "\n".join(lines)


class CheckFailure(AssertionError):
    """Raised by a check when properties fail: an ``AssertionError`` listing each one."""

    def __init__(
        self, check: str, function: str, failures: Sequence[PropertyFailure], n_checked: int
    ) -> None:
        self.check = check
        self.function = function
        self.failures = tuple(failures)
        head = (
            f"{check}({function}): {len(failures)} of {n_checked} properties failed; "
            "the inputs below are the smallest counter-examples found"
        )
        super().__init__("\n\n".join([head, *(str(f) for f in failures)]))

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the failed properties, in table order."""
        return tuple(f.name for f in self.failures)


@dataclass(frozen=True)
class CheckResult:
    """What a check returns when every property holds."""

    #: The check that ran (``"check_rank_function"``, ...).
    check: str
    #: The checked function's name.
    function: str
    #: Names of the properties that held, in table order.
    properties: tuple[str, ...]
    #: Examples drawn per property.
    max_examples: int

    def __str__(self) -> str:
        return (
            f"{self.check}({self.function}): {len(self.properties)} properties hold "
            f"on {self.max_examples} examples each"
        )


def run_check(
    check: str, table: Sequence[Property], options: Options, max_examples: int
) -> CheckResult:
    """Run every applicable property of ``table``; raise :class:`CheckFailure` if any fails."""
    function = getattr(options.fn, "__qualname__", None) or repr(options.fn)
    checked, failures = [], []
    threads = torch.get_num_threads()
    # The inputs hold a few dozen numbers: waking a thread pool costs more than the work,
    # milliseconds per call on a busy machine. Serial for the check, restored after.
    torch.set_num_threads(1)
    try:
        for prop in table:
            if not prop.applies(options):
                continue
            checked.append(prop.name)
            share = _GRADIENT_SHARE if prop.name == "gradient" else 1
            failure = _falsify(prop, options, max(1, max_examples // share))
            if failure is not None:
                failures.append(failure)
    finally:
        torch.set_num_threads(threads)
    if failures:
        raise CheckFailure(check, function, failures, len(checked))
    return CheckResult(check, function, tuple(checked), max_examples)


def _falsify(prop: Property, options: Options, max_examples: int) -> PropertyFailure | None:
    """Search for a counter-example to ``prop``; the shrunk one, or None if none is found."""

    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        # No explain phase: it costs most of the search and adds nothing to the report.
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )
    @given(st.data())
    def search(data: st.DataObject) -> None:
        prop.test(data, options)

    try:
        search()
    except _Violation as v:  # hypothesis re-raises the shrunk example's violation
        return PropertyFailure(prop.name, prop.meaning, v.inputs, v.returned, v.expected)
    except Flaky as exc:
        return PropertyFailure(
            prop.name,
            prop.meaning,
            {},
            f"different results on the same input ({type(exc).__name__})",
            "a deterministic function",
        )
    return None


def _line(prefix: str, value: Any) -> str:
    """``prefix`` and ``value``, the continuation lines of an array aligned under it."""
    return prefix + _show(value).replace("\n", "\n" + " " * len(prefix))


def _show(value: Any) -> str:
    """``value`` printed compactly: arrays as nested lists (a mask as 0/1), floats to 10 places."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            value = value.astype(np.int64)
        return np.array2string(value, separator=", ", max_line_width=80, precision=8, threshold=400)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_show(v)}" for k, v in value.items())
    if isinstance(value, float):
        return repr(round(value, 10))
    return str(value)


def _register(
    table: list[Property], name: str, meaning: str, *, when: Callable[[Options], bool] | None = None
) -> Callable[[Callable[[st.DataObject, Options], None]], Callable[[st.DataObject, Options], None]]:
    def add(
        test: Callable[[st.DataObject, Options], None],
    ) -> Callable[[st.DataObject, Options], None]:
        table.append(Property(name, meaning, test, when or (lambda _: True)))
        return test

    return add


def _as_float_array(value: Any, shown: dict[str, Any], wanted: str) -> npt.NDArray[np.float64]:
    """Return the output as float64; one that is no array of numbers is a violation."""
    try:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().double().numpy()
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        raise _Violation(shown, value, wanted) from None


def _close(got: Any, want: Any, rtol: float, atol: float = 1e-9) -> bool:
    return bool(np.allclose(got, want, rtol=rtol, atol=atol))


# --------------------------------------------------------------------------- ranks and recall

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


# --------------------------------------------------------------------------- MRV


def _draw_ranks(
    data: st.DataObject, *, n: int | None = None, k: int | None = None
) -> npt.NDArray[np.float64]:
    """1-based whole-number ranks ``[N, K]`` with ``K >= 2``."""
    n = data.draw(st.integers(1, 6)) if n is None else n
    k = data.draw(st.integers(2, 5)) if k is None else k
    values = data.draw(st.lists(st.integers(1, 20), min_size=n * k, max_size=n * k))
    return np.asarray(values, dtype=np.float64).reshape(n, k)


def _draw_mask(data: st.DataObject, shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """Draw a presence mask with a missing entry and an instance in two languages."""
    n, k = shape
    cells = data.draw(st.lists(st.booleans(), min_size=n * k, max_size=n * k))
    mask = np.asarray(cells, dtype=bool).reshape(n, k)
    mask[data.draw(st.integers(0, n - 1)), :2] = True
    if mask.all():
        mask[data.draw(st.integers(0, n - 1)), -1] = False
        mask[data.draw(st.integers(0, n - 1)), :2] = True
    return mask


def _mrv_of(
    options: Options, ranks: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_] | None = None
) -> float:
    """``fn(ranks)``, or ``fn(ranks, mask=...)`` when masked (all True unless ``mask``)."""
    shown: dict[str, Any] = {"ranks": ranks} if mask is None else {"ranks": ranks, "mask": mask}
    if not options.masked:
        out = options.call(shown, options.array(ranks))
    else:
        present = np.ones(ranks.shape, dtype=bool) if mask is None else mask
        out = options.call(shown, options.array(ranks), mask=options.array(present))
    got = _as_float_array(out, shown, "one number")
    if got.size != 1:
        raise _Violation(shown, out, "one number")
    return float(got.reshape(()))


def _scale_power(options: Options) -> int:
    return 2 if options.reduction == "variance" else 1


MRV_TABLE: list[Property] = []


@_register(
    MRV_TABLE,
    "reference",
    "MRV is the mean over instances of the spread of their ranks across languages "
    "(ccr_metrics.mean_rank_variance, reduction as declared)",
)
def _mrv_reference(data: st.DataObject, options: Options) -> None:
    ranks = _draw_ranks(data)
    got = _mrv_of(options, ranks)
    want = mean_rank_variance(ranks, reduction=options.reduction)
    if not _close(got, want, options.rtol):
        raise _Violation({"ranks": ranks}, got, want)


@_register(
    MRV_TABLE,
    "two_languages",
    "one instance ranked a and b in two languages has MRV ((a - b) / 2)**2, or abs(a - b) / 2 "
    "for std: the population spread (ddof = 0)",
)
def _mrv_two_languages(data: st.DataObject, options: Options) -> None:
    ranks = _draw_ranks(data, n=1, k=2)
    got = _mrv_of(options, ranks)
    half = abs(ranks[0, 0] - ranks[0, 1]) / 2
    want = half ** _scale_power(options)
    if not _close(got, want, options.rtol):
        raise _Violation({"ranks": ranks}, got, want)


@_register(
    MRV_TABLE,
    "offset_invariance",
    "adding a constant to every rank (0-based or 1-based positions) leaves MRV unchanged",
)
def _mrv_offset_invariance(data: st.DataObject, options: Options) -> None:
    ranks = _draw_ranks(data)
    offset = data.draw(st.sampled_from((-1, 1, 10, 1000)))
    before = _mrv_of(options, ranks)
    after = _mrv_of(options, ranks + offset)
    if not _close(after, before, options.rtol):
        raise _Violation(
            {"ranks": ranks, "offset": offset}, {"ranks + offset": after}, {"as before": before}
        )


@_register(MRV_TABLE, "language_order", "reordering the languages (columns) leaves MRV unchanged")
def _mrv_language_order(data: st.DataObject, options: Options) -> None:
    ranks = _draw_ranks(data)
    order = data.draw(st.permutations(range(ranks.shape[1])))
    before = _mrv_of(options, ranks)
    after = _mrv_of(options, ranks[:, order])
    if not _close(after, before, options.rtol):
        raise _Violation(
            {"ranks": ranks, "language order": order}, {"reordered": after}, {"as before": before}
        )


@_register(MRV_TABLE, "instance_order", "reordering the instances (rows) leaves MRV unchanged")
def _mrv_instance_order(data: st.DataObject, options: Options) -> None:
    ranks = _draw_ranks(data)
    order = data.draw(st.permutations(range(ranks.shape[0])))
    before = _mrv_of(options, ranks)
    after = _mrv_of(options, ranks[order])
    if not _close(after, before, options.rtol):
        raise _Violation(
            {"ranks": ranks, "instance order": order}, {"reordered": after}, {"as before": before}
        )


@_register(
    MRV_TABLE,
    "zero_iff_agree",
    "MRV is 0 when every instance has the same rank in all its languages, and above 0 when "
    "one instance's ranks differ",
)
def _mrv_zero_iff_agree(data: st.DataObject, options: Options) -> None:
    n, k = data.draw(st.integers(1, 6)), data.draw(st.integers(2, 5))
    agreeing = np.repeat(_draw_ranks(data, n=n, k=1), k, axis=1)
    got = _mrv_of(options, agreeing)
    if not _close(got, 0.0, 0.0, atol=1e-9):
        raise _Violation({"ranks": agreeing}, got, 0.0)
    differing = agreeing.copy()
    differing[data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, k - 1))] += data.draw(
        st.integers(1, 5)
    )
    got = _mrv_of(options, differing)
    if not got > 1e-9:
        raise _Violation({"ranks": differing}, got, "a value above 0")


@_register(
    MRV_TABLE,
    "scaling",
    "multiplying every rank by c multiplies MRV by c**2 (variance) or by c (std)",
)
def _mrv_scaling(data: st.DataObject, options: Options) -> None:
    ranks = _draw_ranks(data)
    c = data.draw(st.sampled_from((2, 3, 10)))
    before = _mrv_of(options, ranks)
    after = _mrv_of(options, ranks * c)
    power = _scale_power(options)
    if not _close(after, before * c**power, options.rtol):
        raise _Violation(
            {"ranks": ranks, "c": c},
            {"MRV(c * ranks)": after, "MRV(ranks)": before},
            {f"c**{power} * MRV(ranks)": before * c**power},
        )


@_register(
    MRV_TABLE,
    "masked_ignored",
    "the values at masked-out entries (missing languages) change nothing",
    when=lambda o: o.masked,
)
def _mrv_masked_ignored(data: st.DataObject, options: Options) -> None:
    ranks = _draw_ranks(data)
    mask = _draw_mask(data, ranks.shape)
    other = np.where(mask, ranks, _draw_ranks(data, n=ranks.shape[0], k=ranks.shape[1]) * 7)
    before = _mrv_of(options, ranks, mask)
    after = _mrv_of(options, other, mask)
    if not _close(after, before, options.rtol):
        raise _Violation(
            {"ranks": ranks, "mask": mask, "other ranks": other},
            {"with other ranks": after},
            {"as before": before},
        )


@_register(
    MRV_TABLE,
    "masked_reference",
    "with a mask, each instance's spread is over its present languages and instances with "
    "fewer than two are left out (mean_rank_variance(ranks, mask=mask))",
    when=lambda o: o.masked,
)
def _mrv_masked_reference(data: st.DataObject, options: Options) -> None:
    ranks = _draw_ranks(data)
    mask = _draw_mask(data, ranks.shape)
    got = _mrv_of(options, ranks, mask)
    want = mean_rank_variance(ranks, mask=mask, reduction=options.reduction)
    if not _close(got, want, options.rtol):
        raise _Violation({"ranks": ranks, "mask": mask}, got, want)


# --------------------------------------------------------------------------- losses

Batch = tuple[torch.Tensor, torch.Tensor, float]


def _unit(values: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Rows of whole numbers, L2-normalised; a zero row becomes the first unit vector."""
    x = torch.tensor(values, dtype=torch.float64).reshape(*shape)
    norm = x.norm(dim=-1, keepdim=True)
    first = torch.zeros_like(x)
    first[..., 0] = 1.0
    return torch.where(norm > 0, x / norm.clamp(min=1e-12), first)


def _draw_unit(data: st.DataObject, shape: tuple[int, ...]) -> torch.Tensor:
    """Unit-norm float64 rows of the given shape, from whole numbers in [-3, 3]."""
    n = math.prod(shape)
    return _unit(data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), shape)


def _draw_batch(data: st.DataObject, *, k_min: int = 1, k_max: int = 3) -> Batch:
    """Unit-norm float64 ``images [B, D]``, ``texts [B, K, D]`` and a temperature."""
    b = data.draw(st.integers(1, 4))
    k = data.draw(st.integers(k_min, k_max))
    d = data.draw(st.integers(2, 4))
    images, texts = _draw_unit(data, (b, d)), _draw_unit(data, (b, k, d))
    return images, texts, data.draw(st.sampled_from(_TEMPERATURES))


def _draw_text_mask(data: st.DataObject, b: int, k: int) -> torch.Tensor:
    """Draw a text mask ``[B, K]``: a text per image and, for ``K >= 2``, one missing."""
    cells = data.draw(st.lists(st.booleans(), min_size=b * k, max_size=b * k))
    mask = torch.tensor(cells, dtype=torch.bool).reshape(b, k)
    kept = data.draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b))
    mask[torch.arange(b), torch.tensor(kept)] = True
    if k >= 2 and bool(mask.all()):
        mask[0, (kept[0] + 1) % k] = False
    return mask


def _loss_of(
    options: Options,
    images: torch.Tensor,
    texts: torch.Tensor,
    tau: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``fn(images, texts, temperature=tau)``, ``text_mask=`` (default all True) when masked."""
    shown: dict[str, Any] = {"image_embeds": images, "text_embeds": texts, "temperature": tau}
    # Clones (differentiable) keep the shown input intact should the function write to it.
    if not options.masked:
        out = options.call(shown, images.clone(), texts.clone(), temperature=tau)
    else:
        if mask is None:
            mask = torch.ones(texts.shape[:2], dtype=torch.bool)
        else:
            shown["text_mask"] = mask
        out = options.call(
            shown, images.clone(), texts.clone(), temperature=tau, text_mask=mask.clone()
        )
    value = out[0] if isinstance(out, tuple) else out
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.reshape(())
    if isinstance(value, numbers.Real):
        return torch.tensor(float(value), dtype=torch.float64)
    raise _Violation(shown, out, "one number: a 0-dim tensor, or a tuple starting with one")


def _shown_batch(batch: Batch) -> dict[str, Any]:
    images, texts, tau = batch
    return {"image_embeds": images, "text_embeds": texts, "temperature": tau}


def _clip_terms(images: torch.Tensor, texts: torch.Tensor, tau: float) -> tuple[float, float]:
    """Return the two cross-entropies of the 1-to-1 CLIP loss of ``B`` pairs."""
    logits = images @ texts.T / tau
    labels = torch.arange(images.shape[0])
    return float(F.cross_entropy(logits, labels)), float(F.cross_entropy(logits.T, labels))


LOSS_TABLE: list[Property] = []


@_register(
    LOSS_TABLE,
    "reference",
    "the loss equals ccr_metrics.losses.one_to_k_contrastive_loss(..., variant=...).total",
)
def _loss_reference(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    got = float(_loss_of(options, images, texts, tau))
    want = float(
        one_to_k_contrastive_loss(
            images,
            texts,
            temperature=tau,
            variant=options.variant,
        ).total
    )
    if not _close(got, want, options.rtol):
        raise _Violation(_shown_batch(batch), got, want)


@_register(
    LOSS_TABLE,
    "one_to_one",
    "with K = 1 the loss is the CLIP loss CE(logits) + CE(logits.T), logits = "
    "images @ texts.T / temperature (released variant: half of it)",
)
def _loss_one_to_one(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data, k_max=1)
    got = float(_loss_of(options, images, texts, tau))
    i2t, t2i = _clip_terms(images, texts[:, 0], tau)
    want = (i2t + t2i) * (1.0 if options.variant == "paper" else 0.5)
    if not _close(got, want, options.rtol):
        raise _Violation(_shown_batch(batch), got, want)


@_register(
    LOSS_TABLE,
    "k_weighting",
    "each of an image's K texts is a positive of weight 1/K: K identical copies of each "
    "text add log K to the 1-to-1 image-to-text term",
)
def _loss_k_weighting(data: st.DataObject, options: Options) -> None:
    images, texts, tau = _draw_batch(data, k_min=2)
    k = texts.shape[1]
    copies = texts[:, :1].expand(-1, k, -1).contiguous()
    got = float(_loss_of(options, images, copies, tau))
    i2t, t2i = _clip_terms(images, copies[:, 0], tau)
    if options.variant == "paper":
        want = i2t + math.log(k) + t2i
        relation = f"CLIP i2t + log K + CLIP t2i = {want:.10g}"
    else:
        want = (i2t + math.log(k)) / 2 + t2i / (2 * k)
        relation = f"(CLIP i2t + log K) / 2 + CLIP t2i / (2 K) = {want:.10g}"
    if not _close(got, want, options.rtol):
        raise _Violation(_shown_batch((images, copies, tau)), got, relation)


@_register(
    LOSS_TABLE,
    "batch_permutation",
    "reordering the instances of the batch (each image with its texts) leaves the loss unchanged",
)
def _loss_batch_permutation(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    order = data.draw(st.permutations(range(images.shape[0])))
    before = float(_loss_of(options, images, texts, tau))
    after = float(_loss_of(options, images[order], texts[order], tau))
    if not _close(after, before, options.rtol):
        shown = {**_shown_batch(batch), "instance order": order}
        raise _Violation(shown, {"reordered": after}, {"as before": before})


@_register(
    LOSS_TABLE,
    "language_permutation",
    "reordering the K language slots (alike for every image) leaves the loss unchanged",
)
def _loss_language_permutation(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data, k_min=2)
    order = data.draw(st.permutations(range(texts.shape[1])))
    before = float(_loss_of(options, images, texts, tau))
    after = float(_loss_of(options, images, texts[:, order].contiguous(), tau))
    if not _close(after, before, options.rtol):
        shown = {**_shown_batch(batch), "language order": order}
        raise _Violation(shown, {"reordered": after}, {"as before": before})


@_register(
    LOSS_TABLE,
    "temperature_scaling",
    "only cosine / temperature matters: scaling the image embeddings by c and the "
    "temperature by c leaves the loss unchanged",
)
def _loss_temperature_scaling(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    c = data.draw(st.sampled_from((0.5, 2.0, 3.0)))
    before = float(_loss_of(options, images, texts, tau))
    after = float(_loss_of(options, images * c, texts, tau * c))
    if not _close(after, before, options.rtol):
        shown = {**_shown_batch(batch), "c": c}
        raise _Violation(
            shown,
            {"loss(c * images, temperature * c)": after},
            {"loss(images, temperature)": before},
        )


@_register(
    LOSS_TABLE,
    "gradient",
    "the autograd gradient with respect to both embeddings matches central finite "
    "differences (float64)",
)
def _loss_gradient(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    leaves = (images.clone().requires_grad_(True), texts.clone().requires_grad_(True))
    loss = _loss_of(options, leaves[0], leaves[1], tau)
    if not loss.requires_grad:
        raise _Violation(_shown_batch(batch), "a value without gradient", "a differentiable tensor")
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    eps = 1e-6
    for which, name in enumerate(("image_embeds", "text_embeds")):
        base = leaves[which].detach()
        analytic = torch.zeros_like(base) if grads[which] is None else grads[which]
        numeric = torch.zeros_like(base)
        for i in range(base.numel()):
            step = torch.zeros_like(base)
            step.view(-1)[i] = eps
            up, down = [images, texts], [images, texts]
            up[which], down[which] = base + step, base - step
            with torch.no_grad():
                difference = _loss_of(options, up[0], up[1], tau) - _loss_of(
                    options, down[0], down[1], tau
                )
            numeric.view(-1)[i] = float(difference) / (2 * eps)
        if not torch.allclose(analytic, numeric, rtol=1e-4, atol=1e-6):
            raise _Violation(
                _shown_batch(batch),
                {f"autograd d/d {name}": analytic},
                {"finite differences": numeric},
            )


@_register(
    LOSS_TABLE,
    "masked_texts",
    "a masked-out (missing) text contributes nothing: changing its embedding leaves the "
    "loss unchanged",
    when=lambda o: o.masked,
)
def _loss_masked_texts(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data, k_min=2)
    mask = _draw_text_mask(data, *texts.shape[:2])
    changed = torch.where(mask[..., None], texts, _draw_unit(data, tuple(texts.shape)))
    before = float(_loss_of(options, images, texts, tau, mask))
    after = float(_loss_of(options, images, changed, tau, mask))
    if not _close(after, before, options.rtol):
        shown = {**_shown_batch(batch), "text_mask": mask, "changed text_embeds": changed}
        raise _Violation(shown, {"changed": after}, {"as before": before})


@_register(
    LOSS_TABLE,
    "masked_reference",
    "with a mask, the loss equals one_to_k_contrastive_loss(..., text_mask=...): missing "
    "texts leave every numerator and denominator, image j's texts weigh 1/K_j",
    when=lambda o: o.masked,
)
def _loss_masked_reference(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    mask = _draw_text_mask(data, *texts.shape[:2])
    got = float(_loss_of(options, images, texts, tau, mask))
    want = float(
        one_to_k_contrastive_loss(
            images,
            texts,
            temperature=tau,
            text_mask=mask,
            variant=options.variant,
        ).total
    )
    if not _close(got, want, options.rtol):
        raise _Violation({**_shown_batch(batch), "text_mask": mask}, got, want)


#: The properties of :func:`check_rank_function`, in the order they run.
RANK_PROPERTIES: tuple[Property, ...] = tuple(RANK_TABLE)
#: The properties of :func:`check_recall_function`.
RECALL_PROPERTIES: tuple[Property, ...] = tuple(RECALL_TABLE)
#: The properties of :func:`check_mrv_function`.
MRV_PROPERTIES: tuple[Property, ...] = tuple(MRV_TABLE)
#: The properties of :func:`check_contrastive_loss`.
LOSS_PROPERTIES: tuple[Property, ...] = tuple(LOSS_TABLE)


def _checked(fn: object, adapter: object, max_examples: object) -> int:
    """Validate what every check takes; return the example budget."""
    if not callable(fn):
        raise InputError(f"fn must be callable, got {type(fn).__name__}", argument="fn")
    if adapter is not None and not callable(adapter):
        raise InputError(
            f"adapter must be callable or None, got {type(adapter).__name__}", argument="adapter"
        )
    return check_positive_int("max_examples", max_examples)


def _check_masked(masked: object) -> None:
    if not isinstance(masked, bool):
        raise InputError(f"masked must be True or False, got {masked!r}", argument="masked")


def _check_rtol(rtol: object) -> None:
    if (
        isinstance(rtol, bool)
        or not isinstance(rtol, numbers.Real)
        or not math.isfinite(rtol)
        or rtol <= 0
    ):
        raise InputError(f"rtol must be a finite positive number, got {rtol!r}", argument="rtol")


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


def check_mrv_function(
    fn: Callable[..., Any],
    *,
    reduction: Reduction = "variance",
    masked: bool = False,
    backend: Backend = "numpy",
    adapter: Callable[..., Any] | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    rtol: float = 1e-6,
) -> CheckResult:
    """Check a Mean Rank Variance function against the invariants of :data:`MRV_PROPERTIES`.

    Parameters
    ----------
    fn : callable
        Called as ``fn(ranks)`` with float64 whole-number ranks ``[N, K]`` (instances
        x languages, ``K >= 2``), and as ``fn(ranks, mask=mask)`` with a bool mask
        ``[N, K]`` (True where a language is present) when ``masked``. It returns one
        number.
    reduction : {"variance", "std"}, default "variance"
        What ``fn`` computes: the paper's Eq. 7 (mean population variance) or the
        released code's mean population standard deviation.
    masked : bool, default False
        Whether ``fn`` takes ``mask=``; adds the properties on missing languages. The
        entries outside the mask hold finite ranks that must not matter.
    backend : {"numpy", "torch"}, default "numpy"
        Whether ``ranks`` and ``mask`` are numpy arrays or torch tensors.
    adapter : callable, optional
        Called as ``adapter(fn, ranks)`` (``adapter(fn, ranks, mask=mask)``) in place
        of ``fn(...)``.
    max_examples : int, default 50
        Examples drawn per property (derandomized, no database).
    rtol : float, default 1e-6
        Relative tolerance of every comparison (absolute: 1e-9).

    Returns
    -------
    CheckResult
        The names of the properties that held.

    Raises
    ------
    CheckFailure
        An ``AssertionError`` naming each failed property, with its shrunk input.
    ValueError
        If ``fn`` or ``adapter`` is not callable, or an option is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> def released_mrv(ranks):  # the released code: mean of the per-instance np.std
    ...     return float(np.mean(np.std(ranks, axis=1)))
    >>> check_mrv_function(released_mrv, reduction="std", max_examples=10).properties[:4]
    ('reference', 'two_languages', 'offset_invariance', 'language_order')
    """
    budget = _checked(fn, adapter, max_examples)
    check_choice("reduction", reduction, REDUCTIONS)
    _check_masked(masked)
    check_choice("backend", backend, BACKENDS)
    _check_rtol(rtol)
    options = Options(
        fn, adapter, backend=backend, reduction=reduction, masked=masked, rtol=float(rtol)
    )
    return run_check("check_mrv_function", MRV_PROPERTIES, options, budget)


def check_contrastive_loss(
    fn: Callable[..., Any],
    *,
    variant: Variant = "paper",
    masked: bool = False,
    adapter: Callable[..., Any] | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    rtol: float = 1e-6,
) -> CheckResult:
    """Check a 1-to-K contrastive loss against the invariants of :data:`LOSS_PROPERTIES`.

    Parameters
    ----------
    fn : callable
        Called as ``fn(image_embeds, text_embeds, temperature=tau)`` with float64
        tensors ``[B, D]`` and ``[B, K, D]`` (row ``j`` of ``text_embeds`` holds image
        ``j``'s ``K`` texts), and ``text_mask=`` a bool tensor ``[B, K]`` added when
        ``masked``. It returns the loss: a 0-dim tensor, or a tuple (such as
        :class:`~ccr_metrics.ContrastiveLossTerms`) whose first item is it. The
        embeddings are unit-norm except where a property scales them; ``fn`` must use
        them as given (not normalise them again).
    variant : {"paper", "released"}, default "paper"
        The scaling ``fn`` follows, as for
        :func:`~ccr_metrics.one_to_k_contrastive_loss`: Eq. 1 + Eq. 2 of the paper, or
        the authors' code's ``(i2t + t2i) / 2 / K``.
    masked : bool, default False
        Whether ``fn`` takes ``text_mask=``; adds the properties on missing texts.
    adapter : callable, optional
        Called as ``adapter(fn, image_embeds, text_embeds, temperature=tau)`` (and
        ``text_mask=``) in place of ``fn(...)``, e.g. to pass a logit scale.
    max_examples : int, default 50
        Examples drawn per property (derandomized, no database); the gradient check
        draws a fifth as many, each costing two evaluations per embedding entry.
    rtol : float, default 1e-6
        Relative tolerance of the value comparisons (absolute: 1e-9). The gradient
        check compares autograd to central differences with ``rtol=1e-4, atol=1e-6``,
        so ``fn`` must compute in float64 there.

    Returns
    -------
    CheckResult
        The names of the properties that held.

    Raises
    ------
    CheckFailure
        An ``AssertionError`` naming each failed property, with its shrunk input.
    ValueError
        If ``fn`` or ``adapter`` is not callable, or an option is invalid.

    Examples
    --------
    >>> import ccr_metrics as cm
    >>> result = check_contrastive_loss(cm.one_to_k_contrastive_loss, masked=True, max_examples=5)
    >>> result.properties[-2:]
    ('masked_texts', 'masked_reference')
    """
    budget = _checked(fn, adapter, max_examples)
    check_choice("variant", variant, VARIANTS)
    _check_masked(masked)
    _check_rtol(rtol)
    options = Options(fn, adapter, variant=variant, masked=masked, rtol=float(rtol))
    return run_check("check_contrastive_loss", LOSS_PROPERTIES, options, budget)
