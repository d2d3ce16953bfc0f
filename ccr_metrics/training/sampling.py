"""Hard positive languages and hard negatives for the matching heads of CCR^k.

The samplers turn similarities into a weight per candidate, never give weight to a
candidate that must not be drawn, and make one ``torch.multinomial`` call for the whole
batch, so a seeded ``torch.Generator`` reproduces the draws.

:func:`mine` draws everything one training step's matching head needs from the
``[B, B * K]`` image-to-text cosines: per image a hard positive text, a hard negative
image and a hard negative text, returned as indices (:class:`HardSamples`) that
:func:`ccr_metrics.matching_pairs` turns into the pairs and labels of the
matching loss. The index tuple is the whole contract: no base class to inherit.

Where the paper's formulas (Eq. 8 and 9) are undefined, because a similarity is not
positive or an image has a single text, the rules below apply; they agree with the
formulas wherever those are defined and similarities are at least
:data:`SIMILARITY_FLOOR`:

- similarities below :data:`SIMILARITY_FLOOR` are raised to it before Eq. 8 or 9;
- an image with a single present text draws that text (Eq. 8 gives it weight 0/0).

The ``"released"`` variant of :func:`hard_negatives` reproduces the negative weights
of the authors' code (``get_unialign_matching_loss``), computed without its per-sample
Python loop. Its hard positive weights depend on the whole ``[B, B * K]`` image-to-text
similarity matrix, not only on the ``[B, K]`` positives, so they have functions of their
own: :func:`released_hard_positive_probabilities` and
:func:`released_hard_positive_languages` (options 0, 1 and 2 of the released code,
1 being its default).

``"released"`` always means the released code's rule. :func:`hard_positive_languages`
has none (its ``[B, K]`` input lacks what the released weights need) and refuses it;
its ``"max_gap"`` variant, ``P(k)`` proportional to ``M - s_k + RELEASED_EPS`` with
``M`` the largest present entry of the ``[B, K]`` similarities, equals the released
option 2 only when the global maximum of the released matrix is a positive pair.
"""

from __future__ import annotations

import torch

from ..core._backend import ArrayLike
from ..core._validation import InputError, check_choice, shape_str
from ._args import check_generator, check_sim_i2t, check_temperature
from ._contrastive import HardSamples
from ._weights import (
    POSITIVE_VARIANTS,
    RELEASED_EPS,
    SAMPLING_VARIANTS,
    SIMILARITY_FLOOR,
    PositiveVariant,
    ReleasedOption,
    SamplingVariant,
    draw,
    negative_weights,
    positive_variant,
    positive_weights,
    released_logits,
    released_positive_weights,
)

__all__ = [
    "POSITIVE_VARIANTS",
    "RELEASED_EPS",
    "SAMPLING_VARIANTS",
    "SIMILARITY_FLOOR",
    "hard_negative_probabilities",
    "hard_negatives",
    "hard_positive_languages",
    "hard_positive_probabilities",
    "mine",
    "released_hard_positive_languages",
    "released_hard_positive_probabilities",
]


