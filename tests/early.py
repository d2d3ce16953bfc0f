"""Slow work that tests wait on, started as soon as the session knows its tests.

A fresh interpreter spends seconds importing torch before it does any work, a
multi-process test as long again spawning its processes, and the table checks of
test_checks.py take half a minute of CPU, while most of the suite runs on one core. A
test module registers such work with :func:`early`: a generator function of the
session's selected tests that starts the work, yields what the tests read (processes,
futures) and cleans up after. A fixture takes the work with the session fixture
``early_work`` (:func:`started`). When collection ends, conftest.py starts the work of
the modules with a selected test that uses ``early_work``; the work runs at a lower
priority, beside the tests, on the core that the suite leaves idle, and the tests that
use ``early_work`` run after all the others, so that it has the session to get done.
Work not started early (a fixture set up a second time) starts when the fixture asks.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
from gloo import ProcessPool

Starter = Callable[[Sequence[pytest.Item]], Generator[Any, None, None]]

_STARTERS: dict[str, list[Starter]] = {}  # by module name
_STARTED: dict[Starter, tuple[Generator[Any, None, None], Any]] = {}
# The multi-process runs' thread and pool (see gloo_run), made on first need.
_LANE: list[ThreadPoolExecutor] = []
_POOL: list[ProcessPool] = []


def early(starter: Starter) -> Starter:
    """Register ``starter``: given the selected tests, it starts work and yields its handle."""
    _STARTERS.setdefault(starter.__module__, []).append(starter)
    return starter


def start(items: Sequence[pytest.Item]) -> None:
    """Start the registered work of the modules whose selected tests (``items``) read it."""
    modules = {
        item.module.__name__ for item in items if "early_work" in getattr(item, "fixturenames", ())
    }
    for module in sorted(modules):
        for starter in _STARTERS.get(module, []):
            if starter not in _STARTED:
                _start(starter, items)


@contextlib.contextmanager
def started(starter: Starter, items: Sequence[pytest.Item]) -> Iterator[Any]:
    """Yield the handle of ``starter``'s work (started now if not yet); clean it up after."""
    if starter not in _STARTED:
        _start(starter, items)
    work, handle = _STARTED.pop(starter)
    try:
        yield handle
    finally:
        work.close()  # the starter's cleanup: the code after its yield


def stop() -> None:
    """Clean up the work that no test took (the session ended before its tests)."""
    for work, _ in _STARTED.values():
        work.close()
    _STARTED.clear()
    if _LANE:
        _LANE.pop().shutdown(cancel_futures=True)
    if _POOL:
        _POOL.pop().close()


@contextlib.contextmanager
def gloo_run(worker: Callable[..., None], *args: Any, nprocs: int) -> Iterator[Future[Path]]:
    """Run ``worker(rank, port, *args, folder)`` on ``nprocs`` processes, in the background.

    For a starter: ``with gloo_run(...) as run: yield run``. ``run`` is the future of
    ``folder``, a temporary folder that the worker writes its results to (or the error of
    a process that failed, see gloo.ProcessPool.run). The runs share one pool of spawned
    processes, at a lower priority, and one thread that runs them in turn, in the order
    they started.
    """
    future: Future[Path]
    if not (dist.is_available() and dist.is_gloo_available()):
        future = Future()
        future.set_exception(RuntimeError("needs torch.distributed with gloo"))
        yield future
        return
    with tempfile.TemporaryDirectory(prefix="ccr-metrics-test-") as name:
        folder = Path(name)

        def run() -> Path:
            if not _POOL:
                _POOL.append(ProcessPool(initializer=lower_own_priority))
            _POOL[0].run(worker, *args, str(folder), nprocs=nprocs)
            return folder

        if not _LANE:
            _LANE.append(ThreadPoolExecutor(1, thread_name_prefix="gloo-run"))
        future = _LANE[0].submit(run)
        try:
            yield future
        finally:
            if not future.cancel():  # under way or done: the folder is in use until it ends
                with contextlib.suppress(Exception):  # a failure is its test's to report
                    future.result()


def _start(starter: Starter, items: Sequence[pytest.Item]) -> None:
    work = starter(items)
    _STARTED[starter] = (work, next(work))


def popen(command: str | list[str], **options: Any) -> subprocess.Popen[str]:
    """``subprocess.Popen(command, **options)`` at a lower priority, with its children.

    The process leads a process group of its own (Python 3.11 and later), so that the
    children a shell has already started are lowered with it. Not a session of its own:
    where the kernel groups processes by session (Linux's autogroup), priorities count
    only within a session. Not on Windows (no setpriority).
    """
    if sys.version_info >= (3, 11):
        options["process_group"] = 0
    process: subprocess.Popen[str] = subprocess.Popen(command, **options)
    with contextlib.suppress(AttributeError, OSError):
        nice = min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)
        if sys.version_info >= (3, 11):
            os.setpriority(os.PRIO_PGRP, process.pid, nice)
        else:
            os.setpriority(os.PRIO_PROCESS, process.pid, nice)
    return process


def running(
    processes: dict[str, subprocess.Popen[str]],
) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """A starter's yield for processes (``yield from running(...)``); kill the rest after."""
    try:
        yield processes
    finally:
        for process in processes.values():
            process.kill()  # only those left running: a timed-out one (a no-op otherwise)
            process.wait()


def outputs(
    processes: dict[str, subprocess.Popen[str]], timeout: float
) -> dict[str, subprocess.CompletedProcess[str]]:
    """What each process printed, once all have ended (each within ``timeout`` seconds)."""
    done = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=timeout)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return done


def lower_own_priority() -> None:
    """Lower this process's priority: a worker pool's initializer. Not on Windows (no nice)."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(10)
