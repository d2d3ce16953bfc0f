"""Mean Rank Variance (MRV): how much an instance's rank moves across languages."""

from __future__ import annotations

from typing import Literal

import torch

from ._backend import Array, ArrayLike, to_output, to_tensor
from ._positives import text_owner_index
from ._validation import (
    InputError,
    check_bool_mask,
    check_choice,
    check_ndim,
    check_numeric,
    check_positive_int,
)

__all__ = [
    "CAPTION_REDUCTIONS",
    "MRV_IMAGES",
    "REDUCTIONS",
    "instance_rank_variance",
    "mean_rank_variance",
    "ranks_per_image",
]

Reduction = Literal["variance", "std"]
#: ``"variance"`` is the paper's Eq. 7; ``"std"`` is what the released code computed.
REDUCTIONS: tuple[Reduction, ...] = ("variance", "std")
CaptionReduction = Literal["first", "mean", "min", "median"]
#: How :func:`ranks_per_image` turns several captions' ranks into one per image.
CAPTION_REDUCTIONS: tuple[CaptionReduction, ...] = ("first", "mean", "min", "median")
MrvImages = Literal["two", "all"]
#: Which images a report's MRV is taken over: those with texts in two or more of its
#: languages (``"two"``), or in every one (``"all"``).
MRV_IMAGES: tuple[MrvImages, ...] = ("two", "all")
# ranks_per_image allocates a value per image: a bound that no test set reaches refuses
# a mistyped count before a terabyte allocation is tried.
_MAX_IMAGES = 2**31 - 1


def instance_rank_variance(
    ranks: ArrayLike,
    *,
    reduction: Reduction = "variance",
    mask: ArrayLike | None = None,
) -> Array:
    """Spread of each instance's ranks across languages.

    Parameters
    ----------
    ranks : array-like or torch.Tensor, shape [N, K]
        Rank of instance ``j`` in language ``k`` (rows instances, columns languages).
        0-based or 1-based alike: the spread does not depend on the offset.
    reduction : {"variance", "std"}, default "variance"
        Population variance (ddof = 0) or population standard deviation.
    mask : array-like of bool, shape [N, K], optional
        Which ranks exist (False for a language an instance lacks). Entries outside
        the mask are ignored, NaN included.

    Returns
    -------
    spread : numpy.ndarray or torch.Tensor, shape [N], float64
        The variance (or std) of each row over its present languages; NaN for a row
        with fewer than two present languages, whose spread is undefined.

    Raises
    ------
    ValueError
        If ``ranks`` is not 2-D or holds non-finite values where the mask is True, if
        ``mask`` does not have the shape of ``ranks`` or is not boolean, or if
        ``reduction`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> instance_rank_variance(np.array([[1, 3], [2, 2], [5, 1]]))
    array([1., 0., 4.])
    >>> instance_rank_variance(np.array([[1, 3], [2, 2], [5, 1]]), reduction="std")
    array([1., 0., 2.])
    """
    check_choice("reduction", reduction, REDUCTIONS)
    r, present, as_torch = checked_rank_matrix(ranks, mask)
    count = present.sum(1)
    # Each row is divided by a power of two near its largest rank, so that squares of
    # huge ranks do not overflow; a power of two changes no rounding, so ordinary ranks
    # give exactly the unscaled result.
    scale = _power_of_two_scale(torch.where(present, r.abs(), torch.zeros_like(r)).amax(1))
    values = torch.where(present, r / scale[:, None], torch.zeros_like(r))
    mean = values.sum(1) / count.clamp(min=1)
    centred = torch.where(present, values - mean[:, None], torch.zeros_like(r))
    scaled = centred.square().sum(1) / count.clamp(min=1)
    if reduction == "std":
        spread = scaled.sqrt() * scale
    else:
        spread = scaled * scale * scale  # scale ** 2 alone could overflow
        overflow = torch.isinf(spread) & (count >= 2)
        if bool(overflow.any()):
            row = int(overflow.nonzero()[0, 0])
            raise InputError(
                f"the rank variance of row {row} of ranks is beyond the float64 range "
                f"(ranks up to {float(scale[row]):.3g}); reduction='std' can be computed",
                argument="ranks",
            )
    spread = torch.where(count >= 2, spread, torch.full_like(spread, float("nan")))
    return to_output(spread, as_torch)