def hard_positive_languages(
    sim: torch.Tensor,
    *,
    variant: PositiveVariant = "paper",
    text_mask: ArrayLike | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one language per image, favouring the texts that align worst with it (Eq. 8).

    Parameters
    ----------
    sim : torch.Tensor, shape [B, K]
        ``sim[j, k]`` is the cosine of image ``j`` with its own text in language ``k``.
    variant : {"paper", "max_gap", "uniform"}, default "paper"
        The weighting; see :func:`hard_positive_probabilities`. There is no
        ``"released"``: the released code's weights need the ``[B, B * K]``
        similarities, which :func:`released_hard_positive_languages` takes.
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
        unknown (``"released"`` included: the message names the released functions),
        or ``generator`` is on another device.

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
    weights = positive_weights(sim, positive_variant(variant), text_mask)
    check_generator(generator, weights.device)
    return draw(weights, generator)


def hard_positive_probabilities(
    sim: torch.Tensor,
    *,
    variant: PositiveVariant = "paper",
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
    - ``"max_gap"``: ``P(k)`` proportional to ``M - s_k + RELEASED_EPS`` where ``M``
      is the largest present entry of the whole ``sim`` (all images, all languages).
      Every present text keeps a chance, the best aligned of the batch included (its
      weight is ``RELEASED_EPS``). This is the form of the released code's option 2,
      but that code takes ``M`` over the full ``[B, B * K]`` image-to-text matrix
      divided by the temperature, so ``sim / temperature`` gives its weights only when
      that matrix's maximum is a positive pair; otherwise the probabilities differ,
      on random batches often by more than 0.1. Its default, option 1, weighs softmax
      probabilities and cannot be computed from ``[B, K]`` at all. Use
      :func:`released_hard_positive_probabilities` for both.
    - ``"uniform"``: ``P(k) = 1 / K_j``.

    Examples
    --------
    >>> import torch
    >>> hard_positive_probabilities(torch.tensor([[0.2, 0.6, 0.2]]))  # worse-aligned likelier
    tensor([[0.4000, 0.2000, 0.4000]], dtype=torch.float64)
    """
    weights = positive_weights(sim, positive_variant(variant), text_mask)
    return weights / weights.sum(1, keepdim=True)


def released_hard_positive_probabilities(
    sim_i2t: torch.Tensor,
    temperature: float,
    *,
    option: ReleasedOption = 1,
    text_mask: ArrayLike | None = None,
) -> torch.Tensor:
    """Return the hard positive distribution of the released code, ``[B, K]``.

    The weights ``get_unialign_matching_loss`` of the authors' code hands to
    ``torch.multinomial`` for each image, normalised, for all images at once.

    Parameters
    ----------
    sim_i2t : torch.Tensor, shape [B, B * K]
        Cosine similarity of each image with every text of the batch, not divided by
        the temperature, texts image-major: the ``K`` texts of image ``b`` are columns
        ``b * K .. b * K + K - 1``. ``K`` is ``sim_i2t.shape[1] // B``.
    temperature : float
        The temperature the released code divides the cosines by (its learnable
        ``temp``, as a float).
    option : {0, 1, 2}, default 1
        The released ``neg_sample_type``: 0 uniform, 1 (its default) softmax
        weights, 2 scaled similarities; see Notes.
    text_mask : bool array or tensor, shape [B, K], optional
        ``True`` where text ``k`` of image ``b`` (column ``b * K + k``) exists; an
        extension, the released code has no mask. Missing texts leave every softmax
        and maximum and are never drawn, and their ``sim_i2t`` columns are ignored
        (they may be NaN); every image needs at least one text.

    Returns
    -------
    torch.Tensor, shape [B, K], float64
        Row ``b`` is the distribution of the language slot drawn for image ``b``;
        the text drawn is column ``b * K + k`` of ``sim_i2t``. On the device of
        ``sim_i2t``.

    Raises
    ------
    ValueError
        If ``sim_i2t`` is not a floating-point 2-D tensor with at least one row, its
        number of columns is not a positive multiple of its number of rows, it holds
        a NaN or infinity (the message names the first position), ``temperature`` is
        not a finite positive number or makes ``sim_i2t / temperature`` overflow,
        ``option`` is not 0, 1 or 2, or ``text_mask`` is not a bool ``[B, K]`` array
        or leaves an image without texts.

    Notes
    -----
    With ``L = sim_i2t / temperature`` and ``W = softmax(L, dim=1) + RELEASED_EPS``
    (each row a softmax over all ``B * K`` texts), the weight of language ``k`` of
    image ``b`` is

    - option 0: 1 (the released code's ``random.choice``);
    - option 1: ``max(W) + RELEASED_EPS - W[b, b * K + k]``;
    - option 2: ``max(L) + RELEASED_EPS - L[b, b * K + k]``;

    where both maxima run over the whole matrix, all images and all texts, not over
    the positives only. Each row is divided by its sum. Both maxima are at least
    every entry, so options 1 and 2 give every weight at least ``RELEASED_EPS``: a
    row cannot sum to 0, and every text keeps a chance, even the batch's best
    aligned one. The draw favours the texts whose softmax probability (option 1) or
    similarity (option 2) is lowest, i.e. the worse-aligned languages.

    :func:`hard_positive_probabilities` with ``variant="max_gap"`` on the ``[B, K]``
    positives of ``L`` equals option 2 only when the maximum of ``L`` is a positive
    pair, and nothing on ``[B, K]`` gives option 1.

    The computation is vectorised and in float64, whatever the input dtype; the
    released code works in the dtype of its features, so its weights agree with
    these up to that dtype's rounding.

    Examples
    --------
    >>> import torch
    >>> sim_i2t = torch.tensor([[0.8, 0.5, 0.9, 0.1],    # B = 2, K = 2; image 0 is
    ...                         [0.2, 0.3, 0.7, 0.6]])   # closest to a text of image 1
    >>> released_hard_positive_probabilities(sim_i2t, 0.1, option=2)
    tensor([[0.2000, 0.8000],
            [0.4000, 0.6000]], dtype=torch.float64)
    >>> released_hard_positive_probabilities(sim_i2t, 0.1)  # option 1, the default
    tensor([[0.3917, 0.6083],
            [0.0072, 0.9928]], dtype=torch.float64)
    """
    logits, present = released_logits(sim_i2t, temperature, option, text_mask)
    weights = released_positive_weights(logits, present, option)
    return weights / weights.sum(1, keepdim=True)


def released_hard_positive_languages(
    sim_i2t: torch.Tensor,
    temperature: float,
    *,
    option: ReleasedOption = 1,
    generator: torch.Generator | None = None,
    text_mask: ArrayLike | None = None,
) -> torch.Tensor:
    """Draw one language per image as the released code does, ``[B]``.

    Parameters
    ----------
    sim_i2t, temperature, option, text_mask
        As for :func:`released_hard_positive_probabilities`.
    generator : torch.Generator, optional
        Source of randomness, on the device of ``sim_i2t``.

    Returns
    -------
    torch.Tensor, shape [B], int64
        The language slot ``k`` drawn for each image (its text is column
        ``b * K + k`` of ``sim_i2t``), on the device of ``sim_i2t``.

    Raises
    ------
    ValueError
        As :func:`released_hard_positive_probabilities`; also if ``generator`` is
        not a ``torch.Generator`` or is on another device.

    Notes
    -----
    The draws follow :func:`released_hard_positive_probabilities`, made with a
    single ``torch.multinomial`` call for the batch; the released code makes one
    call per image from the global random state, so the distribution is the same
    but the individual draws are not.

    Examples
    --------
    >>> import torch
    >>> sim_i2t = torch.tensor([[0.8, 0.5, 0.9, 0.1], [0.2, 0.3, 0.7, 0.6]])
    >>> g = torch.Generator().manual_seed(0)
    >>> language = released_hard_positive_languages(sim_i2t, 0.1, generator=g)
    >>> language.shape, language.dtype
    (torch.Size([2]), torch.int64)
    >>> bool(((language >= 0) & (language < 2)).all())
    True
    """
    logits, present = released_logits(sim_i2t, temperature, option, text_mask)
    check_generator(generator, logits.device)
    return draw(released_positive_weights(logits, present, option), generator)


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
        hard negative text of image ``j``, its cosines with the ``B * K`` texts. The
        released code instead scores negative images with the cosines of the text
        drawn as ``j``'s hard positive: see Notes of
        :func:`hard_negative_probabilities`.
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
    weights = negative_weights(sim, positive_mask, variant, temperature, candidate_mask)
    check_generator(generator, weights.device)
    return draw(weights, generator)


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

    To reproduce the released negatives from the cosines ``sim_i2t`` ``[B, B * K]``
    (texts image-major) and the hard positive slots ``language`` ``[B]`` (for
    example from :func:`released_hard_positive_languages`), with ``own`` the
    ``[B, B * K]`` mask of each image's ``K`` texts and ``eye`` the ``[B, B]``
    identity, use ``variant="released"`` on

    - negative texts: ``sim_i2t`` with ``positive_mask=own``;
    - negative images: ``sim_i2t.T[arange(B) * K + language]``, row ``j`` holding
      the cosines of ``j``'s hard positive text with the ``B`` images, with
      ``positive_mask=eye``.

    The released code draws these with one ``torch.multinomial`` call per image from
    the same weights (``softmax + 1e-5``, own texts or own image zeroed), on the path
    without image ids (``idx=None``) that its pre-training takes.

    Examples
    --------
    >>> import torch
    >>> sim = torch.tensor([[0.5, 0.3, 0.2]])
    >>> hard_negative_probabilities(sim, torch.tensor([[True, False, False]]))
    tensor([[0.0000, 0.6000, 0.4000]], dtype=torch.float64)
    """
    weights = negative_weights(sim, positive_mask, variant, temperature, candidate_mask)
    return weights / weights.sum(1, keepdim=True)


def mine(
    sim_i2t: torch.Tensor,
    *,
    text_mask: ArrayLike | None = None,
    variant: SamplingVariant = "paper",
    temperature: float = 0.07,
    generator: torch.Generator | None = None,
) -> HardSamples:
    """Draw a hard positive text, a hard negative image and a hard negative text per image.

    The samples the matching (ITM) head of CCR^k scores, as indices (the contract
    :func:`ccr_metrics.matching_pairs` consumes), drawn without gradient.

    Parameters
    ----------
    sim_i2t : torch.Tensor, shape [B, B * K]
        Cosine of each image with every text of the batch, texts image-major (the
        ``K`` texts of image ``b`` are columns ``b * K .. b * K + K - 1``), e.g.
        ``image_embeds @ text_embeds.reshape(B * K, D).T``; not divided by the
        temperature. ``K`` is ``sim_i2t.shape[1] // B``. Its gradient is not used.
    text_mask : bool array or tensor, shape [B, K], optional
        ``True`` where a text exists. Missing texts are never drawn (as positives or
        negatives), leave every weight, and their columns of ``sim_i2t`` are ignored
        (they may be NaN). Every image needs at least one text.
    variant : {"paper", "released", "uniform"}, default "paper"
        The weights; see Notes.
    temperature : float, default 0.07
        Divides ``sim_i2t`` in the ``"released"`` softmaxes; unused otherwise. The
        released code passes its learnable ``temp`` at that step.
    generator : torch.Generator, optional
        Source of randomness, on the device of ``sim_i2t``. Three
        ``torch.multinomial`` calls draw, in this order, the positives, the negative
        images and the negative texts of the whole batch.

    Returns
    -------
    HardSamples
        ``positive_text``, ``negative_image``, ``negative_text``: int64 ``[B]`` on the
        device of ``sim_i2t``. For image ``b``: ``positive_text[b]`` is one of its own
        present texts (``positive_text[b] // K == b``), ``negative_image[b] != b``, and
        ``negative_text[b]`` a present text of another image.

    Raises
    ------
    InputError
        If the batch has fewer than 2 images (no negative image to draw).
    ValueError
        If ``sim_i2t`` is not a floating-point ``[B, B * K]`` tensor, finite where
        the texts exist; if ``text_mask`` is not a bool ``[B, K]`` array or leaves an
        image without texts; if ``variant`` is unknown, ``temperature`` is not finite
        and positive or, for ``"released"``, makes ``sim_i2t / temperature``
        overflow; if ``generator`` is on another device.

    Notes
    -----
    With ``s(b, n, k)`` the cosine of image ``b`` with text ``k`` of image ``n``:

    - ``"paper"``: the hard positive follows Eq. 8 on image ``b``'s own cosines
      (:func:`hard_positive_probabilities`, normalised, with its floor); the negative
      image follows Eq. 9, image ``n != b`` weighted by ``sum_k s(n, b, k)`` over
      ``b``'s present texts (the instance's texts, not only the chosen positive); the
      negative text weighs text ``(n, k)``, ``n != b``, by ``s(b, n, k)``. The
      ``"paper"`` rules of :func:`hard_negatives` raise similarities below
      :data:`SIMILARITY_FLOOR` to it.
    - ``"released"``: ``get_unialign_matching_loss`` of the authors' code with its
      default ``neg_sample_type = 1``: the positive from
      :func:`released_hard_positive_probabilities` (option 1); the negative image from
      ``softmax(sim / temperature) + 1e-5`` of the **text chosen as hard positive**
      over the ``B`` images, image ``b`` zeroed; the negative text from image ``b``'s
      softmax row over all ``B * K`` texts + 1e-5, its own texts zeroed.
    - ``"uniform"``: each uniformly among the allowed candidates.

    The released code makes one ``torch.multinomial`` call per sample; the
    distributions are the same, the individual draws are not. For option 0 or 2 of
    the released positives, compose :func:`released_hard_positive_languages` and
    :func:`hard_negatives` as this function does.

    Examples
    --------
    >>> import torch
    >>> sim_i2t = torch.tensor([[0.8, 0.5, 0.9, 0.1],    # B = 2, K = 2
    ...                         [0.2, 0.3, 0.7, 0.6]])
    >>> hard = mine(sim_i2t, generator=torch.Generator().manual_seed(0))
    >>> (hard.positive_text // 2).tolist(), hard.negative_image.tolist()
    ([0, 1], [1, 0])
    >>> (hard.negative_text // 2).tolist()
    [1, 0]
    >>> released = mine(sim_i2t, variant="released", temperature=0.1)
    >>> released.positive_text.dtype, released.positive_text.shape
    (torch.int64, torch.Size([2]))
    """
    check_choice("variant", variant, SAMPLING_VARIANTS)
    check_temperature(temperature)
    if isinstance(sim_i2t, torch.Tensor):
        sim_i2t = sim_i2t.detach()
    s, present = check_sim_i2t(sim_i2t, text_mask)
    n_images, n_languages = present.shape
    if n_images < 2:
        raise InputError(
            f"sim_i2t {shape_str(s)} holds one image: a hard negative image needs a batch "
            "of at least 2",
            argument="sim_i2t",
        )
    # Every image has a text and there are two or more: every row has negatives.
    check_generator(generator, s.device)
    rows = torch.arange(n_images, device=s.device)
    eye = torch.eye(n_images, dtype=torch.bool, device=s.device)
    own_texts = eye.repeat_interleave(n_languages, dim=1)  # [B, B * K]
    exists = present.reshape(-1)
    mask = None if text_mask is None else present

    if variant == "released":
        language = released_hard_positive_languages(
            s, temperature, text_mask=mask, generator=generator
        )
    else:
        own = s.view(n_images, n_images, n_languages)[rows, rows]  # [B, K]
        own_variant: PositiveVariant = "uniform" if variant == "uniform" else "paper"
        language = hard_positive_languages(
            own, variant=own_variant, text_mask=mask, generator=generator
        )
    positive_text = rows * n_languages + language

    if variant == "released":
        # The chosen positive text's cosines with the B images, as the released code.
        image_sim = s.T[positive_text]  # [B, B]
    else:
        # Eq. 9: image n scored for instance b by sum_k t_bk . i_n over b's present texts.
        per_text = s.T.reshape(n_images, n_languages, n_images)  # [b, k, n]
        image_sim = torch.where(present[..., None], per_text, 0.0).sum(1)
    negative_image = hard_negatives(
        image_sim, eye, variant=variant, temperature=temperature, generator=generator
    )
    negative_text = hard_negatives(
        s,
        own_texts,
        variant=variant,
        temperature=temperature,
        generator=generator,
        candidate_mask=exists,
    )
    return HardSamples(positive_text, negative_image, negative_text)
