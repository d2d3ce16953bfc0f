"""The library's own work in a two-stage (re-ranking) evaluation, against plain evaluate.

``evaluate(..., rerank=score_pairs, rerank_k=128)`` makes the first stage in the one
pass over the image x text tiles (one product; each image's top k texts, each text's
top k images, the counts of the items behind them), matches the (image, text) pairs
both directions need, calls the scorer on them in batches, and counts the candidate
segment. The scorer is the user's cost; this measures the rest.
With a trivial scorer (the dot product of the pair's embeddings) it times, in one run
on the same embeddings:

- ``evaluate`` without a second stage (the reference);
- ``evaluate`` with ``rerank=``, split into the time spent inside the scorer and the
  rest (the library's part: first stage, pair bookkeeping, cascade counting).

    python benchmarks/bench_rerank.py                      # 5,000 x 25,000, D = 256, k = 128
    python benchmarks/bench_rerank.py --images 1000 --texts 5000   # quick look

Target on a 2-core CPU: the library's part within 1.3x of plain ``evaluate``.
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_streaming import make

import ccr_metrics as cm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--texts", type=int, default=25000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    images, texts, owner = make(args.images, args.texts, args.dim, args.seed)
    embeds, owners = {"en": texts}, {"en": owner}

    scorer_seconds = 0.0
    pairs = 0

    def score_pairs(language: str, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        nonlocal scorer_seconds, pairs
        start = time.perf_counter()
        out = (images[image] * texts[text]).sum(1)
        scorer_seconds += time.perf_counter() - start
        pairs += image.shape[0]
        return out

    # Warm-up on a tiny problem: numba's cache, torch's thread pool.
    tiny = make(64, 320, args.dim, args.seed)
    cm.evaluate(tiny[0], {"en": tiny[1]}, {"en": tiny[2]}, device="cpu", rerank=score_pairs)

    plain, reranked, library = [], [], []
    for _ in range(args.repeat):  # interleaved, so drifting load hits both alike
        start = time.perf_counter()
        cm.evaluate(images, embeds, owners, device="cpu")
        plain.append(time.perf_counter() - start)
        scorer_seconds, pairs = 0.0, 0
        start = time.perf_counter()
        report = cm.evaluate(
            images,
            embeds,
            owners,
            device="cpu",
            rerank=score_pairs,
            rerank_k=args.k,
            rerank_batch_size=args.batch_size,
        )
        total = time.perf_counter() - start
        reranked.append(total)
        library.append(total - scorer_seconds)
    print(
        f"{args.images:,} images x {args.texts:,} texts, D = {args.dim}, k = {args.k}, "
        f"float32, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    best_plain, best_library = min(plain), min(library)
    print(f"evaluate, no second stage      {best_plain:7.2f} s")
    print(f"evaluate, rerank= (total)      {min(reranked):7.2f} s")
    print(f"  of which the library's part  {best_library:7.2f} s")
    print(f"  pairs scored                 {pairs:,} of {(args.images + args.texts) * args.k:,}")
    ratio = best_library / best_plain
    verdict = "PASS" if ratio <= 1.3 else "MISS"
    print(f"library part / plain evaluate: {ratio:.2f}x  (target <= 1.3x: {verdict})")
    print("R@1 with the second stage:", {d: v[1] for d, v in report.recall()["en"].items()})


if __name__ == "__main__":
    main()
