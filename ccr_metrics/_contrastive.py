"""The 1-to-K contrastive loss of CCR^k (Nie et al., KDD 2024) and its 1-to-1 baseline.

Pure functions of the embeddings: nothing here gathers across processes (that is
:mod:`ccr_metrics.losses`, through :mod:`ccr_metrics.distributed`). The public entry
points are re-exported by :mod:`ccr_metrics.losses`; the helpers below them are shared
with the module and the samplers.

Notation: a batch of ``B`` instances, image ``j`` with embedding ``i_j`` and texts
``t_jk`` in ``K`` languages (slot ``k`` of row ``j`` of ``text_embeds``); ``tau`` is the
temperature and ``K_j`` the number of texts image ``j`` has under ``text_mask``.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, NamedTuple

import torch

from ._backend import ArrayLike, to_tensor
from ._validation import check_bool_mask, check_choice, check_ndim, first_nonfinite, shape_str

__all__ = [
    "VARIANTS",
    "ContrastiveLossTerms",
    "one_to_k_contrastive_loss",
    "one_to_one_contrastive_loss",
]

Variant = Literal["paper", "released"]

#: The loss scalings :func:`one_to_k_contrastive_loss` offers.
VARIANTS: tuple[Variant, ...] = ("paper", "released")


class ContrastiveLossTerms(NamedTuple):
    """The value of a contrastive loss and its two directions (0-dim tensors)."""

    #: ``i2t + t2i``: the quantity to minimise.
    total: torch.Tensor
    #: The image-to-text term (images query the texts).
    i2t: torch.Tensor
    #: The text-to-image term (texts query the images).
    t2i: torch.Tensor


def one_to_k_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    *,
    temperature: float = 0.07,
    text_mask: ArrayLike | None = None,
    variant: Variant = "paper",
) -> ContrastiveLossTerms:
    """1-to-K contrastive loss: each image against all ``B * K`` texts of the batch at once.

    Parameters
    ----------
    image_embeds : torch.Tensor, shape [B, D]
        Image embeddings, L2-normalised by the caller (this function does not
        normalise: the dot product is taken as the cosine).
    text_embeds : torch.Tensor, shape [B, K, D]
        Text embeddings, L2-normalised by the caller; row ``j`` holds the ``K``
        translations of image ``j``'s caption.
    temperature : float, default 0.07
        Softmax temperature ``tau``; the logits are ``cosine / tau``.
    text_mask : bool array or tensor, shape [B, K], optional
        ``True`` where text ``t_jk`` exists. Missing texts are removed from every
        numerator and denominator, and image ``j``'s target puts ``1 / K_j`` on its
        ``K_j`` present texts. Every image needs at least one text. The embeddings of
        missing texts are ignored (they only need to be finite).
    variant : {"paper", "released"}, default "paper"
        The scaling of the two terms; see Notes.

    Returns
    -------
    ContrastiveLossTerms
        ``total``, ``i2t`` and ``t2i`` as differentiable 0-dim tensors, in float32 for
        half-precision inputs and in the inputs' (promoted) dtype otherwise.

    Raises
    ------
    ValueError
        If an embedding tensor is not a floating-point tensor of the stated
        dimensions, the two disagree on ``B``, ``D`` or device, either holds NaN or
        infinity, or the batch is empty; if ``text_mask`` is not a bool ``[B, K]``
        array or leaves an image without texts; if ``temperature`` is not a finite
        positive number; if ``variant`` is unknown.

    Notes
    -----
    With ``p_i2t(j, k)`` the softmax probability of text ``t_jk`` in image ``j``'s row
    of the ``[B, B * K]`` logits and ``p_t2i(j, k)`` that of image ``j`` in text
    ``t_jk``'s row of the ``[B * K, B]`` logits, ``"paper"`` (Eq. 1, 2 and 6) gives::

        i2t = 1/B * sum_j  -1/K_j * sum_k log p_i2t(j, k)
        t2i = 1/T * sum_jk -log p_t2i(j, k)          (T = number of present texts)
        total = i2t + t2i

    ``"released"`` reproduces ``get_unialign_contrastive_loss`` of the authors' code,
    which returns ``(i2t' + t2i') / 2 / K`` where ``i2t'`` is the mean over images of
    ``-sum_k log p_i2t(j, k)`` (labels 1, not 1/K, on the positives) and ``t2i'`` the
    mean over texts of ``-log p_t2i(j, k)``. Its fields are::

        i2t = 1/(2 K B) * sum_j sum_k -log p_i2t(j, k)    (= paper i2t / 2 without a mask)
        t2i = 1/(2 K T) * sum_jk -log p_t2i(j, k)         (= paper t2i / (2K))
        total = i2t + t2i

    With a mask the sums run over present texts and ``K`` stays the number of
    language slots. With ``K = 1`` the paper variant is the CLIP loss
    ``CE(logits) + CE(logits.T)`` and the released one half of it.

    The logits are computed in float32 when an input is float16 or bfloat16, so a
    temperature of 0.01 cannot overflow them; log-probabilities come from
    ``log_softmax``, never from ``exp`` followed by ``log``.

    Examples
    --------
    >>> import torch
    >>> images = torch.eye(2, 3)                              # [B=2, D=3]
    >>> texts = torch.stack([torch.eye(2, 3), torch.eye(2, 3)], dim=1)  # [B=2, K=2, D=3]
    >>> terms = one_to_k_contrastive_loss(images, texts, temperature=0.5)
    >>> round(terms.total.item(), 4), round(terms.i2t.item(), 4), round(terms.t2i.item(), 4)
    (0.947, 0.8201, 0.1269)
    """
    check_choice("variant", variant, VARIANTS)
    scale = 1.0 / check_temperature(temperature)
    mask = check_batch(image_embeds, text_embeds, text_mask)
    i2t_nll, t2i_nll = positive_nll(
        image_embeds, text_embeds, mask, image_embeds, text_embeds, mask, offset=0, scale=scale
    )
    n_texts = text_embeds.shape[0] * text_embeds.shape[1] if mask is None else mask.sum()
    return reduce_terms(
        i2t_nll,
        t2i_nll,
        mask,
        n_images=image_embeds.shape[0],
        n_texts=n_texts,
        variant=variant,
    )


def one_to_one_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    *,
    language: ArrayLike | None = None,
    generator: torch.Generator | None = None,
    temperature: float = 0.07,
    text_mask: ArrayLike | None = None,
    variant: Variant = "paper",
) -> ContrastiveLossTerms:
    """1-to-1 baseline: each image is paired with one of its ``K`` texts for this step.

    The ablation the paper compares against: the same ``[B, K, D]`` batch as
    :func:`one_to_k_contrastive_loss`, but each image sees a single caption (in
    language ``language[j]``) and the other images' chosen captions, i.e. the CLIP loss
    on ``B`` pairs.

    Parameters
    ----------
    image_embeds : torch.Tensor, shape [B, D]
        Image embeddings, L2-normalised by the caller.
    text_embeds : torch.Tensor, shape [B, K, D]
        Text embeddings, L2-normalised by the caller, ``K`` languages per image.
    language : int array or tensor, shape [B], optional
        The language slot used for each image. By default one present language per
        image is drawn uniformly, with ``generator``.
    generator : torch.Generator, optional
        Source of randomness for the default draw, on the embeddings' device. The
        draw equals ``hard_positive_languages(sim, variant="uniform", ...)`` with the
        same mask and generator state.
    temperature : float, default 0.07
        Softmax temperature.
    text_mask : bool array or tensor, shape [B, K], optional
        ``True`` where a text exists; only present texts are drawn, and a given
        ``language`` must name a present text.
    variant : {"paper", "released"}, default "paper"
        As for :func:`one_to_k_contrastive_loss` with ``K = 1``: ``"paper"`` is
        ``CE(logits) + CE(logits.T)``, ``"released"`` half of it (ALBEF's loss).

    Returns
    -------
    ContrastiveLossTerms
        ``total``, ``i2t`` and ``t2i`` as 0-dim tensors.

    Raises
    ------
    ValueError
        As :func:`one_to_k_contrastive_loss`; also if ``language`` is not an integer
        array of shape ``[B]``, names a slot outside ``[0, K)`` or a masked text, or
        if ``generator`` is on another device than the embeddings.

    Examples
    --------
    >>> import torch
    >>> images = torch.eye(2, 3)
    >>> texts = torch.stack([torch.eye(2, 3), torch.eye(2, 3)[[1, 0]]], dim=1)
    >>> terms = one_to_one_contrastive_loss(images, texts, language=[0, 0], temperature=0.5)
    >>> round(terms.total.item(), 4)
    0.2539
    """
    check_choice("variant", variant, VARIANTS)
    check_temperature(temperature)
    mask = check_batch(image_embeds, text_embeds, text_mask)
    n_images, n_languages = text_embeds.shape[:2]
    device = text_embeds.device
    if language is None:
        check_generator(generator, device)
        weights = (
            torch.ones(n_images, n_languages, dtype=torch.float64, device=device)
            if mask is None
            else mask.double()
        )
        chosen = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    else:
        chosen = _check_language(language, n_images, n_languages, mask, device)
    rows = torch.arange(n_images, device=device)
    paired = text_embeds[rows, chosen].unsqueeze(1)
    return one_to_k_contrastive_loss(image_embeds, paired, temperature=temperature, variant=variant)


def positive_nll(
    query_images: torch.Tensor,
    query_texts: torch.Tensor,
    query_mask: torch.Tensor | None,
    gallery_images: torch.Tensor,
    gallery_texts: torch.Tensor,
    gallery_mask: torch.Tensor | None,
    *,
    offset: int,
    scale: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative log-probabilities of every positive pair, both directions, ``[b, K]`` each.

    The queries are ``b`` instances (``query_images [b, D]``, ``query_texts [b, K, D]``)
    whose own entries sit at rows ``offset .. offset + b - 1`` of a gallery of ``N``
    instances. Entry ``[j, k]`` of the first result is ``-log p_i2t`` of text ``k``
    in image ``j``'s row over the ``N * K`` gallery texts; of the second,
    ``-log p_t2i`` of image ``j`` in text ``t_jk``'s row over the ``N`` gallery images.
    Entries of masked texts are 0. ``scale`` multiplies the cosines (``1 / tau``).
    """
    dtype = compute_dtype(query_images.dtype, query_texts.dtype)
    n_queries, n_languages, dim = query_texts.shape
    n_gallery = gallery_images.shape[0]
    device = query_images.device
    own = torch.arange(n_queries, device=device) + offset

    texts = gallery_texts.to(dtype).reshape(n_gallery * n_languages, dim)
    i2t_logits = (query_images.to(dtype) @ texts.T) * scale
    if gallery_mask is not None:
        i2t_logits = i2t_logits.masked_fill(~gallery_mask.reshape(1, -1), -math.inf)
    i2t_logp = i2t_logits.log_softmax(1).view(n_queries, n_gallery, n_languages)
    i2t_nll = -i2t_logp[torch.arange(n_queries, device=device), own]

    queries = query_texts.to(dtype).reshape(n_queries * n_languages, dim)
    t2i_logp = ((queries @ gallery_images.to(dtype).T) * scale).log_softmax(1)
    t2i_logp = t2i_logp.view(n_queries, n_languages, n_gallery)
    t2i_nll = -t2i_logp.gather(2, own.view(-1, 1, 1).expand(-1, n_languages, 1)).squeeze(2)

    if query_mask is not None:
        # where, not a product: a masked positive's log-probability is -inf.
        zero = torch.zeros((), dtype=dtype, device=device)
        i2t_nll = torch.where(query_mask, i2t_nll, zero)
        t2i_nll = torch.where(query_mask, t2i_nll, zero)
    return i2t_nll, t2i_nll


def reduce_terms(
    i2t_nll: torch.Tensor,
    t2i_nll: torch.Tensor,
    query_mask: torch.Tensor | None,
    *,
    n_images: int,
    n_texts: int | torch.Tensor,
    variant: Variant,
    weight: float = 1.0,
) -> ContrastiveLossTerms:
    """Combine the per-pair terms of :func:`positive_nll` into the two means.

    ``n_images`` and ``n_texts`` are the sizes of the whole batch the means run over,
    which exceed the queries' when only a part of the batch is queried (the
    distributed ``local_loss`` mode); ``weight`` multiplies both terms.
    """
    n_languages = i2t_nll.shape[1]
    if variant == "paper":
        per_image = i2t_nll.sum(1) / (n_languages if query_mask is None else query_mask.sum(1))
        i2t = per_image.sum() / n_images
        t2i = t2i_nll.sum() / n_texts
    else:
        i2t = i2t_nll.sum() / (2 * n_languages * n_images)
        t2i = t2i_nll.sum() / (2 * n_languages * n_texts)
    i2t = i2t * weight
    t2i = t2i * weight
    return ContrastiveLossTerms(i2t + t2i, i2t, t2i)


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """Return the dtype of the logits: float32 for half precision, else the promoted one."""
    promoted = dtypes[0]
    for d in dtypes[1:]:
        promoted = torch.promote_types(promoted, d)
    # exp(1 / 0.01) overflows float16; bfloat16 keeps 8 bits of mantissa.
    if promoted in (torch.float16, torch.bfloat16):
        return torch.float32
    return promoted


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float if it is finite and positive, else raise."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(f"temperature must be a finite positive number, got {temperature!r}")
    return float(temperature)


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Refuse a generator that torch.multinomial cannot use on ``device``."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device} but the data is on {device}; "
            f"create it with torch.Generator(device={str(device)!r})"
        )


