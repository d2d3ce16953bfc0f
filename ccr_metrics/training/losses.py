"""1-to-K and 1-to-1 contrastive losses, a module with a learnable logit scale, and ITM.

The functional losses (:func:`one_to_k_contrastive_loss`,
:func:`one_to_one_contrastive_loss`) are pure functions of one batch. The module
:class:`OneToKContrastiveLoss` adds what training needs: a learnable logit scale, stored
as its log the way open_clip stores it and clamped, as CLIP does, after each optimiser
step (:meth:`OneToKContrastiveLoss.clamp_logit_scale_`), and, in distributed training,
gathering the features of all processes so that every image is contrasted with the
texts of the global batch. Its loss is :func:`one_to_k_contrastive_loss`, called on the
local batch (one process) or on the gathered one: the maths exists once.

The matching (ITM) heads of CCR^k consume hard samples through a plain index contract:
:func:`ccr_metrics.mine` returns :class:`HardSamples` (three index tensors),
:func:`matching_pairs` lays out the ``3 B`` pairs and labels of the released code, and
:func:`matching_loss` is the binary cross-entropy of the head's scores.

Distributed scaling
-------------------
With ``gather=True`` and an initialised process group of ``W`` processes, the features
are all-gathered with gradients (:func:`ccr_metrics.distributed.all_gather_with_grad`)
and the loss is defined on the concatenated global batch (``N`` images, ``T`` present
texts):

- ``local_loss=False`` (default): every process computes the loss of the whole global
  batch, so the returned value equals the single-process loss on the concatenated
  batch, on every process.
- ``local_loss=True``: each process queries with its own images and texts only, against
  the gathered gallery (``query_rows`` of :func:`one_to_k_contrastive_loss`), and
  returns ``W`` times its share of the global sums (its images' terms over ``N``, its
  texts' over ``T``). The mean of the returned values over processes equals the
  single-process loss, for any split of the batch and any mask. It saves the
  ``[N, N * K]`` logits on every process.

In both modes the gradient that reaches a process's local features, after the gather's
backward has summed the contributions of all processes, is ``W`` times the gradient of
the single-process loss, and DistributedDataParallel's averaging divides it back: the
model's parameter gradients equal those of the single-process loss on the global batch.
The logit scale's gradient, which no gather touches, is already the single-process one
after that averaging. Without an initialised process group (or with ``gather=False``)
nothing is gathered and the module is :func:`one_to_k_contrastive_loss` with a learnable
logit scale.

With ``validate=True`` (the default) the processes may hold different batch sizes: the
module gathers every process's shape first (one extra collective per step) and checks
that they agree on ``K`` and ``D``. With ``validate=False`` it gathers no shapes, so
**every process must hold the same** ``B``, ``K`` and ``D``, as DistributedDataParallel
with a ``DistributedSampler`` and ``drop_last=True`` gives; otherwise the gather fails
or mixes rows.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .. import distributed
from ..core._backend import ArrayLike
from ..core._validation import InputError, check_choice
from ._args import DEFAULT_TEMPERATURE, check_batch, check_logit_scale, check_temperature
from ._contrastive import (
    VARIANTS,
    ContrastiveLossTerms,
    HardSamples,
    MatchingPairs,
    Variant,
    matching_loss,
    matching_pairs,
    one_to_k_contrastive_loss,
    one_to_one_contrastive_loss,
)

__all__ = [
    "VARIANTS",
    "ContrastiveLossTerms",
    "HardSamples",
    "MatchingPairs",
    "OneToKContrastiveLoss",
    "matching_loss",
    "matching_pairs",
    "one_to_k_contrastive_loss",
    "one_to_one_contrastive_loss",
]


class OneToKContrastiveLoss(nn.Module):
    """The 1-to-K contrastive loss with a learnable logit scale and cross-process gathering.

    Parameters
    ----------
    temperature : float, default 0.07
        Initial temperature; the parameter ``logit_scale`` starts at
        ``log(1 / temperature)``.
    learn_temperature : bool, default True
        Whether ``logit_scale`` receives gradients; ``False`` freezes it.
    max_logit_scale : float, default 100.0
        Upper bound of the logit scale ``1 / temperature`` that
        :meth:`clamp_logit_scale_` enforces, as in CLIP.
    variant : {"paper", "released"}, default "paper"
        The scaling of the two terms, as for :func:`one_to_k_contrastive_loss`.
    gather : bool, default True
        Gather the features of all processes when a process group is initialised.
    local_loss : bool, default False
        With gathering, query with the local features only against the gathered
        gallery (see the module notes for the scaling).
    validate : bool, default True
        Check the inputs' values on every call (finite embeddings, every image with a
        text, a finite positive scale) and, when distributed, gather every process's
        shape to check and allow different batch sizes. ``False`` is the training
        path: no host sync (no ``.item()``, no ``bool(tensor)``, no data-dependent
        shape) and no gather of shapes, so every process must hold the same ``B``,
        ``K`` and ``D``; bad values give NaN instead of an error. The checks that read
        no tensor value (types, dimensions, shapes, devices) run either way.

    Raises
    ------
    ValueError
        If ``temperature`` is not finite and positive, ``max_logit_scale`` is not a
        finite number >= 1, ``1 / temperature`` lies outside ``[1, max_logit_scale]``,
        or ``variant`` is unknown.

    Notes
    -----
    The learnable parameter ``logit_scale`` is the *log* of ``1 / temperature``, named
    and stored as open_clip stores it; forward uses ``logit_scale.exp()``. Read the
    scale as ``loss_fn.logit_scale.exp()`` or ``1 / loss_fn.temperature``.

    **Clamping is the caller's.** forward does not clamp the parameter in place; it
    uses the value the parameter holds. Keep the scale in
    ``[1, max_logit_scale]`` as open_clip does, after every optimiser step::

        optimizer.step()
        loss_fn.clamp_logit_scale_()   # with torch.no_grad(): logit_scale.clamp_(0, log 100)

    (under DistributedDataParallel call it on the unwrapped module). Gradients keep
    flowing at the bound, so the scale can come back down.

    The rank and world size are read in every forward, never stored. Embeddings are
    expected L2-normalised by the caller, as for the functional loss.

    Examples
    --------
    >>> import torch
    >>> loss_fn = OneToKContrastiveLoss(temperature=0.5)
    >>> images = torch.eye(2, 3)
    >>> texts = torch.stack([torch.eye(2, 3), torch.eye(2, 3)], dim=1)
    >>> terms = loss_fn(images, texts)
    >>> round(terms.total.item(), 4)
    0.947
    >>> terms.total.backward()
    >>> loss_fn.logit_scale.grad is not None
    True
    >>> round(loss_fn.temperature, 4), round(loss_fn.logit_scale.exp().item(), 4)
    (0.5, 2.0)

    In a training loop, without value checks, clamped after the step:

    >>> import math
    >>> fast = OneToKContrastiveLoss(temperature=0.5, validate=False)
    >>> optimizer = torch.optim.SGD(fast.parameters(), lr=10.0)
    >>> fast(images, texts).total.backward()
    >>> optimizer.step()
    >>> fast.logit_scale.item() > math.log(100)     # the step overshot
    True
    >>> fast.clamp_logit_scale_()
    >>> round(fast.logit_scale.exp().item(), 3)     # back to the bound
    100.0
    """

    logit_scale: nn.Parameter
    max_logit_scale: float
    variant: Variant
    gather: bool
    local_loss: bool
    validate: bool

    def __init__(
        self,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        variant: Variant = "paper",
        gather: bool = True,
        local_loss: bool = False,
        validate: bool = True,
    ) -> None:
        super().__init__()
        check_choice("variant", variant, VARIANTS)
        scale = 1.0 / check_temperature(temperature)
        if (
            isinstance(max_logit_scale, bool)
            or not isinstance(max_logit_scale, numbers.Real)
            or not math.isfinite(max_logit_scale)
            or max_logit_scale < 1
        ):
            raise InputError(
                f"max_logit_scale must be a finite number >= 1, got {max_logit_scale!r}",
                argument="max_logit_scale",
            )
        if not 1.0 <= scale <= max_logit_scale:
            raise InputError(
                f"temperature {temperature!r} gives the logit scale {scale:g}, outside "
                f"[1, max_logit_scale = {max_logit_scale:g}]",
                argument="temperature",
            )
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(scale)), requires_grad=learn_temperature
        )
        self.max_logit_scale = float(max_logit_scale)
        self.variant = variant
        self.gather = gather
        self.local_loss = local_loss
        self.validate = bool(validate)

    @property
    def temperature(self) -> float:
        """The temperature the next forward uses, ``1 / logit_scale.exp()`` (reads the value)."""
        return 1.0 / math.exp(float(self.logit_scale.detach()))

    def clamp_logit_scale_(self) -> None:
        """Clamp ``logit_scale`` in place to ``[0, log max_logit_scale]``, without gradient.

        Call it after every ``optimizer.step()``, as open_clip does with
        ``with torch.no_grad(): model.logit_scale.clamp_(0, math.log(100))``: the scale
        ``exp(logit_scale)`` then stays in ``[1, max_logit_scale]``. No host sync.
        """
        with torch.no_grad():
            self.logit_scale.clamp_(0.0, math.log(self.max_logit_scale))

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: ArrayLike | None = None,
    ) -> ContrastiveLossTerms:
        """Loss of this batch, gathered across processes when distributed.

        Parameters
        ----------
        image_embeds : torch.Tensor, shape [B, D]
            This process's image embeddings, L2-normalised.
        text_embeds : torch.Tensor, shape [B, K, D]
            This process's text embeddings, L2-normalised, ``K`` languages per image.
            ``K`` and ``D`` must be the same on every process; ``B`` may differ with
            ``validate=True`` and must not with ``validate=False``.
        text_mask : bool array or tensor, shape [B, K], optional
            ``True`` where the text exists.

        Returns
        -------
        ContrastiveLossTerms
            ``total``, ``i2t`` and ``t2i`` as 0-dim tensors; see the module notes for
            their scaling in distributed training.

        Raises
        ------
        ValueError
            As :func:`one_to_k_contrastive_loss` with this module's ``validate``; with
            ``validate=True`` also, on every process, if the processes disagree on
            ``K`` or ``D``.
        """
        scale = self.logit_scale.exp()
        world_size = distributed.get_world_size() if self.gather else 1
        if world_size == 1:
            return one_to_k_contrastive_loss(
                image_embeds,
                text_embeds,
                logit_scale=scale,
                text_mask=text_mask,
                variant=self.variant,
                validate=self.validate,
            )

        mask = check_batch(image_embeds, text_embeds, text_mask, validate=self.validate)
        check_logit_scale(None, scale, validate=self.validate)
        if self.validate:
            shapes = distributed.all_gather_shapes(text_embeds)
        else:
            # The documented contract of validate=False: the same [B, K, D] everywhere.
            shapes = [tuple(text_embeds.shape)] * world_size
        if mask is None:
            # Another process may hold a mask: gather one from every process.
            mask = torch.ones(text_embeds.shape[:2], dtype=torch.bool, device=text_embeds.device)
        all_texts = distributed.all_gather_with_grad(text_embeds, shapes=shapes)
        all_images = distributed.all_gather_with_grad(
            image_embeds, shapes=[(s[0], s[2]) for s in shapes]
        )
        all_mask = distributed.all_gather_with_grad(mask, shapes=[s[:2] for s in shapes])
        # The local inputs are checked above; the gathered batch is theirs.
        if not self.local_loss:
            return one_to_k_contrastive_loss(
                all_images,
                all_texts,
                logit_scale=scale,
                text_mask=all_mask,
                variant=self.variant,
                validate=False,
            )
        start = sum(s[0] for s in shapes[: distributed.get_rank()])
        share = one_to_k_contrastive_loss(
            all_images,
            all_texts,
            logit_scale=scale,
            text_mask=all_mask,
            variant=self.variant,
            validate=False,
            query_rows=slice(start, start + text_embeds.shape[0]),
        )
        i2t = share.i2t * world_size
        t2i = share.t2i * world_size
        return ContrastiveLossTerms(i2t + t2i, i2t, t2i)

    def extra_repr(self) -> str:
        """Describe the settings for ``repr``."""
        return (
            f"temperature={self.temperature:.4g}, "
            f"learn_temperature={self.logit_scale.requires_grad}, "
            f"max_logit_scale={self.max_logit_scale:g}, variant={self.variant!r}, "
            f"gather={self.gather}, local_loss={self.local_loss}, validate={self.validate}"
        )
