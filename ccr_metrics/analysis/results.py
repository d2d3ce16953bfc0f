"""Typed results: the key every number is named by, and the interval and comparison types.

Every number a :class:`~ccr_metrics.Report` (and its intervals, comparisons and
breakdowns) holds is named by one :class:`MetricKey` ``(language, direction, metric,
k)``, which also gives it a flat name such as ``"en/i2t/R@1"`` for loggers:

==============================  ===============================================
flat name                       the number
==============================  ===============================================
``en/i2t/R@1``                  R@1 of image-to-text retrieval in English
``en/mean_recall``              mean of English R@K over both directions
``average/t2i/R@5``             R@5 of text-to-image, averaged over languages
``average/mean_recall``         mean recall averaged over languages
``i2t/mrv_variance``            MRV of image-to-text (paper Eq. 7)
``i2t/mrv_std``                 MRV as the released code computes it
``i2t/mrv_images``              the images MRV is taken over
``en/t2i/mean_rank``            mean rank of the correct image for English texts
``en/t2i/median_rank``          its median (floored, as open_clip's)
==============================  ===============================================
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..core._validation import InputError, check_seed, positive_int
from ._bootstrap import METHODS

# pandas is imported where a frame is built, so that `import ccr_metrics` does not pay for it.
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Comparison", "Difference", "Interval", "Intervals", "MetricKey"]

# One number over all languages: named by direction (and cut-off) only.
_ACROSS_LANGUAGES = (
    "mrv_variance",
    "mrv_std",
    "mrv_images",
    "recall_range",
    "recall_std",
    "consistent_all",
    "consistent_some",
    "consistent_none",
    "instances",
)
_MRV = ("mrv_variance", "mrv_std")
# One number over both directions: named by language only.
_PER_LANGUAGE = ("mean_recall",)
#: The metrics a key can name. The report's: recall (with a cut-off ``k``), mean recall,
#: MRV (and the images it is over), mean and median rank; the breakdown's: recall
#: spread and consistency at a cut-off, the images ranked in two languages, and pairwise
#: disagreement (``msd``, ``spearman``) of a language pair ``"en-de"``.
METRICS = (
    "recall",
    "mean_recall",
    "mean_rank",
    "median_rank",
    "msd",
    "spearman",
    *_ACROSS_LANGUAGES,
)


class MetricKey(NamedTuple):
    """The name of one number: ``(language, direction, metric, k)``.

    ``language`` is a language, ``"average"`` for the mean over languages, or None for
    MRV (a number over all languages); ``direction`` is ``"i2t"``, ``"t2i"`` or None
    for mean recall (over both); ``metric`` one of :data:`METRICS`; ``k`` the cut-off
    of ``"recall"``, None otherwise.

    Examples
    --------
    >>> key = MetricKey("en", "i2t", "recall", 1)
    >>> key.name
    'en/i2t/R@1'
    >>> MetricKey.parse("average/mean_recall")
    MetricKey(language='average', direction=None, metric='mean_recall', k=None)
    >>> MetricKey.parse("t2i/mrv_std").reduction
    'std'
    """

    language: str | None
    direction: str | None
    metric: str
    k: int | None = None

    @property
    def name(self) -> str:
        """The flat name, e.g. ``"en/i2t/R@1"``: the parts that are set, joined by ``/``."""
        if self.k is None:
            label = self.metric
        else:
            label = f"R@{self.k}" if self.metric == "recall" else f"{self.metric}@{self.k}"
        return "/".join(part for part in (self.language, self.direction, label) if part)

    @property
    def reduction(self) -> str | None:
        """``"variance"`` or ``"std"`` for an MRV key, else None."""
        return self.metric.removeprefix("mrv_") if self.metric in _MRV else None

    @property
    def label(self) -> str:
        """A short label for tables: ``"en i2t R@1"``, ``"MRV i2t std"``."""
        if self.metric == "recall":
            return f"{self.language} {self.direction} R@{self.k}"
        if self.metric == "mean_recall":
            return f"{self.language} mean recall"
        if self.reduction is not None:
            return f"MRV {self.direction} {self.reduction}"
        parts = (self.language, self.direction, self.metric.replace("_", " "))
        cut = "" if self.k is None else f"@{self.k}"
        return " ".join(part for part in parts if part) + cut

    @classmethod
    def parse(cls, name: str) -> MetricKey:
        """Return the key of a flat name, the inverse of :attr:`name`.

        Raises
        ------
        InputError
            If ``name`` is not a flat metric name.
        """
        parts = name.split("/") if isinstance(name, str) else [""]
        metric, at, cut = parts[-1].partition("@")
        metric = "recall" if metric == "R" else metric
        k = int(cut) if at and cut.isdigit() else None
        well_formed = (
            metric in METRICS
            and (not at or k is not None)
            and (metric != "recall" or k is not None)
            and (metric not in _PER_LANGUAGE or k is None)
        )
        shape = 2 if metric in (*_ACROSS_LANGUAGES, *_PER_LANGUAGE) else 3
        if well_formed and len(parts) == shape:
            if metric in _PER_LANGUAGE:
                return cls(parts[0], None, metric)
            if metric in _ACROSS_LANGUAGES:
                return cls(None, parts[0], metric, k)
            return cls(parts[0], parts[1], metric, k)
        raise InputError(
            f"{name!r} is not a metric name such as 'en/i2t/R@1', 'en/mean_recall', "
            "'average/t2i/R@5' or 'i2t/mrv_std'",
            argument="key",
        )

    @classmethod
    def of(cls, key: MetricKey | str) -> MetricKey:
        """Return a key from a key or a flat name.

        Raises
        ------
        InputError
            If ``key`` is a string that is not a flat metric name, or neither a key
            nor a string (a plain tuple included: build a :class:`MetricKey`).
        """
        if isinstance(key, MetricKey):
            return key
        if isinstance(key, str):
            return cls.parse(key)
        raise InputError(
            f"{key!r} is not a metric key: use a MetricKey or a flat name such as 'en/i2t/R@1'",
            argument="key",
        )


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


class KeyedResult:
    """What every typed result shares: iteration over its keys, lookup by key or name.

    A subclass provides :meth:`_entries`, its ``{MetricKey: entry}`` mapping.
    """

    def _entries(self) -> Mapping[MetricKey, Any]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[MetricKey]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __contains__(self, key: object) -> bool:
        try:
            return MetricKey.of(key) in self._entries()  # type: ignore[arg-type]
        except (InputError, TypeError):
            return False

    def __getitem__(self, key: MetricKey | str) -> Any:
        """Return the entry of ``key``: a :class:`MetricKey` or its flat name."""
        try:
            return self._entries()[MetricKey.of(key)]
        except KeyError:
            raise KeyError(f"{MetricKey.of(key).name} is not in this result") from None

    def items(self) -> Iterator[tuple[MetricKey, Any]]:
        """``(key, entry)`` pairs, in the order of :meth:`to_dict`."""
        return iter(self._entries().items())


def nest(values: Mapping[MetricKey, Any]) -> dict[str, Any]:
    """``{key: leaf}`` in the nesting of ``Report.to_dict()``, cut-offs as strings."""
    out: dict[str, Any] = {}
    for key, leaf in values.items():
        if key.metric == "recall":
            path: tuple[str, ...] = (
                ("average", str(key.direction), str(key.k))
                if key.language == "average"
                else ("recall", str(key.language), str(key.direction), str(key.k))
            )
        elif key.metric == "mean_recall":
            path = (
                ("average", "mean_recall")
                if key.language == "average"
                else ("mean_recall", str(key.language))
            )
        elif key.reduction is not None:
            path = ("mrv", str(key.direction), key.reduction)
        else:
            path = (key.metric, str(key.language), str(key.direction))
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = leaf
    return out


def describe(key: MetricKey) -> dict[str, Any]:
    """Name a metric in frame columns: metric, language, direction, k, reduction."""
    metric = "mrv" if key.reduction is not None else key.metric
    return {
        "metric": metric,
        "language": key.language,
        "direction": key.direction,
        "k": key.k,
        "reduction": key.reduction,
    }


def frame(rows: list[dict[str, Any]], values: list[str]) -> pd.DataFrame:
    """Build a data frame of described metrics, ``k`` as a nullable integer column."""
    import pandas as pd

    columns = ["name", "metric", "language", "direction", "k", "reduction", *values]
    out = pd.DataFrame(rows, columns=columns)
    out["k"] = out["k"].astype("Int64")  # NA where a metric has no cut-off
    return out


def json_float(value: float) -> float | None:
    """``value`` for JSON: NaN (undefined) as None."""
    return None if math.isnan(value) else float(value)


def close(a: float, b: float) -> bool:
    """Whether two numbers are equal up to rounding (NaN equals NaN: both undefined)."""
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _numbers(value: object, where: str, fields: tuple[str, ...]) -> list[float]:
    """``value`` as ``len(fields)`` floats, or an InputError naming ``where`` and the fields."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InputError(
            f"{where}: expected ({', '.join(fields)}), got {type(value).__name__}", argument=where
        )
    try:
        if len(value) != len(fields) or any(
            isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
            for v in value
        ):
            raise TypeError
        numbers = [float(v) for v in value]
    except (TypeError, OverflowError):
        raise InputError(
            f"{where}: expected {len(fields)} numbers ({', '.join(fields)}), got {list(value)!r}",
            argument=where,
        ) from None
    infinite = [name for name, v in zip(fields, numbers, strict=True) if math.isinf(v)]
    if infinite:
        raise InputError(
            f"{where}: {infinite[0]} is infinite; a number is finite, or NaN where undefined",
            argument=where,
        )
    return numbers