def _power_of_two_scale(largest: torch.Tensor) -> torch.Tensor:
    """Return the power of two at or just above each of ``largest`` (1 for zero)."""
    _, exponent = torch.frexp(largest)
    return torch.ldexp(torch.ones_like(largest), exponent)


def checked_rank_matrix(
    ranks: ArrayLike, mask: ArrayLike | None, *, rows: str = "N"
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Check ``ranks [N, K]`` and ``mask``; return float64 ranks, the mask, torch-ness.

    Ranks must be finite wherever the mask is True; a missing mask means all present.
    ``rows`` is the caller's name for the instance axis in messages (``B`` for a batch).
    """
    r, as_torch = to_tensor(ranks, "ranks")
    check_numeric(r, "ranks")
    check_ndim(r, "ranks", 2, f"[{rows}, K] (instances x languages)")
    r = r.double()
    if mask is None:
        present = torch.ones_like(r, dtype=torch.bool)
    else:
        m, _ = to_tensor(mask, "mask")
        present = check_bool_mask(m, "mask", tuple(r.shape), "(instances x languages)", r.device)
    bad = present & ~torch.isfinite(r)
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise InputError(
            f"ranks contains {float(r[i, j])} at [{i}, {j}]; mark missing languages "
            "with mask instead",
            argument="ranks",
        )
    return r, present, as_torch


def mean_rank_variance(
    ranks: ArrayLike,
    *,
    reduction: Reduction = "variance",
    mask: ArrayLike | None = None,
) -> float:
    """Mean Rank Variance: the mean over instances of the spread of their ranks.

    Parameters
    ----------
    ranks : array-like or torch.Tensor, shape [N, K]
        Rank of instance ``j`` in language ``k`` (rows instances, columns languages),
        for one direction. 0-based or 1-based alike.
    reduction : {"variance", "std"}, default "variance"
        ``"variance"`` is the paper's Eq. 7,
        ``MRV_K = 1/(N K) * sum_j sum_k (Rank_jk - mean_k Rank_jk)^2``: the mean of
        each instance's population variance. ``"std"`` is the mean population standard
        deviation, which is what the released code computed and what the paper's
        Table 1 reports (e.g. 7.89 for CCR10-E); the variance of the same ranks is
        roughly its square. Always say which one a number is.
    mask : array-like of bool, shape [N, K], optional
        Which ranks exist. A row's spread is taken over its present languages; rows
        with fewer than two present languages are left out of the mean (they have no
        spread), so the mean is over the rows with at least two.

    Returns
    -------
    mrv : float
        Non-negative; 0 when every instance has the same rank in every language.

    Raises
    ------
    ValueError
        As :func:`instance_rank_variance`, and if no row has two present languages
        (for example ``K = 1``).

    Notes
    -----
    MRV is invariant to adding a constant to all ranks, so 0-based positions (the
    released code's ``ranks/*.npy``) give the same value as 1-based ranks. Scaling
    all ranks by ``c`` scales the variance form by ``c**2`` and the std form by ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> ranks = np.array([[1, 3],
    ...                   [2, 2],
    ...                   [5, 1]])
    >>> mean_rank_variance(ranks)
    1.6666666666666667
    >>> mean_rank_variance(ranks, reduction="std")
    1.0
    >>> mask = np.array([[True, True], [True, False], [True, True]])
    >>> mean_rank_variance(ranks, mask=mask)  # row 1 has one language: left out
    2.5
    """
    spread, _ = to_tensor(instance_rank_variance(ranks, reduction=reduction, mask=mask), "spread")
    kept = ~torch.isnan(spread)
    if not bool(kept.any()):
        raise InputError(
            "mean_rank_variance needs at least one instance ranked in two or more "
            f"languages; none of the {spread.shape[0]} rows of ranks has two present",
            argument="mean_rank_variance",
        )
    kept_spread = spread[kept]
    # Scaled by a power of two as in instance_rank_variance: the sum must not overflow.
    scale = _power_of_two_scale(kept_spread.abs().amax())
    return float((kept_spread / scale).mean() * scale)


def ranks_per_image(
    text_ranks: ArrayLike,
    text_to_image: ArrayLike,
    n_images: int,
    *,
    caption_reduction: CaptionReduction = "first",
) -> tuple[Array, Array]:
    """Reduce text-to-image ranks of several captions to one rank per image.

    MRV compares one rank per (instance, language). Text-to-image retrieval gives a
    rank per caption, and an image can have several captions in a language (or none):
    this reduces them to one value per image and says which images have any.

    Parameters
    ----------
    text_ranks : array-like or torch.Tensor, shape [M]
        Rank of each caption's image, as :func:`~ccr_metrics.text_to_image_ranks`
        returns them.
    text_to_image : array-like of int, shape [M]
        The image each caption describes, in ``[0, n_images)``.
    n_images : int
        Number of images ``N``, at most ``2**31 - 1`` (a rank per image is returned).
    caption_reduction : {"first", "mean", "min", "median"}, default "first"
        ``"first"`` takes the image's first caption in the given (file) order, the
        lowest text index in ``text_to_image``, whatever its rank (for data with one
        caption per language, the only one); ``"min"`` its best-ranked caption;
        ``"mean"`` and ``"median"`` summarise all its captions.

    Returns
    -------
    ranks : numpy.ndarray or torch.Tensor, shape [N], float64
        One rank per image; NaN for an image without a caption.
    present : numpy.ndarray or torch.Tensor, shape [N], bool
        Which images have at least one caption: a column of the ``mask`` that
        :func:`mean_rank_variance` takes.

    Raises
    ------
    ValueError
        If the shapes disagree, an image index is out of range, ``text_ranks`` holds
        NaN, ``n_images`` is not an integer in ``[1, 2**31 - 1]``, or
        ``caption_reduction`` is unknown.

    Examples
    --------
    >>> ranks, present = ranks_per_image([4, 2, 7, 1], [0, 0, 2, 2], 3, caption_reduction="min")
    >>> ranks, present
    (array([ 2., nan,  1.]), array([ True, False,  True]))
    >>> ranks_per_image([4, 2, 7, 1], [0, 0, 2, 2], 3, caption_reduction="median")[0]
    array([ 3., nan,  4.])
    """
    check_choice("caption_reduction", caption_reduction, CAPTION_REDUCTIONS)
    n_images = check_positive_int("n_images", n_images, maximum=_MAX_IMAGES)
    r, as_torch = to_tensor(text_ranks, "text_ranks")
    check_numeric(r, "text_ranks")
    check_ndim(r, "text_ranks", 1, "[M] (one rank per caption)")
    r = r.double()
    if bool(torch.isnan(r).any()):
        raise InputError(
            f"text_ranks contains NaN at position {int(torch.isnan(r).nonzero()[0, 0])}",
            argument="text_ranks",
        )
    owner = text_owner_index(text_to_image, n_texts=r.shape[0], n_images=n_images, device=r.device)
    count = torch.bincount(owner, minlength=n_images)
    present = count > 0
    if caption_reduction == "first":
        first = torch.full((n_images,), r.shape[0], dtype=torch.long, device=r.device)
        first.scatter_reduce_(0, owner, torch.arange(r.shape[0], device=r.device), reduce="amin")
        out = r[first.clamp(max=max(r.shape[0] - 1, 0))]
    elif caption_reduction in ("mean", "min"):
        out = torch.zeros(n_images, dtype=torch.float64, device=r.device)
        out.scatter_reduce_(
            0,
            owner,
            r,
            reduce="mean" if caption_reduction == "mean" else "amin",
            include_self=False,
        )
    else:
        # Sort by (image, rank); an image's captions are then a contiguous run whose
        # middle one or two entries give the median.
        order = torch.argsort(r, stable=True)
        order = order[torch.argsort(owner[order], stable=True)]
        sorted_ranks = r[order]
        start = torch.cumsum(count, 0) - count
        low = (start + (count - 1).clamp(min=0) // 2).clamp(max=max(r.shape[0] - 1, 0))
        high = (start + count // 2).clamp(max=max(r.shape[0] - 1, 0))
        out = (sorted_ranks[low] + sorted_ranks[high]) / 2 if r.shape[0] else r.new_zeros(n_images)
    out = torch.where(present, out, torch.full_like(out, float("nan")))
    return to_output(out, as_torch), to_output(present, as_torch)
