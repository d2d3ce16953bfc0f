"""The 1-to-K contrastive loss of CCR^k (Nie et al., KDD 2024), its 1-to-1 baseline, and ITM.

Pure functions of the embeddings: nothing here gathers across processes (that is
:mod:`ccr_metrics.training.losses`, through :mod:`ccr_metrics.distributed`). The public entry
points are exported by :mod:`ccr_metrics.training.losses`; their argument checks, shared with
the module and the samplers, are in :mod:`ccr_metrics.training._args`.
:func:`contrastive_terms` is the one implementation
of the 1-to-K maths, which the functional loss and the module (one process or gathered)
both reach through :func:`one_to_k_contrastive_loss`.

:class:`HardSamples` is the index contract between the samplers
(:func:`ccr_metrics.mine` returns it) and the matching loss
(:func:`matching_pairs` consumes it); it lives here, in the core both may import.

Notation: a batch of ``B`` instances, image ``j`` with embedding ``i_j`` and texts
``t_jk`` in ``K`` languages (slot ``k`` of row ``j`` of ``text_embeds``); ``tau`` is the
temperature and ``K_j`` the number of texts image ``j`` has under ``text_mask``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from ..core._backend import ArrayLike
from ..core._validation import InputError, check_choice
from ._args import (
    check_batch,
    check_generator,
    check_hard_samples,
    check_language,
    check_logit_scale,
    check_matching,
    check_query_rows,
    check_temperature,
)

Variant = Literal["paper", "released"]

#: The loss scalings :func:`one_to_k_contrastive_loss` offers.
VARIANTS: tuple[Variant, ...] = ("paper", "released")
# The target F.cross_entropy skips: a missing text's row.
_IGNORE = -100


class ContrastiveLossTerms(NamedTuple):
    """The value of a contrastive loss and its two directions (0-dim tensors)."""

    #: ``i2t + t2i``: the quantity to minimise.
    total: torch.Tensor
    #: The image-to-text term (images query the texts).
    i2t: torch.Tensor
    #: The text-to-image term (texts query the images).
    t2i: torch.Tensor


class HardSamples(NamedTuple):
    """Hard samples for the matching heads, one of each per image of the batch.

    The index contract between :func:`ccr_metrics.mine` and
    :func:`ccr_metrics.matching_pairs`: three int64 tensors ``[B]`` on the
    batch's device. Texts are numbered image-major, text ``k`` of image ``b`` being
    ``b * K + k`` (rows of ``text_embeds.reshape(B * K, D)``).
    """

    #: For image ``b``, the index of its own text chosen as hard positive
    #: (``positive_text // K == b``).
    positive_text: torch.Tensor
    #: An image other than ``b`` to pair with that positive text.
    negative_image: torch.Tensor
    #: A text of another image to pair with image ``b``.
    negative_text: torch.Tensor


class MatchingPairs(NamedTuple):
    """The ``3 B`` image-text pairs a matching (ITM) head scores, and their labels."""

    #: ``[3B]`` index into the ``B`` images.
    image_index: torch.Tensor
    #: ``[3B]`` index into the ``B * K`` image-major texts.
    text_index: torch.Tensor
    #: ``[3B]`` int64, 1 for a matching pair and 0 otherwise.
    labels: torch.Tensor


def one_to_k_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    *,
    temperature: float | None = None,
    text_mask: ArrayLike | None = None,
    variant: Variant = "paper",
    logit_scale: float | torch.Tensor | None = None,
    validate: bool = True,
    query_rows: slice | None = None,
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
    temperature : float, optional
        Softmax temperature ``tau``; the logits are ``cosine / tau``. 0.07 when
        neither ``temperature`` nor ``logit_scale`` is given.
    text_mask : bool array or tensor, shape [B, K], optional
        ``True`` where text ``t_jk`` exists. Missing texts are removed from every
        numerator and denominator, and image ``j``'s target puts ``1 / K_j`` on its
        ``K_j`` present texts. Every image needs at least one text. The embeddings of
        missing texts are ignored (they only need to be finite).
    variant : {"paper", "released"}, default "paper"
        The scaling of the two terms; see Notes.
    logit_scale : float or 0-dim tensor, optional
        The multiplier of the cosines, ``1 / tau``, instead of ``temperature`` (give
        one or neither). A tensor keeps its gradient: pass ``logit_scale.exp()`` of a
        learnable log scale, as open_clip's model hands its loss. Not clamped here.
    validate : bool, default True
        Check the values of the inputs: embeddings finite, every image with a text,
        ``logit_scale`` finite and positive. These checks read tensor values, so on a
        GPU they wait for the device (host syncs). ``False`` skips them and makes no
        host sync, for training loops; the checks of types, dimensions, shapes and
        devices, which read no values, always run. With ``validate=False`` a bad value
        gives NaN or infinity instead of an error.
    query_rows : slice, optional
        Only the instances in these rows (a contiguous slice, step 1) query: the
        result is their share of the batch's loss, whose means still run over the
        whole batch (``B`` images, ``T`` present texts), so the shares of a partition
        of the rows add up to the loss of the batch. The distributed ``local_loss``
        mode of :class:`~ccr_metrics.OneToKContrastiveLoss` passes the rows of
        its own process. By default every row queries.

    Returns
    -------
    ContrastiveLossTerms
        ``total``, ``i2t`` and ``t2i`` as differentiable 0-dim tensors, in float32 for
        half-precision inputs and in the inputs' (promoted) dtype otherwise.

    Raises
    ------
    ValueError
        If an embedding tensor is not a dense float16, bfloat16, float32 or float64
        tensor of the stated dimensions, the two disagree on ``B``, ``D`` or device, or
        the batch is empty; if ``text_mask`` is not a bool ``[B, K]`` array; if
        ``temperature`` is not a finite positive number, ``logit_scale`` is not a real
        number or a 0-dim floating-point tensor, or both are given; if ``query_rows``
        is not a non-empty slice of step 1 within ``[0, B)``; if ``variant`` is
        unknown. With ``validate=True`` also if an embedding holds NaN or infinity,
        ``text_mask`` leaves an image without texts, ``logit_scale`` is not finite and
        positive, or the logits overflow their dtype (embeddings far from unit length,
        or a tiny temperature), which would make the loss NaN. The new checks raise
        :class:`~ccr_metrics.InputError`, a ``ValueError``.

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

    Without a mask and ``query_rows``, the computation is the plain one: one
    ``[B, B * K]`` matrix of logits, the soft-target cross-entropy
    ``-(targets * logits.log_softmax(1)).sum(1).mean()`` with ``1 / K`` on each
    image's own texts, and ``F.cross_entropy(logits.T, labels)`` for the texts.

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

    A learnable scale, as a training loop holds it, without the value checks:

    >>> log_scale = torch.nn.Parameter(torch.tensor(2.0).log())   # 1 / tau = 2
    >>> fast = one_to_k_contrastive_loss(
    ...     images, texts, logit_scale=log_scale.exp(), validate=False)
    >>> round(fast.total.item(), 4)
    0.947
    >>> fast.total.backward()
    >>> log_scale.grad is not None
    True

    The shares of a partition of the rows add up to the loss:

    >>> first = one_to_k_contrastive_loss(images, texts, temperature=0.5, query_rows=slice(0, 1))
    >>> second = one_to_k_contrastive_loss(images, texts, temperature=0.5, query_rows=slice(1, 2))
    >>> round((first.total + second.total).item(), 4)
    0.947
    """
    check_choice("variant", variant, VARIANTS)
    scale = check_logit_scale(temperature, logit_scale, validate=validate)
    mask = check_batch(image_embeds, text_embeds, text_mask, validate=validate)
    rows = check_query_rows(query_rows, image_embeds.shape[0])
    terms = contrastive_terms(
        image_embeds, text_embeds, mask, scale=scale, variant=variant, rows=rows
    )
    if validate:
        _check_no_overflow(terms, image_embeds, text_embeds, scale)
    return terms


