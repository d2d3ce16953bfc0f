"""The weights the samplers of :mod:`ccr_metrics.training.sampling` draw from, and the draw.

Each function takes the samplers' arguments, checks them (with
:mod:`ccr_metrics.training._args`) and returns unnormalised float64 weights, 0 where a
candidate must not be drawn and with a positive sum in every row; :func:`draw` makes
one ``torch.multinomial`` call for all rows. The rules are documented with the public
functions that use them.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..core._backend import ArrayLike
from ..core._validation import InputError, check_choice, first_nonfinite, integer, shape_str
from ._args import (
    check_finite_where,
    check_mask_like,
    check_sim,
    check_sim_i2t,
    check_temperature,
    check_text_mask,
)

SamplingVariant = Literal["paper", "released", "uniform"]
PositiveVariant = Literal["paper", "max_gap", "uniform"]
ReleasedOption = Literal[0, 1, 2]

#: The sampling rules :func:`~ccr_metrics.hard_negatives` accepts.
SAMPLING_VARIANTS: tuple[SamplingVariant, ...] = ("paper", "released", "uniform")
#: The sampling rules :func:`~ccr_metrics.hard_positive_languages` accepts.
POSITIVE_VARIANTS: tuple[PositiveVariant, ...] = ("paper", "max_gap", "uniform")
_RELEASED_OPTIONS: tuple[ReleasedOption, ...] = (0, 1, 2)
#: The least similarity the ``"paper"`` rules use: smaller ones (zero, negative) are
#: raised to it, which keeps Eq. 8 and 9 a valid distribution.
SIMILARITY_FLOOR = 1e-6
#: The constant the released code adds to its weights.
RELEASED_EPS = 1e-5


def positive_variant(variant: PositiveVariant) -> PositiveVariant:
    """Return ``variant`` if it is one of :data:`POSITIVE_VARIANTS`, else raise.

    ``"released"`` gets a message of its own: the released weights exist, elsewhere.
    """
    # str(): the annotation names the accepted values; a caller may pass any string.
    if isinstance(variant, str) and str(variant) == "released":
        listed = ", ".join(repr(o) for o in POSITIVE_VARIANTS)
        raise InputError(
            f"variant must be one of {listed}; got 'released': the "
            "released code's hard positive weights need the full [B, B * K] image-to-text "
            "similarities, so they are released_hard_positive_probabilities and "
            "released_hard_positive_languages",
            argument="variant",
        )
    return check_choice("variant", variant, POSITIVE_VARIANTS)


def positive_weights(
    sim: torch.Tensor, variant: PositiveVariant, text_mask: ArrayLike | None
) -> torch.Tensor:
    """Unnormalised float64 weights ``[B, K]``, 0 on missing texts, positive row sums."""
    s = check_sim(sim, "[B, K] (images x languages)")
    n_images, n_languages = s.shape
    present = (
        torch.ones(n_images, n_languages, dtype=torch.bool, device=s.device)
        if text_mask is None
        else check_text_mask(text_mask, n_images, n_languages, s.device)
    )
    check_finite_where(s, "sim", present)
    uniform = present.double()
    if variant == "uniform":
        return uniform
    s = s.double()
    if variant == "max_gap":
        top = s.masked_fill(~present, -torch.inf).max()
        return torch.where(present, top - s + RELEASED_EPS, 0.0)
    floored = torch.where(present, s.clamp_min(SIMILARITY_FLOOR), 0.0)
    # 1 - s_k / S is proportional to S - s_k: the same draw, one rounding fewer.
    weights = torch.where(present, floored.sum(1, keepdim=True) - floored, 0.0)
    single = present.sum(1, keepdim=True) == 1
    return torch.where(single, uniform, weights)


def released_logits(
    sim_i2t: torch.Tensor,
    temperature: float,
    option: ReleasedOption,
    text_mask: ArrayLike | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the arguments; return ``sim_i2t / temperature`` in float64 and the mask.

    The mask is ``[B, K]`` bool, all True without ``text_mask``; the logits of missing
    texts are 0.
    """
    if integer(option) not in _RELEASED_OPTIONS:  # 0-d int arrays count; bools do not
        raise InputError(
            "option must be one of 0 (uniform), 1 (softmax weights, the released default) "
            f"or 2 (scaled similarities); got {option!r}",
            argument="option",
        )
    scale = check_temperature(temperature)
    s, present = check_sim_i2t(sim_i2t, text_mask)
    logits = s.double().masked_fill(~present.reshape(1, -1), 0.0) / scale
    found = first_nonfinite(logits)
    if found is not None:
        raise InputError(
            f"sim_i2t {shape_str(s)} / temperature {temperature!r} overflows float64 at "
            f"{list(found[0])}; use a larger temperature",
            argument="sim_i2t",
        )
    return logits, present


def released_positive_weights(
    logits: torch.Tensor, present: torch.Tensor, option: ReleasedOption
) -> torch.Tensor:
    """Unnormalised float64 weights ``[B, K]`` of the released hard positive draw.

    Missing texts (``present`` False) leave the softmax and the maximum and weigh 0.
    """
    n_images, n_languages = present.shape
    if option == 0:
        return present.to(logits.dtype)
    columns = present.reshape(1, -1)
    values = logits.masked_fill(~columns, -torch.inf)
    if option == 1:
        values = values.softmax(1) + RELEASED_EPS
    top = values.masked_fill(~columns, -torch.inf).max() + RELEASED_EPS
    rows = torch.arange(n_images, device=logits.device)
    # Image-major texts: [B, B * K] -> [B, B, K]; entry [b, b] holds image b's own K.
    own = values.view(n_images, n_images, n_languages)[rows, rows]
    return torch.where(present, top - own, 0.0)


def negative_weights(
    sim: torch.Tensor,
    positive_mask: ArrayLike,
    variant: SamplingVariant,
    temperature: float,
    candidate_mask: ArrayLike | None,
) -> torch.Tensor:
    """Unnormalised float64 weights ``[Q, G]``, 0 where a column must not be drawn."""
    check_choice("variant", variant, SAMPLING_VARIANTS)
    check_temperature(temperature)
    s = check_sim(sim, "[Q, G] (queries x candidates)")
    positive = check_mask_like(positive_mask, "positive_mask", s, allow_row=False)
    exists = (
        torch.ones_like(positive)
        if candidate_mask is None
        else check_mask_like(candidate_mask, "candidate_mask", s, allow_row=True)
    )
    check_finite_where(s, "sim", exists)
    negative = exists & ~positive
    empty = ~negative.any(1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise InputError(
            f"row {row} of sim {shape_str(s)} has no negative candidate: every column is "
            "a positive (positive_mask) or excluded (candidate_mask)",
            argument="row",
        )
    s = s.double()
    if variant == "uniform":
        weights = torch.ones_like(s)
    elif variant == "released":
        logits = (s / temperature).masked_fill(~exists, -torch.inf)
        weights = logits.softmax(1) + RELEASED_EPS
    else:
        weights = s.clamp_min(SIMILARITY_FLOOR)
    return torch.where(negative, weights, 0.0)


def draw(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``weights``, all rows in a single multinomial call."""
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)
