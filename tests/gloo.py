"""Spawned processes in a gloo process group on loopback, for the multi-process tests."""

from __future__ import annotations

import datetime
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp


def run_processes(worker: Callable[..., None], *args: Any, nprocs: int = 2) -> None:
    """Run ``worker(rank, port, *args)`` in ``nprocs`` spawned processes and wait."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    mp.spawn(worker, args=(port, *args), nprocs=nprocs, join=True)


@contextmanager
def process_group(rank: int, port: int, world_size: int, timeout_s: int = 60) -> Iterator[None]:
    """Join the group for the duration of the block."""
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    try:
        yield
    finally:
        # Tear down only once every process is done: a process that destroys the group
        # while its peer still talks to it makes gloo abort the peer.
        dist.barrier()
        dist.destroy_process_group()