def _check_no_overflow(
    terms: ContrastiveLossTerms,
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    scale: float | torch.Tensor,
) -> None:
    """Refuse a loss that is not finite: with finite inputs, logits past the dtype's range.

    The inputs are checked finite and every query has a text, so a NaN or infinite
    loss can only come from a product ``scale * <image, text>`` that overflowed.
    """
    if bool(torch.isfinite(terms.total.detach())):
        return
    dtype = str(compute_dtype(image_embeds.dtype, text_embeds.dtype)).removeprefix("torch.")
    value = float(scale.detach() if isinstance(scale, torch.Tensor) else scale)
    image, text = (float(t.detach().abs().amax()) for t in (image_embeds, text_embeds))
    raise InputError(
        f"the logits overflow {dtype}: logit_scale {value:.4g} (1 / temperature) times dot "
        f"products of embeddings with entries up to {image:.4g} (image_embeds) and "
        f"{text:.4g} (text_embeds), D = {image_embeds.shape[1]}, exceed its range; "
        "L2-normalise the embeddings (the loss expects cosines) or raise the temperature",
        argument="image_embeds",
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
        chosen = check_language(language, n_images, n_languages, mask, device)
    rows = torch.arange(n_images, device=device)
    paired = text_embeds[rows, chosen].unsqueeze(1)
    return one_to_k_contrastive_loss(image_embeds, paired, temperature=temperature, variant=variant)


def matching_pairs(hard: HardSamples) -> MatchingPairs:
    """Lay out the matching pairs of the released code from mined hard samples.

    ``get_unialign_matching_loss`` of the authors' code scores, in this order, the
    ``B`` positive pairs (image ``b``, its hard positive text), then ``B`` pairs
    (hard negative image, that positive text), then ``B`` pairs (image ``b``, hard
    negative text), with labels ``1`` for the first ``B`` and ``0`` for the rest.

    Parameters
    ----------
    hard : HardSamples
        ``(positive_text, negative_image, negative_text)``, three 1-D integer tensors
        of one length ``B`` on one device, as :func:`ccr_metrics.mine`
        returns them (any such triple is accepted).

    Returns
    -------
    MatchingPairs
        ``image_index``, ``text_index`` and ``labels``, int64 ``[3B]`` on the device
        of ``hard``. Gather the embeddings with them, e.g.
        ``image_embeds[pairs.image_index]`` and
        ``text_embeds.reshape(B * K, D)[pairs.text_index]``.

    Raises
    ------
    InputError
        If ``hard`` is not three 1-D integer tensors of one non-zero length on one
        device; the message names the field.

    Notes
    -----
    Reads no tensor value (no host sync) and checks no index range, which it cannot
    know; indexing the embeddings with an index out of range fails there.

    Examples
    --------
    >>> import torch
    >>> hard = HardSamples(
    ...     positive_text=torch.tensor([1, 2]),   # B = 2, K = 2: texts 0, 1 are image 0's
    ...     negative_image=torch.tensor([1, 0]),
    ...     negative_text=torch.tensor([3, 0]))
    >>> pairs = matching_pairs(hard)
    >>> pairs.image_index.tolist(), pairs.text_index.tolist(), pairs.labels.tolist()
    ([0, 1, 1, 0, 0, 1], [1, 2, 1, 2, 3, 0], [1, 1, 0, 0, 0, 0])
    """
    fields = check_hard_samples(hard, HardSamples._fields)
    positive_text, negative_image, negative_text = fields
    n_images = positive_text.shape[0]
    device = positive_text.device
    rows = torch.arange(n_images, device=device)
    image_index = torch.cat([rows, negative_image.long(), rows])
    text_index = torch.cat([positive_text, positive_text, negative_text]).long()
    labels = torch.cat(
        [
            torch.ones(n_images, dtype=torch.long, device=device),
            torch.zeros(2 * n_images, dtype=torch.long, device=device),
        ]
    )
    return MatchingPairs(image_index, text_index, labels)


def matching_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, validate: bool = True
) -> torch.Tensor:
    """Image-text matching (ITM) loss: binary cross-entropy of the pairs' scores.

    Parameters
    ----------
    logits : torch.Tensor, shape [N, 2] or [N]
        The matching head's output for ``N`` pairs: two class logits ("no match",
        "match") as the released ``itm_head`` gives them, or one logit of "match".
    labels : torch.Tensor, shape [N]
        1 for a matching pair, 0 otherwise (integer or bool), e.g.
        :attr:`MatchingPairs.labels`.
    validate : bool, default True
        Check that ``logits`` is finite and ``labels`` holds only 0 and 1, which reads
        their values (a host sync on a GPU). ``False`` skips it; the checks of
        dtypes, shapes and devices always run.

    Returns
    -------
    torch.Tensor
        0-dim, the mean over the pairs: ``F.cross_entropy(logits, labels)`` for
        ``[N, 2]`` (as the released code), ``F.binary_cross_entropy_with_logits`` for
        ``[N]``. The two agree when the single logit is the difference of the two.

    Raises
    ------
    InputError
        If ``logits`` is not a floating-point ``[N, 2]`` or ``[N]`` tensor with
        ``N > 0``, ``labels`` is not an integer or bool ``[N]`` tensor on the same
        device, or, with ``validate``, ``logits`` holds NaN or infinity or ``labels``
        a value other than 0 and 1 (the message names the first position).

    Examples
    --------
    >>> import torch
    >>> labels = torch.tensor([1, 0, 0])
    >>> two = torch.tensor([[0.0, 2.0], [0.0, -1.0], [0.0, 0.5]])
    >>> round(matching_loss(two, labels).item(), 4)
    0.4714
    >>> round(matching_loss(two[:, 1] - two[:, 0], labels).item(), 4)   # one logit
    0.4714
    """
    check_matching(logits, labels, validate=validate)
    if logits.ndim == 2:
        return F.cross_entropy(logits, labels.long())
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def contrastive_terms(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_mask: torch.Tensor | None,
    *,
    scale: float | torch.Tensor,
    variant: Variant,
    rows: tuple[int, int] | None = None,
) -> ContrastiveLossTerms:
    """Compute :func:`one_to_k_contrastive_loss` on checked inputs: the maths, once.

    ``text_mask`` is a bool tensor ``[N, K]`` on the data's device or None, ``scale``
    multiplies the cosines, and ``rows = (start, stop)`` (or None for all) are the
    querying instances. Reads no tensor value: no host sync.
    """
    dtype = compute_dtype(image_embeds.dtype, text_embeds.dtype)
    n_images, n_languages, dim = text_embeds.shape
    device = text_embeds.device
    images = image_embeds.to(dtype)
    texts = text_embeds.to(dtype)
    flat = texts.reshape(n_images * n_languages, dim)
    start, stop = (0, n_images) if rows is None else rows
    n_queries = stop - start
    query_mask = None if text_mask is None else text_mask[start:stop]

    query_images = images if rows is None else images[start:stop]
    logits = (query_images @ flat.T) * scale  # [n, N * K]

    # Image to text: soft targets on each query's own texts (image-major columns),
    # held as [n, N, 1] and broadcast over the K texts of each image, not materialised.
    own = torch.eye(n_images, dtype=dtype, device=device)[start:stop, :, None]
    if text_mask is None or query_mask is None:
        log_p = logits.log_softmax(1)
        targets = own / n_languages
    else:
        present = text_mask.reshape(1, n_images * n_languages)
        log_p = logits.masked_fill(~present, -math.inf).log_softmax(1)
        # Missing texts: log p = -inf and target 0; zero them so that 0 * -inf is not NaN.
        log_p = log_p.masked_fill(~present, 0.0)
        if variant == "paper":
            targets = own / query_mask.sum(1)[:, None, None]  # 1 / K_j
        else:
            targets = own / n_languages
    weighted = log_p.view(n_queries, n_images, n_languages) * targets
    # paper: L_i2t(j); released: sum_k -log p / K
    per_image = -weighted.view(n_queries, n_images * n_languages).sum(1)
    i2t = per_image.mean() if rows is None else per_image.sum() / n_images

    # Text to image: each present text against the images, its own image the label.
    # (Written after the image-to-text term, as the loss is written plainly: autograd
    # then sums the two gradients of the shared logits in the same order.)
    if rows is None:
        t2i_logits = logits.T  # [N * K, N]
    else:
        queries = texts[start:stop].reshape(n_queries * n_languages, dim)
        t2i_logits = (queries @ images.T) * scale  # [n * K, N]
    labels = torch.arange(start, stop, device=device).repeat_interleave(n_languages)
    if query_mask is not None:
        labels = labels.masked_fill(~query_mask.reshape(-1), _IGNORE)
    if rows is None:
        t2i = F.cross_entropy(t2i_logits, labels, ignore_index=_IGNORE)  # mean over T
    else:
        n_texts = n_images * n_languages if text_mask is None else text_mask.sum()
        t2i = F.cross_entropy(t2i_logits, labels, ignore_index=_IGNORE, reduction="sum") / n_texts

    if variant == "released":
        i2t = i2t / 2
        t2i = t2i / (2 * n_languages)
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
