"""Uncertainty of a :class:`~ccr_metrics.Report`: bootstrap intervals and paired comparisons.

Both resample *images*: an image is drawn with all its texts in every language, so a
resample keeps the structure MRV measures (one instance seen in several languages).
Every number of a report is a ratio of per-image sums, or a mean of such ratios:
image-to-text R@K counts an image's hit over the images with a caption, text-to-image
R@K an image's hitting captions over its captions, MRV an image's spread over the
images ranked in two or more languages. A resample is then a vector of draw counts
``w`` and each ratio is ``(w @ numerators) / (w @ denominators)``: all statistics of
all resamples come from one matrix product, with no loop over resamples or queries.

A metric is named by a key that is its path into :meth:`Report.to_dict
<ccr_metrics.Report.to_dict>`, with the cut-off as an int:
``("recall", lang, dir, k)``, ``("mean_recall", lang)``, ``("average", dir, k)``,
``("average", "mean_recall")`` and ``("mrv", dir, reduction)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import ndtr, ndtri

from ._validation import check_choice
from .mrv import REDUCTIONS, instance_rank_variance
from .recall import DIRECTIONS
from .report import Report

__all__ = [
    "METHODS",
    "Comparison",
    "Difference",
    "Interval",
    "Intervals",
    "Key",
    "bootstrap_intervals",
    "compare",
]

FloatArray = npt.NDArray[np.float64]
Method = Literal["percentile", "bca"]
#: Interval methods: plain percentiles, or bias-corrected and accelerated (BCa).
METHODS: tuple[Method, ...] = ("percentile", "bca")
#: A metric's path into ``Report.to_dict()``, e.g. ``("recall", "en", "i2t", 1)``.
Key = tuple[str | int, ...]

# Draw counts per block of resamples: bounds the [resamples, N] weight matrix to
# 32 MB however many images and resamples are asked for.
_BLOCK_ELEMENTS = 1 << 22
# A permuted difference that equals the observed one up to rounding counts as extreme.
_TIE_TOLERANCE = 1e-9


class Interval(NamedTuple):
    """A metric's point estimate and confidence interval."""

    estimate: float
    low: float
    high: float