def _check_interval(where: str, low: float, high: float) -> None:
    """Refuse ``low > high``, or an interval undefined (NaN) at one end only.

    The point need not lie inside: the ends are quantiles of the resamples, and with
    few resamples or a skewed metric the estimate can fall outside them.
    """
    if math.isnan(low) != math.isnan(high):
        raise InputError(
            f"{where}: low {low} and high {high}: an interval is undefined at both ends or "
            "at neither",
            argument=where,
        )
    if low > high:
        raise InputError(f"{where}: low {low} is above high {high}", argument=where)


def _check_options(owner: str, ci: object, method: object, counts: Mapping[str, object]) -> None:
    """Refuse a confidence level outside (0, 1), an unknown method or a count below 1."""
    if isinstance(ci, bool) or not isinstance(ci, (int, float, np.floating)) or not 0 < ci < 1:
        raise InputError(f"{owner}.ci must be a level in (0, 1), got {ci!r}", argument="ci")
    if method not in METHODS:
        raise InputError(
            f"{owner}.method must be one of {list(METHODS)}, got {method!r}", argument="method"
        )
    for name, value in counts.items():
        if positive_int(value) is None:
            raise InputError(
                f"{owner}.{name} must be a positive integer, got {value!r}", argument=name
            )


def _check_seed(owner: str, seed: object) -> None:
    check_seed(f"{owner}.seed", seed)  # what numpy seeds with: a non-negative integer or None


