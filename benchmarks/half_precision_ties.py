"""How often a text->image query ties with its target when scores are half precision.

Flickr30K-sized synthetic data: 1,000 unit image embeddings (D = 512), 5 captions per
image made of the image plus Gaussian noise; a larger noise is a weaker model. Scores
are computed and compared in float32, float16 and bfloat16, and for each the fraction
of queries whose target ties with at least one other image is printed, with R@1 under
each tie policy.

    python benchmarks/half_precision_ties.py
"""

import torch

import ccr_metrics as cm


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    n_images, captions, dim = 1000, 5, 512
    images = torch.nn.functional.normalize(torch.randn(n_images, dim, generator=gen), dim=1)
    owner = torch.arange(n_images * captions) // captions
    print(f"{'noise':>5} {'dtype':>9} {'tied':>6}  R@1 optimistic / average / pessimistic")
    for noise in (8.0, 16.0, 24.0):
        jitter = noise * torch.randn(len(owner), dim, generator=gen) / dim**0.5
        texts = torch.nn.functional.normalize(images[owner] + jitter, dim=1)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            scores = texts.to(dtype) @ images.to(dtype).T  # [M, N], compared as dtype
            ranks = {t: cm.text_to_image_ranks(scores, owner, ties=t) for t in cm.TIES}
            tied = (ranks["pessimistic"] > ranks["optimistic"]).double().mean().item()
            r1 = " / ".join(
                f"{100 * cm.recall_at_k(ranks[t], 1)[1]:.2f}"
                for t in ("optimistic", "average", "pessimistic")
            )
            print(f"{noise:5.0f} {str(dtype).removeprefix('torch.'):>9} {tied:6.1%}  {r1}")


if __name__ == "__main__":
    main()