class Difference(NamedTuple):
    """A metric of two reports, their difference ``b - a``, its interval and p-value."""

    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class Intervals:
    """Bootstrap confidence intervals for every number of a report.

    Made by :func:`bootstrap_intervals`.

    Parameters
    ----------
    ci : float
        Confidence level, e.g. 0.95.
    method : {"percentile", "bca"}
        How the intervals were formed.
    n_resamples : int
        Bootstrap resamples of the images.
    seed : int or None
        The seed the resamples were drawn with.
    values : mapping of Key to Interval
        ``(estimate, low, high)`` per metric, in the order of ``Report.to_dict()``.
        Metrics the report leaves undefined (MRV with one language) are absent.
    """

    ci: float
    method: str
    n_resamples: int
    seed: int | None
    values: Mapping[Key, Interval]

    def __getitem__(self, key: Key) -> Interval:
        return self.values[key]

    def options(self) -> dict[str, Any]:
        """Return the options of :func:`bootstrap_intervals` that drew these intervals."""
        return {
            "ci": self.ci,
            "method": self.method,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per metric.

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``metric`` ("recall", "mean_recall", "mrv"), ``language``
            ("average" for the mean over languages, None for MRV), ``direction``,
            ``k`` (Int64, NA where it does not apply), ``reduction`` (MRV only),
            ``estimate``, ``low``, ``high``. Recall is a fraction.
        """
        rows = [{**_describe(key), **value._asdict()} for key, value in self.values.items()]
        return _frame(rows, ["estimate", "low", "high"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable intervals, nested like ``Report.to_dict()``.

        Returns
        -------
        summary : dict
            ``{"ci", "method", "n_resamples", "seed", "recall": {lang: {dir: {"1":
            [estimate, low, high], ...}}}, "mean_recall": {...}, "average": {...},
            "mrv": {dir: {"variance": [...], "std": [...]}}}``; an interval no resample
            defines is ``None``.
        """
        nested = _nest({key: [_json_float(v) for v in value] for key, value in self.values.items()})
        return {
            "ci": self.ci,
            "method": self.method,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            **nested,
        }


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two reports on the same test set.

    Made by :func:`compare`. Differences are ``b - a``: positive when report B scores
    higher (for recall, B is better; for MRV, B's ranks vary more across languages).

    Parameters
    ----------
    ci : float
        Confidence level of the intervals of the differences.
    method : {"percentile", "bca"}
        How the intervals were formed.
    n_resamples : int
        Paired bootstrap resamples of the images.
    n_permutations : int
        Random swaps of the two models' results behind the p-values.
    seed : int or None
        The seed the resamples and permutations were drawn with.
    n_images : int
        Images in the shared test set.
    values : mapping of Key to Difference
        ``(a, b, difference, low, high, p_value)`` per metric, in the order of
        ``Report.to_dict()``.
    """

    ci: float
    method: str
    n_resamples: int
    n_permutations: int
    seed: int | None
    n_images: int
    values: Mapping[Key, Difference]

    def __getitem__(self, key: Key) -> Difference:
        return self.values[key]

    def to_frame(self) -> pd.DataFrame:
        """One row per metric.

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``metric``, ``language``, ``direction``, ``k``, ``reduction`` as
            :meth:`Intervals.to_frame`, then ``a``, ``b``, ``difference`` (``b - a``),
            ``low``, ``high``, ``p_value``. Recall is a fraction.
        """
        rows = [{**_describe(key), **value._asdict()} for key, value in self.values.items()]
        return _frame(rows, list(Difference._fields))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable comparison, nested like ``Report.to_dict()``.

        Returns
        -------
        summary : dict
            ``{"difference": "b - a", "ci", "method", "n_resamples", "n_permutations",
            "seed", "n_images", "recall": {lang: {dir: {"1": {"a", "b", "difference",
            "low", "high", "p_value"}, ...}}}, "mean_recall", "average", "mrv"}``.
        """
        nested = _nest(
            {
                key: {name: _json_float(v) for name, v in value._asdict().items()}
                for key, value in self.values.items()
            }
        )
        return {
            "difference": "b - a",
            "ci": self.ci,
            "method": self.method,
            "n_resamples": self.n_resamples,
            "n_permutations": self.n_permutations,
            "seed": self.seed,
            "n_images": self.n_images,
            **nested,
        }

    def to_table(self) -> str:
        """Format the comparison as text: recall in percentage points, MRV in its units."""
        level = f"{100 * self.ci:g}%"
        rows = [("metric", "A", "B", "B - A", f"{level} interval", "p")]
        for key, v in self.values.items():
            scale = 1.0 if key[0] == "mrv" else 100.0
            rows.append(
                (
                    _label(key),
                    f"{scale * v.a:.2f}",
                    f"{scale * v.b:.2f}",
                    f"{scale * v.difference:+.2f}",
                    f"[{scale * v.low:+.2f}, {scale * v.high:+.2f}]",
                    f"p={_format_p(v.p_value)}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            f"B - A over {self.n_images} images: paired bootstrap {level} interval "
            f"({self.method}, {self.n_resamples} resamples), two-sided permutation p "
            f"({self.n_permutations} permutations)",
            "Recall in percentage points; MRV in ranks (variance in squared ranks), "
            "lower is more consistent.",
        ]
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


def bootstrap_intervals(
    report: Report,
    *,
    ci: float = 0.95,
    n_resamples: int = 2000,
    method: Method = "percentile",
    seed: int | None = 0,
) -> Intervals:
    """Confidence intervals for every number of a report, by resampling images.

    Parameters
    ----------
    report : Report
        The evaluation, as :func:`~ccr_metrics.evaluate` returns it or
        :meth:`Report.load <ccr_metrics.Report.load>` reads it.
    ci : float, default 0.95
        Confidence level, in ``(0, 1)``.
    n_resamples : int, default 2000
        Bootstrap resamples: each draws ``N`` images with replacement, every image with
        all its texts in every language.
    method : {"percentile", "bca"}, default "percentile"
        ``"percentile"`` takes the resamples' ``(1 - ci) / 2`` and ``(1 + ci) / 2``
        quantiles; ``"bca"`` corrects them for bias and skew (Efron's BCa, with the
        acceleration from the jackknife over images).
    seed : int or None, default 0
        Seed of the numpy random generator; the same seed gives the same intervals.
        None draws fresh entropy.

    Returns
    -------
    intervals : Intervals
        ``(estimate, low, high)`` for R@K per language and direction, mean recall per
        language, the averages over languages and MRV (variance and std) per
        direction. Estimates are the report's own numbers.

    Raises
    ------
    ValueError
        If ``ci`` is not in ``(0, 1)``, ``n_resamples`` is not a positive integer or
        ``method`` is unknown.

    Notes
    -----
    The resamples keep the report's definitions: a recall is over the queries a
    resample holds, mean recall and the averages are unweighted means of those, and
    MRV is over the resampled images ranked in two or more languages. A resample that
    holds no query of a metric (possible only with very few images) is left out of
    that metric's interval. A metric equal in every resample, e.g. R@10 of 1.0, gets
    the interval ``[v, v]``.

    The jackknife needs no ``N x N`` work: leaving image ``i`` out of a ratio
    ``S / C`` gives ``(S - s_i) / (C - c_i)``. BCa follows
    :func:`scipy.stats.bootstrap`, except that the bias correction is clipped to the
    resolution of the resamples, so an estimate outside all of them stays finite.

    Examples
    --------
    >>> import numpy as np
    >>> report = Report(
    ...     ranks={"en": {"i2t": np.array([1.0, 2, 1, 4]), "t2i": np.array([1.0, 3, 2, 1])},
    ...            "de": {"i2t": np.array([2.0, 1, 1, 3]), "t2i": np.array([1.0, 1, 5, 2])}},
    ...     text_to_image={"en": np.arange(4), "de": np.arange(4)},
    ...     n_images=4, ks=(1, 5),
    ... )
    >>> intervals = bootstrap_intervals(report, n_resamples=500, seed=1)
    >>> intervals[("recall", "en", "i2t", 5)]  # every query is a hit: no uncertainty
    Interval(estimate=1.0, low=1.0, high=1.0)
    >>> estimate, low, high = intervals[("average", "mean_recall")]
    >>> estimate, bool(low <= estimate <= high)
    (0.75, True)
    >>> intervals.to_frame().columns.tolist()
    ['metric', 'language', 'direction', 'k', 'reduction', 'estimate', 'low', 'high']
    """
    _check_options(ci=ci, n_resamples=n_resamples, method=method)
    ratios = _Ratios.of(report)
    resample_rng, _ = _generators(seed)
    boot = np.concatenate(
        [
            ratios.statistics(w)
            for w in _resample_weights(resample_rng, report.n_images, n_resamples)
        ]
    )
    jackknife = ratios.jackknife() if method == "bca" else None
    low, high = _bounds(boot, ratios.estimates, jackknife, ci=ci)
    values = {
        key: Interval(float(e), float(lo), float(hi))
        for key, e, lo, hi in zip(ratios.keys, ratios.estimates, low, high, strict=True)
    }
    return Intervals(ci=ci, method=method, n_resamples=n_resamples, seed=seed, values=values)


def compare(
    report_a: Report,
    report_b: Report,
    *,
    ci: float = 0.95,
    n_resamples: int = 2000,
    n_permutations: int = 2000,
    method: Method = "percentile",
    seed: int | None = 0,
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
        on every image with probability 1/2.
    method : {"percentile", "bca"}, default "percentile"
        How the intervals are formed, as in :func:`bootstrap_intervals`.
    seed : int or None, default 0
        Seed of the numpy random generator. The resamples are the ones
        :func:`bootstrap_intervals` draws with the same seed.

    Returns
    -------
    comparison : Comparison
        Per metric: both values, ``b - a``, its interval and a two-sided p-value.

    Raises
    ------
    ValueError
        If the reports are over different test sets (images, languages, directions,
        ``text_to_image``) or were made with different settings (``ties``,
        ``caption_reduce``, ``ks``), or as :func:`bootstrap_intervals` for the options
        and if ``n_permutations`` is not a positive integer.

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
    >>> row = result[("recall", "en", "i2t", 1)]
    >>> row.a, row.b, row.difference
    (0.375, 0.875, 0.5)
    >>> bool(row.low > 0), bool(row.p_value < 0.05)
    (True, True)
    """
    _check_options(ci=ci, n_resamples=n_resamples, method=method)
    _check_count("n_permutations", n_permutations)
    _check_comparable(report_a, report_b)
    # The metrics of B in A's language order, so that the columns pair up.
    a, b = _Ratios.of(report_a), _Ratios.of(report_b, report_a.languages)
    n = report_a.n_images
    resample_rng, permutation_rng = _generators(seed)
    boot = np.concatenate(
        [b.statistics(w) - a.statistics(w) for w in _resample_weights(resample_rng, n, n_resamples)]
    )
    difference = b.estimates - a.estimates
    jackknife = b.jackknife() - a.jackknife() if method == "bca" else None
    low, high = _bounds(boot, difference, jackknife, ci=ci)
    p_value = _permutation_p(a, b, permutation_rng, n_permutations)
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
        n_images=n,
        values=values,
    )


@dataclass(frozen=True)
class _Ratios:
    """A report's metrics as ratios of per-image sums, and means of those ratios.

    ``numerators`` and ``denominators`` are ``[N, B]`` for the ``B`` base ratios
    (recall per language, direction and cut-off; MRV per direction and reduction);
    ``mix`` ``[B, S]`` turns base ratios into all ``S`` metrics (means for mean recall
    and averages); ``keys`` and ``estimates`` (the report's own numbers) are per metric.
    """

    keys: list[Key]
    estimates: FloatArray
    numerators: FloatArray
    denominators: FloatArray
    mix: FloatArray

    @classmethod
    def of(cls, report: Report, languages: list[str] | None = None) -> _Ratios:
        """Ratios of ``report``, metrics ordered by ``languages`` (the report's order)."""
        n = report.n_images
        base: dict[Key, tuple[FloatArray, FloatArray]] = {}
        recall_keys: dict[str, list[Key]] = {}
        for lang in report.languages if languages is None else languages:
            recall_keys[lang] = []
            for d in (d for d in DIRECTIONS if d in report.ranks[lang]):
                # Hits are 0/1, or probabilities under ties="expected".
                if d == "i2t":
                    queries = report.has_caption(lang).astype(np.float64)
                    hits = [np.nan_to_num(report.hits(lang, d, k)) for k in report.ks]
                else:
                    owner = report.text_to_image[lang]
                    queries = np.bincount(owner, minlength=n).astype(np.float64)
                    hits = [
                        np.bincount(owner, weights=report.hits(lang, d, k), minlength=n).astype(
                            np.float64
                        )
                        for k in report.ks
                    ]
                for k, h in zip(report.ks, hits, strict=True):
                    base[("recall", lang, d, k)] = (h, queries)
                    recall_keys[lang].append(("recall", lang, d, k))
        summary = report.to_dict()
        mrv_keys: list[Key] = []
        for d, by_reduction in summary["mrv"].items():
            if by_reduction is None:
                continue
            ranks, mask = report.rank_matrix(d)
            for reduction in REDUCTIONS:
                spread = np.asarray(
                    instance_rank_variance(ranks, reduction=reduction, mask=mask),
                    dtype=np.float64,
                )
                valid = ~np.isnan(spread)
                base[("mrv", d, reduction)] = (
                    np.where(valid, spread, 0.0),
                    valid.astype(np.float64),
                )
                mrv_keys.append(("mrv", d, reduction))

        # Every metric as weights over the base ratios, in the order of to_dict().
        base_index = {key: i for i, key in enumerate(base)}
        columns: dict[Key, dict[Key, float]] = {}
        for keys in recall_keys.values():
            columns.update({key: {key: 1.0} for key in keys})
        for lang, keys in recall_keys.items():
            columns[("mean_recall", lang)] = {key: 1 / len(keys) for key in keys}
        for d in report.directions:
            for k in report.ks:
                parts = [key for keys in recall_keys.values() for key in keys if key[2:] == (d, k)]
                columns[("average", d, k)] = {key: 1 / len(parts) for key in parts}
        columns[("average", "mean_recall")] = {
            key: 1 / len(keys) / len(recall_keys) for keys in recall_keys.values() for key in keys
        }
        columns.update({key: {key: 1.0} for key in mrv_keys})
        mix = np.zeros((len(base), len(columns)))
        for j, weights in enumerate(columns.values()):
            for key, weight in weights.items():
                mix[base_index[key], j] = weight
        return cls(
            keys=list(columns),
            estimates=np.array([_lookup(summary, key) for key in columns]),
            numerators=np.stack([num for num, _ in base.values()], axis=1),
            denominators=np.stack([den for _, den in base.values()], axis=1),
            mix=mix,
        )

    def combine(self, numerators: FloatArray, denominators: FloatArray) -> FloatArray:
        """All metrics ``[R, S]`` from summed numerators and denominators ``[R, B]``."""
        base = np.divide(
            numerators,
            denominators,
            out=np.full_like(numerators, np.nan),
            where=denominators > 0,
        )
        defined = ~np.isnan(base)
        out: FloatArray = np.where(defined, base, 0.0) @ self.mix
        if not defined.all():
            # A mean is undefined where one of its parts is.
            out[(~defined).astype(np.float64) @ (self.mix != 0) > 0] = np.nan
        return out

    def statistics(self, weights: FloatArray) -> FloatArray:
        """All metrics for each row of draw counts ``weights`` ``[R, N]``: ``[R, S]``."""
        return self.combine(weights @ self.numerators, weights @ self.denominators)

    def jackknife(self) -> FloatArray:
        """All metrics with each image left out in turn: ``[N, S]``."""
        return self.combine(
            self.numerators.sum(0) - self.numerators,
            self.denominators.sum(0) - self.denominators,
        )


def _check_options(*, ci: float, n_resamples: int, method: str) -> None:
    if isinstance(ci, bool) or not isinstance(ci, int | float) or not 0 < ci < 1:
        raise ValueError(f"ci must be a confidence level in (0, 1), e.g. 0.95; got {ci!r}")
    _check_count("n_resamples", n_resamples)
    check_choice("method", method, METHODS)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _check_comparable(a: Report, b: Report) -> None:
    """Refuse two reports whose numbers are not over the same queries and settings."""
    if a.n_images != b.n_images:
        raise ValueError(
            "report_a and report_b are over different test sets: n_images "
            f"{a.n_images} != {b.n_images}"
        )
    if set(a.languages) != set(b.languages):
        raise ValueError(
            f"report_a and report_b are over different languages: {a.languages} != {b.languages}"
        )
    for lang in a.languages:
        if set(a.ranks[lang]) != set(b.ranks[lang]):
            raise ValueError(
                f"report_a and report_b have different directions for {lang!r}: "
                f"{sorted(a.ranks[lang])} != {sorted(b.ranks[lang])}"
            )
        if not np.array_equal(a.text_to_image[lang], b.text_to_image[lang]):
            raise ValueError(
                f"report_a and report_b are over different test sets: text_to_image[{lang!r}] "
                "differs (other captions, or the same ones in another order)"
            )
    defaults = {"ties": None, "caption_reduce": "first"}
    for name, default in defaults.items():
        value_a, value_b = a.settings.get(name, default), b.settings.get(name, default)
        if value_a != value_b:
            raise ValueError(
                f"report_a and report_b were made with different settings: {name} "
                f"{value_a!r} != {value_b!r}"
            )
    if tuple(a.ks) != tuple(b.ks):
        raise ValueError(
            f"report_a and report_b were made with different settings: ks {a.ks} != {b.ks}"
        )


def _generators(seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent streams for resamples and permutations: neither count moves the other."""
    resample, permutation = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(resample), np.random.default_rng(permutation)


def _blocks(n: int, total: int) -> Iterator[int]:
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, total, step):
        yield min(step, total - start)


def _resample_weights(rng: np.random.Generator, n: int, total: int) -> Iterator[FloatArray]:
    """Blocks of draw counts ``[R, N]``: how often each image is drawn per resample."""
    for size in _blocks(n, total):
        drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        yield np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def _permutation_p(
    a: _Ratios, b: _Ratios, rng: np.random.Generator, n_permutations: int
) -> FloatArray:
    """Two-sided paired permutation p-value of ``b - a`` per metric."""
    num_a, num_b = a.numerators.sum(0), b.numerators.sum(0)
    den_a, den_b = a.denominators.sum(0), b.denominators.sum(0)
    moved_num = b.numerators - a.numerators
    moved_den = b.denominators - a.denominators
    observed = np.abs(b.combine(num_b[None], den_b[None]) - a.combine(num_a[None], den_a[None]))
    threshold = observed[0] * (1 - _TIE_TOLERANCE)
    extreme = np.zeros(len(a.keys))
    n = len(a.numerators)
    for size in _blocks(n, n_permutations):
        # Swapping image i moves its contribution from one model's sums to the other's.
        swap = rng.integers(0, 2, size=(size, n)).astype(np.float64)
        dn, dd = swap @ moved_num, swap @ moved_den
        permuted = b.combine(num_b - dn, den_b - dd) - a.combine(num_a + dn, den_a + dd)
        extreme += (np.abs(permuted) >= threshold).sum(0)
    p: FloatArray = (1 + extreme) / (1 + n_permutations)
    return p


def _bounds(
    boot: FloatArray, estimate: FloatArray, jackknife: FloatArray | None, *, ci: float
) -> tuple[FloatArray, FloatArray]:
    """Interval ends per column of ``boot`` ``[R, S]``; BCa when ``jackknife`` is given."""
    alpha = (1 - ci) / 2
    count = (~np.isnan(boot)).sum(0)
    if jackknife is None:
        q_low, q_high = np.full(boot.shape[1], alpha), np.full(boot.shape[1], 1 - alpha)
    else:
        resolution = 1 / (2 * np.maximum(count, 1))
        below = (boot < estimate).sum(0) + (boot <= estimate).sum(0)
        z0 = ndtri(np.clip(below * resolution, resolution, 1 - resolution))
        accel = _acceleration(jackknife)
        ends = []
        for z in (ndtri(alpha), -ndtri(alpha)):
            with np.errstate(divide="ignore"):  # 1 - a * (z0 + z) = 0 maps to q = 0 or 1
                ends.append(ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z))))
        q_low, q_high = ends
    ordered = np.sort(boot, axis=0)  # NaN last
    return _quantile(ordered, count, q_low), _quantile(ordered, count, q_high)


def _acceleration(jackknife: FloatArray) -> FloatArray:
    """BCa acceleration per column from leave-one-out values; 0 where they do not vary."""
    finite = np.isfinite(jackknife)
    values = np.where(finite, jackknife, 0.0)
    mean = values.sum(0) / np.maximum(finite.sum(0), 1)
    d = np.where(finite, mean - values, 0.0)
    spread = (d**2).sum(0) ** 1.5
    accel: FloatArray = np.divide(
        (d**3).sum(0), 6 * spread, out=np.zeros_like(spread), where=spread > 0
    )
    return accel


def _quantile(ordered: FloatArray, count: npt.NDArray[np.int_], q: FloatArray) -> FloatArray:
    """Linear-interpolation quantile ``q[j]`` of the ``count[j]`` defined values of column j.

    ``ordered`` is sorted per column with NaN (undefined resamples) last; a column with
    none defined gives NaN.
    """
    position = q * np.maximum(count - 1, 0)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, np.maximum(count - 1, 0))
    columns = np.arange(ordered.shape[1])
    low, high = ordered[lower, columns], ordered[upper, columns]
    out: FloatArray = low + (high - low) * (position - lower)
    return out


def _lookup(summary: Mapping[str, Any], key: Key) -> float:
    """Read the value at ``key`` in ``Report.to_dict()``."""
    node: Any = summary
    for part in key:
        node = node[str(part)]
    return float(node)


def _nest(values: Mapping[Key, Any]) -> dict[str, Any]:
    """``{key: leaf}`` to the nesting of ``Report.to_dict()``, cut-offs as strings."""
    out: dict[str, Any] = {}
    for key, leaf in values.items():
        node = out
        for part in key[:-1]:
            node = node.setdefault(str(part), {})
        node[str(key[-1])] = leaf
    return out


def _describe(key: Key) -> dict[str, Any]:
    """Name a metric in frame columns."""
    row: dict[str, Any] = {
        "metric": key[0],
        "language": None,
        "direction": None,
        "k": None,
        "reduction": None,
    }
    if key[0] == "recall":
        row.update(language=key[1], direction=key[2], k=key[3])
    elif key[0] == "mean_recall":
        row["language"] = key[1]
    elif key[0] == "mrv":
        row.update(direction=key[1], reduction=key[2])
    elif key[1] == "mean_recall":  # the average over languages
        row.update(metric="mean_recall", language="average")
    else:
        row.update(metric="recall", language="average", direction=key[1], k=key[2])
    return row


def _frame(rows: list[dict[str, Any]], values: list[str]) -> pd.DataFrame:
    columns = ["metric", "language", "direction", "k", "reduction", *values]
    frame = pd.DataFrame(rows, columns=columns)
    frame["k"] = frame["k"].astype("Int64")  # NA where a metric has no cut-off
    return frame


def _label(key: Key) -> str:
    row = _describe(key)
    if row["metric"] == "recall":
        return f"{row['language']} {row['direction']} R@{row['k']}"
    if row["metric"] == "mean_recall":
        return f"{row['language']} mean recall"
    return f"MRV {row['direction']} {row['reduction']}"


def _format_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
