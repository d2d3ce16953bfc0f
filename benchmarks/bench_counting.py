"""Rank counting against the cost of reading the scores once.

``rank_counts`` compares every score with its query's best positive score. The floor is
one compare-and-count pass over the same matrix, ``np.count_nonzero(M > c)`` for a
scalar ``c``, which numpy runs on one thread. This times ``rank_counts`` for every
positive layout, both memory layouts and both float dtypes, with each kernel (the numba
loop of the ``[fast]`` extra and the torch block path), with all threads and with one,
and prints each time as a ratio to that floor, measured side by side in one run.

    python benchmarks/bench_counting.py                      # 2,000 x 10,000 and 5,000 x 25,000
    python benchmarks/bench_counting.py --sizes 2000 --repeats 5
    python benchmarks/bench_counting.py --kernels torch      # as without numba

Targets: the numba kernel at or under 1.0x the floor with all threads and within 1.3x
with one; the torch path within 2x (float32) and 3x (float64) with all threads; a bool
mask as fast as an index.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import numpy as np
import torch
from bench_ranking import Clock, cpu_model, make_scores

import ccr_metrics as cm
from ccr_metrics.core import _counting

PER_IMAGE = 5
# Ratio to the floor each kernel should stay under, per dtype: (all threads, one thread).
TARGETS: dict[str, dict[type, tuple[float, float | None]]] = {
    "numba": {np.float32: (1.0, 1.3), np.float64: (1.0, 1.3)},
    "torch": {np.float32: (2.0, None), np.float64: (3.0, None)},
}
LAYOUTS = ("index", "ragged", "view", "mask")
# What each layout ranks: t2i on the C-ordered [M, N] matrix with one positive per text
# (index), i2t on S [N, M] with each image's captions as lists (ragged) or as a bool
# mask (mask), t2i on the transposed view S.T (view).
DESCRIPTION = {
    "index": "t2i, C [5N, N], positives [5N] int",
    "ragged": "i2t, S [N, 5N], 5 captions per image as lists",
    "view": "t2i, S.T (column-major view), positives [5N] int",
    "mask": "i2t, S [N, 5N], bool mask [N, 5N]",
}


def cases(n_images: int, dtype: np.dtype) -> dict[str, tuple[torch.Tensor, object]]:
    """The matrix and positives of each layout, all from one S."""
    scores, owner = make_scores(n_images, PER_IMAGE, 256, 0)
    scores = scores.astype(dtype)
    contiguous = np.ascontiguousarray(scores.T)
    captions = [list(range(i * PER_IMAGE, (i + 1) * PER_IMAGE)) for i in range(n_images)]
    mask = np.zeros(scores.shape, dtype=bool)
    mask[owner, np.arange(owner.size)] = True
    s = torch.from_numpy(scores)
    return {
        "index": (torch.from_numpy(contiguous), torch.from_numpy(owner)),
        "ragged": (s, captions),
        "view": (s.T, torch.from_numpy(owner)),
        "mask": (s, torch.from_numpy(mask)),
    }


def floor_of(matrix: torch.Tensor) -> Callable[[], object]:
    array = matrix.numpy()
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array.T)  # same elements, read contiguously
    threshold = array.dtype.type(0.5)
    return lambda: np.count_nonzero(array > threshold)


class WarmClock(Clock):
    """A ``Clock`` that makes each call once, untimed, between the quiet wait and its timed run.

    The wait sleeps, and the CPUs idle: the next call of torch on two threads then ran
    about 3 ms (25%) slower here (2,000 x 10,000 float32, ragged; 14.6 ms against 11.3
    back to back, 11.0 after one untimed call), each op waiting for its slower thread.
    The untimed call measures the steady state of a busy evaluation loop instead; the
    floor gets one too.
    """

    def time(self, fn: Callable[[], object]) -> tuple[float, bool]:
        self._next = fn
        return super().time(fn)

    def _wait_for_quiet(self, window_s: float = 0.2) -> None:
        super()._wait_for_quiet(window_s)
        self._next()


def with_kernel(kernel: str, fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        os.environ["CCR_METRICS_KERNEL"] = kernel
        return fn()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000], help="images N")
    parser.add_argument("--repeats", type=int, default=7, help="rounds; the best time counts")
    parser.add_argument("--max-wait", type=float, default=3.0, help="seconds to wait for quiet")
    parser.add_argument(
        "--kernels", nargs="+", choices=TARGETS, help="kernels to time (default: all available)"
    )
    parser.add_argument(
        "--cold", action="store_true", help="no untimed call before each timed one (WarmClock)"
    )
    args = parser.parse_args()
    threads = torch.get_num_threads()
    kernels = args.kernels or (["numba", "torch"] if _counting.numba_available() else ["torch"])
    print(
        f"{cpu_model()}; {os.cpu_count()} CPUs; torch {torch.__version__} ({threads} threads); "
        f"numpy {np.__version__}; kernels: {', '.join(kernels)}"
    )
    for name in LAYOUTS:
        print(f"  {name:7s} {DESCRIPTION[name]}")
    clock = Clock(args.max_wait) if args.cold else WarmClock(args.max_wait)
    misses = []
    for n_images in args.sizes:
        for dtype in (np.float32, np.float64):
            data = cases(n_images, np.dtype(dtype))
            header = f"{n_images:,} x {n_images * PER_IMAGE:,} {np.dtype(dtype).name}"
            print(f"\n{header}: seconds, and / floor (all threads | 1 thread)")
            for n_threads in (threads, 1):
                torch.set_num_threads(n_threads)
                contenders: dict[str, Callable[[], object]] = {}
                for name, (matrix, positives) in data.items():
                    contenders[f"floor {name}"] = floor_of(matrix)
                    for kernel in kernels:
                        call = lambda m=matrix, p=positives: cm.rank_counts(m, p)  # noqa: E731
                        contenders[f"{kernel} {name}"] = with_kernel(kernel, call)
                for contender in contenders.values():
                    contender()  # compile, warm caches and thread pools
                best = clock.best(contenders, args.repeats)
                # Every layout's matrix holds the same number of scores: the fastest
                # floor of the four is the floor (one slow outlier does not skew a ratio).
                floor = min(best[f"floor {name}"][0] for name in LAYOUTS)
                for kernel in kernels:
                    cells = []
                    for name in LAYOUTS:
                        seconds, noisy = best[f"{kernel} {name}"]
                        ratio = seconds / floor
                        target = TARGETS[kernel][dtype][0 if n_threads == threads else 1]
                        mark = "!" if noisy else ""
                        if target is not None and ratio > target:
                            misses.append(f"{header} {kernel} {name} {n_threads}t {ratio:.2f}x")
                        cells.append(f"{name} {seconds:.4f}s {ratio:.2f}x{mark}")
                    print(f"  {kernel:5s} {n_threads}t  " + "   ".join(cells))
                floors = "   ".join(f"{name} {best[f'floor {name}'][0]:.4f}s" for name in LAYOUTS)
                print(f"  floor     {floors}  (np.count_nonzero(M > c), one thread)")
            torch.set_num_threads(threads)
    os.environ.pop("CCR_METRICS_KERNEL", None)
    print(f"\n{clock.noisy_runs} of {clock.runs} timed runs overlapped other activity (!)")
    print("targets met" if not misses else "missed: " + "; ".join(misses))


if __name__ == "__main__":
    main()
