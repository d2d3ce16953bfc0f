"""One training step of a toy dual encoder with the 1-to-K loss and both samplers.

Random "image features" and "caption features" in K languages go through two linear
encoders. The step combines:

- the 1-to-K contrastive loss (OneToKContrastiveLoss, learnable temperature), with one
  missing translation to show the mask;
- a toy matching head trained on (image, hard positive text) pairs against pairs with a
  hard negative image and a hard negative text, drawn with ccr_metrics.sampling;
- for comparison, the 1-to-1 baseline on the same batch (not optimised).

Runs on CUDA when available, else on CPU, in well under a second after start-up:

    python examples/train_step.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ccr_metrics.losses import OneToKContrastiveLoss, one_to_one_contrastive_loss
from ccr_metrics.sampling import hard_negatives, hard_positive_languages

BATCH, LANGUAGES, IMAGE_DIM, TEXT_DIM, EMBED_DIM = 16, 4, 32, 24, 16


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    generator = torch.Generator(device=device).manual_seed(0)

    image_encoder = nn.Linear(IMAGE_DIM, EMBED_DIM).to(device)
    text_encoder = nn.Linear(TEXT_DIM, EMBED_DIM).to(device)
    matching_head = nn.Linear(2 * EMBED_DIM, 2).to(device)
    contrastive = OneToKContrastiveLoss(temperature=0.07).to(device)
    parameters = [
        *image_encoder.parameters(),
        *text_encoder.parameters(),
        *matching_head.parameters(),
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

    rows = torch.arange(BATCH, device=device)
    with torch.no_grad():
        # Hard positive: the language whose caption aligns worst with its image (Eq. 8).
        own = (text_embeds * image_embeds[:, None, :]).sum(-1)  # [B, K]
        language = hard_positive_languages(own, text_mask=text_mask, generator=generator)
        # Hard negative image for instance j, scored by sum_k t_jk . i_j' (Eq. 9).
        masked_texts = text_embeds * text_mask[..., None]
        image_sim = torch.einsum("jkd,nd->jn", masked_texts, image_embeds)  # [B, B]
        eye = torch.eye(BATCH, dtype=torch.bool, device=device)
        negative_image = hard_negatives(image_sim, eye, generator=generator)
        # Hard negative text for image j among the B * K texts, never its own.
        text_sim = image_embeds @ text_embeds.reshape(-1, EMBED_DIM).T  # [B, B * K]
        own_texts = eye.repeat_interleave(LANGUAGES, dim=1)
        negative_text = hard_negatives(
            text_sim,
            own_texts,
            candidate_mask=text_mask.reshape(-1),
            generator=generator,
        )

    positive_text = text_embeds[rows, language]
    flat_texts = text_embeds.reshape(-1, EMBED_DIM)
    pairs = torch.cat(
        [
            torch.cat([image_embeds, positive_text], dim=-1),  # matching
            torch.cat([image_embeds[negative_image], positive_text], dim=-1),  # wrong image
            torch.cat([image_embeds, flat_texts[negative_text]], dim=-1),  # wrong text
        ]
    )
    labels = torch.cat([torch.ones(BATCH), torch.zeros(2 * BATCH)]).long().to(device)
    matching = F.cross_entropy(matching_head(pairs), labels)

    loss = terms.total + matching
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

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
    print(f"matching with hard samples: {matching.item():.4f}")
    print(f"1-to-1 baseline on the same batch: {baseline.total.item():.4f}")
    print(f"hard positive languages: {language.tolist()}")
    print(f"temperature after the step: {contrastive.temperature:.5f}")


if __name__ == "__main__":
    main()
