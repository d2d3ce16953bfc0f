"""Streaming evaluation against the bare matrix product it cannot avoid.

``evaluate`` computes the scores block by block and counts both directions of each
block as it comes (one product: image rows, text columns), so the full images x texts
matrix (8 GB in float32 at the default size) is never held. This times it, in one run
on the same embeddings, against one bare product (nothing else done with the scores):
``matmul``, the chunked ``images @ texts.T`` of whole-gallery row blocks of the
streaming default size into one buffer (the reference of the target), and ``tiles``,
the very fixed-shape image x text tile products ``evaluate`` makes (``evaluate /
tiles`` is then what counting costs). Each one's peak resident memory is
measured in a fresh process (the difference to a process that only made the embeddings
is the extra memory).

    python benchmarks/bench_streaming.py                 # 20,000 x 100,000, D = 256
    python benchmarks/bench_streaming.py --images 2000 --texts 10000   # quick look

Targets on a 2-core CPU: evaluate within 1.2x of the bare matmul; peak RSS under 1.5 GB.
The first call in a fresh process (loading numba's compiled kernels, starting torch's
threads) is timed apart on a tiny problem and reported beside the steady-state time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

import ccr_metrics as cm
from ccr_metrics.harness.stream import stream_rows
from ccr_metrics.harness.tiles import GalleryTiles, padded_queries, score_block, tiling_for


def make(n_images: int, n_texts: int, dim: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.nn.functional.normalize(torch.randn(n_images, dim, generator=gen), dim=1)
    owner = torch.arange(n_texts) * n_images // n_texts  # equal captions per image
    noise = torch.randn(n_texts, dim, generator=gen) * 4.0 / dim**0.5
    texts = torch.nn.functional.normalize(images[owner] + noise, dim=1)
    return images, texts, owner


def bare_matmul(images: torch.Tensor, texts: torch.Tensor) -> None:
    """One product ``images @ texts.T`` in streaming blocks into one buffer, nothing else."""
    rows = stream_rows(None, texts.shape[0], images.device)
    buffer = images.new_empty((min(rows, images.shape[0]), texts.shape[0]))
    for a in range(0, images.shape[0], rows):
        b = min(a + rows, images.shape[0])
        torch.mm(images[a:b], texts.T, out=buffer[: b - a])


def bare_tiles(images: torch.Tensor, texts: torch.Tensor) -> None:
    """The fixed-shape image x text tile products evaluate computes, in its blocks and buffer."""
    tiling = tiling_for(images.shape[0], texts.shape[0], images.device)
    tiles = GalleryTiles(texts, 0, tiling.gallery)
    rows = -(-stream_rows(None, texts.shape[0], images.device) // tiling.queries)
    rows *= tiling.queries
    buffer = None
    for a in range(0, images.shape[0], rows):
        b = min(a + rows, images.shape[0])
        height = -(-(b - a) // tiling.queries) * tiling.queries
        block = score_block(padded_queries(images, 0, a, height), tiles, tiling, buffer)
        buffer = block.scores


def current_rss_mb() -> float:
    """Resident memory now (not the peak so far), from /proc."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


BARE = {"matmul": bare_matmul, "tiles": bare_tiles}


def run_one(kind: str, args: argparse.Namespace) -> dict[str, float]:
    """Run one measurement in this process and return seconds and peak RSS."""
    import resource

    images, texts, owner = make(args.images, args.texts, args.dim, args.seed)
    # One-off costs of a fresh process (loading numba's compiled kernels, torch's thread
    # pool) are timed apart, on a tiny problem, so that the ratio is the steady state.
    start = time.perf_counter()
    tiny = make(64, 320, args.dim, args.seed)
    if kind == "evaluate":
        cm.evaluate(tiny[0], {"en": tiny[1]}, {"en": tiny[2]}, device="cpu")
    else:
        BARE[kind](tiny[0], tiny[1])
    warmup = time.perf_counter() - start
    baseline = current_rss_mb()
    start = time.perf_counter()
    if kind == "evaluate":
        report = cm.evaluate(images, {"en": texts}, {"en": owner}, device="cpu")
        recall = report.to_dict()["recall"]["en"]
    else:
        BARE[kind](images, texts)
        recall = {}
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "warmup": warmup,
        "peak_mb": peak / 1024,
        "baseline_mb": baseline,
        "recall": recall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--child", choices=["evaluate", *BARE], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args)))
        return

    matrix_gb = args.images * args.texts * 4 / 1e9
    print(
        f"{args.images:,} images x {args.texts:,} texts, D = {args.dim}, float32, "
        f"{torch.get_num_threads()} threads; the full matrix would be {matrix_gb:.1f} GB"
    )
    results: dict[str, list[dict[str, float]]] = {"matmul": [], "tiles": [], "evaluate": []}
    for _ in range(args.repeat):
        for kind in results:  # interleaved, so drifting load hits both alike
            sizes = ["--images", str(args.images), "--texts", str(args.texts)]
            sizes += ["--dim", str(args.dim), "--seed", str(args.seed)]
            out = subprocess.run(
                [sys.executable, __file__, *sizes, "--child", kind],
                check=True,
                capture_output=True,
                text=True,
            )
            results[kind].append(json.loads(out.stdout))
    best = {kind: min(runs, key=lambda r: r["seconds"]) for kind, runs in results.items()}
    ratio = best["evaluate"]["seconds"] / best["matmul"]["seconds"]
    counting = best["evaluate"]["seconds"] / best["tiles"]["seconds"]
    for kind, r in best.items():
        extra = r["peak_mb"] - r["baseline_mb"]
        print(
            f"{kind:9s} {r['seconds']:7.2f} s   peak RSS {r['peak_mb']:7.0f} MB "
            f"(extra over the process holding the embeddings: {extra:6.0f} MB); "
            f"first call in the process {r['warmup']:.2f} s"
        )
    verdict = "PASS" if ratio <= 1.2 else "MISS"
    print(f"evaluate / bare matmul: {ratio:.2f}x  (target <= 1.2x: {verdict})")
    print(f"evaluate / bare tile products: {counting:.2f}x  (what counting adds)")
    peak = best["evaluate"]["peak_mb"]
    verdict = "PASS" if peak < 1536 else "MISS"
    print(f"evaluate peak RSS {peak / 1024:.2f} GB (target < 1.5 GB: {verdict})")
    print("R@1/5/10:", best["evaluate"]["recall"])


if __name__ == "__main__":
    main()
