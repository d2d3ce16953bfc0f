"""The 1-to-K contrastive loss of CCR^k (Nie et al., KDD 2024), its 1-to-1 baseline, and ITM.

Pure functions of the embeddings: nothing here gathers across processes (that is
:mod:`ccr_metrics.losses`, through :mod:`ccr_metrics.distributed`). The public entry
points are re-exported by :mod:`ccr_metrics.losses`; the helpers below them are shared
with the module and the samplers. :func:`contrastive_terms` is the one implementation
of the 1-to-K maths, which the functional loss and the module (one process or gathered)
both reach through :func:`one_to_k_contrastive_loss`.

:class:`HardSamples` is the index contract between the samplers
(:func:`ccr_metrics.sampling.mine` returns it) and the matching loss
(:func:`matching_pairs` consumes it); it lives here, in the core both may import.

Notation: a batch of ``B`` instances, image ``j`` with embedding ``i_j`` and texts
``t_jk`` in ``K`` languages (slot ``k`` of row ``j`` of ``text_embeds``); ``tau`` is the
temperature and ``K_j`` the number of texts image ``j`` has under ``text_mask``.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from ..core._backend import ArrayLike, to_tensor
from ..core._validation import (
    InputError,
    check_bool_mask,
    check_choice,
    check_has_data,
    check_ndim,
    first_nonfinite,
    shape_str,
)

__all__ = [
    "DEFAULT_TEMPERATURE",
    "VARIANTS",
    "ContrastiveLossTerms",
    "HardSamples",
    "MatchingPairs",
    "matching_loss",
    "matching_pairs",
    "one_to_k_contrastive_loss",
    "one_to_one_contrastive_loss",
]

Variant = Literal["paper", "released"]

#: The loss scalings :func:`one_to_k_contrastive_loss` offers.
VARIANTS: tuple[Variant, ...] = ("paper", "released")
#: The temperature of the paper (and of CLIP's initialisation), used when none is given.
DEFAULT_TEMPERATURE = 0.07
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

    The index contract between :func:`ccr_metrics.sampling.mine` and
    :func:`ccr_metrics.losses.matching_pairs`: three int64 tensors ``[B]`` on the
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
        mode of :class:`~ccr_metrics.losses.OneToKContrastiveLoss` passes the rows of
        its own process. By default every row queries.

    Returns
    -------
    ContrastiveLossTerms
        ``total``, ``i2t`` and ``t2i`` as differentiable 0-dim tensors, in float32 for
        half-precision inputs and in the inputs' (promoted) dtype otherwise.

    Raises
    ------
    ValueError
        If an embedding tensor is not a floating-point tensor of the stated
        dimensions, the two disagree on ``B``, ``D`` or device, or the batch is empty;
        if ``text_mask`` is not a bool ``[B, K]`` array; if ``temperature`` is not a
        finite positive number, ``logit_scale`` is not a real number or a 0-dim
        floating-point tensor, or both are given; if ``query_rows`` is not a
        non-empty slice of step 1 within ``[0, B)``; if ``variant`` is unknown. With
        ``validate=True`` also if an embedding holds NaN or infinity, ``text_mask``
        leaves an image without texts, or ``logit_scale`` is not finite and positive.
        The new checks raise :class:`~ccr_metrics._validation.InputError`, a
        ``ValueError``.

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
    return contrastive_terms(
        image_embeds, text_embeds, mask, scale=scale, variant=variant, rows=rows
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
        of one length ``B`` on one device, as :func:`ccr_metrics.sampling.mine`
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
    fields = _check_hard_samples(hard)
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
    if isinstance(logits, torch.Tensor):
        check_has_data(logits, "logits")
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        kind = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(
            f"logits must be a floating-point tensor [N, 2] or [N], got {kind}", argument="logits"
        )
    if not (logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 2)) or not len(logits):
        raise InputError(
            f"logits must have shape [N, 2] (two class logits) or [N] (the match logit) "
            f"with N > 0, got {shape_str(logits)}",
            argument="logits",
        )
    n_pairs = logits.shape[0]
    if (
        not isinstance(labels, torch.Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or tuple(labels.shape) != (n_pairs,)
    ):
        got = (
            f"dtype {labels.dtype} {shape_str(labels)}"
            if isinstance(labels, torch.Tensor)
            else type(labels).__name__
        )
        raise InputError(
            f"labels must be an integer or bool tensor [N] = [{n_pairs}] matching logits "
            f"{shape_str(logits)}, got {got}",
            argument="labels",
        )
    if labels.device != logits.device:
        raise InputError(
            f"labels is on {labels.device} but logits on {logits.device}", argument="labels"
        )
    if validate:
        found = first_nonfinite(logits)
        if found is not None:
            index, value = found
            raise InputError(
                f"logits {shape_str(logits)} contains {value} at index {list(index)}; "
                "it must be finite",
                argument="logits",
                position=index,
                value=value,
            )
        bad = (labels != 0) & (labels != 1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise InputError(
                f"labels[{row}] = {int(labels[row])}; labels must be 0 or 1",
                argument="labels",
                position=(row,),
            )
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


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float if it is finite and positive, else raise."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise InputError(
            f"temperature must be a finite positive number, got {temperature!r}",
            argument="temperature",
        )
    return float(temperature)


def check_logit_scale(
    temperature: float | None, logit_scale: float | torch.Tensor | None, *, validate: bool
) -> float | torch.Tensor:
    """Return the multiplier of the cosines, from ``temperature`` or ``logit_scale``.

    ``1 / 0.07`` if neither is given. A float comes back as a float, a tensor as itself
    (its gradient kept). Only the value check of a tensor reads it (a host sync), and
    only with ``validate``.
    """
    if logit_scale is None:
        return 1.0 / check_temperature(DEFAULT_TEMPERATURE if temperature is None else temperature)
    if temperature is not None:
        raise InputError(
            f"pass temperature or logit_scale, not both (got temperature={temperature!r} "
            "and a logit_scale); logit_scale is 1 / temperature",
            argument="logit_scale",
        )
    if isinstance(logit_scale, torch.Tensor):
        if not logit_scale.is_floating_point() or logit_scale.ndim != 0:
            raise InputError(
                "logit_scale must be a 0-dim floating-point tensor (the multiplier "
                f"1 / temperature), got dtype {logit_scale.dtype} {shape_str(logit_scale)}",
                argument="logit_scale",
            )
        if validate:
            check_has_data(logit_scale, "logit_scale")
            value = float(logit_scale.detach())
            if not math.isfinite(value) or value <= 0:
                raise InputError(
                    f"logit_scale must be finite and positive, got {value!r}",
                    argument="logit_scale",
                    value=value,
                )
        return logit_scale
    if (
        isinstance(logit_scale, bool)
        or not isinstance(logit_scale, numbers.Real)
        or not math.isfinite(logit_scale)
        or logit_scale <= 0
    ):
        raise InputError(
            f"logit_scale must be a finite positive number or a 0-dim tensor, got {logit_scale!r}",
            argument="logit_scale",
        )
    return float(logit_scale)


def check_query_rows(query_rows: slice | None, n_images: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a non-empty step-1 slice of ``[0, n_images)``; None for all rows."""
    if query_rows is None:
        return None
    if not isinstance(query_rows, slice):
        raise InputError(
            f"query_rows must be a slice of the B = {n_images} rows, "
            f"got {type(query_rows).__name__}",
            argument="query_rows",
        )
    start = 0 if query_rows.start is None else query_rows.start
    stop = n_images if query_rows.stop is None else query_rows.stop
    step = 1 if query_rows.step is None else query_rows.step
    bounds = (start, stop, step)
    if (
        any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in bounds)
        or step != 1
        or not 0 <= start < stop <= n_images
    ):
        raise InputError(
            "query_rows must be a non-empty slice of step 1 within the rows "
            f"[0, B) = [0, {n_images}), got {query_rows!r}",
            argument="query_rows",
        )
    if start == 0 and stop == n_images:
        return None  # every row: the plain computation
    return int(start), int(stop)


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Refuse a generator that torch.multinomial cannot use on ``device``."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise InputError(
            f"generator must be a torch.Generator, got {type(generator).__name__}",
            argument="generator",
        )
    if generator.device.type != device.type:
        raise InputError(
            f"generator is on {generator.device} but the data is on {device}; "
            f"create it with torch.Generator(device={str(device)!r})",
            argument="generator",
        )


