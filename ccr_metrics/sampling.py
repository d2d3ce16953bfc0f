"""Hard positive languages and hard negatives for the matching heads of CCR^k.

Both samplers turn similarities into a weight per candidate, never give weight to a
candidate that must not be drawn, and make one ``torch.multinomial`` call for the whole
batch, so a seeded ``torch.Generator`` reproduces the draws.

Where the paper's formulas (Eq. 8 and 9) are undefined, because a similarity is not
positive or an image has a single text, the rules below apply; they agree with the
formulas wherever those are defined and similarities are at least
:data:`SIMILARITY_FLOOR`:

- similarities below :data:`SIMILARITY_FLOOR` are raised to it before Eq. 8 or 9;
- an image with a single present text draws that text (Eq. 8 gives it weight 0/0).

The ``"released"`` variants reproduce the weights of the authors' code
(``get_unialign_matching_loss``), computed without its per-sample Python loop.
"""

from __future__ import annotations

from typing import Literal

import torch

from ._backend import ArrayLike, to_tensor
from ._contrastive import (
    check_generator,
    check_temperature,
    check_text_mask,
)
from ._validation import check_choice, check_ndim, first_nonfinite, shape_str

__all__ = [
    "RELEASED_EPS",
    "SAMPLING_VARIANTS",
    "SIMILARITY_FLOOR",
    "hard_negative_probabilities",
    "hard_negatives",
    "hard_positive_languages",
    "hard_positive_probabilities",
]

SamplingVariant = Literal["paper", "released", "uniform"]

#: The sampling rules both samplers accept.
SAMPLING_VARIANTS: tuple[SamplingVariant, ...] = ("paper", "released", "uniform")
#: The least similarity the ``"paper"`` rules use: smaller ones (zero, negative) are
#: raised to it, which keeps Eq. 8 and 9 a valid distribution.
SIMILARITY_FLOOR = 1e-6
#: The constant the released code adds to its weights.
RELEASED_EPS = 1e-5


