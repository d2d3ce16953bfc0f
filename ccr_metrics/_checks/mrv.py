"""The Mean Rank Variance check: :data:`MRV_PROPERTIES` and :func:`check_mrv_function`.

Canonical call: ``fn(ranks [N, K]) -> float``, and ``fn(ranks, mask=mask)`` when masked,
with :func:`ccr_metrics.mean_rank_variance` as the reference. Also here: drawing rank
arrays and presence masks, and calling the checked function on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

from ..core._validation import check_choice
from ..core.mrv import REDUCTIONS, Reduction, mean_rank_variance
from .runner import (
    BACKENDS,
    DEFAULT_MAX_EXAMPLES,
    Backend,
    CheckResult,
    Options,
    Property,
    _as_float_array,
    _check_masked,
    _check_rtol,
    _checked,
    _close,
    _register,
    _Violation,
    run_check,
)


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


#: The properties of :func:`check_mrv_function`.
MRV_PROPERTIES: tuple[Property, ...] = tuple(MRV_TABLE)


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
