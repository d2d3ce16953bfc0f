"""Where languages disagree: the paper's global and local inconsistency, made measurable.

Global inconsistency is a gap in recall between languages (:func:`recall_spread`).
Local inconsistency is one instance retrieved well in one language and badly in
another: :func:`consistency_at_k` counts how often that happens at a cut-off,
:func:`pairwise_disagreement` says which language pairs disagree, and
:func:`largest_spread` lists the instances that move most.
:func:`~ccr_metrics.consistency_breakdown` collects all of them for a
:class:`~ccr_metrics.Report`.

The functions take the rank matrices :func:`~ccr_metrics.mean_rank_variance` takes:
``ranks [N, K]`` (instances x languages) and an optional boolean ``mask [N, K]`` that
is False where an instance lacks a language.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._backend import Array, ArrayLike, to_output, to_tensor
from ._validation import InputError, check_positive_int, cutoff_as_float
from .mrv import Reduction, checked_rank_matrix, instance_rank_variance

# pandas and scipy (~0.9 s to import) are imported where used, so that
# `import ccr_metrics` does not pay for them.
if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "consistency_at_k",
    "largest_spread",
    "pairwise_disagreement",
    "recall_spread",
]


def recall_spread(recall_by_language: Mapping[str, float]) -> dict[str, Any]:
    """How far apart the languages' recall is (global inconsistency).

    Parameters
    ----------
    recall_by_language : mapping of str to float
        One recall value per language, for one direction and cut-off, e.g.
        ``{lang: report.recall()[lang]["i2t"][1] for lang in report.languages}``.

    Returns
    -------
    spread : dict
        ``{"range": max - min, "std": population std (ddof = 0), "best": language
        with the highest recall, "worst": language with the lowest}``. Ties go to the
        language listed first.

    Raises
    ------
    ValueError
        If ``recall_by_language`` is not a non-empty mapping of language names to
        numbers in ``[0, 1]`` (a bool is not a recall).

    Examples
    --------
    >>> recall_spread({"en": 0.8, "de": 0.6, "fr": 0.4})
    {'range': 0.4, 'std': 0.1633, 'best': 'en', 'worst': 'fr'}
    """
    if not isinstance(recall_by_language, Mapping) or not recall_by_language:
        raise InputError(
            "recall_by_language must hold at least one language's recall, got "
            f"{recall_by_language!r}"[:200],
            argument="recall_by_language",
        )
    languages = list(recall_by_language)
    values = np.array([_recall_value(lang, recall_by_language[lang]) for lang in languages])
    return {
        "range": float(values.max() - values.min()),
        "std": float(values.std()),
        "best": languages[int(values.argmax())],
        "worst": languages[int(values.argmin())],
    }


def _recall_value(language: object, value: object) -> float:
    """One language's recall as a float: a real number in ``[0, 1]``, a 0-d array included."""
    where = f"recall_by_language[{language!r}]"
    if not isinstance(language, str):
        raise InputError(
            f"recall_by_language: language names are strings, got {language!r}",
            argument="recall_by_language",
        )
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(
            f"{where} must be a recall, a number in [0, 1], got {value!r}"[:200],
            argument="recall_by_language",
        )
    number = float(value)
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise InputError(
            f"{where} is {number}; a recall is a fraction in [0, 1] (percentages / 100)",
            argument="recall_by_language",
        )
    return number


