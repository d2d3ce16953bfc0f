"""Uncertainty of a :class:`~ccr_metrics.Report`: bootstrap intervals and paired comparisons.

Both resample *images*: an image is drawn with all its texts in every language, so a
resample keeps the structure MRV measures (one instance seen in several languages).
Every number of a report is a ratio of per-image sums, or a mean of such ratios:
image-to-text R@K counts an image's hit over the images with a caption, text-to-image
R@K an image's hitting captions over its captions, MRV an image's spread over the
images ranked in two or more languages. A resample is then a vector of draw counts
``w`` and each ratio is ``(w @ numerators) / (w @ denominators)``: all statistics of
all resamples come from one matrix product, with no loop over resamples or queries
(:mod:`ccr_metrics.analysis._report_ratios`, :mod:`ccr_metrics.analysis._bootstrap`).
Metrics are named by :class:`~ccr_metrics.MetricKey`.
"""

from __future__ import annotations

import numpy as np

from ..core._validation import InputError, check_seed
from . import _bootstrap
from ._bootstrap import METHODS, Method
from ._report_ratios import ratios
from .report import Report
from .results import Comparison, Difference

__all__ = ["METHODS", "compare"]


def compare(
    report_a: Report,
    report_b: Report,
    *,
    ci: float = 0.95,
    n_resamples: int = 2000,
    n_permutations: int = 2000,
    method: Method = "percentile",
    seed: int | None = 0,
    names: tuple[str, str] = ("A", "B"),
    progress: bool = False,
) -> Comparison:
    """Compare two models evaluated on the same test set, metric by metric.

    Parameters
    ----------
    report_a, report_b : Report
        The two evaluations. Differences are ``b - a``.
    ci : float, default 0.95
        Confidence level of the intervals, in ``(0, 1)``.
    n_resamples : int, default 2000
        Paired bootstrap resamples: the same draw of images for both reports.
    n_permutations : int, default 2000
        Random relabellings behind the p-values: each swaps the two models' results
        on every image with probability 1/2. At most 1,000,000, as ``n_resamples``.
    method : {"percentile", "bca"}, default "percentile"
        How the intervals are formed, as in :func:`~ccr_metrics.bootstrap_intervals`.
    seed : int or None, default 0
        Seed of the numpy random generator. The resamples are the ones
        :func:`~ccr_metrics.bootstrap_intervals` draws with the same seed.
    names : tuple of str, default ("A", "B")
        What the comparison's tables and plots call the two reports.
    progress : bool, default False
        Show progress bars over the resamples and the permutations (tqdm, on stderr).

    Returns
    -------
    comparison : Comparison
        Per metric: both values, ``b - a``, its interval and a two-sided p-value.

    Raises
    ------
    ValueError
        If the reports are over different test sets (images, languages, directions,
        ``text_to_image``) or were made with different settings (``ties``,
        ``caption_reduction``, ``mrv_images``, ``galleries``, ``ks``), or as
        :func:`~ccr_metrics.bootstrap_intervals`
        for the options and if ``n_permutations`` is not an integer in
        ``[1, 1_000_000]`` or ``names`` not two strings.

    Notes
    -----
    The p-value tests "both models are exchangeable on every image": with ``P``
    relabellings, ``p = (1 + #{|d_perm| >= |d_obs|}) / (1 + P)``, so the smallest
    possible value is ``1 / (1 + P)``. Both models share the test set, hence the
    denominators of every ratio; swapping changes only the numerators.

    Examples
    --------
    >>> import numpy as np
    >>> def report(ranks):
    ...     r = np.asarray(ranks, dtype=np.float64)
    ...     return Report(ranks={"en": {"i2t": r}}, text_to_image={"en": np.arange(len(r))},
    ...                   n_images=len(r), ks=(1,))
    >>> a = report([1, 2, 3, 1, 2, 3, 1, 2] * 3)
    >>> b = report([1, 1, 1, 1, 1, 1, 1, 2] * 3)
    >>> result = compare(a, b, n_resamples=500, n_permutations=500)
    >>> row = result["en/i2t/R@1"]
    >>> row.a, row.b, row.difference
    (0.375, 0.875, 0.5)
    >>> bool(row.low > 0), bool(row.p_value < 0.05)
    (True, True)
    """
    if isinstance(names, str) or len(names) != 2 or not all(isinstance(n, str) for n in names):
        raise InputError(f"names must be two strings, got {names!r}", argument="names")
    # Checked before any work; the counts as ints, as Comparison records them.
    n_resamples = _bootstrap.check_options(ci=ci, n_resamples=n_resamples, method=method)
    n_permutations = _bootstrap.check_permutations(n_permutations)
    seed = check_seed("seed", seed)
    _check_comparable(report_a, report_b)
    # The metrics of B in A's language order, so that the columns pair up.
    a, b = ratios(report_a), ratios(report_b, report_a.languages)
    difference, low, high, p_value = _bootstrap.paired(
        a,
        b,
        report_a.n_images,
        ci=ci,
        n_resamples=n_resamples,
        n_permutations=n_permutations,
        method=method,
        seed=seed,
        progress=progress,
    )
    values = {
        key: Difference(*(float(x) for x in row))
        for key, *row in zip(
            a.keys, a.estimates, b.estimates, difference, low, high, p_value, strict=True
        )
    }
    return Comparison(
        ci=ci,
        method=method,
        n_resamples=n_resamples,
        n_permutations=n_permutations,
        seed=seed,
        n_images=report_a.n_images,
        values=values,
        names=(names[0], names[1]),
    )


def _check_comparable(a: Report, b: Report) -> None:
    """Refuse two reports whose numbers are not over the same queries and settings."""
    if a.n_images != b.n_images:
        raise InputError(
            "report_a and report_b are over different test sets: n_images "
            f"{a.n_images} != {b.n_images}",
            argument="report_b",
        )
    if set(a.languages) != set(b.languages):
        raise InputError(
            f"report_a and report_b are over different languages: {a.languages} != {b.languages}",
            argument="report_b",
        )
    for lang in a.languages:
        if set(a.ranks[lang]) != set(b.ranks[lang]):
            raise InputError(
                f"report_a and report_b have different directions for {lang!r}: "
                f"{sorted(a.ranks[lang])} != {sorted(b.ranks[lang])}",
                argument="report_b",
            )
        if not np.array_equal(a.text_to_image[lang], b.text_to_image[lang]):
            raise InputError(
                f"report_a and report_b are over different test sets: text_to_image[{lang!r}] "
                "differs (other captions, or the same ones in another order)",
                argument="report_b",
            )
    # Galleries change the t2i ranks, mrv_images the images MRV is over.
    defaults = {"ties": None, "caption_reduction": "first", "mrv_images": "two", "galleries": None}
    for name, default in defaults.items():
        value_a, value_b = a.settings.get(name, default), b.settings.get(name, default)
        if value_a != value_b:
            raise InputError(
                f"report_a and report_b were made with different settings: {name} "
                f"{value_a!r} != {value_b!r}",
                argument="report_b",
            )
    if tuple(a.ks) != tuple(b.ks):
        raise InputError(
            f"report_a and report_b were made with different settings: ks {a.ks} != {b.ks}",
            argument="report_b",
        )