def _check_keys(owner: str, values: object) -> Mapping[Any, Any]:
    if not isinstance(values, Mapping):
        raise InputError(
            f"{owner}.values must be a mapping {{MetricKey: ...}}, got {type(values).__name__}",
            argument="values",
        )
    for key in values:
        if not isinstance(key, MetricKey):
            raise InputError(
                f"{owner}.values: key {key!r} is not a MetricKey (MetricKey.parse makes one "
                "from a name)",
                argument="values",
            )
    return values


@dataclass(frozen=True)
class Intervals(KeyedResult):
    """Bootstrap confidence intervals for every number of a report.

    Made by :meth:`Report.with_confidence <ccr_metrics.Report.with_confidence>` and
    :func:`~ccr_metrics.bootstrap_intervals`. Iterating gives the metric keys;
    ``intervals["en/i2t/R@1"]`` (or a :class:`MetricKey`) gives an :class:`Interval`.

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
    values : mapping of MetricKey to Interval
        ``(estimate, low, high)`` per metric, in the order of ``Report.to_dict()``.
        Metrics the report leaves undefined (MRV with one language) are absent, and so
        are mean and median ranks, which are no ratio of per-image sums.
    """

    ci: float
    method: str
    n_resamples: int
    seed: int | None
    values: Mapping[MetricKey, Interval]

    def __post_init__(self) -> None:
        """Check the options, and every interval: finite numbers (NaN: undefined), low <= high.

        Raises
        ------
        InputError
            Naming the option or the interval (by flat name) at fault.
        """
        _check_options("Intervals", self.ci, self.method, {"n_resamples": self.n_resamples})
        _check_seed("Intervals", self.seed)
        values = {}
        for key, value in _check_keys("Intervals", self.values).items():
            where = f"intervals[{key.name!r}]"
            interval = Interval(*_numbers(value, where, Interval._fields))
            _check_interval(where, interval.low, interval.high)
            values[key] = interval
        object.__setattr__(self, "values", values)

    def _entries(self) -> Mapping[MetricKey, Interval]:
        return self.values

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
            Columns ``name`` (the flat name), ``metric`` ("recall", "mean_recall",
            "mrv"), ``language`` ("average" for the mean over languages, None for MRV),
            ``direction``, ``k`` (Int64, NA where it does not apply), ``reduction`` (MRV
            only), ``estimate``, ``low``, ``high``. Recall is a fraction.
        """
        rows = [
            {"name": key.name, **describe(key), **value._asdict()}
            for key, value in self.values.items()
        ]
        return frame(rows, ["estimate", "low", "high"])

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
        nested = nest({key: [json_float(v) for v in value] for key, value in self.values.items()})
        return {**self.options(), **nested}

    def to_flat_dict(self) -> dict[str, float]:
        """``{"en/i2t/R@1/low": f, "en/i2t/R@1/high": f, ...}`` for a logger."""
        return {
            f"{key.name}/{end}": getattr(value, end)
            for key, value in self.values.items()
            for end in ("low", "high")
        }


@dataclass(frozen=True)
class Comparison(KeyedResult):
    """A paired comparison of two reports on the same test set.

    Made by :func:`~ccr_metrics.compare`. Differences are ``b - a``: positive when
    report B scores higher (for recall, B is better; for MRV, B's ranks vary more
    across languages). Iterating gives the metric keys; ``comparison["en/i2t/R@1"]``
    (or a :class:`MetricKey`) gives a :class:`Difference`.

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
    values : mapping of MetricKey to Difference
        ``(a, b, difference, low, high, p_value)`` per metric, in the order of
        ``Report.to_dict()``.
    names : tuple of str, default ("A", "B")
        What to call the two reports in tables and plots.
    """

    ci: float
    method: str
    n_resamples: int
    n_permutations: int
    seed: int | None
    n_images: int
    values: Mapping[MetricKey, Difference]
    names: tuple[str, str] = ("A", "B")

    def __post_init__(self) -> None:
        """Check the options, and every difference: ``b - a``, ``low <= high``, p in (0, 1].

        Raises
        ------
        InputError
            Naming the option or the metric (by flat name) at fault.
        """
        _check_options(
            "Comparison",
            self.ci,
            self.method,
            {
                "n_resamples": self.n_resamples,
                "n_permutations": self.n_permutations,
                "n_images": self.n_images,
            },
        )
        _check_seed("Comparison", self.seed)
        names = self.names
        if (
            isinstance(names, str)
            or not isinstance(names, Sequence)
            or len(names) != 2
            or not all(isinstance(name, str) for name in names)
        ):
            raise InputError(
                f"Comparison.names must be two strings, got {names!r}", argument="names"
            )
        values = {}
        for key, value in _check_keys("Comparison", self.values).items():
            where = f"comparison[{key.name!r}]"
            d = Difference(*_numbers(value, where, Difference._fields))
            if not close(d.difference, d.b - d.a):
                raise InputError(
                    f"{where}: difference {d.difference} is not b - a = {d.b} - {d.a}",
                    argument=where,
                )
            _check_interval(where, d.low, d.high)
            if not (math.isnan(d.p_value) or 0 < d.p_value <= 1):
                raise InputError(f"{where}: p_value {d.p_value} is not in (0, 1]", argument=where)
            values[key] = d
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", tuple(names))

    def _entries(self) -> Mapping[MetricKey, Difference]:
        return self.values

    def to_frame(self) -> pd.DataFrame:
        """One row per metric.

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``name``, ``metric``, ``language``, ``direction``, ``k``,
            ``reduction`` as :meth:`Intervals.to_frame`, then ``a``, ``b``,
            ``difference`` (``b - a``), ``low``, ``high``, ``p_value``. Recall is a
            fraction.
        """
        rows = [
            {"name": key.name, **describe(key), **value._asdict()}
            for key, value in self.values.items()
        ]
        return frame(rows, list(Difference._fields))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable comparison, nested like ``Report.to_dict()``.

        Returns
        -------
        summary : dict
            ``{"difference": "b - a", "names": [a, b], "ci", "method", "n_resamples",
            "n_permutations", "seed", "n_images", "recall": {lang: {dir: {"1": {"a",
            "b", "difference", "low", "high", "p_value"}, ...}}}, "mean_recall",
            "average", "mrv"}``.
        """
        nested = nest(
            {
                key: {name: json_float(v) for name, v in value._asdict().items()}
                for key, value in self.values.items()
            }
        )
        return {
            "difference": "b - a",
            "names": list(self.names),
            "ci": self.ci,
            "method": self.method,
            "n_resamples": self.n_resamples,
            "n_permutations": self.n_permutations,
            "seed": self.seed,
            "n_images": self.n_images,
            **nested,
        }

    def to_flat_dict(self) -> dict[str, float]:
        """``{"en/i2t/R@1/difference": f, ".../low", ".../high", ".../p_value"}`` for a logger."""
        return {
            f"{key.name}/{field}": getattr(value, field)
            for key, value in self.values.items()
            for field in ("difference", "low", "high", "p_value")
        }

    def to_table(self) -> str:
        """Format the comparison as text: recall in percentage points, MRV in its units."""
        a, b = self.names
        level = f"{100 * self.ci:g}%"
        rows = [("metric", a, b, f"{b} - {a}", f"{level} interval", "p")]
        for key, v in self.values.items():
            scale = 1.0 if key.reduction is not None else 100.0
            rows.append(
                (
                    key.label,
                    f"{scale * v.a:.2f}",
                    f"{scale * v.b:.2f}",
                    f"{scale * v.difference:+.2f}",
                    f"[{scale * v.low:+.2f}, {scale * v.high:+.2f}]",
                    f"p={_format_p(v.p_value)}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            f"{b} - {a} over {self.n_images} images: paired bootstrap {level} interval "
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


def _format_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"