def consistency_at_k(
    ranks: ArrayLike, k: int, *, mask: ArrayLike | None = None
) -> dict[str, float]:
    """Fractions of instances found within the top ``k`` in all, some, or none of their languages.

    Parameters
    ----------
    ranks : array-like or torch.Tensor, shape [N, K]
        1-based rank of instance ``j`` in language ``k``; ``K >= 2``.
    k : int
        The cut-off: a rank counts as found when it is ``<= k`` (as in
        :func:`~ccr_metrics.recall_at_k`, so a tied rank of 1.5 is not in the top 1).
    mask : array-like of bool, shape [N, K], optional
        Which ranks exist; entries outside it are ignored.

    Returns
    -------
    fractions : dict of str to float
        ``{"all": ..., "some": ..., "none": ...}``: found in every present language,
        in at least one but not all, in none. They sum to 1 over the instances with
        at least two present languages; the others are left out, since one language
        cannot disagree with itself.

    Raises
    ------
    ValueError
        If ``ranks`` is not ``[N, K]`` with ``K >= 2``, not finite or below 1 where the
        mask is True, if ``mask`` does not match, if ``k`` is not a positive integer, or
        if no instance has two present languages.

    Notes
    -----
    ``"some"`` is the local inconsistency at ``k``: instances that one language
    retrieves and another misses. Recall can be equal in every language while
    ``"some"`` is large, when the languages miss different instances.

    Examples
    --------
    >>> import numpy as np
    >>> ranks = np.array([[1, 1], [1, 4], [3, 2], [1, 9]])
    >>> consistency_at_k(ranks, 1)
    {'all': 0.25, 'some': 0.5, 'none': 0.25}
    >>> mask = np.array([[True, True], [True, True], [True, True], [True, False]])
    >>> consistency_at_k(ranks, 1, mask=mask)  # row 3 has one language: left out
    {'all': 0.3333, 'some': 0.3333, 'none': 0.3333}
    """
    cutoff = cutoff_as_float(check_positive_int("k", k))
    r, present = _checked_languages(ranks, mask)
    # Against a cut-off a rank must be 1-based: a 0-based rank 0 would read as found.
    low = present & (r < 1)
    if bool(low.any()):
        i, j = (int(v) for v in low.nonzero()[0])
        raise InputError(
            f"ranks must be 1-based (>= 1) against the cut-off k, got {float(r[i, j])} at "
            f"[{i}, {j}]; add 1 to 0-based positions",
            argument="ranks",
            position=(i, j),
        )
    kept = present.sum(1) >= 2
    if not bool(kept.any()):
        raise InputError(
            f"consistency_at_k needs an instance ranked in two or more languages; none of "
            f"the {r.shape[0]} rows of ranks has two present",
            argument="consistency_at_k",
        )
    found = ((r <= cutoff) & present)[kept].sum(1)
    count = present[kept].sum(1)
    n = float(kept.sum())
    # Each fraction is counted, not derived: 1 - all - none can come out at -1e-17.
    every = float((found == count).sum()) / n
    some = float(((found > 0) & (found < count)).sum()) / n
    nothing = float((found == 0).sum()) / n
    return {"all": every, "some": some, "none": nothing}


def pairwise_disagreement(
    ranks: ArrayLike, *, mask: ArrayLike | None = None
) -> tuple[Array, Array]:
    """How much each pair of languages disagrees on the instances both have.

    Parameters
    ----------
    ranks : array-like or torch.Tensor, shape [N, K]
        Rank of instance ``j`` in language ``k``; ``K >= 2``.
    mask : array-like of bool, shape [N, K], optional
        Which ranks exist; a pair is compared on the instances present in both.

    Returns
    -------
    msd : numpy.ndarray or torch.Tensor, shape [K, K], float64
        Mean squared rank difference ``mean_j (ranks[j, a] - ranks[j, b])**2`` over
        the shared instances. Symmetric, 0 on the diagonal.
    spearman : numpy.ndarray or torch.Tensor, shape [K, K], float64
        Spearman rank correlation of the two languages' ranks over the same instances
        (:func:`scipy.stats.spearmanr`). Symmetric, in ``[-1, 1]``, 1 on the diagonal.

    Raises
    ------
    ValueError
        If ``ranks`` is not ``[N, K]`` with ``K >= 2`` or not finite where the mask is
        True, or if ``mask`` does not match.

    Notes
    -----
    Off the diagonal both are NaN for a pair sharing fewer than two instances, and
    the correlation is also NaN when one language gives all shared instances the
    same rank (it has no order to correlate). The diagonal is 0 and 1 by definition.
    The mean of all ``K * K`` entries of ``msd`` is twice MRV (Eq. 7) when every
    instance has every language. Torch in gives torch out on the same device; the
    correlation is computed on the CPU.

    Examples
    --------
    >>> import numpy as np
    >>> ranks = np.array([[1, 2, 5], [2, 1, 4], [3, 3, 1]])
    >>> msd, rho = pairwise_disagreement(ranks)
    >>> msd
    array([[0.        , 0.66666667, 8.        ],
           [0.66666667, 0.        , 7.33333333],
           [8.        , 7.33333333, 0.        ]])
    >>> rho
    array([[ 1. ,  0.5, -1. ],
           [ 0.5,  1. , -0.5],
           [-1. , -0.5,  1. ]])
    """
    from scipy import stats  # here, not at the top: see the imports

    r, present = _checked_languages(ranks, mask)
    values = r.cpu().numpy()
    shared_mask = present.cpu().numpy()
    n_languages = values.shape[1]
    msd = np.zeros((n_languages, n_languages))
    rho = np.eye(n_languages)
    for a in range(n_languages):
        for b in range(a + 1, n_languages):
            both = shared_mask[:, a] & shared_mask[:, b]
            x, y = values[both, a], values[both, b]
            msd[a, b] = msd[b, a] = np.mean((x - y) ** 2) if x.size >= 2 else np.nan
            # spearmanr warns and returns NaN on a constant column; say NaN without it.
            constant = x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0
            rho[a, b] = rho[b, a] = np.nan if constant else stats.spearmanr(x, y).statistic
    as_torch = isinstance(ranks, torch.Tensor)
    return (
        to_output(torch.from_numpy(msd).to(r.device), as_torch),
        to_output(torch.from_numpy(rho).to(r.device), as_torch),
    )


