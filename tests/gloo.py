"""Spawned processes in a gloo process group on loopback, for the multi-process tests.

A spawned process spends seconds importing torch and the package before it does any
work, more than most multi-process tests take. :class:`ProcessPool` (the session's
``gloo_pool`` fixture, see conftest.py) keeps its processes between tests: each test's
worker runs in the first ``nprocs`` of them, which join a fresh process group on a fresh
port. :func:`run_processes` spawns processes of its own, for workers that leave their
process unusable (one that exits on purpose, a group left broken by a timeout).
"""

from __future__ import annotations

import datetime
import queue
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# Longer than any worker's process-group timeout (at most 120 s): a worker that hangs
# past it fails the test instead of blocking the session.
RUN_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_processes(worker: Callable[..., None], *args: Any, nprocs: int = 2) -> None:
    """Run ``worker(rank, port, *args)`` in ``nprocs`` newly spawned processes and wait."""
    mp.spawn(worker, args=(free_port(), *args), nprocs=nprocs, join=True)


def _serve(jobs: Any, results: Any, initializer: Callable[[], None] | None) -> None:
    """A pool process: run each job it is sent and report how it ended, until stopped."""
    if initializer is not None:
        initializer()
    while True:
        worker, rank, port, args = jobs.get()
        threads = torch.get_num_threads()
        try:
            with warnings.catch_warnings():  # a worker's filters stay with its job
                worker(rank, port, *args)
        except BaseException:
            results.put((rank, traceback.format_exc()))
        else:
            # The next job joins a group of its own: one left open would fail it instead.
            left_open = dist.is_initialized()
            results.put((rank, "returned with its process group open" if left_open else None))
        finally:
            torch.set_num_threads(threads)  # some workers run on one thread


class ProcessPool:
    """Spawned processes kept between tests; each :meth:`run` is one worker on some of them."""

    def __init__(self, initializer: Callable[[], None] | None = None) -> None:
        """``initializer`` runs first in each process (early.py's pool lowers its priority)."""
        self._initializer = initializer
        self._context = mp.get_context("spawn")
        self._results = self._context.Queue()
        self._processes: list[Any] = []
        self._jobs: list[Any] = []

    def run(self, worker: Callable[..., None], *args: Any, nprocs: int = 2) -> None:
        """Run ``worker(rank, port, *args)`` on ranks ``0..nprocs-1``; raise if any fails."""
        while len(self._processes) < nprocs:  # started on first need, then kept
            jobs = self._context.SimpleQueue()
            process = self._context.Process(
                target=_serve, args=(jobs, self._results, self._initializer), daemon=True
            )
            process.start()
            self._processes.append(process)
            self._jobs.append(jobs)
        port = free_port()
        for rank in range(nprocs):
            self._jobs[rank].put((worker, rank, port, args))
        failures = self._failures(nprocs)
        if failures:
            # As mp.spawn does: a failure ends the run (its peers may be blocked in a
            # collective), and the pool starts afresh next time.
            self.close()
            raise RuntimeError(f"{worker.__name__}: " + "\n".join(failures))

    def _failures(self, nprocs: int) -> list[str]:
        """Wait for ``nprocs`` answers; what went wrong (empty if every rank succeeded)."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        failures: list[str] = []
        for _ in range(nprocs):
            while True:
                try:
                    rank, error = self._results.get(timeout=1)
                    break
                except queue.Empty:
                    for r, process in enumerate(self._processes[:nprocs]):
                        if not process.is_alive():
                            return [*failures, f"process {r} died (exit code {process.exitcode})"]
                    if time.monotonic() > deadline or failures:  # peers of a failure: 1 s
                        return failures or [f"no answer within {RUN_TIMEOUT_S} s"]
            if error is not None:
                failures.append(f"process {rank} failed:\n{error}")
        return failures

    def close(self) -> None:
        """Stop every process, busy or idle (the next :meth:`run` spawns a fresh set)."""
        for process in self._processes:
            process.kill()
            process.join()
        self._processes, self._jobs = [], []
        self._results = self._context.Queue()  # no stale answer reaches the next run


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
