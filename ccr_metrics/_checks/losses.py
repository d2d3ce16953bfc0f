"""The 1-to-K loss check: :data:`LOSS_PROPERTIES` and :func:`check_contrastive_loss`.

Canonical call: ``fn(image_embeds [B, D], text_embeds [B, K, D], temperature=tau) ->
0-dim tensor`` (or a tuple whose first item is it), ``text_mask=`` added when masked,
with :func:`ccr_metrics.one_to_k_contrastive_loss` as the reference. Also here: drawing
unit-norm batches and text masks, and calling the checked loss on them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..core._validation import check_choice
from ..training._contrastive import VARIANTS, Variant, one_to_k_contrastive_loss
from .runner import (
    DEFAULT_MAX_EXAMPLES,
    CheckResult,
    Options,
    Property,
    _check_masked,
    _check_rtol,
    _checked,
    _close,
    _register,
    _Violation,
    run_check,
)

_TEMPERATURES = (0.05, 0.07, 0.1, 0.5, 1.0)


Batch = tuple[torch.Tensor, torch.Tensor, float]


def _unit(values: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Rows of whole numbers, L2-normalised; a zero row becomes the first unit vector."""
    x = torch.tensor(values, dtype=torch.float64).reshape(*shape)
    norm = x.norm(dim=-1, keepdim=True)
    first = torch.zeros_like(x)
    first[..., 0] = 1.0
    return torch.where(norm > 0, x / norm.clamp(min=1e-12), first)


def _draw_unit(data: st.DataObject, shape: tuple[int, ...]) -> torch.Tensor:
    """Unit-norm float64 rows of the given shape, from whole numbers in [-3, 3]."""
    n = math.prod(shape)
    return _unit(data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), shape)


def _draw_batch(data: st.DataObject, *, k_min: int = 1, k_max: int = 3) -> Batch:
    """Unit-norm float64 ``images [B, D]``, ``texts [B, K, D]`` and a temperature."""
    b = data.draw(st.integers(1, 4))
    k = data.draw(st.integers(k_min, k_max))
    d = data.draw(st.integers(2, 4))
    images, texts = _draw_unit(data, (b, d)), _draw_unit(data, (b, k, d))
    return images, texts, data.draw(st.sampled_from(_TEMPERATURES))


def _draw_text_mask(data: st.DataObject, b: int, k: int) -> torch.Tensor:
    """Draw a text mask ``[B, K]``: a text per image and, for ``K >= 2``, one missing."""
    cells = data.draw(st.lists(st.booleans(), min_size=b * k, max_size=b * k))
    mask = torch.tensor(cells, dtype=torch.bool).reshape(b, k)
    kept = data.draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b))
    mask[torch.arange(b), torch.tensor(kept)] = True
    if k >= 2 and bool(mask.all()):
        mask[0, (kept[0] + 1) % k] = False
    return mask