def check_embeddings(
    t: object, name: str, ndim: int, layout: str, *, finite: bool = True
) -> torch.Tensor:
    """Return ``t`` if it is a floating-point tensor with ``ndim`` dimensions.

    With ``finite`` also refuse NaN and infinity, which reads the values (a host sync).
    """
    if not isinstance(t, torch.Tensor):
        raise InputError(
            f"{name} must be a torch.Tensor {layout}, got {type(t).__name__}", argument=name
        )
    if not t.is_floating_point():
        raise InputError(
            f"{name} must be floating point, got dtype {t.dtype} {shape_str(t)}", argument=name
        )
    check_ndim(t, name, ndim, layout)
    if not finite:
        return t  # shapes only: meta tensors (tracing a training step) pass
    check_has_data(t, name)
    found = first_nonfinite(t)
    if found is not None:
        index, value = found
        raise InputError(
            f"{name} {shape_str(t)} contains {value} at index {list(index)}; "
            "embeddings must be finite",
            argument=name,
        )
    return t


def check_batch(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_mask: ArrayLike | None,
    *,
    validate: bool = True,
) -> torch.Tensor | None:
    """Validate a 1-to-K batch; return the mask as a bool tensor on the data's device.

    Without ``validate`` only what reads no tensor value is checked (types, dimensions,
    shapes, devices): no host sync.
    """
    check_embeddings(image_embeds, "image_embeds", 2, "[B, D]", finite=validate)
    check_embeddings(text_embeds, "text_embeds", 3, "[B, K, D]", finite=validate)
    n_images, dim = image_embeds.shape
    n_rows, n_languages, text_dim = text_embeds.shape
    if n_rows != n_images or text_dim != dim:
        raise InputError(
            f"text_embeds {shape_str(text_embeds)} must be [B, K, D] with the B and D of "
            f"image_embeds {shape_str(image_embeds)}",
            argument="text_embeds",
        )
    if n_images == 0 or n_languages == 0 or dim == 0:
        raise InputError(
            f"the batch must not be empty: image_embeds {shape_str(image_embeds)}, "
            f"text_embeds {shape_str(text_embeds)}"
        )
    if image_embeds.device != text_embeds.device:
        raise InputError(
            f"image_embeds is on {image_embeds.device} but text_embeds on {text_embeds.device}",
            argument="image_embeds",
        )
    if text_mask is None:
        return None
    return check_text_mask(text_mask, n_images, n_languages, text_embeds.device, every_row=validate)


