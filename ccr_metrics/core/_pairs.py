"""Where each text-to-image candidate pair sits among the image-to-text candidate pairs.

A re-ranking scores every (image, text) pair some query needs, once: an image query's
candidate texts and a text query's candidate images overlap (a text that ranks an image
high is often ranked high by it). The image-to-text pairs are laid out row by row; a
text-to-image pair found among them reads that pair's score, the others are scored
after them. Two implementations give the same positions:

- with numba (the ``fast`` extra), CPU index tensors go through a compiled loop
  (:mod:`ccr_metrics.core._pairs_numba`): the image-to-text pairs are grouped by text
  (a counting sort, in row order), and each text's candidate images are looked up among
  its group through a table of image rows: no sort, no search over all pairs;
- everything else sorts the image-to-text pairs' keys and searches each text-to-image
  pair among them (``torch.searchsorted``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch

from ._counting import numba_available

__all__ = ["shared_pairs"]


def shared_pairs(
    row_images: torch.Tensor, texts: torch.Tensor, images: torch.Tensor, text_offset: int
) -> torch.Tensor:
    """Return, per text-to-image pair, its position among the image-to-text pairs, or -1.

    ``row_images`` ``[P]`` are the distinct global images of the image-to-text rows and
    ``texts`` ``[P, k]`` their candidate texts (global, distinct within a row);
    ``images`` ``[M, k']`` are the candidate images (global, distinct within a row) of
    texts ``text_offset .. text_offset + M - 1``. Returns int64 ``[M, k']``:
    ``p * k + s`` where ``row_images[p] == images[m, s]`` and
    ``texts[p, s] == text_offset + m``, else -1.
    """
    n_rows = images.shape[0]
    if texts.numel() == 0 or images.numel() == 0:
        return torch.full(images.shape, -1, dtype=torch.long, device=images.device)
    if images.device.type == "cpu" and numba_available():
        at = torch.empty(images.shape, dtype=torch.long)
        n_image_ids = 1 + int(max(int(row_images.max()), int(images.max())))
        _compiled()(
            row_images.contiguous().numpy(),
            texts.contiguous().numpy(),
            images.contiguous().numpy(),
            text_offset,
            n_image_ids,
            at.numpy(),
        )
        return at
    # Keys image * span + text, span above every text: sorted once, searched by each pair.
    span = 1 + int(max(int(texts.max()), text_offset + n_rows))
    keys = (row_images[:, None] * span + texts).reshape(-1)
    sorted_keys, order = torch.sort(keys)
    wanted = images * span + (text_offset + torch.arange(n_rows, device=images.device))[:, None]
    at = torch.searchsorted(sorted_keys, wanted.reshape(-1)).clamp_(max=keys.shape[0] - 1)
    found = sorted_keys[at] == wanted.reshape(-1)
    return torch.where(found, order[at], -1).reshape(images.shape)


@cache
def _compiled() -> Any:
    from ._pairs_numba import shared_pairs as compiled

    return compiled
