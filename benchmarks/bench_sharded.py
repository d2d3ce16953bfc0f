"""The cost of a small evaluate_sharded call on 2 gloo processes, against evaluate in one.

A test set of ``--images`` images (5 English captions each, 1 German) is split in two
halves; two spawned CPU processes in a gloo group on loopback each hold one and call
``evaluate_sharded``; in between, process 0 calls ``evaluate`` on the whole set alone.
What a small sharded call costs on top of the work is the collectives and their waits
(a few dozen, each a loopback round trip), so it is reported as seconds per call and as
the ratio to the single-process call.

    python benchmarks/bench_sharded.py                  # 300 images, D = 256
    python benchmarks/bench_sharded.py --images 3000 --repeat 3

Target on a quiet 2-core CPU: a 300-image sharded call well under a second.
"""

from __future__ import annotations

import argparse
import datetime
import socket
import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ccr_metrics as cm


def make(n_images: int, dim: int, seed: int) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, dim)).astype(np.float32)
    owners = {"en": np.repeat(np.arange(n_images), 5), "de": np.arange(n_images)}
    texts = {
        lang: (images[o] + rng.standard_normal((len(o), dim))).astype(np.float32)
        for lang, o in owners.items()
    }
    return images, texts, owners


def half(rank: int, data: tuple[Any, dict[str, Any], dict[str, Any]]) -> tuple[Any, ...]:
    images, texts, owners = data
    n = images.shape[0]
    lo, hi = (0, n // 2) if rank == 0 else (n // 2, n)
    keep = {lang: (o >= lo) & (o < hi) for lang, o in owners.items()}
    return (
        images[lo:hi],
        {lang: t[keep[lang]] for lang, t in texts.items()},
        {lang: o[keep[lang]] - lo for lang, o in owners.items()},
    )


def worker(rank: int, port: int, args: argparse.Namespace, results: Any) -> None:
    torch.set_num_threads(1)  # two processes on two cores
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=300),
    )
    data = make(args.images, args.dim, args.seed)
    shard = half(rank, data)
    cm.evaluate_sharded(*shard, device="cpu")  # warm-up: numba's cache, the connections
    sharded, local = [], []
    for _ in range(args.repeat):  # interleaved, so drifting load hits both alike
        dist.barrier()
        start = time.perf_counter()
        cm.evaluate_sharded(*shard, device="cpu")
        sharded.append(time.perf_counter() - start)
        dist.barrier()
        if rank == 0:  # the peer waits in the barrier meanwhile
            start = time.perf_counter()
            cm.evaluate(*data, device="cpu")
            local.append(time.perf_counter() - start)
        dist.barrier()
    if rank == 0:
        results.put((sharded, local))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=10, help="calls of each")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(worker, args=(port, args, results), nprocs=2, join=True)
    sharded, local = results.get()
    print(f"{args.images} images, D = {args.dim}, 2 processes, {args.repeat} calls of each")
    for name, times in (("evaluate_sharded", sharded), ("evaluate (1 process)", local)):
        print(f"  {name:22s} median {statistics.median(times):.4f} s, best {min(times):.4f} s")
    print(f"  ratio of medians: {statistics.median(sharded) / statistics.median(local):.1f}x")


if __name__ == "__main__":
    main()
