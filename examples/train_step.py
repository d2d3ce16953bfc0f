"""One training step of a toy dual encoder with the 1-to-K loss, hard-sample mining and ITM.

Random "image features" and "caption features" in K languages go through two linear
encoders. The step combines:

- the 1-to-K contrastive loss (OneToKContrastiveLoss with a learnable logit scale), in
  its training configuration ``validate=False`` (no host sync), with one missing
  translation to show the mask;
- hard samples mined from the batch's image-to-text cosines (ccr_metrics.training.sampling.mine:
  a hard positive text, a hard negative image and a hard negative text per image);
- a tiny cross-encoder scoring the mined pairs (ccr_metrics.training.losses.matching_pairs) and
  the matching (ITM) loss on its scores (ccr_metrics.training.losses.matching_loss);
- then ``optimizer.step()`` and, as open_clip does, the clamp of the logit scale;
- for comparison, the 1-to-1 baseline on the same batch (not optimised).

Runs on CUDA when available, else on CPU, in well under a second after start-up:

    python examples/train_step.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ccr_metrics import (
    OneToKContrastiveLoss,
    matching_loss,
    matching_pairs,
    mine,
    one_to_one_contrastive_loss,
)

BATCH, LANGUAGES, IMAGE_DIM, TEXT_DIM, EMBED_DIM = 16, 4, 32, 24, 16


class CrossEncoder(nn.Module):
    """A toy fusion head: two logits ("no match", "match") for an (image, text) pair."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 * dim, dim), nn.GELU(), nn.Linear(dim, 2))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([image, text, image * text], dim=-1))


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    generator = torch.Generator(device=device).manual_seed(0)

    image_encoder = nn.Linear(IMAGE_DIM, EMBED_DIM).to(device)
    text_encoder = nn.Linear(TEXT_DIM, EMBED_DIM).to(device)
    cross_encoder = CrossEncoder(EMBED_DIM).to(device)
    # validate=False: no value checks, no host sync (check a new data pipeline with the
    # default validate=True first).
    contrastive = OneToKContrastiveLoss(temperature=0.07, validate=False).to(device)
    parameters = [
        *image_encoder.parameters(),
        *text_encoder.parameters(),
        *cross_encoder.parameters(),
        *contrastive.parameters(),
    ]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)

    images = torch.randn(BATCH, IMAGE_DIM, device=device)
    captions = torch.randn(BATCH, LANGUAGES, TEXT_DIM, device=device)
    text_mask = torch.ones(BATCH, LANGUAGES, dtype=torch.bool, device=device)
    text_mask[3, 1] = False  # image 3 has no caption in language 1

    image_embeds = F.normalize(image_encoder(images), dim=-1)  # [B, D]
    text_embeds = F.normalize(text_encoder(captions), dim=-1)  # [B, K, D]
    terms = contrastive(image_embeds, text_embeds, text_mask)

    # Hard samples from the image-to-text cosines, texts image-major: [B, B * K].
    flat_texts = text_embeds.reshape(BATCH * LANGUAGES, EMBED_DIM)
    sim_i2t = image_embeds.detach() @ flat_texts.detach().T
    hard = mine(sim_i2t, text_mask=text_mask, generator=generator)  # variant="paper"
    pairs = matching_pairs(hard)  # 3B pairs: positives (label 1), two kinds of negatives
    itm_logits = cross_encoder(image_embeds[pairs.image_index], flat_texts[pairs.text_index])
    matching = matching_loss(itm_logits, pairs.labels, validate=False)

    loss = terms.total + matching
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    contrastive.clamp_logit_scale_()  # open_clip: logit_scale.clamp_(0, log 100) after a step

    with torch.no_grad():
        baseline = one_to_one_contrastive_loss(
            image_embeds,
            text_embeds,
            text_mask=text_mask,
            generator=generator,
            temperature=contrastive.temperature,
        )
    print(f"device: {device}")
    print(
        f"1-to-K contrastive: total {terms.total.item():.4f} "
        f"(i2t {terms.i2t.item():.4f}, t2i {terms.t2i.item():.4f})"
    )
    print(f"matching (ITM) with mined hard samples: {matching.item():.4f}")
    print(f"1-to-1 baseline on the same batch: {baseline.total.item():.4f}")
    print(f"hard positive languages: {(hard.positive_text % LANGUAGES).tolist()}")
    print(f"hard negative images: {hard.negative_image.tolist()}")
    print(f"temperature after the step: {contrastive.temperature:.5f}")


if __name__ == "__main__":
    main()
