"""The resampling maths behind bootstrap intervals and paired comparisons.

Every number of a report is a ratio of per-image sums, or a mean of such ratios (the
report says which: :meth:`Report._ratios <ccr_metrics.Report>`). A resample of the
images is a vector of draw counts ``w``, and each ratio is
``(w @ numerators) / (w @ denominators)``: all statistics of all resamples come from one
matrix product per block of resamples, with no loop over resamples or queries.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from .._progress import progress_bar
from ..core._validation import InputError, check_choice, check_positive_int, check_seed

FloatArray = npt.NDArray[np.float64]
K = TypeVar("K", bound=Hashable)
Method = Literal["percentile", "bca"]
#: Interval methods: plain percentiles, or bias-corrected and accelerated (BCa).
METHODS: tuple[Method, ...] = ("percentile", "bca")

# Draw counts per block of resamples: bounds the [resamples, N] weight matrix to
# 32 MB however many images and resamples are asked for.
_BLOCK_ELEMENTS = 1 << 22
# A permuted difference that equals the observed one up to rounding counts as extreme.
_TIE_TOLERANCE = 1e-9
#: The most resamples, or permutations, one call draws: far more than a stable interval
#: or p-value needs, and a bound on the work, so that a mistyped count is refused at
#: once rather than run for days.
MAX_RESAMPLES = 1_000_000


@dataclass(frozen=True)
class Ratios(Generic[K]):
    """A report's metrics as ratios of per-image sums, and means of those ratios.

    ``numerators`` and ``denominators`` are ``[N, B]`` for the ``B`` base ratios
    (recall per language, direction and cut-off; MRV per direction and reduction);
    ``mix`` ``[B, S]`` turns base ratios into all ``S`` metrics (means for mean recall
    and averages); ``keys`` and ``estimates`` (the report's own numbers) are per metric.
    """

    keys: list[K]
    estimates: FloatArray
    numerators: FloatArray
    denominators: FloatArray
    mix: FloatArray

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


def intervals(
    ratios: Ratios[K],
    n_images: int,
    *,
    ci: float,
    n_resamples: int,
    method: str,
    seed: int | None,
    progress: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """Bootstrap interval ends ``(low, high)`` of every metric of ``ratios``, images resampled."""
    n_resamples = check_options(ci=ci, n_resamples=n_resamples, method=method)
    resample_rng, _ = generators(seed)
    with progress_bar(progress, n_resamples, desc="bootstrap", unit="resample") as bar:
        boot = np.concatenate(
            [
                _ticked(bar, ratios.statistics(w))
                for w in resample_weights(resample_rng, n_images, n_resamples)
            ]
        )
    jackknife = ratios.jackknife() if method == "bca" else None
    return bounds(boot, ratios.estimates, jackknife, ci=ci)


def paired(
    a: Ratios[K],
    b: Ratios[K],
    n_images: int,
    *,
    ci: float,
    n_resamples: int,
    n_permutations: int,
    method: str,
    seed: int | None,
    progress: bool = False,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """``(b - a, low, high, p_value)`` per metric: paired bootstrap and permutation test.

    The resamples are the ones :func:`intervals` draws with the same seed.
    """
    n_resamples = check_options(ci=ci, n_resamples=n_resamples, method=method)
    n_permutations = check_permutations(n_permutations)
    resample_rng, permutation_rng = generators(seed)
    with progress_bar(progress, n_resamples, desc="paired bootstrap", unit="resample") as bar:
        boot = np.concatenate(
            [
                _ticked(bar, b.statistics(w) - a.statistics(w))
                for w in resample_weights(resample_rng, n_images, n_resamples)
            ]
        )
    difference = b.estimates - a.estimates
    jackknife = b.jackknife() - a.jackknife() if method == "bca" else None
    low, high = bounds(boot, difference, jackknife, ci=ci)
    with progress_bar(progress, n_permutations, desc="permutations", unit="permutation") as bar:
        p_value = permutation_p(a, b, permutation_rng, n_permutations, bar)
    return difference, low, high, p_value


def _ticked(bar: Any, block: FloatArray) -> FloatArray:
    """Advance ``bar`` by the resamples of ``block`` (its rows) and pass it through."""
    bar.update(block.shape[0])
    return block


def check_options(*, ci: float, n_resamples: int, method: str) -> int:
    """Refuse a confidence level outside (0, 1), a bad resample count or method.

    Returns the resample count as an int, at most :data:`MAX_RESAMPLES`.
    """
    if isinstance(ci, bool) or not isinstance(ci, int | float) or not 0 < ci < 1:
        raise InputError(
            f"ci must be a confidence level in (0, 1), e.g. 0.95; got {ci!r}", argument="ci"
        )
    checked = check_positive_int("n_resamples", n_resamples, maximum=MAX_RESAMPLES)
    check_choice("method", method, METHODS)
    return checked


def check_permutations(n_permutations: object) -> int:
    """Return the permutation count as an int, refused outside ``[1, MAX_RESAMPLES]``."""
    return check_positive_int("n_permutations", n_permutations, maximum=MAX_RESAMPLES)


def generators(seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent streams for resamples and permutations: neither count moves the other."""
    resample, permutation = np.random.SeedSequence(check_seed("seed", seed)).spawn(2)
    return np.random.default_rng(resample), np.random.default_rng(permutation)


def _blocks(n: int, total: int) -> Iterator[int]:
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, total, step):
        yield min(step, total - start)


def resample_weights(rng: np.random.Generator, n: int, total: int) -> Iterator[FloatArray]:
    """Blocks of draw counts ``[R, N]``: how often each image is drawn per resample."""
    for size in _blocks(n, total):
        drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        yield np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def permutation_p(
    a: Ratios[K], b: Ratios[K], rng: np.random.Generator, n_permutations: int, bar: Any
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
        bar.update(size)
    p: FloatArray = (1 + extreme) / (1 + n_permutations)
    return p


def bounds(
    boot: FloatArray, estimate: FloatArray, jackknife: FloatArray | None, *, ci: float
) -> tuple[FloatArray, FloatArray]:
    """Interval ends per column of ``boot`` ``[R, S]``; BCa when ``jackknife`` is given."""
    # Here, not at the top: `import ccr_metrics` must not load scipy.
    from scipy.special import ndtr, ndtri

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