def check_embeddings(t: object, name: str, ndim: int, layout: str) -> torch.Tensor:
    """Return ``t`` if it is a finite floating-point tensor with ``ndim`` dimensions."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor {layout}, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {t.dtype} {shape_str(t)}")
    check_ndim(t, name, ndim, layout)
    found = first_nonfinite(t)
    if found is not None:
        index, value = found
        raise ValueError(
            f"{name} {shape_str(t)} contains {value} at index {list(index)}; "
            "embeddings must be finite"
        )
    return t


def check_batch(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, text_mask: ArrayLike | None
) -> torch.Tensor | None:
    """Validate a 1-to-K batch; return the mask as a bool tensor on the data's device."""
    check_embeddings(image_embeds, "image_embeds", 2, "[B, D]")
    check_embeddings(text_embeds, "text_embeds", 3, "[B, K, D]")
    n_images, dim = image_embeds.shape
    n_rows, n_languages, text_dim = text_embeds.shape
    if n_rows != n_images or text_dim != dim:
        raise ValueError(
            f"text_embeds {shape_str(text_embeds)} must be [B, K, D] with the B and D of "
            f"image_embeds {shape_str(image_embeds)}"
        )
    if n_images == 0 or n_languages == 0 or dim == 0:
        raise ValueError(
            f"the batch must not be empty: image_embeds {shape_str(image_embeds)}, "
            f"text_embeds {shape_str(text_embeds)}"
        )
    if image_embeds.device != text_embeds.device:
        raise ValueError(
            f"image_embeds is on {image_embeds.device} but text_embeds on {text_embeds.device}"
        )
    if text_mask is None:
        return None
    return check_text_mask(text_mask, n_images, n_languages, text_embeds.device)