def check_text_mask(
    text_mask: ArrayLike,
    n_images: int,
    n_languages: int,
    device: torch.device,
    *,
    every_row: bool = True,
) -> torch.Tensor:
    """``text_mask`` as a bool tensor ``[B, K]`` on ``device``; every row needs a True.

    ``every_row=False`` skips that last check, the one that reads the mask's values.
    """
    # A tensor is taken as it is, so that a meta mask can trace a step without checks.
    mask = (
        text_mask if isinstance(text_mask, torch.Tensor) else to_tensor(text_mask, "text_mask")[0]
    )
    mask = check_bool_mask(mask, "text_mask", (n_images, n_languages), "([B, K])", device)
    if not every_row:
        return mask
    check_has_data(mask, "text_mask")
    empty = ~mask.any(1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise InputError(
            f"text_mask {shape_str(mask)} leaves image {row} without any text; "
            "every image needs at least one",
            argument="text_mask",
        )
    return mask


def _check_hard_samples(hard: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the three index tensors of ``hard``, checked for dtype, shape and device."""
    names = HardSamples._fields
    fields: tuple[object, ...] = tuple(hard) if isinstance(hard, tuple) else ()
    if len(fields) != len(names):
        raise InputError(
            "hard must be HardSamples(positive_text, negative_image, negative_text), "
            f"got {type(hard).__name__}",
            argument="hard",
        )
    checked: list[torch.Tensor] = []
    for name, t in zip(names, fields, strict=True):
        if (
            not isinstance(t, torch.Tensor)
            or t.dtype == torch.bool
            or t.is_floating_point()
            or t.is_complex()
            or t.ndim != 1
        ):
            got = (
                f"dtype {t.dtype} {shape_str(t)}"
                if isinstance(t, torch.Tensor)
                else type(t).__name__
            )
            raise InputError(
                f"hard.{name} must be a 1-D integer tensor [B], got {got}",
                argument=f"hard.{name}",
            )
        first = checked[0] if checked else t
        if t.shape != first.shape or t.device != first.device or not len(t):
            raise InputError(
                f"hard.{name} {shape_str(t)} on {t.device} must have the non-zero length "
                f"and the device of hard.positive_text {shape_str(first)} on {first.device}",
                argument=f"hard.{name}",
            )
        checked.append(t)
    return checked[0], checked[1], checked[2]


def _check_language(
    language: ArrayLike,
    n_images: int,
    n_languages: int,
    mask: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor:
    chosen, _ = to_tensor(language, "language")
    if chosen.dtype == torch.bool or chosen.is_floating_point() or chosen.is_complex():
        raise InputError(
            f"language must hold integer language slots, got dtype {chosen.dtype}",
            argument="language",
        )
    if tuple(chosen.shape) != (n_images,):
        raise InputError(
            f"language must have shape [B] = [{n_images}] (one slot per image), "
            f"got {shape_str(chosen)}",
            argument="language",
        )
    chosen = chosen.to(device=device, dtype=torch.long)
    outside = (chosen < 0) | (chosen >= n_languages)
    if bool(outside.any()):
        row = int(outside.nonzero()[0, 0])
        raise InputError(
            f"language[{row}] = {int(chosen[row])} is outside [0, K) = [0, {n_languages})"
        )
    if mask is not None:
        absent = ~mask[torch.arange(n_images, device=device), chosen]
        if bool(absent.any()):
            row = int(absent.nonzero()[0, 0])
            raise InputError(
                f"language[{row}] = {int(chosen[row])} names a text that text_mask marks missing"
            )
    return chosen
