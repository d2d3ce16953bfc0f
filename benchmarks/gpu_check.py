"""Check the CUDA counting path against the CPU, then measure evaluation throughput.

Run on a machine with a CUDA GPU (under 5 minutes on an H100-class GPU):

    python benchmarks/gpu_check.py                 # checks, then the largest sizes that fit
    python benchmarks/gpu_check.py --device cpu --quick   # a dry run of the same code

1. Exactness: ``rank_counts`` on the GPU must equal ``rank_counts`` on the CPU (the
   torch path) for the same scores, in float32, float16 and bfloat16, on random and on
   tie-heavy scores (small integers, so ties are exact in every dtype), for index,
   mask, ragged and transposed layouts. Any difference is printed and the script exits 1.
2. The one-pass path (both directions from one product, ``harness/one_pass.py``) on
   the GPU must equal ``rank_counts`` of the very tile scores it reads (made on the
   GPU), in float32, float16 and bfloat16; on small-integer embeddings (exact products)
   also the CPU's counts; on all-equal embeddings (every score tied) through its exact
   fallback. Re-ranking with a scorer must give the CPU's report on small integers.
3. Throughput of ``evaluate_scores`` on stored score matrices held on the device, and of
   streamed ``evaluate`` on embeddings (the full matrix never held), growing until the
   next size would not fit in memory or in the time left. Goal: 1,000,000 x 1,000,000
   x 512 streamed (bfloat16) in under 10 s on an H100-class GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import torch

import ccr_metrics as cm

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def problems(n_queries: int, n_gallery: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "random": torch.randn(n_queries, n_gallery, generator=gen),
        "tie-heavy": torch.randint(-3, 4, (n_queries, n_gallery), generator=gen).float(),
    }


def layouts(scores: torch.Tensor, seed: int) -> dict[str, tuple[torch.Tensor, object]]:
    n_queries, n_gallery = scores.shape
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, n_gallery, (n_queries,), generator=gen)
    mask = torch.rand(n_queries, n_gallery, generator=gen) < 3 / n_gallery
    mask[torch.arange(n_queries), index] = True
    ragged = [row.nonzero().flatten().tolist() for row in mask]
    return {
        "index": (scores, index),
        "mask": (scores, mask),
        "ragged": (scores, ragged),
        "view": (scores.T.contiguous().T, index),
    }


def check_exactness(device: torch.device, n_queries: int, n_gallery: int) -> int:
    failures = 0
    for dtype in DTYPES:
        for kind, base in problems(n_queries, n_gallery, 0).items():
            for layout, (scores, positives) in layouts(base.to(dtype), 1).items():
                os.environ["CCR_METRICS_KERNEL"] = "torch"  # the reference: torch on the CPU
                cpu = cm.rank_counts(scores, positives)
                os.environ.pop("CCR_METRICS_KERNEL")
                moved = positives.to(device) if isinstance(positives, torch.Tensor) else positives
                on_device = cm.rank_counts(scores.to(device), moved)
                same = all(
                    torch.equal(getattr(cpu, name), getattr(on_device, name).cpu())
                    for name in ("above", "tied_negatives", "tied_positives")
                )
                failures += not same
                print(f"  {dtype!s:15s} {kind:9s} {layout:6s} {'equal' if same else 'DIFFERENT'}")
    return failures


def tile_scores(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """The image x text scores as evaluate's tile grid makes them on their device."""
    from ccr_metrics.harness.tiles import GalleryTiles, padded_queries, score_block, tiling_for

    tiling = tiling_for(images.shape[0], texts.shape[0], images.device)
    tiles = GalleryTiles(texts, 0, tiling.gallery)
    height = -(-images.shape[0] // tiling.queries) * tiling.queries
    block = score_block(padded_queries(images, 0, 0, height), tiles, tiling)
    full = block.scores.permute(1, 0, 2).reshape(height, -1)
    return full[: images.shape[0], : texts.shape[0]]


def one_pass_problems(n: int, m: int, dim: int) -> dict[str, tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(2)
    owner = torch.randint(0, n, (m,), generator=gen)
    images = torch.randn(n, dim, generator=gen)
    return {
        "random": (images, images[owner] + torch.randn(m, dim, generator=gen), owner),
        "tie-heavy": (
            torch.randint(-2, 3, (n, dim), generator=gen).float(),
            torch.randint(-2, 3, (m, dim), generator=gen).float(),
            owner,
        ),
        "all-equal": (torch.ones(n, dim), torch.ones(m, dim), owner),
    }


def check_one_pass(device: torch.device, n: int, m: int) -> int:
    from ccr_metrics.harness.one_pass import one_pass_counts

    class Bar:
        def update(self) -> None:
            pass

    def refuse(row: int, column: int, value: float) -> None:
        raise ValueError(f"{value} at image {row}, text {column}")

    failures = 0
    for dtype in DTYPES:
        for kind, (images, texts, owner) in one_pass_problems(n, m, 64).items():
            i, t, o = images.to(device, dtype), texts.to(device, dtype), owner.to(device)
            got = one_pass_counts(i, t, o, 4096, Bar(), refuse)
            s = tile_scores(i, t)
            captions = [[] for _ in range(n)]
            for text, image in enumerate(owner.tolist()):
                captions[image].append(text)
            has = torch.tensor([bool(c) for c in captions])
            want_i2t = cm.rank_counts(s[has], [c for c in captions if c])
            want_t2i = cm.rank_counts(s.T, o)
            same = all(
                torch.equal(torch.as_tensor(getattr(g, f))[mask], getattr(w, f).cpu())
                for g, w, mask in ((got[0], want_i2t, has), (got[1], want_t2i, slice(None)))
                for f in ("above", "tied_negatives", "tied_positives")
            )
            if kind != "random":  # exact products: the CPU counts the same
                cpu = one_pass_counts(images.to(dtype), texts.to(dtype), owner, 97, Bar(), refuse)
                same &= all(
                    (getattr(a, f) == getattr(b, f)).all()
                    for a, b in zip(got, cpu, strict=True)
                    for f in ("above", "tied_negatives", "tied_positives")
                )
            failures += not same
            print(f"  one pass {dtype!s:15s} {kind:9s} {'equal' if same else 'DIFFERENT'}")
    images, texts, owner = one_pass_problems(n, m, 64)["tie-heavy"]

    def scorer(images: torch.Tensor, texts: torch.Tensor) -> object:
        return lambda lang, i, t: (images[i] * texts[t]).sum(1)

    reports = [
        cm.evaluate(
            images.to(d),
            {"x": texts.to(d)},
            {"x": owner},
            rerank=scorer(images.to(d), texts.to(d)),
            rerank_k=16,
            device=d,
        ).to_dict()
        for d in (device, torch.device("cpu"))
    ]
    same = reports[0]["recall"] == reports[1]["recall"] and reports[0]["mrv"] == reports[1]["mrv"]
    failures += not same
    print(f"  re-ranked evaluate, device vs CPU: {'equal' if same else 'DIFFERENT'}")
    return failures


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def fits(n_bytes: int, device: torch.device, limit: int) -> bool:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return n_bytes < 0.8 * free
    return n_bytes < limit


def throughput(args: argparse.Namespace, device: torch.device, deadline: float) -> None:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    print(f"\nstored scores ({dtype}), evaluate_scores, i2t and t2i of one language:")
    n = args.start
    while time.perf_counter() < deadline:
        if not fits(2 * n * n * dtype.itemsize, device, args.cpu_bytes):
            break
        gen = torch.Generator(device=device).manual_seed(0)
        s = torch.randn(n, n, generator=gen, device=device, dtype=torch.float32).to(dtype)
        seconds = timed(lambda s=s: cm.evaluate_scores(i2t={"x": s}, t2i={"x": s.T}), device)
        print(f"  {n:>9,} x {n:<9,} {seconds:8.3f} s  {2 * n * n / seconds / 1e9:8.1f} G scores/s")
        del s
        n *= 2
    print(
        f"\nstreamed embeddings ({dtype}, D = {args.dim}), evaluate, both directions (one product):"
    )
    for n in args.stream_sizes:
        embed_bytes = 2 * n * args.dim * dtype.itemsize
        if not fits(embed_bytes, device, args.cpu_bytes) or time.perf_counter() > deadline:
            print(f"  {n:>9,}: skipped (memory or time)")
            continue
        gen = torch.Generator(device=device).manual_seed(0)
        images = torch.randn(n, args.dim, generator=gen, device=device)
        texts = (images + torch.randn(n, args.dim, generator=gen, device=device)).to(dtype)
        images = images.to(dtype)
        seconds = timed(lambda i=images, t=texts: cm.evaluate(i, {"x": t}, device=device), device)
        rate = n * n / seconds / 1e9
        goal = "  (goal for 1,000,000: < 10 s)" if n == 1_000_000 else ""
        print(f"  {n:>9,} x {n:<9,} {seconds:8.2f} s  {rate:8.1f} G scores made/s{goal}")
        if n == args.stream_sizes[0]:
            rerank_ratio(images, texts, device)
        del images, texts


def rerank_ratio(images: torch.Tensor, texts: torch.Tensor, device: torch.device) -> None:
    """Time re-ranking (rerank_k = 128, a trivial scorer) against plain evaluate."""

    def trivial(lang: str, i: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(i.shape[0], device=i.device)

    plain = timed(lambda: cm.evaluate(images, {"x": texts}, device=device), device)
    reranked = timed(
        lambda: cm.evaluate(images, {"x": texts}, device=device, rerank=trivial, rerank_k=128),
        device,
    )
    print(
        f"  re-ranking, k = 128, trivial scorer: {reranked:.2f} s = {reranked / plain:.2f}x plain"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a dry run)")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds for the whole run")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (try --device cpu --quick for a dry run)")
        return 0
    deadline = time.perf_counter() + args.budget
    args.dim = 512
    args.cpu_bytes = 1 << 28
    if args.quick:
        args.start, args.stream_sizes = 256, [1000, 2000]
        n_queries, n_gallery = 60, 90
    else:
        args.start, args.stream_sizes = 8192, [100_000, 300_000, 1_000_000]
        n_queries, n_gallery = 3000, 7000
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; torch {torch.__version__}")
    print(f"exactness, {n_queries} x {n_gallery}, device vs CPU counts:")
    failures = check_exactness(device, n_queries, n_gallery)
    print(f"one pass and re-ranking, {n_queries // 4} images x {n_gallery // 4} texts:")
    failures += check_one_pass(device, n_queries // 4, n_gallery // 4)
    throughput(args, device, deadline)
    print(f"\n{failures} exactness failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