def _loss_of(
    options: Options,
    images: torch.Tensor,
    texts: torch.Tensor,
    tau: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``fn(images, texts, temperature=tau)``, ``text_mask=`` (default all True) when masked."""
    shown: dict[str, Any] = {"image_embeds": images, "text_embeds": texts, "temperature": tau}
    # Clones (differentiable) keep the shown input intact should the function write to it.
    if not options.masked:
        out = options.call(shown, images.clone(), texts.clone(), temperature=tau)
    else:
        if mask is None:
            mask = torch.ones(texts.shape[:2], dtype=torch.bool)
        else:
            shown["text_mask"] = mask
        out = options.call(
            shown, images.clone(), texts.clone(), temperature=tau, text_mask=mask.clone()
        )
    value = out[0] if isinstance(out, tuple) else out
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.reshape(())
    if isinstance(value, numbers.Real):
        return torch.tensor(float(value), dtype=torch.float64)
    raise _Violation(shown, out, "one number: a 0-dim tensor, or a tuple starting with one")


def _shown_batch(batch: Batch) -> dict[str, Any]:
    images, texts, tau = batch
    return {"image_embeds": images, "text_embeds": texts, "temperature": tau}


def _clip_terms(images: torch.Tensor, texts: torch.Tensor, tau: float) -> tuple[float, float]:
    """Return the two cross-entropies of the 1-to-1 CLIP loss of ``B`` pairs."""
    logits = images @ texts.T / tau
    labels = torch.arange(images.shape[0])
    return float(F.cross_entropy(logits, labels)), float(F.cross_entropy(logits.T, labels))


LOSS_TABLE: list[Property] = []


@_register(
    LOSS_TABLE,
    "reference",
    "the loss equals ccr_metrics.one_to_k_contrastive_loss(..., variant=...).total",
)
def _loss_reference(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    got = float(_loss_of(options, images, texts, tau))
    want = float(
        one_to_k_contrastive_loss(
            images,
            texts,
            temperature=tau,
            variant=options.variant,
        ).total
    )
    if not _close(got, want, options.rtol):
        raise _Violation(_shown_batch(batch), got, want)


@_register(
    LOSS_TABLE,
    "one_to_one",
    "with K = 1 the loss is the CLIP loss CE(logits) + CE(logits.T), logits = "
    "images @ texts.T / temperature (released variant: half of it)",
)
def _loss_one_to_one(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data, k_max=1)
    got = float(_loss_of(options, images, texts, tau))
    i2t, t2i = _clip_terms(images, texts[:, 0], tau)
    want = (i2t + t2i) * (1.0 if options.variant == "paper" else 0.5)
    if not _close(got, want, options.rtol):
        raise _Violation(_shown_batch(batch), got, want)


@_register(
    LOSS_TABLE,
    "k_weighting",
    "each of an image's K texts is a positive of weight 1/K: K identical copies of each "
    "text add log K to the 1-to-1 image-to-text term",
)
def _loss_k_weighting(data: st.DataObject, options: Options) -> None:
    images, texts, tau = _draw_batch(data, k_min=2)
    k = texts.shape[1]
    copies = texts[:, :1].expand(-1, k, -1).contiguous()
    got = float(_loss_of(options, images, copies, tau))
    i2t, t2i = _clip_terms(images, copies[:, 0], tau)
    if options.variant == "paper":
        want = i2t + math.log(k) + t2i
        relation = f"CLIP i2t + log K + CLIP t2i = {want:.10g}"
    else:
        want = (i2t + math.log(k)) / 2 + t2i / (2 * k)
        relation = f"(CLIP i2t + log K) / 2 + CLIP t2i / (2 K) = {want:.10g}"
    if not _close(got, want, options.rtol):
        raise _Violation(_shown_batch((images, copies, tau)), got, relation)


@_register(
    LOSS_TABLE,
    "batch_permutation",
    "reordering the instances of the batch (each image with its texts) leaves the loss unchanged",
)
def _loss_batch_permutation(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    order = data.draw(st.permutations(range(images.shape[0])))
    before = float(_loss_of(options, images, texts, tau))
    after = float(_loss_of(options, images[order], texts[order], tau))
    if not _close(after, before, options.rtol):
        shown = {**_shown_batch(batch), "instance order": order}
        raise _Violation(shown, {"reordered": after}, {"as before": before})


@_register(
    LOSS_TABLE,
    "language_permutation",
    "reordering the K language slots (alike for every image) leaves the loss unchanged",
)
def _loss_language_permutation(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data, k_min=2)
    order = data.draw(st.permutations(range(texts.shape[1])))
    before = float(_loss_of(options, images, texts, tau))
    after = float(_loss_of(options, images, texts[:, order].contiguous(), tau))
    if not _close(after, before, options.rtol):
        shown = {**_shown_batch(batch), "language order": order}
        raise _Violation(shown, {"reordered": after}, {"as before": before})


@_register(
    LOSS_TABLE,
    "temperature_scaling",
    "only cosine / temperature matters: scaling the image embeddings by c and the "
    "temperature by c leaves the loss unchanged",
)
def _loss_temperature_scaling(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    c = data.draw(st.sampled_from((0.5, 2.0, 3.0)))
    before = float(_loss_of(options, images, texts, tau))
    after = float(_loss_of(options, images * c, texts, tau * c))
    if not _close(after, before, options.rtol):
        shown = {**_shown_batch(batch), "c": c}
        raise _Violation(
            shown,
            {"loss(c * images, temperature * c)": after},
            {"loss(images, temperature)": before},
        )


@_register(
    LOSS_TABLE,
    "gradient",
    "the autograd gradient with respect to both embeddings matches central finite "
    "differences (float64)",
)
def _loss_gradient(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    leaves = (images.clone().requires_grad_(True), texts.clone().requires_grad_(True))
    loss = _loss_of(options, leaves[0], leaves[1], tau)
    if not loss.requires_grad:
        raise _Violation(_shown_batch(batch), "a value without gradient", "a differentiable tensor")
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    eps = 1e-6
    for which, name in enumerate(("image_embeds", "text_embeds")):
        base = leaves[which].detach()
        analytic = torch.zeros_like(base) if grads[which] is None else grads[which]
        numeric = torch.zeros_like(base)
        for i in range(base.numel()):
            step = torch.zeros_like(base)
            step.view(-1)[i] = eps
            up, down = [images, texts], [images, texts]
            up[which], down[which] = base + step, base - step
            with torch.no_grad():
                difference = _loss_of(options, up[0], up[1], tau) - _loss_of(
                    options, down[0], down[1], tau
                )
            numeric.view(-1)[i] = float(difference) / (2 * eps)
        if not torch.allclose(analytic, numeric, rtol=1e-4, atol=1e-6):
            raise _Violation(
                _shown_batch(batch),
                {f"autograd d/d {name}": analytic},
                {"finite differences": numeric},
            )


@_register(
    LOSS_TABLE,
    "masked_texts",
    "a masked-out (missing) text contributes nothing: changing its embedding leaves the "
    "loss unchanged",
    when=lambda o: o.masked,
)
def _loss_masked_texts(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data, k_min=2)
    mask = _draw_text_mask(data, *texts.shape[:2])
    changed = torch.where(mask[..., None], texts, _draw_unit(data, tuple(texts.shape)))
    before = float(_loss_of(options, images, texts, tau, mask))
    after = float(_loss_of(options, images, changed, tau, mask))
    if not _close(after, before, options.rtol):
        shown = {**_shown_batch(batch), "text_mask": mask, "changed text_embeds": changed}
        raise _Violation(shown, {"changed": after}, {"as before": before})


@_register(
    LOSS_TABLE,
    "masked_reference",
    "with a mask, the loss equals one_to_k_contrastive_loss(..., text_mask=...): missing "
    "texts leave every numerator and denominator, image j's texts weigh 1/K_j",
    when=lambda o: o.masked,
)
def _loss_masked_reference(data: st.DataObject, options: Options) -> None:
    images, texts, tau = batch = _draw_batch(data)
    mask = _draw_text_mask(data, *texts.shape[:2])
    got = float(_loss_of(options, images, texts, tau, mask))
    want = float(
        one_to_k_contrastive_loss(
            images,
            texts,
            temperature=tau,
            text_mask=mask,
            variant=options.variant,
        ).total
    )
    if not _close(got, want, options.rtol):
        raise _Violation({**_shown_batch(batch), "text_mask": mask}, got, want)


#: The properties of :func:`check_contrastive_loss`.
LOSS_PROPERTIES: tuple[Property, ...] = tuple(LOSS_TABLE)


def check_contrastive_loss(
    fn: Callable[..., Any],
    *,
    variant: Variant = "paper",
    masked: bool = False,
    adapter: Callable[..., Any] | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    rtol: float = 1e-6,
) -> CheckResult:
    """Check a 1-to-K contrastive loss against the invariants of :data:`LOSS_PROPERTIES`.

    Parameters
    ----------
    fn : callable
        Called as ``fn(image_embeds, text_embeds, temperature=tau)`` with float64
        tensors ``[B, D]`` and ``[B, K, D]`` (row ``j`` of ``text_embeds`` holds image
        ``j``'s ``K`` texts), and ``text_mask=`` a bool tensor ``[B, K]`` added when
        ``masked``. It returns the loss: a 0-dim tensor, or a tuple (such as
        :class:`~ccr_metrics.ContrastiveLossTerms`) whose first item is it. The
        embeddings are unit-norm except where a property scales them; ``fn`` must use
        them as given (not normalise them again).
    variant : {"paper", "released"}, default "paper"
        The scaling ``fn`` follows, as for
        :func:`~ccr_metrics.one_to_k_contrastive_loss`: Eq. 1 + Eq. 2 of the paper, or
        the authors' code's ``(i2t + t2i) / 2 / K``.
    masked : bool, default False
        Whether ``fn`` takes ``text_mask=``; adds the properties on missing texts.
    adapter : callable, optional
        Called as ``adapter(fn, image_embeds, text_embeds, temperature=tau)`` (and
        ``text_mask=``) in place of ``fn(...)``, e.g. to pass a logit scale.
    max_examples : int, default 50
        Examples drawn per property (derandomized, no database); the gradient check
        draws a fifth as many, each costing two evaluations per embedding entry.
    rtol : float, default 1e-6
        Relative tolerance of the value comparisons (absolute: 1e-9). The gradient
        check compares autograd to central differences with ``rtol=1e-4, atol=1e-6``,
        so ``fn`` must compute in float64 there.

    Returns
    -------
    CheckResult
        The names of the properties that held.

    Raises
    ------
    CheckFailure
        An ``AssertionError`` naming each failed property, with its shrunk input.
    ValueError
        If ``fn`` or ``adapter`` is not callable, or an option is invalid.

    Examples
    --------
    >>> import ccr_metrics as cm
    >>> result = check_contrastive_loss(cm.one_to_k_contrastive_loss, masked=True, max_examples=5)
    >>> result.properties[-2:]
    ('masked_texts', 'masked_reference')
    """
    budget = _checked(fn, adapter, max_examples)
    check_choice("variant", variant, VARIANTS)
    _check_masked(masked)
    _check_rtol(rtol)
    options = Options(fn, adapter, variant=variant, masked=masked, rtol=float(rtol))
    return run_check("check_contrastive_loss", LOSS_PROPERTIES, options, budget)