def hard_positive_languages(
    sim: torch.Tensor,
    *,
    variant: SamplingVariant = "paper",
    text_mask: ArrayLike | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one language per image, favouring the texts that align worst with it (Eq. 8).

    Parameters
    ----------
    sim : torch.Tensor, shape [B, K]
        ``sim[j, k]`` is the cosine of image ``j`` with its own text in language ``k``.
    variant : {"paper", "released", "uniform"}, default "paper"
        The weighting; see :func:`hard_positive_probabilities`.
    text_mask : bool array or tensor, shape [B, K], optional
        ``True`` where the text exists. Missing languages are never drawn and their
        ``sim`` entries are ignored (they may be NaN); every image needs at least one
        text.
    generator : torch.Generator, optional
        Source of randomness, on the device of ``sim``.

    Returns
    -------
    torch.Tensor, shape [B], int64
        The language slot drawn for each image, on the device of ``sim``.

    Raises
    ------
    ValueError
        If ``sim`` is not a finite floating-point ``[B, K]`` tensor, ``text_mask`` is
        not a bool ``[B, K]`` array or leaves an image without texts, ``variant`` is
        unknown, or ``generator`` is on another device.

    Examples
    --------
    >>> import torch
    >>> sim = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    >>> hard_positive_probabilities(sim)
    tensor([[0.1000, 0.9000],
            [0.5000, 0.5000]], dtype=torch.float64)
    >>> g = torch.Generator().manual_seed(0)
    >>> hard_positive_languages(sim, generator=g).shape
    torch.Size([2])
    """
    weights = _positive_weights(sim, variant, text_mask)
    check_generator(generator, weights.device)
    return _draw(weights, generator)


def hard_positive_probabilities(
    sim: torch.Tensor,
    *,
    variant: SamplingVariant = "paper",
    text_mask: ArrayLike | None = None,
) -> torch.Tensor:
    """Return the distribution :func:`hard_positive_languages` draws from, ``[B, K]``.

    Parameters
    ----------
    sim, variant, text_mask
        As for :func:`hard_positive_languages`.

    Returns
    -------
    torch.Tensor, shape [B, K], float64
        Row-stochastic probabilities, 0 on missing languages.

    Raises
    ------
    ValueError
        As :func:`hard_positive_languages`.

    Notes
    -----
    For image ``j`` with present languages ``k`` (``K_j`` of them) and cosines
    ``s_k``:

    - ``"paper"``: Eq. 8 normalised. With ``s'_k = max(s_k, SIMILARITY_FLOOR)`` and
      ``S = sum_k s'_k``, ``P(k) = (1 - s'_k / S) / (K_j - 1)``, which is
      proportional to the sum of the other languages' cosines. Eq. 8 as printed is
      not a distribution (its values sum to ``K_j - 1``) and is undefined when a
      cosine is not positive; the floor makes every weight non-negative and the
      row's sum positive, and gives all non-positive cosines the same, largest,
      weight. If all cosines are at or below the floor the draw is uniform; if
      ``K_j = 1`` the single text is drawn.
    - ``"released"``: ``P(k)`` proportional to ``M - s_k + RELEASED_EPS`` where ``M``
      is the largest present entry of the whole ``sim`` (option 2 of the released
      code). The released code takes ``M`` over the full image-text similarity
      matrix, divided by its temperature: pass ``sim / temperature`` to reproduce its
      weights exactly when that maximum is a positive pair.
    - ``"uniform"``: ``P(k) = 1 / K_j``.

    Examples
    --------
    >>> import torch
    >>> hard_positive_probabilities(torch.tensor([[0.2, 0.6, 0.2]]))  # worse-aligned likelier
    tensor([[0.4000, 0.2000, 0.4000]], dtype=torch.float64)
    """
    weights = _positive_weights(sim, variant, text_mask)
    return weights / weights.sum(1, keepdim=True)


def hard_negatives(
    sim: torch.Tensor,
    positive_mask: ArrayLike,
    *,
    variant: SamplingVariant = "paper",
    temperature: float = 0.07,
    generator: torch.Generator | None = None,
    candidate_mask: ArrayLike | None = None,
) -> torch.Tensor:
    """Draw one negative column per query row, favouring the most similar (Eq. 9).

    Parameters
    ----------
    sim : torch.Tensor, shape [Q, G]
        Similarity of each query to each gallery candidate. For a hard negative image
        of instance ``j`` (paper, Eq. 9) pass ``sim[j, j'] = sum_k t_jk . i_j'``; for a
        hard negative text of image ``j``, its cosines with the ``B * K`` texts.
    positive_mask : bool array or tensor, shape [Q, G]
        ``True`` where the candidate is a positive of the query; positives are never
        drawn.
    variant : {"paper", "released", "uniform"}, default "paper"
        The weighting; see :func:`hard_negative_probabilities`.
    temperature : float, default 0.07
        Divides ``sim`` in the ``"released"`` softmax; unused by the other variants.
    generator : torch.Generator, optional
        Source of randomness, on the device of ``sim``.
    candidate_mask : bool array or tensor, shape [G] or [Q, G], optional
        ``False`` for gallery columns that do not exist (such as missing
        translations); they are never drawn, leave the released softmax, and their
        ``sim`` entries are ignored (they may be NaN).

    Returns
    -------
    torch.Tensor, shape [Q], int64
        The column drawn for each query, never a positive.

    Raises
    ------
    ValueError
        If ``sim`` is not a finite floating-point ``[Q, G]`` tensor, a mask has the
        wrong dtype or shape, a row has no negative candidate (the message names
        it), ``temperature`` is not finite and positive, ``variant`` is unknown, or
        ``generator`` is on another device.

    Examples
    --------
    >>> import torch
    >>> sim = torch.tensor([[0.9, 0.6, 0.2], [0.3, 0.8, 0.1]])
    >>> hard_negative_probabilities(sim, torch.eye(2, 3, dtype=torch.bool))
    tensor([[0.0000, 0.7500, 0.2500],
            [0.7500, 0.0000, 0.2500]], dtype=torch.float64)
    >>> g = torch.Generator().manual_seed(0)
    >>> columns = hard_negatives(sim, torch.eye(2, 3, dtype=torch.bool), generator=g)
    >>> bool((columns != torch.arange(2)).all())
    True
    """
    weights = _negative_weights(sim, positive_mask, variant, temperature, candidate_mask)
    check_generator(generator, weights.device)
    return _draw(weights, generator)


def hard_negative_probabilities(
    sim: torch.Tensor,
    positive_mask: ArrayLike,
    *,
    variant: SamplingVariant = "paper",
    temperature: float = 0.07,
    candidate_mask: ArrayLike | None = None,
) -> torch.Tensor:
    """Return the distribution :func:`hard_negatives` draws from, ``[Q, G]``.

    Parameters
    ----------
    sim, positive_mask, variant, temperature, candidate_mask
        As for :func:`hard_negatives`.

    Returns
    -------
    torch.Tensor, shape [Q, G], float64
        Row-stochastic probabilities, 0 on positives and excluded candidates.

    Raises
    ------
    ValueError
        As :func:`hard_negatives`.

    Notes
    -----
    Over the negatives ``n`` of a row (not positive, not excluded):

    - ``"paper"``: Eq. 9, ``P(n)`` proportional to ``max(sim[n], SIMILARITY_FLOOR)``.
      Eq. 9 is undefined for non-positive similarities; the floor gives such
      candidates a negligible chance next to any positive similarity, and makes the
      draw uniform in a row with no similarity above the floor.
    - ``"released"``: ``P(n)`` proportional to
      ``softmax(sim / temperature)[n] + RELEASED_EPS``, the softmax taken over all
      existing candidates of the row, positives included, and the positives zeroed
      afterwards, as the released code does.
    - ``"uniform"``: every negative equally likely.

    Examples
    --------
    >>> import torch
    >>> sim = torch.tensor([[0.5, 0.3, 0.2]])
    >>> hard_negative_probabilities(sim, torch.tensor([[True, False, False]]))
    tensor([[0.0000, 0.6000, 0.4000]], dtype=torch.float64)
    """
    weights = _negative_weights(sim, positive_mask, variant, temperature, candidate_mask)
    return weights / weights.sum(1, keepdim=True)


def _positive_weights(
    sim: torch.Tensor, variant: SamplingVariant, text_mask: ArrayLike | None
) -> torch.Tensor:
    """Unnormalised float64 weights ``[B, K]``, 0 on missing texts, positive row sums."""
    check_choice("variant", variant, SAMPLING_VARIANTS)
    s = _check_sim(sim, "[B, K] (images x languages)")
    n_images, n_languages = s.shape
    present = (
        torch.ones(n_images, n_languages, dtype=torch.bool, device=s.device)
        if text_mask is None
        else check_text_mask(text_mask, n_images, n_languages, s.device)
    )
    _check_finite(s, present)
    uniform = present.double()
    if variant == "uniform":
        return uniform
    s = s.double()
    if variant == "released":
        top = s.masked_fill(~present, -torch.inf).max()
        return torch.where(present, top - s + RELEASED_EPS, 0.0)
    floored = torch.where(present, s.clamp_min(SIMILARITY_FLOOR), 0.0)
    # 1 - s_k / S is proportional to S - s_k: the same draw, one rounding fewer.
    weights = torch.where(present, floored.sum(1, keepdim=True) - floored, 0.0)
    single = present.sum(1, keepdim=True) == 1
    return torch.where(single, uniform, weights)


def _negative_weights(
    sim: torch.Tensor,
    positive_mask: ArrayLike,
    variant: SamplingVariant,
    temperature: float,
    candidate_mask: ArrayLike | None,
) -> torch.Tensor:
    """Unnormalised float64 weights ``[Q, G]``, 0 where a column must not be drawn."""
    check_choice("variant", variant, SAMPLING_VARIANTS)
    check_temperature(temperature)
    s = _check_sim(sim, "[Q, G] (queries x candidates)")
    positive = _check_bool(positive_mask, "positive_mask", s, allow_row=False)
    exists = (
        torch.ones_like(positive)
        if candidate_mask is None
        else _check_bool(candidate_mask, "candidate_mask", s, allow_row=True)
    )
    _check_finite(s, exists)
    negative = exists & ~positive
    empty = ~negative.any(1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise ValueError(
            f"row {row} of sim {shape_str(s)} has no negative candidate: every column is "
            "a positive (positive_mask) or excluded (candidate_mask)"
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


def _draw(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``weights``, all rows in a single multinomial call."""
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


def _check_sim(sim: object, layout: str) -> torch.Tensor:
    if not isinstance(sim, torch.Tensor):
        raise ValueError(f"sim must be a torch.Tensor {layout}, got {type(sim).__name__}")
    if not sim.is_floating_point():
        raise ValueError(f"sim must be floating point, got dtype {sim.dtype} {shape_str(sim)}")
    check_ndim(sim, "sim", 2, layout)
    if sim.shape[0] == 0 or sim.shape[1] == 0:
        raise ValueError(f"sim must have at least one row and one column, got {shape_str(sim)}")
    return sim


def _check_finite(sim: torch.Tensor, used: torch.Tensor) -> None:
    """Raise on a NaN or infinity in ``sim`` where ``used`` is True; the rest is ignored."""
    found = first_nonfinite(sim.masked_fill(~used, 0))
    if found is not None:
        index, value = found
        raise ValueError(
            f"sim {shape_str(sim)} contains {value} at {list(index)}; it must be finite"
        )


def _check_bool(mask: ArrayLike, name: str, sim: torch.Tensor, *, allow_row: bool) -> torch.Tensor:
    """``mask`` as a bool tensor broadcast to the shape of ``sim``, on its device."""
    t, _ = to_tensor(mask, name)
    if t.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool array, got dtype {t.dtype}")
    shapes = [tuple(sim.shape)] + ([(sim.shape[1],)] if allow_row else [])
    if tuple(t.shape) not in shapes:
        wanted = " or ".join("[" + ", ".join(map(str, s)) + "]" for s in shapes)
        raise ValueError(
            f"{name} must have shape {wanted} to match sim {shape_str(sim)}, got {shape_str(t)}"
        )
    return t.to(sim.device).expand_as(sim)