def largest_spread(
    ranks: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    top: int = 10,
    reduction: Reduction = "std",
    languages: Sequence[str] | None = None,
) -> pd.DataFrame:
    """List the instances whose rank moves most across languages, with their ranks.

    Parameters
    ----------
    ranks : array-like or torch.Tensor, shape [N, K]
        Rank of instance ``j`` in language ``k``.
    mask : array-like of bool, shape [N, K], optional
        Which ranks exist.
    top : int, default 10
        How many instances to list; fewer when fewer have two present languages.
    reduction : {"variance", "std"}, default "std"
        The spread, as :func:`~ccr_metrics.instance_rank_variance` computes it. The
        std is in rank units, which reads better next to the ranks.
    languages : sequence of str, optional
        Column names for the ``K`` languages; ``"0"``, ``"1"``, ... when omitted.

    Returns
    -------
    frame : pandas.DataFrame
        ``top`` rows sorted by spread, largest first (ties by instance index), with
        columns ``instance`` (row of ``ranks``), ``spread`` and one column of ranks
        per language (NaN where the mask is False). Instances with fewer than two
        present languages have no spread and are not listed. Always a DataFrame, also
        for torch input.

    Raises
    ------
    ValueError
        As :func:`instance_rank_variance`, and if ``K < 2``, ``top`` is not a
        positive integer, or ``languages`` does not name the ``K`` columns uniquely.

    Examples
    --------
    >>> import numpy as np
    >>> ranks = np.array([[1, 3], [2, 2], [9, 1]])
    >>> largest_spread(ranks, top=2, languages=["en", "de"])
       instance  spread   en   de
    0         2     4.0  9.0  1.0
    1         0     1.0  1.0  3.0
    """
    import pandas as pd

    top = check_positive_int("top", top)
    r, present = _checked_languages(ranks, mask)
    n_languages = r.shape[1]
    names = [str(j) for j in range(n_languages)] if languages is None else list(languages)
    if len(names) != n_languages:
        raise InputError(
            f"languages must name the {n_languages} columns of ranks, got {len(names)} names",
            argument="languages",
        )
    if len(set(names)) != len(names) or {"instance", "spread"} & set(names):
        raise InputError(
            f"languages must be distinct and not 'instance' or 'spread', got {names}",
            argument="languages",
        )
    spread, _ = to_tensor(instance_rank_variance(r, reduction=reduction, mask=present), "spread")
    spread_np = spread.cpu().numpy()
    kept = np.flatnonzero(~np.isnan(spread_np))
    # A stable sort on the negated spread keeps equal spreads in instance order.
    chosen = kept[np.argsort(-spread_np[kept], kind="stable")][:top]
    values = np.where(present.cpu().numpy(), r.cpu().numpy(), np.nan)[chosen]
    frame = pd.DataFrame({"instance": chosen.astype(np.int64), "spread": spread_np[chosen]})
    for j, name in enumerate(names):
        frame[name] = values[:, j]
    return frame


def _checked_languages(
    ranks: ArrayLike, mask: ArrayLike | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ranks and mask as MRV does, and that there are at least two languages."""
    r, present, _ = checked_rank_matrix(ranks, mask)
    if r.shape[1] < 2:
        raise InputError(
            f"ranks must have at least 2 language columns [N, K >= 2], got shape "
            f"[{r.shape[0]}, {r.shape[1]}]",
            argument="ranks",
        )
    return r, present
