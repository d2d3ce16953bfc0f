"""1-to-K and 1-to-1 contrastive losses, and a module with a learnable temperature.

The functional losses (:func:`one_to_k_contrastive_loss`,
:func:`one_to_one_contrastive_loss`) are pure functions of one batch. The module
:class:`OneToKContrastiveLoss` adds what training needs: a learnable temperature,
stored as a log logit scale and clamped as CLIP does, and, in distributed training,
gathering the features of all processes so that every image is contrasted with the
texts of the global batch.

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
  the gathered gallery, and returns ``W`` times its share of the global sums (its
  images' terms over ``N``, its texts' over ``T``). The mean of the returned values over
  processes equals the single-process loss, for any split of the batch and any mask.
  It saves the ``[N, N * K]`` logits on every process.

In both modes the gradient that reaches a process's local features, after the gather's
backward has summed the contributions of all processes, is ``W`` times the gradient of
the single-process loss, and DistributedDataParallel's averaging divides it back: the
model's parameter gradients equal those of the single-process loss on the global batch.
The temperature's gradient, which no gather touches, is already the single-process one
after that averaging. Without an initialised process group (or with ``gather=False``)
nothing is gathered and the module is :func:`one_to_k_contrastive_loss` with a learnable
temperature.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from . import distributed
from ._backend import ArrayLike
from ._contrastive import (
    VARIANTS,
    ContrastiveLossTerms,
    Variant,
    check_batch,
    check_temperature,
    one_to_k_contrastive_loss,
    one_to_one_contrastive_loss,
    positive_nll,
    reduce_terms,
)
from ._validation import check_choice

__all__ = [
    "VARIANTS",
    "ContrastiveLossTerms",
    "OneToKContrastiveLoss",
    "one_to_k_contrastive_loss",
    "one_to_one_contrastive_loss",
]


class OneToKContrastiveLoss(nn.Module):
    """The 1-to-K contrastive loss with a learnable temperature and cross-process gathering.

    Parameters
    ----------
    temperature : float, default 0.07
        Initial temperature; the parameter ``log_logit_scale`` starts at
        ``log(1 / temperature)``.
    learn_temperature : bool, default True
        Whether ``log_logit_scale`` receives gradients; ``False`` freezes it.
    max_logit_scale : float, default 100.0
        Upper bound of the logit scale ``1 / temperature``, as in CLIP.
    variant : {"paper", "released"}, default "paper"
        The scaling of the two terms, as for :func:`one_to_k_contrastive_loss`.
    gather : bool, default True
        Gather the features of all processes when a process group is initialised.
    local_loss : bool, default False
        With gathering, query with the local features only against the gathered
        gallery (see the module notes for the scaling).

    Raises
    ------
    ValueError
        If ``temperature`` is not finite and positive, ``max_logit_scale`` is not a
        finite number >= 1, ``1 / temperature`` lies outside ``[1, max_logit_scale]``,
        or ``variant`` is unknown.

    Notes
    -----
    The logit scale is kept in ``[1, max_logit_scale]`` like open_clip, which clamps the
    stored log scale to ``[0, log 100]`` after every optimiser step: here the clamp is
    applied in place, without gradient, at the start of each forward. The scale used is
    therefore never above the bound, and gradients keep flowing when the loss asks for a
    smaller scale, which a differentiable clamp of an out-of-range value would block.

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
    >>> loss_fn.log_logit_scale.grad is not None
    True
    >>> round(loss_fn.temperature, 4)
    0.5
    """

    log_logit_scale: nn.Parameter
    max_logit_scale: float
    variant: Variant
    gather: bool
    local_loss: bool

    def __init__(
        self,
        *,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        variant: Variant = "paper",
        gather: bool = True,
        local_loss: bool = False,
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
            raise ValueError(
                f"max_logit_scale must be a finite number >= 1, got {max_logit_scale!r}"
            )
        if not 1.0 <= scale <= max_logit_scale:
            raise ValueError(
                f"temperature {temperature!r} gives the logit scale {scale:g}, outside "
                f"[1, max_logit_scale = {max_logit_scale:g}]"
            )
        self.log_logit_scale = nn.Parameter(
            torch.tensor(math.log(scale)), requires_grad=learn_temperature
        )
        self.max_logit_scale = float(max_logit_scale)
        self.variant = variant
        self.gather = gather
        self.local_loss = local_loss

    @property
    def logit_scale(self) -> torch.Tensor:
        """The logit scale the next forward uses, ``exp(log_logit_scale)`` clamped."""
        return self.log_logit_scale.detach().clamp(0.0, math.log(self.max_logit_scale)).exp()

    @property
    def temperature(self) -> float:
        """The temperature the next forward uses, ``1 / logit_scale``."""
        return 1.0 / float(self.logit_scale)

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
            ``K`` and ``D`` must be the same on every process; ``B`` may differ.
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
            As :func:`one_to_k_contrastive_loss`; also, on every process, if the
            processes disagree on ``K`` or ``D``.
        """
        mask = check_batch(image_embeds, text_embeds, text_mask)
        with torch.no_grad():
            self.log_logit_scale.clamp_(0.0, math.log(self.max_logit_scale))
        scale = self.log_logit_scale.exp()
        world_size = distributed.get_world_size() if self.gather else 1
        if world_size == 1:
            n_images, n_languages = text_embeds.shape[:2]
            i2t_nll, t2i_nll = positive_nll(
                image_embeds,
                text_embeds,
                mask,
                image_embeds,
                text_embeds,
                mask,
                offset=0,
                scale=scale,
            )
            return reduce_terms(
                i2t_nll,
                t2i_nll,
                mask,
                n_images=n_images,
                n_texts=n_images * n_languages if mask is None else mask.sum(),
                variant=self.variant,
            )

        if mask is None:
            # Another process may hold a mask: gather one from every process.
            mask = torch.ones(text_embeds.shape[:2], dtype=torch.bool, device=text_embeds.device)
        shapes = distributed.all_gather_shapes(text_embeds)
        all_texts = distributed.all_gather_with_grad(text_embeds, shapes=shapes)
        all_images = distributed.all_gather_with_grad(
            image_embeds, shapes=[(s[0], s[2]) for s in shapes]
        )
        all_mask = distributed.all_gather_with_grad(mask, shapes=[s[:2] for s in shapes])
        if self.local_loss:
            offset = sum(s[0] for s in shapes[: distributed.get_rank()])
            queries = (image_embeds, text_embeds, mask)
            query_mask, weight = mask, float(world_size)
        else:
            offset = 0
            queries = (all_images, all_texts, all_mask)
            query_mask, weight = all_mask, 1.0
        i2t_nll, t2i_nll = positive_nll(
            *queries, all_images, all_texts, all_mask, offset=offset, scale=scale
        )
        return reduce_terms(
            i2t_nll,
            t2i_nll,
            query_mask,
            n_images=all_images.shape[0],
            n_texts=all_mask.sum(),
            variant=self.variant,
            weight=weight,
        )

    def extra_repr(self) -> str:
        """Describe the settings for ``repr``."""
        return (
            f"temperature={self.temperature:.4g}, "
            f"learn_temperature={self.log_logit_scale.requires_grad}, "
            f"max_logit_scale={self.max_logit_scale:g}, variant={self.variant!r}, "
            f"gather={self.gather}, local_loss={self.local_loss}"
        )
