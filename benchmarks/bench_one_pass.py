"""Evaluation from embeddings against the one product it cannot avoid, for both kernels.

``evaluate`` makes every image x text score once, on the tile grid, and counts both
directions from it in the same read (``ccr_metrics/harness/one_pass.py``). This times,
in one process and interleaved (drifting load hits every contender alike), after a
warm-up that compiles numba's loops:

- ``product``: ONE bare product ``images @ texts.T`` in the streaming default's blocks
  of whole-gallery rows into one buffer, nothing done with the scores (the reference);
- ``evaluate`` with the numba kernel (the ``fast`` extra) and with the torch kernel
  (``CCR_METRICS_KERNEL=torch``, what the default install and CUDA run);

and prints each one's best time over the product's. ``--scaling`` times the same at
1,000 .. 20,000 images x 5 captions and fits the exponent of time against N (2 for a
quadratic cost; the product's own exponent is printed beside).

    python benchmarks/bench_one_pass.py              # 5,000 x 25,000 and 20,000 x 100,000
    python benchmarks/bench_one_pass.py --sizes 2000x10000 --repeat 2    # a quick look
    python benchmarks/bench_one_pass.py --scaling

Target on CPU: ``evaluate`` within 1.2x of one bare product at 5,000 x 25,000 and
20,000 x 100,000 (D = 256, float32).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
from bench_streaming import bare_matmul, make

import ccr_metrics as cm

KERNELS = {"numba": "auto", "torch": "torch"}


def evaluate(kernel: str, images: torch.Tensor, texts: torch.Tensor, owner: torch.Tensor) -> None:
    os.environ["CCR_METRICS_KERNEL"] = KERNELS[kernel]
    try:
        cm.evaluate(images, {"en": texts}, {"en": owner}, device="cpu", progress=False)
    finally:
        os.environ.pop("CCR_METRICS_KERNEL", None)


def best_times(n_images: int, n_texts: int, args: argparse.Namespace) -> dict[str, float]:
    """Best seconds of each contender over ``args.repeat`` interleaved rounds."""
    images, texts, owner = make(n_images, n_texts, args.dim, args.seed)
    contenders = {"product": lambda: bare_matmul(images, texts)}
    for kernel in args.kernels:
        contenders[f"evaluate/{kernel}"] = lambda k=kernel: evaluate(k, images, texts, owner)
    tiny = make(64, 320, args.dim, args.seed)
    for kernel in args.kernels:  # compile and load numba's loops, start torch's threads
        evaluate(kernel, *tiny)
    best = dict.fromkeys(contenders, math.inf)
    for _ in range(args.repeat):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def report(n_images: int, n_texts: int, best: dict[str, float]) -> None:
    line = [f"{n_images:>6,} x {n_texts:>7,}: product {best['product']:7.3f} s"]
    for name, seconds in best.items():
        if name != "product":
            ratio = seconds / best["product"]
            line.append(f"{name} {seconds:7.3f} s = {ratio:.2f}x")
    print(";  ".join(line), flush=True)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    num = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    return num / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["5000x25000", "20000x100000"])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; best counts")
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    parser.add_argument("--scaling", action="store_true", help="1k .. 20k images x 5 captions")
    args = parser.parse_args()
    print(
        f"D = {args.dim}, float32, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        "best of {args.repeat} interleaved rounds".replace("{args.repeat}", str(args.repeat))
    )
    if not args.scaling:
        for size in args.sizes:
            n_images, n_texts = (int(x) for x in size.split("x"))
            best = best_times(n_images, n_texts, args)
            report(n_images, n_texts, best)
            for name, seconds in best.items():
                if name != "product":
                    verdict = "PASS" if seconds <= 1.2 * best["product"] else "MISS"
                    print(f"  {name} / product: target <= 1.2x: {verdict}")
        return
    ns = [1000, 2000, 5000, 10000, 20000]
    rows = [best_times(n, 5 * n, args) for n in ns]
    for n, best in zip(ns, rows, strict=True):
        report(n, 5 * n, best)
    for name in rows[0]:
        exponent = slope([float(n) for n in ns], [best[name] for best in rows])
        print(f"  {name}: time ~ N^{exponent:.2f}")


if __name__ == "__main__":
    main()