def check_text_mask(
    text_mask: ArrayLike, n_images: int, n_languages: int, device: torch.device
) -> torch.Tensor:
    """``text_mask`` as a bool tensor ``[B, K]`` on ``device``; every row needs a True."""
    mask, _ = to_tensor(text_mask, "text_mask")
    mask = check_bool_mask(mask, "text_mask", (n_images, n_languages), "([B, K])", device)
    empty = ~mask.any(1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise ValueError(
            f"text_mask {shape_str(mask)} leaves image {row} without any text; "
            "every image needs at least one"
        )
    return mask


def _check_language(
    language: ArrayLike,
    n_images: int,
    n_languages: int,
    mask: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor:
    chosen, _ = to_tensor(language, "language")
    if chosen.dtype == torch.bool or chosen.is_floating_point() or chosen.is_complex():
        raise ValueError(f"language must hold integer language slots, got dtype {chosen.dtype}")
    if tuple(chosen.shape) != (n_images,):
        raise ValueError(
            f"language must have shape [B] = [{n_images}] (one slot per image), "
            f"got {shape_str(chosen)}"
        )
    chosen = chosen.to(device=device, dtype=torch.long)
    outside = (chosen < 0) | (chosen >= n_languages)
    if bool(outside.any()):
        row = int(outside.nonzero()[0, 0])
        raise ValueError(
            f"language[{row}] = {int(chosen[row])} is outside [0, K) = [0, {n_languages})"
        )
    if mask is not None:
        absent = ~mask[torch.arange(n_images, device=device), chosen]
        if bool(absent.any()):
            row = int(absent.nonzero()[0, 0])
            raise ValueError(
                f"language[{row}] = {int(chosen[row])} names a text that text_mask marks missing"
            )
    return chosen
